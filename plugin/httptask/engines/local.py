"""The embedded local engine: a workflow's tasks on one asyncio loop, with bounded concurrency, one connection
pool, and every step journaled so that a killed run can be resumed without acting twice.

Templates see `tasks.ID.response` (`status`, `headers`, `body`, redacted) for a task without `forEach`, and a
list `tasks.ID` of `{item, response}` in item order for a `forEach` task; only the tasks a task `needs`
(directly or through others) are visible, so what a template sees never depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import secrets as random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..checks import template_leaves
from ..decisions import MARK_DONE, RECONCILED_ABSENT, RECONCILED_DONE, RESOLVING, decisions_for
from ..errors import (
    EXIT_INVALID,
    HttptaskError,
    Issue,
    KeyReused,
    SendError,
    TaskError,
    TemplateError,
    UsageError,
)
from ..execute import Prepared, prepare, response_record, send_prepared
from ..journal import TASK_ROW, Decision, Journal, RunRecord, StepRecord, decider, default_journal_path
from ..outcome import Outcome, may_have_acted
from ..plan import PlanInvalid, plan_workflow
from ..reconcile import Reconcile, match_values, reconcile_of, settle
from ..requests import SAFE_METHODS, step_seed
from ..retry import Attempt
from ..secrets import SecretStore
from ..tasks import Task
from ..templating import base_context, render_value, secret_names
from ..transport import Sender, origin
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


# Where a plan made before a sandbox run addresses the sandbox, whose port is known only once it starts.
_PLAN_SANDBOX = "http://127.0.0.1:1"

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
    decision: str | None = None

    @property
    def label(self) -> str:
        """The state as a summary counts it: 'resolved by hand' is never 'succeeded'."""
        if self.state != "resolved":
            return self.state
        return "resolved by hand" if self.decision == MARK_DONE else "resolved by reconciliation"

    @property
    def done(self) -> bool:
        """Succeeded, or resolved by a decision: what needs it may run."""
        return self.state in ("succeeded", "resolved")

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "state": self.state,
            "decision": self.decision,
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
            counts[step.label] = counts.get(step.label, 0) + 1
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
        self._decisions: Mapping[tuple[str, int], Decision] = {}
        self._reconcile = False
        self._twins: dict[tuple[str, int], tuple[int, int]] = {}
        self._run_id = ""
        self._inputs: Mapping[str, Any] = {}

    async def run(
        self,
        run_id: str,
        inputs: Mapping[str, Any],
        *,
        previous: Mapping[tuple[str, int], StepRecord] | None = None,
        decisions: Mapping[tuple[str, int], Decision] | None = None,
        reconcile: bool = False,
    ) -> RunResult:
        """Run every task; `previous` (a resume) holds the journaled steps, `decisions` what was decided
        about requests of unknown outcome, by (task, item); `reconcile` settles the others by reading the
        server where the operation has an x-reconcile."""
        self._run_id = run_id
        self._inputs = inputs
        self._previous = previous or {}
        self._decisions = decisions or {}
        self._reconcile = reconcile
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
                result.state = "succeeded" if result.steps[0].done else "failed"
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
        if self._reconcile:
            self._count_twins(task, items, context)
        self._progress(len(items), 0)
        self._journal.queue(Journal.schedule(self._run_id, task.id, [TASK_ROW, *range(len(items))]))
        steps: list[StepResult | None] = [None] * len(items)
        pending: Iterator[tuple[int, Any]] = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                steps[index] = await self._step(task, index, item, context, for_each=True)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(items)))))
        result.steps = [step for step in steps if step is not None]
        failed = sum(step.state == "failed" for step in result.steps)
        unknown = sum(step.state == "unknown" for step in result.steps)
        result.state = "succeeded" if all(step.done for step in result.steps) else "failed"
        if result.state == "failed":
            parts = [f"{failed} of {len(items)} items failed"] if failed else []
            parts += (
                [f"{unknown} of {len(items)} of unknown outcome, waiting for a decision"] if unknown else []
            )
            result.error = "; ".join(parts)
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
        if previous is not None and previous.state in ("succeeded", "resolved"):
            return StepResult(
                index,
                previous.state,
                previous.http_status,
                previous.elapsed_ms,
                previous.response,
                previous.error if previous.state == "resolved" else None,
                previous.attempts,
                reused=True,
                decision=previous.decision,
            )
        unknown = previous if previous is not None and previous.outcome_unknown else None
        waiting = unknown is not None and not unknown.idempotent
        decision = self._decisions.get((task.id, index)) if waiting else None
        if waiting and decision is None and not self._reconcile:
            assert unknown is not None
            return self._waiting(task, index, unknown, "")
        if decision is not None and decision.action in RESOLVING:
            return self._resolve(task, index, decision)
        try:
            prepared = self._prepare(task, index, item, context, for_each, unknown)
        except HttptaskError as exc:
            message = redactor.redact(str(exc))
            journal.queue([Journal.finished(run_id, task.id, index, "failed", error=message)])
            return StepResult(index, "failed", error=message)
        if waiting and decision is None:
            assert unknown is not None
            decision, reason = await self._settle(task, index, item, context, prepared)
            if decision is None:
                return self._waiting(task, index, unknown, reason)
            if decision.action in RESOLVING:
                return self._resolve(task, index, decision)
        if decision is not None:
            journal.queue(Journal.decided(run_id, decision))
        return await self._send(task, index, item, prepared)

    def _prepare(
        self,
        task: Task,
        index: int,
        item: Any,
        context: dict[str, Any],
        for_each: bool,
        unknown: StepRecord | None,
    ) -> Prepared:
        """The request for one item; an item sent before keeps the idempotency key it was sent with."""
        return prepare(
            task,
            inputs=self._inputs,
            catalog=self._catalog,
            secrets=self._secrets,
            sandbox_url=self._sandbox_url,
            tasks=context,
            extra={"item": item} if for_each else None,
            key_seed=step_seed(self._run_id, task.id, index),
            idempotency_key=unknown.idempotency_key if unknown is not None else None,
        )

    async def _send(self, task: Task, index: int, item: Any, prepared: Prepared) -> StepResult:
        run_id, journal, redactor = self._run_id, self._journal, self._secrets.redactor
        attempts: list[Attempt] = []
        request = prepared.redacted_request()
        async with self._slots:
            try:
                if prepared.request.method in SAFE_METHODS:
                    journal.queue(
                        [
                            Journal.sent(
                                run_id,
                                task.id,
                                index,
                                idempotent=prepared.idempotent,
                                key=prepared.idempotency_key,
                                request=request,
                            )
                        ]
                    )
                else:
                    await journal.begin_send(
                        run_id,
                        task.id,
                        index,
                        idempotent=prepared.idempotent,
                        key=prepared.idempotency_key,
                        scope=origin(prepared.request.url),
                        request=request,
                        item_value=redactor.redact_value(item),
                    )
            except KeyReused as exc:
                message = redactor.redact(str(exc))
                journal.queue([Journal.finished(run_id, task.id, index, "failed", error=message)])
                return StepResult(index, "failed", error=message)
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
                state = "unknown" if exc.may_have_acted and not prepared.idempotent else "failed"
                return StepResult(index, state, exc.status, error=message, attempts=len(attempts))
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
        if not response.ok and not prepared.idempotent and may_have_acted(Outcome.ANSWERED, response.status):
            state = "unknown"  # a 5xx may come after the work was done
        return StepResult(index, state, response.status, response.elapsed_ms, record, error, count)

    # -- requests of unknown outcome -----------------------------------------------------------------------

    def _waiting(self, task: Task, index: int, unknown: StepRecord, reason: str) -> StepResult:
        """A request that may have been acted on and waits for a decision; the journal keeps it as it is."""
        where = f"{task.id}[{index}]" if task.for_each is not None else task.id
        sent = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unknown.sent_at)) if unknown.sent_at else "?"
        why = f" --reconcile could not tell: {reason}." if reason else ""
        message = (
            f"outcome unknown (sent {sent}, not idempotent), so it was not sent again.{why} Check on the "
            f"server, then resume with --mark-done '{where}' if it was received or --resend '{where}' if it "
            "was not."
        )
        return StepResult(index, "unknown", unknown.http_status, error=message, attempts=unknown.attempts)

    def _resolve(self, task: Task, index: int, decision: Decision) -> StepResult:
        by = (
            "by hand (--mark-done)"
            if decision.action == MARK_DONE
            else "by reconciliation (found on the server)"
        )
        note = f"resolved {by} by {decision.decided_by}; no response is kept"
        evidence = decision.evidence if isinstance(decision.evidence, dict) else None
        found = evidence.get("found") if evidence else None
        self._journal.queue(Journal.decided(self._run_id, decision, resolve=note))
        return StepResult(
            index,
            "resolved",
            error=note,
            reused=True,
            decision=decision.action,
            response=found and {"found": found},
        )

    def _count_twins(self, task: Task, items: list[Any], context: dict[str, Any]) -> None:
        """For --reconcile: how many items of `task` that may have been acted on carry the same values to
        match on (a read cannot tell them apart), and how many of those are of unknown outcome."""
        rec = self._reconcile_of(task)
        if rec is None:
            return
        groups: dict[str, list[tuple[int, bool]]] = {}
        for index, item in enumerate(items):
            previous = self._previous.get((task.id, index))
            if previous is None or not (
                previous.outcome_unknown or previous.state in ("succeeded", "resolved")
            ):
                continue
            try:
                prepared = self._prepare(task, index, item, context, True, previous)
                values = prepared.values
                assert values is not None
                key = json.dumps(
                    [prepared.request.url, match_values(rec, values, task_id=task.id)], default=str
                )
            except (HttptaskError, AssertionError):
                continue
            groups.setdefault(key, []).append((index, previous.outcome_unknown))
        for members in groups.values():
            unknown = sum(is_unknown for _, is_unknown in members)
            for index, _ in members:
                self._twins[(task.id, index)] = (len(members), unknown)

    def _reconcile_of(self, task: Task) -> Reconcile | None:
        if task.operation is None:
            return None
        try:
            return reconcile_of(self._catalog.operation(task.operation))
        except ValueError:
            return None

    async def _settle(
        self, task: Task, index: int, item: Any, context: dict[str, Any], prepared: Prepared
    ) -> tuple[Decision | None, str]:
        """A decision from the server's own records, or None and why not."""
        rec = self._reconcile_of(task)
        if rec is None or prepared.values is None:
            return None, f"{task.operation or 'a raw httpRequest'} has no x-reconcile (no read tells)"

        def prepare_read(read: Task, extra: Mapping[str, Any]) -> Prepared:
            names = {**({"item": item} if task.for_each is not None else {}), **extra}
            return prepare(
                read,
                inputs=self._inputs,
                catalog=self._catalog,
                secrets=self._secrets,
                sandbox_url=self._sandbox_url,
                tasks=context,
                extra=names,
            )

        verdict = await settle(rec, task, prepared.values, prepare_read=prepare_read, sender=self._sender)
        received = verdict.received
        twins, unknown_twins = self._twins.get((task.id, index), (1, 1))
        if received is not None and twins > 1:
            matches = int(verdict.evidence.get("matches", 0))
            known = twins - unknown_twins
            received = True if matches >= twins else False if matches == known else None
            if received is None:
                reason = (
                    f"{twins} requests of task {task.id} carry the same values to match on; {matches} found"
                )
                return None, self._secrets.redactor.redact(reason)
        if received is None:
            return None, self._secrets.redactor.redact(verdict.reason)
        action = RECONCILED_DONE if received else RECONCILED_ABSENT
        evidence = self._secrets.redactor.redact_value({"reason": verdict.reason, **verdict.evidence})
        return Decision(task.id, index, action, decider(), time.time(), evidence), ""

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
        if step.state in ("failed", "unknown")
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
        names += [name for _, source in template_leaves(task.templates, "$") for name in secret_names(source)]
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
    # Every request that can be known now is rendered and checked before the first one is sent.
    plan = plan_workflow(
        workflow,
        values,
        catalog=Catalog.default(),
        secrets=secrets,
        sandbox_url=_PLAN_SANDBOX if sandbox else None,
    )
    if plan.problems:
        raise PlanInvalid(plan)
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
    reconcile: bool = False,
    note: str | None = None,
    secrets_file: Path | None = None,
    journal_path: Path | None = None,
    on_progress: Progress | None = None,
) -> RunResult:
    """Finish a journaled run with the workflow text and inputs stored for it. Requests of unknown outcome
    that are not idempotent are sent again only as decided: `mark_done` and `resend` name them as
    TASK[ITEM,...] (journaled with `note` as evidence), `reconcile` asks the server where it can tell."""
    journal = Journal(journal_path or default_journal_path())
    record = journal.run(run_id)
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
    secrets = SecretStore(file=secrets_file or _stored_path(record.options.get("secrets_file")))
    _preload_secrets(workflow, secrets)
    values = _resume_inputs(record, workflow, inputs, secrets)
    # Own the run before reading its steps: what another process did before this point is read, and no other
    # process can act from now on.
    journal.claim_run(run_id)
    try:
        decided = decisions_for(
            workflow, journal.steps(run_id), mark_done=mark_done, resend=resend, evidence=note
        )
    except UsageError:
        journal.finish_run(run_id, record.status, record.outputs, record.errors)
        raise
    for decision in decided.values():
        resolve = f"resolved by hand (--mark-done) by {decision.decided_by}; no response is kept"
        journal.queue(
            Journal.decided(run_id, decision, resolve=resolve if decision.action == MARK_DONE else None)
        )
    previous = {(s.task, s.item): s for s in journal.steps(run_id) if s.item >= 0}
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
        decisions={key: d for key, d in decided.items() if d.action != MARK_DONE},
        reconcile=reconcile,
    )


def _stored_path(text: str | None) -> Path | None:
    return Path(text) if text else None


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
    decisions: Mapping[tuple[str, int], Decision] | None = None,
    reconcile: bool = False,
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
                return await engine.run(
                    run_id, inputs, previous=previous, decisions=decisions, reconcile=reconcile
                )
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
