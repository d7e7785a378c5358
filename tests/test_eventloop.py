"""The engines' event loop: uvloop when installed, asyncio's own when HTTPTASK_EVENT_LOOP=asyncio."""

from __future__ import annotations

import asyncio
import os

import pytest

from httptask.eventloop import LOOP_VAR, run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_s_loop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOP_VAR, "asyncio")
    assert run(_loop_module()).startswith("asyncio")


def test_uvloop_by_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(LOOP_VAR, raising=False)
    assert run(_loop_module()) == "uvloop"


def test_the_tests_use_asyncio_s_loop_outside_the_namespace() -> None:
    if os.environ.get("HTTPTASK_NETNS") == "1":
        pytest.skip("inside the loopback-only namespace the default loop is kept")
    assert os.environ[LOOP_VAR] == "asyncio"
