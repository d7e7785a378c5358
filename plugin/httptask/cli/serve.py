"""`httptask serve` (the editor, on loopback or elsewhere only behind a token) and `httptask sandbox` (the
local stand-in server of every catalog operation)."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from ..errors import UsageError
from .console import optional_sandbox, secrets_file_option

__all__ = ["TOKEN_VAR", "sandbox_command", "serve_command"]

TOKEN_VAR = "HTTPTASK_TOKEN"


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
    "--secret-origin",
    "secret_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let a test request carry a secret to ORIGIN (https://host[:port]) as well as to the servers its "
    "operation documents; repeatable.",
)
@secrets_file_option
def serve_command(
    host: str,
    port: int,
    sandbox: bool,
    token: str | None,
    allow_hosts: tuple[str, ...],
    secret_origins: tuple[str, ...],
    secrets_file: Path | None,
) -> None:
    """Serve the editor: catalog search, the task builder and Test request, in a web page and an HTTP API."""
    import uvicorn

    from ..catalog import Catalog
    from ..server import ServerConfig, create_app, is_loopback_host

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
    with optional_sandbox(catalog, sandbox) as sandbox_url:
        config = ServerConfig(
            token=token,
            sandbox_url=sandbox_url,
            allow_hosts=allow_hosts,
            secret_origins=_origins(secret_origins),
            secrets_file=secrets_file,
        )
        app = create_app(config, catalog=catalog)
        listener = _listen(host, port)
        port = listener.getsockname()[1]  # the port --port 0 picked
        shown = f"[{host}]" if ":" in host else host
        suffix = "?token=<your token>" if token else ""
        click.echo(
            f"httptask editor on http://{shown}:{port}/{suffix}"
            + (f" (test requests go to the sandbox at {sandbox_url})" if sandbox_url else "")
        )
        # No access log: URLs may carry the token, and nothing else there is worth a secret's risk.
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                loop="asyncio",
                http="h11",
                timeout_keep_alive=5,
                limit_concurrency=64,
                server_header=False,
            )
        )
        server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """The editor's listening socket, bound before the banner so a taken port is one sentence, not a banner
    followed by uvicorn's exit."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        raise UsageError(
            f"The editor cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "give another --port (0 picks a free one) or --host."
        ) from None
    return listener


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
def sandbox_command(host: str, port: int) -> None:
    """Serve every catalog operation locally: validates requests and answers from the spec."""
    from ..catalog import Catalog
    from ..sandbox import serve_forever

    try:
        serve_forever(Catalog.default(), host, port)
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        raise UsageError(
            f"The sandbox cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "give another --port (0 picks a free one) or --host."
        ) from None


def _origins(given: tuple[str, ...]) -> tuple[str, ...]:
    """Each `--secret-origin` as scheme://host[:port]; anything else is refused before the editor starts."""
    from urllib.parse import urlsplit

    from ..secret_origins import normal_origin

    for origin in given:
        parts = urlsplit(origin.strip())
        beyond = parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc
        if normal_origin(origin) is None or beyond:
            raise UsageError(
                f"--secret-origin {origin!r} is not an origin; give a scheme and host, and a port if it is "
                "not the scheme's default, e.g. https://api.example.com or http://127.0.0.1:8080."
            )
    return given
