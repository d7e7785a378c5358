"""The event loop that engines and commands run on: uvloop when it is installed, else asyncio's own.

`HTTPTASK_EVENT_LOOP=asyncio` chooses asyncio's loop. The tests do so whenever they run outside their
loopback-only network namespace: uvloop connects in C, where the tests' socket tripwire (an audit hook on
Python's socket module) cannot see it, so there only the namespace keeps packets on the machine.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LOOP_VAR", "preload", "run"]

LOOP_VAR = "HTTPTASK_EVENT_LOOP"

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to the end on a new event loop, as `asyncio.run` does."""
    uvloop = _uvloop()
    if uvloop is not None:
        result: T = uvloop.run(main)  # typed as Any by some uvloop releases
        return result
    return asyncio.run(main)


def preload() -> None:
    """Import the loop `run` will use, now (the starter of `--workers` does, once, before it forks)."""
    _uvloop()


def _uvloop() -> Any:
    """The uvloop module, unless it is not installed or asyncio's loop is chosen (None then)."""
    if os.environ.get(LOOP_VAR) == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop
