"""The embedded local engine: a workflow's tasks on one asyncio loop, with bounded concurrency, one connection
pool, and every step journaled so that a killed run can be resumed without acting twice.

Templates see `tasks.ID.response` (`status`, `headers`, `body`, redacted) for a task without `forEach`, and a
list `tasks.ID` of `{item, response}` in item order for a `forEach` task; only the tasks a task `needs`
(directly or through others) are visible, so what a template sees never depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets as random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..checks import template_leaves
from ..errors import EXIT_INVALID, HttptaskError, Issue, SendError, TaskError, TemplateError, UsageError
from ..execute import prepare, response_record, send_prepared
from ..journal import TASK_ROW, Journal, RunRecord, StepRecord, default_journal_path
from ..outcome import Outcome
from ..requests import SAFE_METHODS, step_seed
from ..retry import Attempt
from ..secrets import SecretStore
from ..tasks import Task
from ..templating import base_context, render_value, secret_names
from ..transport import Sender
from ..workflow import Workflow, parse_workflow_text, topological_order

__all__ = [
    "InputsInvalid",
    "LocalEngine",
    "RunResult",
    "StepResult",
    "TaskResult",
    "check_inputs",
    "resume_run",
    "start_run",
]


Progress = Callable[[int, int], None]
"""Called with (more steps to do, steps done) as the run goes."""


class InputsInvalid(TaskError):
    """The inputs given to a workflow do not fit its input schemas; nothing was sent."""

    exit_code = EXIT_INVALID


@dataclass
class StepResult:
    """One request: a task without forEach (item 0), or one item of a forEach task."""

    item: int
    state: str
    http_status: int | None = None
    elapsed_ms: float | None = None
    response: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "state": self.state,
            "http_status": self.http_status,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "reused": self.reused,
            "error": self.error,
        }


@dataclass
class TaskResult:
    task_id: str
    for_each: bool
    state: str = "scheduled"
    error: str | None = None
    items: list[Any] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def context(self) -> Any:
        """What templates see as `tasks.ID`."""
        if self.for_each:
            return [
                {"item": item, "response": step.response}
                for item, step in zip(self.items, self.steps, strict=True)
            ]
        return {"response": self.steps[0].response if self.steps else None}

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.state] = counts.get(step.state, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.task_id,
            "state": self.state,
            "for_each": self.for_each,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "error": self.error,
        }
        if self.for_each:
            data["items"] = self.counts()
        else:
            step = self.steps[0] if self.steps else None
            data["http_status"] = step.http_status if step else None
            data["attempts"] = step.attempts if step else 0
        return data


@dataclass
class RunResult:
    run_id: str
    status: str
    tasks: list[TaskResult]
    outputs: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "tasks": [t.to_dict() for t in self.tasks],
            "outputs": self.outputs,
            "errors": self.errors,
        }


class LocalEngine:
    """Runs one workflow once: each task starts when what it needs has succeeded, and is skipped otherwise."""

    def __init__(
        self,
        workflow: Workflow,
        *,
        catalog: Catalog,
        secrets: SecretStore,
        journal: Journal,
        sender: Sender,
        concurrency: int = 16,
        sandbox_url: str | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.workflow = workflow
        self._catalog = catalog
        self._secrets = secrets
        self._journal = journal
        self._sender = sender
        self._concurrency = concurrency
        self._sandbox_url = sandbox_url
        self._progress = on_progress or (lambda more, done: None)
        self._slots = asyncio.Semaphore(concurrency)
        self._results: dict[str, TaskResult] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._previous: Mapping[tuple[str, int], StepRecord] = {}
        self._decisions: dict[str, str] = {}
        self._run_id = ""
        self._inputs: Mapping[str, Any] = {}

    async def run(
        self,
        run_id: str,
        inputs: Mapping[str, Any],
        *,
        previous: Mapping[tuple[str, int], StepRecord] | None = None,
        decisions: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run every task; `previous` (a resume) holds the journaled steps, `decisions` the task ids whose
        unknown outcomes are `mark-done` or `resend`."""
        self._run_id = run_id
        self._inputs = inputs
        self._previous = previous or {}
        self._decisions = dict(decisions or {})
        self._finished = {task.id: asyncio.Event() for task in self.workflow.tasks}
        await asyncio.gather(*(self._run_task(task) for task in self.workflow.tasks))
        tasks = [self._results[task.id] for task in self.workflow.tasks]
        errors = [error for result in tasks for error in _errors(result)]
        outputs = None
        if not errors:
            outputs, output_errors = self._outputs()
            errors += output_errors
        await self._journal.flush()
        return RunResult(run_id, "failed" if errors else "succeeded", tasks, outputs, errors)

    # -- tasks -------------------------------------------------------------------------------------------

    async def _run_task(self, task: Task) -> None:
        result = TaskResult(task.id, for_each=task.for_each is not None)
        self._results[task.id] = result
        try:
            for need in task.needs:
                await self._finished[need].wait()
            started = time.perf_counter()
            blocked = [need for need in task.needs if self._results[need].state != "succeeded"]
            if blocked:
                self._skip(task, result, blocked)
            elif task.for_each is None:
                self._progress(1, 0)
                result.steps = [await self._step(task, 0, None, self._context(task), for_each=False)]
                result.state = result.steps[0].state
            else:
                await self._fan_out(task, result)
            result.elapsed_ms = (time.perf_counter() - started) * 1000
        finally:
            self._finished[task.id].set()

    def _skip(self, task: Task, result: TaskResult, blocked: list[str]) -> None:
        states = ", ".join(f"{need} ({self._results[need].state})" for need in blocked)
        result.state = "skipped"
        result.error = f"not run: it needs {states}"
        self._journal.queue(
            [
                Journal.finished(
                    self._run_id, task.id, TASK_ROW if result.for_each else 0, "skipped", error=result.error
                )
            ]
        )
        self._progress(1, 1)

    async def _fan_out(self, task: Task, result: TaskResult) -> None:
        assert task.for_each is not None
        context = self._context(task)
        try:
            items = render_value(
                task.for_each,
                base_context(inputs=self._inputs, tasks=context, secrets=self._secrets),
                task_id=task.id,
                field_path="forEach",
            )
        except TemplateError as exc:
            self._fail_task(task, result, self._secrets.redactor.redact(exc.message))
            return
        if not isinstance(items, list):
            self._fail_task(
                task,
                result,
                f"task {task.id}, forEach: gives {type(items).__name__}, not a list: "
                f"{self._secrets.redactor.redact(_short(items))}",
            )
            return
        result.items = items
        self._progress(len(items), 0)
        self._journal.queue(Journal.schedule(self._run_id, task.id, [TASK_ROW, *range(len(items))]))
        steps: list[StepResult | None] = [None] * len(items)
        pending: Iterator[tuple[int, Any]] = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                steps[index] = await self._step(task, index, item, context, for_each=True)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(items)))))
        result.steps = [step for step in steps if step is not None]
        failed = sum(step.state != "succeeded" for step in result.steps)
        result.state = "failed" if failed else "succeeded"
        if failed:
            result.error = f"{failed} of {len(items)} items failed"
        self._journal.queue(
            [Journal.finished(self._run_id, task.id, TASK_ROW, result.state, error=result.error)]
        )

    def _fail_task(self, task: Task, result: TaskResult, message: str) -> None:
        result.state = "failed"
        result.error = message
        self._journal.queue([Journal.finished(self._run_id, task.id, TASK_ROW, "failed", error=message)])
        self._progress(1, 1)

    def _context(self, task: Task) -> dict[str, Any]:
        """`tasks` as `task`'s templates see it: the results of what it needs, directly or not."""
        seen: dict[str, Any] = {}
        stack = list(task.needs)
        while stack:
            need = stack.pop()
            if need not in seen:
                seen[need] = self._results[need].context()
                need_task = self.workflow.task(need)
                assert need_task is not None
                stack.extend(need_task.needs)
        return seen

    # -- steps -------------------------------------------------------------------------------------------

    async def _step(
        self, task: Task, index: int, item: Any, context: dict[str, Any], *, for_each: bool
    ) -> StepResult:
        try:
            return await self._attempt_step(task, index, item, context, for_each)
        finally:
            self._progress(0, 1)

    async def _attempt_step(
        self, task: Task, index: int, item: Any, context: dict[str, Any], for_each: bool
    ) -> StepResult:
        run_id, journal, redactor = self._run_id, self._journal, self._secrets.redactor
        previous = self._previous.get((task.id, index))
        if previous is not None and previous.state == "succeeded":
            return StepResult(
                index,
                "succeeded",
                previous.http_status,
                previous.elapsed_ms,
                previous.response,
                attempts=previous.attempts,
                reused=True,
            )
        unknown = previous if previous is not None and previous.outcome_unknown else None
        if unknown is not None and not unknown.idempotent and self._decisions.get(task.id) == "mark-done":
            note = "marked done with --mark-done: the outcome was not known, no response is kept"
            journal.queue([Journal.finished(run_id, task.id, index, "succeeded", error=note)])
            return StepResult(index, "succeeded", error=note, reused=True)
        try:
            prepared = prepare(
                task,
                inputs=self._inputs,
                catalog=self._catalog,
                secrets=self._secrets,
                sandbox_url=self._sandbox_url,
                tasks=context,
                extra={"item": item} if for_each else None,
                key_seed=step_seed(run_id, task.id, index),
                idempotency_key=unknown.idempotency_key if unknown is not None else None,
            )
        except HttptaskError as exc:
            message = redactor.redact(str(exc))
            journal.queue([Journal.finished(run_id, task.id, index, "failed", error=message)])
            return StepResult(index, "failed", error=message)
        attempts: list[Attempt] = []
        async with self._slots:
            sent = Journal.sent(
                run_id,
                task.id,
                index,
                idempotent=prepared.idempotent,
                key=prepared.idempotency_key,
                request=prepared.redacted_request(),
            )
            if prepared.request.method in SAFE_METHODS:
                journal.queue([sent])
            else:
                await journal.durable([sent])
            try:
                response, count = await send_prepared(prepared, self._sender, on_attempt=attempts.append)
            except SendError as exc:
                message = redactor.redact(str(exc))
                journal.queue(
                    [
                        *self._attempt_rows(task, index, attempts),
                        Journal.finished(
                            run_id,
                            task.id,
                            index,
                            "failed",
                            attempts=len(attempts),
                            http_status=exc.status,
                            error=message,
                            outcome=exc.outcome,
                        ),
                    ]
                )
                return StepResult(index, "failed", error=message, attempts=len(attempts))
        record = response_record(response, redactor)
        state = "succeeded" if response.ok else "failed"
        error = (
            None if response.ok else f"{prepared.label} answered {response.status} {response.reason}".rstrip()
        )
        journal.queue(
            [
                *self._attempt_rows(task, index, attempts),
                Journal.finished(
                    run_id,
                    task.id,
                    index,
                    state,
                    attempts=count,
                    http_status=response.status,
                    elapsed_ms=response.elapsed_ms,
                    response=record,
                    error=error,
                    outcome=Outcome.ANSWERED,
                ),
            ]
        )
        return StepResult(index, state, response.status, response.elapsed_ms, record, error, count)

    def _attempt_rows(self, task: Task, index: int, attempts: list[Attempt]) -> list[Any]:
        if len(attempts) <= 1 and (not attempts or attempts[0].error is None):
            # One attempt with an answer says nothing the step's own row does not.
            return []
        redact = self._secrets.redactor.redact
        return [
            Journal.attempt(
                self._run_id,
                task.id,
                index,
                a.number,
                a.status,
                redact(str(a.error)) if a.error is not None else None,
                a.outcome,
            )
            for a in attempts
        ]

    # -- outputs -----------------------------------------------------------------------------------------

    def _outputs(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        context = base_context(
            inputs=self._inputs,
            tasks={tid: r.context() for tid, r in self._results.items()},
            secrets=self._secrets,
        )
        outputs: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, template in self.workflow.outputs.items():
            try:
                outputs[name] = render_value(template, context, task_id="outputs", field_path=name)
            except TemplateError as exc:
                errors.append(
                    {
                        "task": None,
                        "item": None,
                        "message": self._secrets.redactor.redact(f"outputs.{exc.field_path}: {exc.problem}"),
                    }
                )
        return self._secrets.redactor.redact_value(outputs), errors


def _errors(result: TaskResult) -> list[dict[str, Any]]:
    if result.state == "skipped":
        return []
    if not result.steps and result.error:
        return [{"task": result.task_id, "item": None, "message": result.error}]
    return [
        {"task": result.task_id, "item": step.item if result.for_each else None, "message": step.error}
        for step in result.steps
        if step.state == "failed"
    ]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- starting and resuming runs ------------------------------------------------------------------------------


def check_inputs(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs with defaults filled in; `InputsInvalid` with every problem when they do not fit."""
    from ..validation import validate_instance

    inputs = workflow.with_defaults(dict(given))
    issues = validate_instance(inputs, workflow.inputs_schema(), root="$.input")
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
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        lines = "\n".join(f"  {issue}" for issue in issues)
        raise InputsInvalid(
            f"The inputs do not fit the workflow {workflow.name!r} ({count}); nothing was sent:\n{lines}",
            issues=issues,
        )
    return inputs


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + random.token_hex(3)


def _preload_secrets(workflow: Workflow, secrets: SecretStore) -> None:
    """Resolve every secret the tasks name before anything runs: a missing one stops the run at once, and the
    redactor knows every value before the inputs are journaled."""
    for task in workflow.tasks:
        names = (
            [task.credentials]
            if isinstance(task.credentials, str)
            else list((task.credentials or {}).values())
        )
        names += [
            name
            for _, source in template_leaves(task.templates, "$")
            for name in secret_names(source)
        ]
        for name in names:
            secrets.get(name)


def _check_order(workflow: Workflow) -> None:
    order = topological_order(workflow)
    if order and isinstance(order[0], Issue):
        issues = [issue for issue in order if isinstance(issue, Issue)]
        file = workflow.source.file if workflow.source else "the workflow"
        lines = "\n".join(f"  {file}:{issue.line or '?'}: {issue.path}: {issue.message}" for issue in issues)
        raise TaskError(
            f"{file}: the workflow is not valid ({len(issues)} problem"
            f"{'s' if len(issues) != 1 else ''}):\n{lines}",
            issues=issues,
            file=file,
        )


def start_run(
    workflow_file: Path,
    *,
    inputs: Mapping[str, Any],
    sandbox: bool = False,
    concurrency: int = 16,
    secrets_file: Path | None = None,
    journal_path: Path | None = None,
    on_progress: Progress | None = None,
    on_start: Callable[[str], None] | None = None,
) -> RunResult:
    """Check the workflow and inputs, journal a new run, and run it to the end."""
    try:
        text = workflow_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"No such file: '{workflow_file}'.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read '{workflow_file}' ({exc}); give a UTF-8 YAML workflow.") from None
    workflow = parse_workflow_text(text, str(workflow_file))
    _check_order(workflow)
    values = check_inputs(workflow, inputs)
    secrets = SecretStore(file=secrets_file)
    _preload_secrets(workflow, secrets)
    redacted = secrets.redactor.redact_value(values)
    journal = Journal(journal_path or default_journal_path())
    run_id = new_run_id()
    options = {"sandbox": sandbox, "secrets_file": str(secrets_file) if secrets_file else None}
    journal.create_run(
        run_id,
        workflow=workflow.name,
        file=str(workflow_file),
        workflow_text=text,
        inputs=redacted,
        inputs_redacted=redacted != values,
        options=options,
    )
    if on_start is not None:
        on_start(run_id)
    return _drive(
        workflow,
        run_id,
        values,
        journal,
        secrets,
        sandbox=sandbox,
        concurrency=concurrency,
        on_progress=on_progress,
    )


def resume_run(
    run_id: str,
    *,
    workflow_file: Path | None = None,
    inputs: Mapping[str, Any] | None = None,
    concurrency: int = 16,
    mark_done: tuple[str, ...] = (),
    resend: tuple[str, ...] = (),
    secrets_file: Path | None = None,
    journal_path: Path | None = None,
    on_progress: Progress | None = None,
) -> RunResult:
    """Finish a journaled run with the workflow text and inputs stored for it; see `unknown_outcomes`."""
    journal = Journal(journal_path or default_journal_path())
    record = journal.run(run_id)
    _check_not_running(record)
    if workflow_file is not None:
        try:
            given = workflow_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot read '{workflow_file}' ({exc.strerror}).") from None
        if given != record.workflow_text:
            raise UsageError(
                f"'{workflow_file}' has changed since run {run_id} started; a resume runs the workflow as it "
                "was "
                "then (stored in the journal): leave out the file to use the stored text, or start a new run."
            )
    workflow = parse_workflow_text(record.workflow_text, record.file)
    for name in (*mark_done, *resend):
        if workflow.task(name) is None:
            raise UsageError(
                f"--mark-done and --resend take a task id of the workflow, not {name!r} "
                f"(its tasks: {', '.join(t.id for t in workflow.tasks)})."
            )
    secrets = SecretStore(file=secrets_file or _stored_path(record.options.get("secrets_file")))
    _preload_secrets(workflow, secrets)
    values = _resume_inputs(record, workflow, inputs, secrets)
    steps = journal.steps(run_id)
    _refuse_unknown(run_id, workflow, steps, mark_done, resend)
    decisions = {**{t: "resend" for t in resend}, **{t: "mark-done" for t in mark_done}}
    previous = {(s.task, s.item): s for s in steps if s.item >= 0}
    journal.claim_run(run_id)
    return _drive(
        workflow,
        run_id,
        values,
        journal,
        secrets,
        sandbox=bool(record.options.get("sandbox")),
        concurrency=concurrency,
        on_progress=on_progress,
        previous=previous,
        decisions=decisions,
    )


def _stored_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _check_not_running(record: RunRecord) -> None:
    if record.status == "running" and record.pid not in (None, os.getpid()) and not record.interrupted:
        raise UsageError(
            f"Run {record.run_id} is still running (process {record.pid}); wait for it to end, "
            "or stop it, before resuming it."
        )


def _resume_inputs(
    record: RunRecord, workflow: Workflow, given: Mapping[str, Any] | None, secrets: SecretStore
) -> dict[str, Any]:
    if given is None:
        if record.inputs_redacted:
            raise UsageError(
                f"The inputs of run {record.run_id} held secrets, so the journal keeps them masked; "
                "pass the same --input again to resume it."
            )
        return dict(record.inputs)
    values = check_inputs(workflow, given)
    if secrets.redactor.redact_value(values) != record.inputs:
        raise UsageError(
            f"--input differs from the inputs run {record.run_id} started with; a resume must use "
            "the same inputs (leave out --input to use the stored ones)."
        )
    return values


def _refuse_unknown(
    run_id: str,
    workflow: Workflow,
    steps: list[StepRecord],
    mark_done: tuple[str, ...],
    resend: tuple[str, ...],
) -> None:
    """Stop a resume that would have to guess whether a non-idempotent request was acted on."""
    decided = set(mark_done) | set(resend)
    blocked = [
        s for s in steps if s.item >= 0 and s.outcome_unknown and not s.idempotent and s.task not in decided
    ]
    if not blocked:
        return
    lines = []
    for step in blocked:
        task = workflow.task(step.task)
        where = f"task {step.task}, item {step.item}" if task and task.for_each else f"task {step.task}"
        request = step.request or {}
        lines.append(f"  {where}: {request.get('method', '?')} {request.get('url', '?')}")
    tasks = list(dict.fromkeys(step.task for step in blocked))
    count = f"{len(blocked)} request{'s' if len(blocked) != 1 else ''}"
    raise UsageError(
        f"Run {run_id} cannot be resumed safely: {count} that {'is' if len(blocked) == 1 else 'are'} "
        "not idempotent "
        f"may have been received, and no answer was recorded:\n" + "\n".join(lines) + "\n"
        "Sending again could act twice. Check on the server, then resume with "
        + " ".join(f"--mark-done {t}" for t in tasks)
        + " if it was received (treated as succeeded, without a "
        "response), or with "
        + " ".join(f"--resend {t}" for t in tasks)
        + " if it was not (sent again, accepting the risk)."
    )


def _drive(
    workflow: Workflow,
    run_id: str,
    inputs: Mapping[str, Any],
    journal: Journal,
    secrets: SecretStore,
    *,
    sandbox: bool,
    concurrency: int,
    on_progress: Progress | None,
    previous: Mapping[tuple[str, int], StepRecord] | None = None,
    decisions: Mapping[str, str] | None = None,
) -> RunResult:
    catalog = Catalog.default()

    async def main(sandbox_url: str | None) -> RunResult:
        journal.start(asyncio.get_running_loop())
        try:
            async with Sender(max_connections=concurrency) as sender:
                engine = LocalEngine(
                    workflow,
                    catalog=catalog,
                    secrets=secrets,
                    journal=journal,
                    sender=sender,
                    concurrency=concurrency,
                    sandbox_url=sandbox_url,
                    on_progress=on_progress,
                )
                return await engine.run(run_id, inputs, previous=previous, decisions=decisions)
        finally:
            journal.stop()

    try:
        if sandbox:
            from ..sandbox import SandboxThread

            with SandboxThread(catalog) as server:
                result = asyncio.run(main(server.url))
        else:
            result = asyncio.run(main(None))
        journal.finish_run(run_id, result.status, result.outputs, result.errors)
        return result
    finally:
        journal.close()
