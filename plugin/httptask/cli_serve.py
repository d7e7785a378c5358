"""`httptask serve`: run the editor on loopback, or elsewhere only behind a token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import UsageError

if TYPE_CHECKING:
    from .catalog import Catalog

__all__ = ["TOKEN_VAR", "serve_command"]

TOKEN_VAR = "HTTPTASK_TOKEN"


@contextlib.contextmanager
def _sandbox(enabled: bool, catalog: Catalog) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from .sandbox import SandboxThread

    with SandboxThread(catalog) as sandbox:
        yield sandbox.url


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--sandbox", is_flag=True, help="Send test requests to a local sandbox of the APIs.")
@click.option(
    "--token",
    envvar=TOKEN_VAR,
    metavar="T",
    help=f"Require 'Authorization: Bearer T' on every API call (or set {TOKEN_VAR}); "
    "needed to listen on any address but loopback.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="H",
    help="Let test requests reach HOST or HOST:PORT even if it is a private address; repeatable.",
)
@click.option(
    "--secrets-file", type=click.Path(path_type=Path), help="A YAML or JSON file of secrets by name."
)
def serve_command(
    host: str,
    port: int,
    sandbox: bool,
    token: str | None,
    allow_hosts: tuple[str, ...],
    secrets_file: Path | None,
) -> None:
    """Serve the editor: catalog search, the task builder and Test request, in a web page and an HTTP API."""
    import uvicorn

    from .catalog import Catalog
    from .server import ServerConfig, create_app, is_loopback_host

    if token is not None and len(token) < 16:
        raise UsageError(
            "The token is too short to guess-proof the editor; use at least 16 characters, "
            "e.g. from 'python -c \"import secrets; print(secrets.token_urlsafe())\"'."
        )
    if not is_loopback_host(host) and token is None:
        raise UsageError(
            f"Refusing to listen on {host} without --token: anyone who reaches it could send "
            f"requests with your credentials. Pass --token T (or set {TOKEN_VAR}), "
            "or listen on 127.0.0.1."
        )
    catalog = Catalog.default()
    with _sandbox(sandbox, catalog) as sandbox_url:
        config = ServerConfig(
            token=token, sandbox_url=sandbox_url, allow_hosts=allow_hosts, secrets_file=secrets_file
        )
        app = create_app(config, catalog=catalog)
        shown = f"[{host}]" if ":" in host else host
        suffix = "?token=<your token>" if token else ""
        click.echo(
            f"httptask editor on http://{shown}:{port}/{suffix}"
            + (f" (test requests go to the sandbox at {sandbox_url})" if sandbox_url else "")
        )
        # No access log: URLs may carry the token, and nothing else there is worth a secret's risk.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="h11",
            timeout_keep_alive=5,
            limit_concurrency=64,
            server_header=False,
        )
