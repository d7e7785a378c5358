"""The run lifecycle every engine shares: the checks before a run's first send, starting and resuming a
journaled run, the resume safety rules, and the wiring (catalog, secrets, journal, sender, sandbox) an engine
runs with.

Before anything is sent a run makes the checks of `httptask validate`, checks its inputs and resolves every
secret its tasks name; when one fails, nothing is sent. An engine is anything with the `Engine` protocol
(`engines.protocol`): the lifecycle builds it from a `Wiring` and drives it through one run. The local engine
is the default; the Temporal engine makes the same checks (`check_run`, `preload_secrets`) before it starts a
run and in its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets as random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import eventloop
from .catalog import Catalog
from .checks import check_workflow, template_leaves
from .decisions import MARK_DONE, decisions_for
from .drafts import Drafts
from .engines.local import LocalEngine
from .engines.protocol import Engine, EngineFactory, Progress, Resumption, RunResult, TaskUpdate, Wiring
from .errors import InputsInvalid, Issue, UsageError, WorkflowInvalid
from .items import FileItems, ItemsFile, check_items_schema, scan_items, stored_inputs
from .journal import Journal, RunRecord
from .limits import MAX_FILE_BYTES, LimitExceeded, read_capped
from .plan import PlanInvalid, plan_workflow
from .secrets import SecretStore
from .shards import Starter
from .steppages import JournaledSteps
from .templating import secret_names
from .transport import Sender
from .workflow import Workflow, parse_workflow_text
from .yamlsource import read_text

__all__ = [
    "NewRun",
    "begin_run",
    "check_inputs",
    "check_new_run",
    "check_run",
    "drive_run",
    "new_run_id",
    "preload_secrets",
    "resume_run",
    "start_run",
]

# Where a plan made before a sandbox run addresses the sandbox, whose port is known only once it starts.
_PLAN_SANDBOX = "http://127.0.0.1:1"


def _local_engine(wiring: Wiring) -> Engine:
    return LocalEngine(wiring)


# -- checks before the first send ----------------------------------------------------------------------------


def check_run(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    catalog: Catalog,
    items: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """What every engine checks before a run sends anything: the workflow as `httptask validate` checks it
    (`WorkflowInvalid`), then the inputs (`InputsInvalid`) and the `items` files; the inputs with their
    defaults filled in."""
    issues = check_workflow(workflow, catalog)
    if issues:
        raise WorkflowInvalid(workflow.source.file if workflow.source else "the workflow", issues)
    return check_inputs(workflow, inputs, items)


def check_inputs(
    workflow: Workflow, given: Mapping[str, Any], items: Mapping[str, Path] | None = None
) -> dict[str, Any]:
    """The inputs with defaults filled in; `InputsInvalid` with every problem when they do not fit. An input
    named in `items` is read from that JSON Lines file as the run goes (`--input-items`): each of its items is
    checked now, and the input's value is a `FileItems`."""
    schemas = {name: _items_schema(workflow, name, path) for name, path in (items or {}).items()}
    values = _check_values(workflow, given, frozenset(schemas))
    for name, path in (items or {}).items():
        values[name] = _read_items(workflow, name, path, schemas[name])
    return values


def _items_schema(workflow: Workflow, name: str, path: Path) -> dict[str, Any]:
    if name not in workflow.inputs:
        known = ", ".join(workflow.inputs) or "none"
        raise UsageError(
            f"--input-items {name}={path}: the workflow has no input {name!r} (its inputs: {known})."
        )
    return check_items_schema(name, workflow.inputs[name])


def _read_items(workflow: Workflow, name: str, path: Path, item_schema: dict[str, Any]) -> FileItems:
    """The items of the input `name` from the JSON Lines file `path`, each checked against `item_schema`
    (`UsageError` naming the file and line of each item that does not fit)."""
    from .validation import validate_instance

    return FileItems(
        scan_items(
            path,
            lambda item, root: validate_instance(item, item_schema, root=root),
            name=name,
            schema=workflow.inputs[name],
        )
    )


def _check_values(workflow: Workflow, given: Mapping[str, Any], from_files: frozenset[str]) -> dict[str, Any]:
    """`given` with defaults, checked against the input schemas but for the inputs read from items files."""
    from .validation import validate_instance

    for name in sorted(from_files & set(given)):
        raise UsageError(f"The input {name!r} is given by both --input and --input-items; give it once.")
    inputs = workflow.with_defaults(dict(given))
    schema = workflow.inputs_schema()
    if from_files:
        schema["properties"] = {**schema["properties"], **{name: {} for name in from_files}}
        schema["required"] = [name for name in schema["required"] if name not in from_files]
    issues = validate_instance(inputs, schema, root="$.input")
    known = ", ".join(workflow.inputs) or "none"
    for name in given:
        if name not in workflow.inputs:
            issues.append(
                Issue(
                    f"$.input.{name}",
                    f"is not an input of the workflow (its inputs: {known})",
                    actual=given[name],
                )
            )
    if issues:
        raise InputsInvalid(workflow.name, issues)
    return inputs


def preload_secrets(workflow: Workflow, secrets: SecretStore) -> None:
    """Resolve every secret the tasks name before anything runs: a missing one stops the run at once, and the
    redactor knows every value before the inputs are journaled."""
    for task in workflow.tasks:
        names = (
            [task.credentials]
            if isinstance(task.credentials, str)
            else list((task.credentials or {}).values())
        )
        names += [
            name for _, source in template_leaves(task.templates, "$") for name in secret_names(source)
        ]
        for name in names:
            secrets.get(name)


def new_run_id() -> str:
    """A run id that sorts by start time: `20250131-142501-a1b2c3`."""
    return time.strftime("%Y%m%d-%H%M%S-") + random.token_hex(3)


# -- starting and resuming -----------------------------------------------------------------------------------


def start_run(
    workflow_file: Path,
    *,
    inputs: Mapping[str, Any],
    catalog: Catalog,
    secrets: SecretStore,
    journal: Journal,
    sandbox: bool = False,
    concurrency: int = 16,
    on_progress: Progress | None = None,
    on_start: Callable[[str], None] | None = None,
    engine: EngineFactory = _local_engine,
    again: bool = False,
    strict_responses: bool = False,
    on_task: TaskUpdate | None = None,
    input_items: Mapping[str, Path] | None = None,
    workers: int = 1,
) -> RunResult:
    """Check the workflow, its inputs and every request that can be known before the run, journal a new run,
    and drive an engine through it to the end. With `strict_responses` (kept for a resume), a response that
    breaks its operation's spec fails its task. `input_items` names inputs whose items are read from JSON
    Lines files as the run goes; with `workers`, forEach items are shared out over that many processes
    (`shards`)."""
    # The collector as a run wants it from the checks on: they make a request per forEach item, and a full
    # collection there walked every object start-up made.
    with _started(workers) as starter, lean_gc():  # spawned first: it imports while the run is checked
        journal.spawn_writer()  # so is the journal's writer, where it is a process
        try:
            text = read_text(workflow_file)
            new = begin_run(
                text,
                str(workflow_file),
                inputs=inputs,
                input_items=input_items,
                catalog=catalog,
                secrets=secrets,
                journal=journal,
                sandbox=sandbox,
                again=again,
                strict_responses=strict_responses,
                drafting=workers <= 1,  # worker processes make their items themselves
            )
        except BaseException:
            journal.drop_spawned_writer()
            raise
        if on_start is not None:
            on_start(new.run_id)
        run = _Plan(
            new.workflow,
            catalog,
            secrets,
            journal,
            sandbox,
            concurrency,
            on_progress,
            strict_responses,
            on_task,
            starter,
            new.drafts,
        )
        return run.drive(engine, new.run_id, new.inputs)


def check_new_run(
    text: str,
    file: str,
    *,
    inputs: Mapping[str, Any],
    catalog: Catalog,
    secrets: SecretStore,
    sandbox: bool,
    input_items: Mapping[str, Path] | None = None,
    drafts: Drafts | None = None,
) -> tuple[Workflow, dict[str, Any]]:
    """The workflow and its inputs with defaults, once `check_run` passed, every secret it names is resolved,
    and every request that can be known before the run is rendered and checked (`PlanInvalid`); what the
    check made of a forEach's items is kept in `drafts` for the run to send."""
    workflow = parse_workflow_text(text, file)
    values = check_run(workflow, inputs, catalog=catalog, items=input_items)
    preload_secrets(workflow, secrets)
    # Every request that can be known now is rendered and checked before the first one is sent.
    plan = plan_workflow(
        workflow,
        values,
        catalog=catalog,
        secrets=secrets,
        sandbox_url=_PLAN_SANDBOX if sandbox else None,
        keep_requests=False,
        drafts=drafts,
    )
    if plan.problems:
        raise PlanInvalid(plan)
    return workflow, values


@dataclass(frozen=True)
class NewRun:
    """A run that is checked and journaled, and has sent nothing yet."""

    run_id: str
    workflow: Workflow
    inputs: dict[str, Any]
    # What the pre-send check made of forEach items, for the run to send (none for a sandbox run, whose
    # sandbox the check could not address yet, nor for one whose items worker processes send).
    drafts: Drafts | None = None


def begin_run(
    text: str,
    file: str,
    *,
    inputs: Mapping[str, Any],
    catalog: Catalog,
    secrets: SecretStore,
    journal: Journal,
    sandbox: bool,
    again: bool = False,
    strict_responses: bool = False,
    input_items: Mapping[str, Path] | None = None,
    drafting: bool = True,
) -> NewRun:
    """`check_new_run`, then journal a new run; nothing is sent. `file` names where the text came from.
    Unless `again`, a run of the same workflow text with the same inputs that did not finish is resumed, not
    started anew (`UsageError`): a new run would send again what that one may have sent. With `drafting`,
    what the check makes of forEach items is kept for this process to send (not for a sandbox run, whose
    sandbox is not started yet)."""
    drafts = Drafts() if drafting and not sandbox else None
    workflow, values = check_new_run(
        text,
        file,
        inputs=inputs,
        catalog=catalog,
        secrets=secrets,
        sandbox=sandbox,
        input_items=input_items,
        drafts=drafts,
    )
    stored = stored_inputs(values)
    redacted = secrets.redactor.redact_value(stored)
    if not (again or sandbox):  # the sandbox acts on nothing real
        _refuse_a_second_start(journal, text, redacted)
    run_id = new_run_id()
    options = {
        "sandbox": sandbox,
        "secrets_file": str(secrets.file) if secrets.file else None,
        "strict_responses": strict_responses,
        # Which inputs the journal keeps as {"$items": ...}: only these are read from their files on resume.
        "input_items": sorted(name for name, value in values.items() if isinstance(value, FileItems)),
    }
    journal.create_run(
        run_id,
        workflow=workflow.name,
        file=file,
        workflow_text=text,
        inputs=redacted,
        inputs_redacted=redacted != stored,
        options=options,
    )
    return NewRun(run_id, workflow, values, drafts)


def _refuse_a_second_start(journal: Journal, text: str, inputs: dict[str, Any]) -> None:
    # The latest such run only: once one finished, a later start is the user's own decision.
    earlier = journal.latest_same_run(text, inputs)
    if earlier is None:
        return
    unknown = journal.unknown_outcomes(earlier.run_id)
    if earlier.state == "running":
        why = f"is running in process {earlier.pid}"
    elif earlier.state == "interrupted":
        why = "was interrupted"
    elif unknown:
        # A new run sends them under new idempotency keys: only a resume keeps theirs.
        why = f"has {unknown} request{'s' if unknown > 1 else ''} of unknown outcome"
    else:
        return
    raise UsageError(
        f"Run {earlier.run_id} of this workflow with these inputs {why}; a new run would send again what it "
        f"sent. Finish it with 'httptask run --resume {earlier.run_id}' ('httptask runs show "
        f"{earlier.run_id}' tells what it did), or start a new run all the same with --again."
    )


async def drive_run(
    run: NewRun,
    *,
    catalog: Catalog,
    secrets: SecretStore,
    journal: Journal,
    sender: Sender,
    sandbox_url: str | None,
    concurrency: int = 16,
    on_task: TaskUpdate | None = None,
    engine: EngineFactory = _local_engine,
) -> RunResult:
    """Drive an engine through a begun run on the running event loop, with the caller's sender (and its
    destination guard), then journal how the run ended. For a server that runs workflows beside its work."""
    wiring = Wiring(
        run.workflow,
        catalog,
        secrets,
        journal,
        sender,
        sandbox_url,
        concurrency,
        None,
        on_task,
        drafts=run.drafts,
    )
    result = await _run_engine(engine, wiring, run.run_id, run.inputs)
    journal.finish_run(run.run_id, result.status, result.outputs, result.errors)
    return result


async def _run_engine(
    engine: EngineFactory,
    wiring: Wiring,
    run_id: str,
    inputs: Mapping[str, Any],
    resumption: Resumption | None = None,
) -> RunResult:
    """One engine through one run, with the journal's writer running on this event loop meanwhile."""
    wiring.journal.start(asyncio.get_running_loop())
    try:
        return await engine(wiring).run(run_id, inputs, resumption)
    finally:
        wiring.journal.stop()


def _started(workers: int) -> contextlib.AbstractContextManager[Starter | None]:
    """What starts `workers` processes for a forEach (`shards`), spawned now; none for one process."""
    return Starter(workers) if workers > 1 else contextlib.nullcontext()


def resume_run(
    run_id: str,
    *,
    catalog: Catalog,
    journal: Journal,
    secrets: SecretStore | None = None,
    workflow_file: Path | None = None,
    inputs: Mapping[str, Any] | None = None,
    concurrency: int = 16,
    mark_done: tuple[str, ...] = (),
    resend: tuple[str, ...] = (),
    reconcile: bool = False,
    note: str | None = None,
    on_progress: Progress | None = None,
    engine: EngineFactory = _local_engine,
    on_task: TaskUpdate | None = None,
    input_items: Mapping[str, Path] | None = None,
    workers: int = 1,
) -> RunResult:
    """Finish a journaled run with the workflow text and inputs stored for it; `secrets` defaults to a store
    reading the secrets file the run started with. An input read from an items file is read from the same
    file again (or from `input_items`, where it moved), which must hold the same bytes.
    Requests of unknown outcome that are not idempotent are
    sent again only as decided: `mark_done` and `resend` name them as TASK[ITEM,...] (journaled with `note`
    as evidence), `reconcile` asks the server where it can tell."""
    with _started(workers) as starter, lean_gc():  # spawned first: it imports while the run is checked
        record = journal.run(run_id)
        if workflow_file is not None:
            try:
                given = read_capped(workflow_file, MAX_FILE_BYTES)
            except OSError as exc:
                raise UsageError(f"Cannot read '{workflow_file}' ({exc.strerror}).") from None
            except (LimitExceeded, UnicodeDecodeError):
                given = None  # not the stored text, which was read within the cap
            if given != record.workflow_text:
                raise UsageError(
                    f"'{workflow_file}' has changed since run {run_id} started; a resume runs the workflow "
                    "as it was then (stored in the journal): leave out the file to use the stored text, or "
                    "start a new run."
                )
        workflow = parse_workflow_text(record.workflow_text, record.file)
        issues = check_workflow(workflow, catalog)
        if issues:
            raise WorkflowInvalid(record.file, issues)
        stored_file = record.options.get("secrets_file")
        secrets = secrets or SecretStore(file=Path(stored_file) if stored_file else None)
        preload_secrets(workflow, secrets)
        values = _resume_inputs(record, workflow, inputs, secrets, _resume_files(record, input_items or {}))
        # Own the run before reading its steps: what another process did before this point is read, and no
        # other process can act from now on.
        journal.claim_run(run_id)
        try:
            # Only requests of unknown outcome can be decided about: the others are not read.
            unsettled = journal.steps(run_id, states=("sent", "failed"))
            decided = decisions_for(workflow, unsettled, mark_done=mark_done, resend=resend, evidence=note)
        except UsageError:
            journal.finish_run(run_id, record.status, record.outputs, record.errors)
            raise
        for decision in decided.values():
            resolve = f"resolved by hand (--mark-done) by {decision.decided_by}; no response is kept"
            journal.queue(
                Journal.decided(run_id, decision, resolve=resolve if decision.action == MARK_DONE else None)
            )
        previous = JournaledSteps(journal, run_id)
        sandbox = bool(record.options.get("sandbox"))
        strict = bool(record.options.get("strict_responses"))
        run = _Plan(
            workflow, catalog, secrets, journal, sandbox, concurrency, on_progress, strict, on_task, starter
        )
        decisions = {key: d for key, d in decided.items() if d.action != MARK_DONE}
        return run.drive(engine, run_id, values, Resumption(previous, decisions, reconcile))


def _resume_files(record: RunRecord, moved: Mapping[str, Path]) -> dict[str, FileItems]:
    """The inputs of `record` read from items files, each checked to hold the bytes the run started with;
    `moved` gives a new place for some of them."""
    names = record.options.get("input_items") or []
    files = {name: ItemsFile.from_dict(record.inputs.get(name)) for name in names}
    for name, path in moved.items():
        stored = files.get(name)
        if stored is None:
            raise UsageError(
                f"--input-items {name}={path}: run {record.run_id} did not read the input {name!r} from an "
                "items file; leave out --input-items to resume it."
            )
        files[name] = ItemsFile(path.resolve(), stored.count, stored.sha256)
    return {name: FileItems(file.verified()) for name, file in files.items() if file is not None}


def _resume_inputs(
    record: RunRecord,
    workflow: Workflow,
    given: Mapping[str, Any] | None,
    secrets: SecretStore,
    files: Mapping[str, FileItems],
) -> dict[str, Any]:
    if given is None:
        if record.inputs_redacted:
            raise UsageError(
                f"The inputs of run {record.run_id} held secrets, so the journal keeps them masked; "
                "pass the same --input again to resume it."
            )
        return {**record.inputs, **files}
    values = {k: v for k, v in _check_values(workflow, given, frozenset(files)).items() if k not in files}
    kept = {name: value for name, value in record.inputs.items() if name not in files}
    if secrets.redactor.redact_value(values) != kept:
        raise UsageError(
            f"--input differs from the inputs run {record.run_id} started with; a resume must use "
            "the same inputs (leave out --input to use the stored ones)."
        )
    return {**values, **files}


# -- driving an engine ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A checked run, ready to be wired to a sender (and a sandbox) and handed to an engine."""

    workflow: Workflow
    catalog: Catalog
    secrets: SecretStore
    journal: Journal
    sandbox: bool
    concurrency: int
    on_progress: Progress | None
    strict_responses: bool
    on_task: TaskUpdate | None = None
    workers: Starter | None = None
    drafts: Drafts | None = None

    def drive(
        self,
        engine: EngineFactory,
        run_id: str,
        inputs: Mapping[str, Any],
        resumption: Resumption | None = None,
    ) -> RunResult:
        """Run the engine on its own event loop with one connection pool, then journal how the run ended."""
        journal = self.journal

        async def main(sandbox_url: str | None) -> RunResult:
            async with Sender(max_connections=self.concurrency) as sender:
                wiring = Wiring(
                    self.workflow,
                    self.catalog,
                    self.secrets,
                    journal,
                    sender,
                    sandbox_url,
                    self.concurrency,
                    self.on_progress,
                    self.on_task,
                    strict_responses=self.strict_responses,
                    workers=self.workers,
                    drafts=self.drafts,
                )
                return await _run_engine(engine, wiring, run_id, inputs, resumption)

        with lean_gc():
            if self.sandbox:
                from .sandbox import SandboxThread

                with SandboxThread(self.catalog) as server:
                    result = eventloop.run(main(server.url))
            else:
                result = eventloop.run(main(None))
        journal.finish_run(run_id, result.status, result.outputs, result.errors)
        return result


# The young generation's threshold during a run: each item allocates a few hundred objects that die young.
_RUN_GC_THRESHOLD = 50_000


class _LeanGc:
    """While runs drive their engines on their own loops: what start-up made (the catalog, compiled
    validators and templates) is frozen out of the collector's sight, and the young generation is collected
    less often; the first run to start sets this and the last to end (a library user may run several on
    threads) restores the collector as it was. Measured with bench/clients.py (3,000 items): main-thread CPU
    per item 398 -> 365 µs (median of 4)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._saved = gc.get_threshold()

    @contextlib.contextmanager
    def during_run(self) -> Iterator[None]:
        with self._lock:
            self._runs += 1
            if self._runs == 1:
                self._saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(_RUN_GC_THRESHOLD, *self._saved[1:])
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    gc.set_threshold(*self._saved)
                    gc.unfreeze()


_LEAN_GC = _LeanGc()


def lean_gc() -> contextlib.AbstractContextManager[None]:
    """The collector as a run wants it while an engine is driven (by a `--workers` process too)."""
    return _LEAN_GC.during_run()
