"""`httptask run` (start or resume a workflow on the local engine) and `httptask runs` (read the journal)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from ..errors import EXIT_INVALID, TaskError, UsageError
from .console import (
    input_items_option,
    input_option,
    is_terminal,
    parse_input,
    parse_input_items,
    plural,
    print_json,
    print_response_issues,
    print_table,
    secrets_file_option,
    strict_responses_option,
)
from .progress import live_board
from .temporal import temporal_options

__all__ = ["run_command", "runs_group"]


@click.command("run")
@click.argument("workflow_file", required=False, type=click.Path(path_type=Path))
@input_option("The workflow's inputs")
@input_items_option
@click.option("--sandbox", is_flag=True, help="Send every request to a local sandbox of the APIs.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="How many requests may be in flight at once.",
)
@click.option(
    "--workers",
    type=str,
    default="1",
    show_default=True,
    help="Share each forEach task's items out over this many processes (the local engine); --concurrency "
    "is shared out among them.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print {run_id, status, tasks, outputs, errors} as JSON."
)
@secrets_file_option
@strict_responses_option
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    help="Finish a run that was interrupted, with its stored workflow and inputs.",
)
@click.option(
    "--mark-done",
    multiple=True,
    metavar="TASK[ITEMS]",
    help="On --resume: these requests of unknown outcome were received (e.g. refund[3,7]); they count as "
    "resolved by hand, never as succeeded.",
)
@click.option(
    "--resend",
    multiple=True,
    metavar="TASK[ITEMS]",
    help="On --resume: these requests of unknown outcome were not received; send them once more.",
)
@click.option(
    "--reconcile",
    is_flag=True,
    help="On --resume: ask the server about each request of unknown outcome (x-reconcile) and decide from "
    "its answer: found (done) or not received (sent once).",
)
@click.option("--note", help="On --resume: the evidence for --mark-done/--resend, journaled with them.")
@click.option(
    "--again",
    is_flag=True,
    help="Start a new run even though a run of this workflow with the same inputs did not finish (it may "
    "send what that one sent).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "temporal"]),
    default="local",
    show_default=True,
    help="Run here (journaled), or on Temporal's workers ('httptask worker').",
)
@click.option("--no-wait", is_flag=True, help="Temporal: print the run id once it has started, and exit.")
@temporal_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=200,
    show_default=True,
    help="Temporal: idempotent requests sent per activity.",
)
@click.option(
    "--batch-lanes",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Temporal: requests of one batch in flight at once.",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(1, 600),
    default=5.0,
    show_default=True,
    help="Temporal: seconds without a heartbeat before a lost worker's requests go to another worker.",
)
def run_command(
    workflow_file: Path | None,
    input_text: str | None,
    input_items: tuple[str, ...],
    sandbox: bool,
    concurrency: int,
    workers: str,
    as_json: bool,
    secrets_file: Path | None,
    strict_responses: bool,
    resume_id: str | None,
    mark_done: tuple[str, ...],
    resend: tuple[str, ...],
    reconcile: bool,
    note: str | None,
    again: bool,
    engine: str,
    no_wait: bool,
    address: str | None,
    namespace: str | None,
    task_queue: str,
    batch_size: int,
    batch_lanes: int,
    heartbeat_timeout: float,
) -> None:
    """Run a workflow on the local engine (journaled) or on Temporal; exit 0 when every task succeeded, 1
    when one failed (or waits for a decision), 2 on bad usage, 3 when the workflow or inputs are not valid."""
    from ..catalog import Catalog
    from ..journal import Journal, default_journal_path
    from ..runs import resume_run, start_run
    from ..secrets import SecretStore

    items = parse_input_items(input_items)
    processes = _workers(workers)
    if engine == "temporal":
        if processes != 1:
            raise UsageError(
                "--workers shares items out on the local engine; on Temporal, start more workers."
            )
        if items:
            raise UsageError(
                "--input-items runs on the local engine only; on Temporal, give the items with --input."
            )
        if reconcile:
            raise UsageError(
                "--reconcile runs on the local engine only; on Temporal, decide with --mark-done or --resend."
            )
        _run_on_temporal(
            workflow_file,
            input_text,
            sandbox,
            concurrency,
            as_json,
            secrets_file,
            strict_responses,
            resume_id,
            mark_done,
            resend,
            note,
            no_wait,
            address,
            namespace,
            task_queue,
            batch_size,
            batch_lanes,
            heartbeat_timeout,
        )
        return
    if no_wait:
        raise UsageError("--no-wait applies to --engine temporal; a local run ends with this command.")
    if resume_id is not None and again:
        raise UsageError("--again starts a new run; leave it out with --resume RUN_ID.")
    if resume_id is None and (mark_done or resend or reconcile or note):
        raise UsageError("--mark-done, --resend, --reconcile and --note only apply to --resume RUN_ID.")
    if resume_id is None and workflow_file is None:
        raise UsageError("Give a workflow file to run, or --resume RUN_ID to finish an interrupted run.")
    if resume_id is not None and (sandbox or strict_responses):
        raise UsageError(
            "--sandbox and --strict-responses cannot be changed on --resume: a run resumes as it started."
        )
    board = live_board(enabled=not as_json and sys.stdout.isatty())
    with board as on_board, contextlib.closing(Journal(default_journal_path())) as journal:
        try:
            if resume_id is None:
                assert workflow_file is not None
                result = start_run(
                    workflow_file,
                    inputs=parse_input(input_text),
                    catalog=Catalog.default(),
                    secrets=SecretStore(file=secrets_file),
                    journal=journal,
                    sandbox=sandbox,
                    concurrency=concurrency,
                    on_task=on_board.on_task if on_board else None,
                    on_start=None if as_json else _announce,
                    again=again,
                    strict_responses=strict_responses,
                    input_items=items,
                    workers=processes,
                )
            else:
                result = resume_run(
                    resume_id,
                    catalog=Catalog.default(),
                    journal=journal,
                    secrets=SecretStore(file=secrets_file) if secrets_file else None,
                    workflow_file=workflow_file,
                    inputs=parse_input(input_text) if input_text else None,
                    concurrency=concurrency,
                    mark_done=mark_done,
                    resend=resend,
                    reconcile=reconcile,
                    note=note,
                    on_task=on_board.on_task if on_board else None,
                    input_items=items,
                    workers=processes,
                )
        except TaskError as exc:
            _invalid(exc, as_json=as_json)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_result(result)
    sys.exit(result.exit_code)


def _workers(text: str) -> int:
    """--workers as a number of processes, or a sentence saying what to give."""
    from ..shards import MAX_WORKERS

    number = int(text) if text.strip().isdigit() else 0
    if not 1 <= number <= MAX_WORKERS:
        raise UsageError(
            f"--workers is {text!r}; give a whole number of processes from 1 to {MAX_WORKERS} "
            f"(this machine has {os.cpu_count() or 1} cores)."
        )
    return number


def _run_on_temporal(
    workflow_file: Path | None,
    input_text: str | None,
    sandbox: bool,
    concurrency: int,
    as_json: bool,
    secrets_file: Path | None,
    strict_responses: bool,
    resume_id: str | None,
    mark_done: tuple[str, ...],
    resend: tuple[str, ...],
    note: str | None,
    no_wait: bool,
    address: str | None,
    namespace: str | None,
    task_queue: str,
    batch_size: int,
    batch_lanes: int,
    heartbeat_timeout: float,
) -> None:
    from .temporal import parse_decisions, require_temporal, run_on_temporal

    require_temporal()
    from ..engines.temporal.connection import Connection
    from ..engines.temporal.model import Settings

    if resume_id is None and (mark_done or resend or note):
        raise UsageError("--mark-done, --resend and --note only apply to --resume RUN_ID.")
    if resume_id is None and workflow_file is None:
        raise UsageError("Give a workflow file to run, or --resume RUN_ID to follow a run on Temporal.")
    if resume_id is not None and (workflow_file is not None or input_text or sandbox or strict_responses):
        raise UsageError(
            "A run on Temporal goes on by itself; --resume RUN_ID only sends --mark-done and --resend "
            "decisions to it (and follows it), without a workflow file, --input, --sandbox or "
            "--strict-responses."
        )
    try:
        code = run_on_temporal(
            Connection(address, namespace, task_queue),
            workflow_file=workflow_file,
            inputs=parse_input(input_text),
            resume_id=resume_id,
            decisions=parse_decisions("mark-done", mark_done, note) + parse_decisions("resend", resend, note),
            sandbox=sandbox,
            settings=Settings(
                concurrency=concurrency,
                batch_size=batch_size,
                batch_lanes=batch_lanes,
                heartbeat_seconds=heartbeat_timeout,
                strict_responses=strict_responses,
            ),
            secrets_file=secrets_file,
            as_json=as_json,
            wait=not no_wait,
        )
    except TaskError as exc:
        _invalid(exc, as_json=as_json)
    sys.exit(code)


def _invalid(exc: TaskError, *, as_json: bool) -> NoReturn:
    """A workflow or inputs that are not valid: exit 3, with the issues as data under --json."""
    if as_json:
        print_json(
            {
                "run_id": None,
                "status": "invalid",
                "tasks": [],
                "outputs": None,
                "errors": [issue.to_dict() for issue in exc.issues],
            }
        )
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_INVALID)


def _announce(run_id: str) -> None:
    click.echo(f"run {run_id}", err=True)


def _print_result(result: Any) -> None:
    rows = []
    for task in result.tasks:
        if task.for_each:
            counts = task.counts()
            status = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or task.state
            http = status_counts(
                Counter({str(status or "no answer"): n for status, n in task.http_statuses.items()})
            )
        else:
            step = task.steps[0] if task.steps else None
            status = (step.label if step else task.state) + (
                " (from the journal)" if step and step.reused else ""
            )
            http = str(step.http_status) if step and step.http_status else ""
        rows.append([task.task_id, status, http, f"{task.elapsed_ms / 1000:.2f} s"])
    skipped = [(task.task_id, task.error) for task in result.tasks if task.state == "skipped"]
    print_report(f"run {result.run_id}: {result.status}", rows, result.outputs, result.errors, skipped)
    for task in result.tasks:
        _warn_of_responses(result.run_id, task)
    waiting = sum(task.counts().get("unknown", 0) for task in result.tasks)
    if waiting:
        click.echo(
            f"{plural(waiting, 'request')} of unknown outcome waiting for a decision: "
            f"'httptask runs show {result.run_id}' lists them.",
            err=True,
        )


def _warn_of_responses(run_id: str, task: Any) -> None:
    """The first response of `task` that breaks its spec, path by path, and how many more there are."""
    first, count = task.off_spec()
    if first is None or first.response is None:
        return
    item = first.item if task.for_each else None
    listed = f"'httptask runs show {run_id} --json' lists them all"
    warn_off_spec(task.task_id, item, first.response["issues"], count, listed)


def warn_off_spec(
    task_id: str, item: int | None, issues: list[dict[str, Any]], count: int, listed: str
) -> None:
    """The `issues` of a task's first response that breaks its spec, path by path; then how many more of its
    responses do, and where they are `listed`."""
    print_response_issues(f"task {task_id}" + (f", item {item}" if item is not None else ""), issues)
    if count > 1:
        click.echo(f"  ... and {plural(count - 1, 'more response')} of task {task_id}: {listed}.", err=True)


def print_report(
    title: str,
    rows: list[list[Any]],
    outputs: Any,
    errors: list[dict[str, Any]],
    skipped: list[tuple[str, str | None]],
) -> None:
    """A run's summary as every engine prints it: a row per task, the outputs, each error, each skip."""
    print_table(["task", "status", "HTTP", "time"], rows, title=title)
    if outputs is not None:
        click.echo("outputs:")
        click.echo(json.dumps(outputs, indent=2, ensure_ascii=False, default=str))
    for error in errors:
        where = f"task {error['task']}" if error["task"] else "the outputs"
        if error["item"] is not None:
            where += f", item {error['item']}"
        click.echo(f"error: {where}: {error['message']}", err=True)
    for task_id, reason in skipped:
        click.echo(f"skipped: task {task_id}: {reason}", err=True)


def status_counts(counts: Mapping[str, int]) -> str:
    """How many items got each HTTP status, e.g. `200 x3, no answer x1` (with the times sign)."""
    return ", ".join(f"{key} ×{n}" for key, n in sorted(counts.items()))  # noqa: RUF001 (the times sign)


# -- runs ----------------------------------------------------------------------------------------------------


@click.group("runs")
def runs_group() -> None:
    """List and show the runs in the journal ($HTTPTASK_JOURNAL)."""


# A page of `runs show`: a run of 100,000 items does not print 100,000 rows unless asked to (--all).
SHOWN_STEPS = 100
# The most rows one page holds (in memory, and in SQLite's 64-bit LIMIT): --all reads more a page at a time.
MOST_SHOWN = 10_000


@runs_group.command("list")
@click.option(
    "--limit",
    type=click.IntRange(1, MOST_SHOWN),
    default=20,
    show_default=True,
    help="How many runs at most, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of runs.")
def runs_list(limit: int, as_json: bool) -> None:
    """List the newest runs with their status and step counts."""
    from ..journal import Journal, default_journal_path

    journal = Journal(default_journal_path())
    try:
        rows = [(run, _status(run), journal.step_counts(run.run_id)) for run in journal.runs(limit)]
    finally:
        journal.close()
    if as_json:
        print_json(
            [
                {
                    "run_id": run.run_id,
                    "workflow": run.workflow,
                    "status": status,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "steps": counts,
                }
                for run, status, counts in rows
            ]
        )
        return
    print_table(
        ["run", "workflow", "status", "started", "steps"],
        [
            [
                run.run_id,
                run.workflow,
                status,
                _when(run.started_at),
                ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
            ]
            for run, status, counts in rows
        ],
    )


@runs_group.command("show")
@click.argument("run_id")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run and its steps (the page asked for) as JSON."
)
@click.option(
    "--page",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Which page of steps to show, in task and item order.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MOST_SHOWN),
    default=SHOWN_STEPS,
    show_default=True,
    help="How many steps a page shows (and how many requests waiting for a decision).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Show every step, read from the journal a page at a time."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "temporal"]),
    default="local",
    show_default=True,
    help="Where the run is: this machine's journal, or Temporal.",
)
@temporal_options
def runs_show(
    run_id: str,
    as_json: bool,
    page: int,
    limit: int,
    show_all: bool,
    engine: str,
    address: str | None,
    namespace: str | None,
    task_queue: str,
) -> None:
    """Show one run: its inputs (redacted), its steps a page at a time (each task and item), what waits for
    a decision, and its outputs; on Temporal, each task, the items that wait for a decision, and the
    decisions taken."""
    if engine == "temporal":
        from .temporal import require_temporal, show_on_temporal

        require_temporal()
        from ..engines.temporal.connection import Connection

        show_on_temporal(Connection(address, namespace, task_queue), run_id, as_json=as_json)
        return
    from ..journal import Journal, default_journal_path

    with contextlib.closing(Journal(default_journal_path())) as journal:
        shown = _Shown.read(journal, run_id, page, limit, show_all)
        if as_json:
            _show_json(journal, shown)
        else:
            _show_text(journal, shown)


@dataclass(frozen=True)
class _Shown:
    """What `runs show` prints of a run: the page of steps asked for (None: every one, streamed), and the
    first `limit` requests waiting for a decision."""

    run: Any
    total: int
    page: int
    limit: int
    steps: list[Any] | None
    waiting: list[Any]
    waiting_total: int
    decisions: list[Any]

    @staticmethod
    def read(journal: Any, run_id: str, page: int, limit: int, show_all: bool) -> _Shown:
        from ..decisions import needs_decision

        run = journal.run(run_id)
        total = journal.step_total(run_id)
        pages = max(-(-total // limit), 1)
        if not show_all and page > pages:
            raise UsageError(
                f"Run {run_id} has {plural(total, 'step')}, {plural(pages, 'page')} of {limit}; give --page "
                f"1 to {pages}."
            )
        steps = None if show_all else journal.steps(run_id, limit=limit, offset=(page - 1) * limit)
        waiting: list[Any] = []
        waiting_total, now = 0, time.time()
        for step in journal.iter_steps(run_id, states=("sent", "failed")):
            if step.item >= 0 and needs_decision(step, now):
                waiting_total += 1
                if len(waiting) < limit:
                    waiting.append(step)
        return _Shown(run, total, page, limit, steps, waiting, waiting_total, journal.decisions(run_id))

    def rows(self, journal: Any) -> Iterator[Any]:
        return iter(self.steps) if self.steps is not None else journal.iter_steps(self.run.run_id)

    @property
    def pages(self) -> int:
        return max(-(-self.total // self.limit), 1)


def _show_json(journal: Any, shown: _Shown) -> None:
    """The run as JSON; its steps (the page, or with --all every one) are written one by one."""
    run = shown.run
    data = {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "file": run.file,
        "status": _status(run),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "inputs": run.inputs,
        "steps_total": shown.total,
        "page": None if shown.steps is None else shown.page,
        "pages": None if shown.steps is None else shown.pages,
        "limit": None if shown.steps is None else shown.limit,
        "steps": _STEPS_HERE,
        "waiting_total": shown.waiting_total,
        "waiting": [
            {
                "task": s.task,
                "item": s.item,
                "value": s.item_value,
                "idempotency_key": s.idempotency_key,
                "sent_at": s.sent_at,
                "request": s.request,
            }
            for s in shown.waiting
        ],
        "decisions": [d.__dict__ for d in shown.decisions],
        "outputs": run.outputs,
        "errors": run.errors,
    }
    head, tail = json.dumps(data, indent=2, ensure_ascii=False, default=str).split(f'"{_STEPS_HERE}"')
    out = sys.stdout
    out.write(head + "[")
    for number, step in enumerate(shown.rows(journal)):
        text = json.dumps(step.__dict__, indent=2, ensure_ascii=False, default=str).replace("\n", "\n    ")
        out.write(("," if number else "") + "\n    " + text)
    out.write("\n  ]" + tail + "\n")


_STEPS_HERE = "<steps>"


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """`rows` in lists of `size`; one empty list when there are none."""
    chunk = list(itertools.islice(rows, size))
    yield chunk
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _show_text(journal: Any, shown: _Shown) -> None:
    from ..journal import TASK_ROW

    run, waiting = shown.run, shown.waiting
    click.echo(
        f"run {run.run_id}: {run.workflow} ({run.file}), {_status(run)}, started {_when(run.started_at)}"
    )
    click.echo("inputs: " + json.dumps(run.inputs, ensure_ascii=False))
    title = None
    if shown.steps is not None and shown.total > shown.limit:
        first = (shown.page - 1) * shown.limit + 1
        last = first + len(shown.steps) - 1
        more = f"--page {shown.page + 1} for the next, " if shown.page < shown.pages else ""
        title = (
            f"steps {first:,}-{last:,} of {shown.total:,} (page {shown.page} of {shown.pages}; {more}--all "
            "for every one)"
        )
    # With --all, a table per thousand steps: the rows of a million are never held at once.
    for rows in _chunks(shown.rows(journal), 1000):
        print_table(
            ["task", "item", "state", "HTTP", "attempts", "idempotency key", "error"],
            [
                [
                    s.task,
                    "" if s.item == TASK_ROW else s.item,
                    s.state,
                    s.http_status or "",
                    s.attempts,
                    s.idempotency_key or "",
                    s.error or "",
                ]
                for s in rows
            ],
            title=title,
        )
    if is_terminal():
        _print_timeline(journal.iter_steps(run.run_id), run.started_at)
    if waiting:
        more = (
            f"; the first {len(waiting)} here, --limit shows more"
            if shown.waiting_total > len(waiting)
            else ""
        )
        print_table(
            ["task", "item", "value", "idempotency key", "sent"],
            [
                [
                    s.task,
                    s.item,
                    json.dumps(s.item_value, ensure_ascii=False),
                    s.idempotency_key or "",
                    _when(s.sent_at),
                ]
                for s in waiting
            ],
            title=f"waiting for a decision ({shown.waiting_total}{more}): the server may have acted on "
            "these, no answer was recorded; resume with --mark-done TASK[ITEMS] (received), --resend "
            "TASK[ITEMS] (not received) or --reconcile",
        )
    if shown.decisions:
        print_table(
            ["task", "item", "decision", "by", "when", "evidence"],
            [
                [
                    d.task,
                    d.item,
                    d.action,
                    d.decided_by,
                    _when(d.decided_at),
                    "" if d.evidence is None else json.dumps(d.evidence, ensure_ascii=False)[:80],
                ]
                for d in shown.decisions
            ],
            title="decisions:",
        )
    if run.outputs is not None:
        click.echo("outputs:")
        click.echo(json.dumps(run.outputs, indent=2, ensure_ascii=False))


def _print_timeline(steps: Iterable[Any], started_at: float) -> None:
    """On a terminal: per task, when its first request went out and its first item ended, item latency and
    retries, from the journal."""
    from ..timeline import timeline

    def at(seconds: float | None) -> str:
        return "" if seconds is None else f"+{seconds:.2f} s"

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:,.0f} ms"

    print_table(
        ["task", "items ended", "first sent", "first ended", "p50", "p99", "retries", "last ended"],
        [
            [t.task, f"{t.ended}/{t.items}", at(t.first_sent), at(t.first_ended), ms(t.p50_ms), ms(t.p99_ms),
             t.retries, at(t.last_ended)]
            for t in timeline(steps, started_at)
        ],
        title="timeline (from the run's start; item latency is from sent to outcome, retries included)",
    )


def _status(run: Any) -> str:
    return str(run.state)


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""
