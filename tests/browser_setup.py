"""The editor on a free loopback port in a background thread, for the API, schemathesis and browser tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from httptask.catalog import Catalog, spec_files
from httptask.resources import bundled_dir
from httptask.secrets import SecretStore
from httptask.server import ServerConfig, create_app

__all__ = [
    "CHROMIUM",
    "SECRET",
    "SECRET_NAME",
    "bundled_catalog",
    "running_editor",
    "secret_store",
]

CHROMIUM = Path("/usr/bin/chromium")
# Distinctive, so a leak anywhere in an output is found by a plain substring search.
SECRET = "zq-SECRET-4b1e9c77-leak-canary"
SECRET_NAME = "CHARGEBEE_API_KEY"


def bundled_catalog(cache: Path) -> Catalog:
    """The bundled specs only, with the index cached under `cache` (never the user's own catalog)."""
    return Catalog(
        [(api, path, True) for api, path in spec_files(bundled_dir("specs"))],
        index_cache=cache / "index.json",
    )


def secret_store() -> SecretStore:
    return SecretStore(environ={f"HTTPTASK_SECRET_{SECRET_NAME}": SECRET})


@contextlib.contextmanager
def running_editor(config: ServerConfig, catalog: Catalog, *, own_secrets: bool = False) -> Iterator[str]:
    """Serve the editor on 127.0.0.1 until the block ends; yields its base URL.

    Its secrets are the canary store, or with `own_secrets` the server's own from the environment.
    """
    app = create_app(config, catalog=catalog, secrets=None if own_secrets else secret_store())
    # log_config=None lets uvicorn's records reach the root logger, where tests can search them for secrets.
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            log_level="info",
            access_log=True,
            loop="asyncio",
            http="h11",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="httptask-editor", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the editor did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
