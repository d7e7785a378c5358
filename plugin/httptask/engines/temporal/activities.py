"""The worker's side of a run: plan it, expand a `forEach`, send items, render the outputs.

Every request goes through `execute.prepare` and `send_prepared`, as Test request and the local engine do,
with credentials resolved here in the worker. What leaves an activity (results, heartbeats, failure
messages) is redacted, and an error never carries its cause along: its message could quote a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from ...catalog import Catalog
from ...errors import HttptaskError, SendError, TaskError, TemplateError
from ...execute import TaskPlan as RequestPlan
from ...execute import answer_record, send_prepared
from ...limits import outputs_seconds
from ...outcome import Outcome, final_state
from ...plan import PlanInvalid, plan_workflow
from ...requests import idempotency_header, is_idempotent, step_seed
from ...retry import Attempt
from ...runs import check_run, preload_secrets
from ...sandbox import SandboxThread
from ...secrets import SecretStore
from ...tasks import Task
from ...templating import base_context, is_template, render_value
from ...transport import Sender
from ...workflow import Workflow, parse_workflow_text
from .cache import OnceCache
from .history import HistoryReader
from .model import (
    ACTIVITY,
    NOT_SENT,
    RUN_INVALID,
    BatchArgs,
    BatchResult,
    EncodedRecords,
    Expanded,
    ItemError,
    ItemRecord,
    OutputsResult,
    Plan,
    RunInput,
    RunRef,
    Source,
    TaskPlan,
    Wire,
)

__all__ = ["Activities"]

NOT_SENT_YET = Outcome.NOT_SENT.value

# A batch returns early once its records pass this size: an activity result must stay well under Temporal's
# 2 MB payload limit, and the next batch goes on from there.
RESULT_BUDGET_BYTES = 512 * 1024


@dataclass(frozen=True)
class _Run:
    start: RunInput
    workflow: Workflow


class Activities:
    """The activities of one worker process, sharing its connection pool, secrets and caches."""

    def __init__(
        self, reader: HistoryReader, *, catalog: Catalog, secrets: SecretStore, sender: Sender
    ) -> None:
        self._reader = reader
        self._catalog = catalog
        self._secrets = secrets
        self._sender = sender
        self._sandbox: SandboxThread | None = None
        # Rendered once per worker: a forEach list (and its fingerprint), and the `tasks` templates see. Every
        # batch of a fan-out needs them, and 64 batches start at once.
        self._items = OnceCache(32)
        self._task_contexts = OnceCache(32)
        self._runs: dict[RunRef, _Run] = {}

    def all(self) -> list[Callable[..., Any]]:
        return [self.plan, self.expand, self.send_batch, self.send_one, self.note, self.outputs]

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    # -- activities --------------------------------------------------------------------------------------

    @activity.defn(name=ACTIVITY.PLAN)
    async def plan(self, ref: RunRef) -> Plan:
        """Parse and check the workflow, its inputs and this worker's secrets before anything is sent."""
        with self._failing_as(RUN_INVALID):
            run = await self._run(ref)
            workflow = run.workflow
            check_run(workflow, run.start.inputs, catalog=self._catalog)
            if self._secrets.redactor.redact_value(run.start.inputs) != run.start.inputs:
                raise TaskError(
                    f"The inputs of run {ref.workflow_id} hold the value of a secret, which Temporal keeps "
                    "in the run's history: rotate that secret, and pass credentials by name (credentials: "
                    "NAME or secret('NAME')), never as an input."
                )
            # Every request that can be known now is rendered and checked before the first one is sent, as
            # on the local engine, keeping only the problems. In a thread: 100,000 items take seconds, and on
            # the loop they stopped the heartbeats of every other run's batches on this worker meanwhile.
            checked = await asyncio.to_thread(
                plan_workflow,
                workflow,
                run.start.inputs,
                catalog=self._catalog,
                secrets=self._secrets,
                sandbox_url=self._sandbox_url() if run.start.sandbox else None,
                keep_requests=False,
            )
            if checked.problems:
                raise PlanInvalid(checked)
            return Plan(
                workflow.name, [self._task_plan(task) for task in workflow.tasks], bool(workflow.outputs)
            )

    @activity.defn(name=ACTIVITY.EXPAND)
    async def expand(self, args: BatchArgs) -> Expanded:
        """Render a task's `forEach`; the list stays in the worker, the workflow gets its length."""
        with self._failing_as(NOT_SENT):
            run = await self._run(args.ref)
            items, fingerprint = await self._for_each(run, args.ref, _task(run, args.task), args.sources)
            return Expanded(len(items), fingerprint)

    @activity.defn(name=ACTIVITY.SEND_BATCH)
    async def send_batch(self, args: BatchArgs) -> RawValue:
        """Send idempotent items, `args.lanes` at a time in item order, heartbeating the records so far; a
        retried batch skips the items its heartbeats confirmed, and an item sent again carries the same
        idempotency key."""
        with self._failing_as(NOT_SENT):
            plan, items, strict = await self._prepare_batch(args)
        confirmed = [r for r in _heartbeat_records(args.task) if args.start <= r.item < args.stop]
        done = {r.item for r in confirmed}
        records = EncodedRecords(args.task, confirmed)
        todo = iter([i for i in range(args.start, args.stop) if i not in done])

        async def lane() -> None:
            # Lanes take items from one iterator: past the result's budget none takes another, and the
            # items taken are a prefix of `todo`, each of them finished.
            for index in todo:
                item = items[index] if items is not None else None
                records.add(await self._send_item(args.ref, plan, index, item, batched=True, strict=strict))
                if records.size > RESULT_BUDGET_BYTES:
                    return

        async with _heartbeating(lambda: _json_payload(records.wire())), asyncio.TaskGroup() as lanes:
            for _ in range(max(1, args.lanes)):
                lanes.create_task(lane())
        return _json_payload(records.wire(next(todo, None)))

    @activity.defn(name=ACTIVITY.SEND_ONE)
    async def send_one(self, args: BatchArgs) -> Wire:
        """One request that is not idempotent, in one attempt of this activity."""
        with self._failing_as(NOT_SENT):
            plan, items, strict = await self._prepare_batch(args)
        item = items[args.start] if items is not None else None
        async with _heartbeating(lambda: None):
            record = await self._send_item(args.ref, plan, args.start, item, batched=False, strict=strict)
        return BatchResult(args.task, [record]).to_wire()

    @activity.defn(name=ACTIVITY.NOTE)
    async def note(self, result: Wire) -> Wire:
        """Returns its argument: records the workflow made itself become an activity result in the history."""
        return result

    @activity.defn(name=ACTIVITY.OUTPUTS)
    async def outputs(self, args: BatchArgs) -> OutputsResult:
        """Render the workflow's outputs over every task's results, redacted."""
        with self._failing_as(NOT_SENT):
            run = await self._run(args.ref)
            names = [task.id for task in run.workflow.tasks]
            tasks = await self._contexts(run, args.ref, names, args.sources)
            context = base_context(inputs=run.start.inputs, tasks=tasks, secrets=self._secrets)
            seconds = outputs_seconds(sum(len(value) for value in tasks.values() if isinstance(value, list)))
            outputs: dict[str, Any] = {}
            errors: list[ItemError] = []
            for name, template in run.workflow.outputs.items():
                try:
                    outputs[name] = render_value(
                        template,
                        context,
                        task_id="outputs",
                        field_path=name,
                        seconds=seconds,
                        cpu_seconds=True,
                    )
                except TemplateError as exc:
                    errors.append(
                        ItemError("", None, self._redact(f"outputs.{exc.field_path}: {exc.problem}"))
                    )
            return OutputsResult(self._secrets.redactor.redact_value(outputs), errors)

    # -- items -------------------------------------------------------------------------------------------

    async def _prepare_batch(self, args: BatchArgs) -> tuple[RequestPlan, list[Any] | None, bool]:
        """The task compiled for this batch's requests (what its items share rendered and checked once), the
        `forEach` list, checked to be the one the run expanded, and whether the run has strict responses."""
        run = await self._run(args.ref)
        task = _task(run, args.task)
        context = await self._contexts(run, args.ref, _closure(run.workflow, task), args.sources)
        items = None
        if task.for_each is not None:
            items, fingerprint = await self._for_each(run, args.ref, task, args.sources)
            if fingerprint != args.fingerprint:
                raise TaskError(
                    f"task {task.id}, forEach: gives a different list on this worker than when the run "
                    "expanded it (a template that reads the clock or draws at random?); item numbers would "
                    "not name the same items, so nothing was sent."
                )
        plan = RequestPlan(
            task,
            inputs=run.start.inputs,
            catalog=self._catalog,
            secrets=self._secrets,
            sandbox_url=self._sandbox_url() if run.start.sandbox else None,
            tasks=context,
            varying=("item",) if task.for_each is not None else (),
        )
        return plan, items, run.start.settings.strict_responses

    async def _send_item(
        self,
        ref: RunRef,
        plan: RequestPlan,
        index: int,
        item: Any,
        *,
        batched: bool,
        strict: bool,
    ) -> ItemRecord:
        """Render, check and send one request; its outcome as a record (never an exception)."""
        task = plan.task
        try:
            prepared = plan.prepare(
                {"item": item} if task.for_each is not None else None,
                key_seed=step_seed(ref.workflow_id, task.id, index),
            )
        except HttptaskError as exc:
            return ItemRecord(index, "failed", error=self._redact(str(exc)), outcome=NOT_SENT_YET)
        if batched and not prepared.idempotent:
            return ItemRecord(
                index,
                "failed",
                outcome=NOT_SENT_YET,
                error=f"{prepared.label} is not "
                "idempotent, so it is not sent in a batch that may be retried; nothing was sent",
            )
        attempts: list[Attempt] = []
        key = prepared.idempotency_key
        sent_at = time.time()
        try:
            response, count = await send_prepared(prepared, self._sender, on_attempt=attempts.append)
        except SendError as exc:
            state = final_state(exc.outcome, exc.status, ok=False, idempotent=prepared.idempotent)
            return ItemRecord(
                index,
                state,
                exc.status,
                attempts=len(attempts),
                error=self._redact(str(exc)),
                idempotency_key=key,
                sent_at=sent_at,
                outcome=exc.outcome.value,
            )
        record, error = answer_record(prepared, response, strict=strict)
        ok = error is None
        state = final_state(Outcome.ANSWERED, response.status, ok=ok, idempotent=prepared.idempotent)
        if state == "unknown":
            error = (
                f"{error}; the server may have acted on it, and it is not idempotent, so it was not sent "
                "again: check on the server, then decide with --mark-done or --resend"
            )
        return ItemRecord(
            index,
            state,
            response.status,
            response.elapsed_ms,
            count,
            error,
            record,
            key,
            sent_at,
            Outcome.ANSWERED.value,
        )

    # -- templates' view of the run ---------------------------------------------------------------------

    async def _run(self, ref: RunRef) -> _Run:
        """The run's workflow and inputs, with every secret it names known to this worker's redactor."""
        start = await self._reader.start_input(ref)
        run = self._runs.get(ref)
        if run is None:
            run = _Run(start, parse_workflow_text(start.workflow_text, start.file))
            preload_secrets(run.workflow, self._secrets)
            self._runs[ref] = run
            while len(self._runs) > 32:
                del self._runs[next(iter(self._runs))]
        return run

    async def _for_each(
        self, run: _Run, ref: RunRef, task: Task, sources: Mapping[str, Source]
    ) -> tuple[list[Any], str]:
        """The rendered `forEach` list and its fingerprint, rendered once per worker and task."""
        result: tuple[list[Any], str] = await self._items.get(
            (ref.workflow_id, task.id), lambda: self._render_for_each(run, ref, task, sources)
        )
        return result

    async def _render_for_each(
        self, run: _Run, ref: RunRef, task: Task, sources: Mapping[str, Source]
    ) -> tuple[list[Any], str]:
        assert task.for_each is not None
        context = await self._contexts(run, ref, _closure(run.workflow, task), sources)
        scope = base_context(inputs=run.start.inputs, tasks=context, secrets=self._secrets)
        try:
            items = render_value(task.for_each, scope, task_id=task.id, field_path="forEach")
        except TemplateError as exc:
            raise TaskError(self._redact(exc.message)) from None
        if not isinstance(items, list):
            text = json.dumps(items, default=str)
            raise TaskError(
                f"task {task.id}, forEach: gives {type(items).__name__}, not a list: "
                f"{self._redact(text if len(text) <= 80 else text[:77] + '...')}"
            )
        fingerprint = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
        return items, fingerprint

    async def _contexts(
        self, run: _Run, ref: RunRef, names: list[str], sources: Mapping[str, Source]
    ) -> dict[str, Any]:
        """`tasks` as templates see it: `{response}` for a task, `[{item, response}]` for a `forEach`; built
        once per worker for the finished tasks it names, which no longer change."""
        key = (ref, tuple(names), tuple((name, sources.get(name)) for name in names))
        result: dict[str, Any] = await self._task_contexts.get(
            key, lambda: self._build_contexts(run, ref, names, sources)
        )
        return result

    async def _build_contexts(
        self, run: _Run, ref: RunRef, names: list[str], sources: Mapping[str, Source]
    ) -> dict[str, Any]:
        contexts: dict[str, Any] = {}
        for name in names:
            task = _task(run, name)
            source = sources.get(name)
            records = await self._reader.records(ref, name, source) if source is not None else {}
            if task.for_each is None:
                record = records.get(0)
                contexts[name] = {"response": record.response if record else None}
                continue
            items = (await self._for_each(run, ref, task, sources))[0] if records else []
            contexts[name] = [
                {"item": item, "response": records[i].response if i in records else None}
                for i, item in enumerate(items)
            ]
        return contexts

    # -- helpers -----------------------------------------------------------------------------------------

    def _task_plan(self, task: Task) -> TaskPlan:
        if task.operation is not None:
            op = self._catalog.operation(task.operation)
            batched = is_idempotent(op.method, idempotency_header(op))
        else:
            # A method chosen by a template is known only per item: it is batched only with a key.
            method = str((task.http_request or {}).get("method", "GET"))
            key_header = idempotency_header(None) if task.idempotency_key is not None else None
            batched = is_idempotent("POST" if is_template(method) else method, key_header)
        retry = task.retry
        return TaskPlan(
            id=task.id,
            needs=list(task.needs),
            for_each=task.for_each is not None,
            batched=batched,
            item_seconds=retry.max_elapsed_seconds
            + task.connection_timeout_seconds
            + task.read_timeout_seconds,
            retry_interval_seconds=retry.interval_seconds,
            retry_backoff=retry.backoff_rate,
            retry_max_interval_seconds=retry.max_interval_seconds,
            retry_max_attempts=retry.max_attempts,
        )

    def _sandbox_url(self) -> str:
        if self._sandbox is None:
            self._sandbox = SandboxThread(self._catalog).__enter__()
        return self._sandbox.url

    def _redact(self, text: str) -> str:
        return self._secrets.redactor.redact(text)

    @contextlib.contextmanager
    def _failing_as(self, kind: str) -> Iterator[None]:
        """A user's mistake fails the activity for good; anything else may be retried. Either way the
        message is redacted and the cause is dropped, so no secret reaches the history."""
        try:
            yield
        except HttptaskError as exc:
            issues = [issue.to_dict() for issue in getattr(exc, "issues", [])]
            raise ApplicationError(
                self._redact(f"{exc} (worker {socket.gethostname()})" if kind == RUN_INVALID else str(exc)),
                self._secrets.redactor.redact_value(issues),
                type=kind,
                non_retryable=True,
            ) from None
        except ApplicationError:
            raise
        except Exception as exc:
            raise ApplicationError(
                self._redact(f"{type(exc).__name__}: {exc}"), type=type(exc).__name__
            ) from None


def _task(run: _Run, task_id: str) -> Task:
    task = run.workflow.task(task_id)
    if task is None:
        raise TaskError(f"The workflow of this run has no task {task_id!r}.")
    return task


def _closure(workflow: Workflow, task: Task) -> list[str]:
    seen: list[str] = []
    stack = list(task.needs)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.append(name)
            need = workflow.task(name)
            assert need is not None
            stack.extend(need.needs)
    return sorted(seen)


def _heartbeat_records(task: str) -> list[ItemRecord]:
    """What the previous attempt of this batch confirmed before it was lost."""
    details = activity.info().heartbeat_details
    if not details or details[0] is None:
        return []
    if not BatchResult.is_wire(details[0]):
        return []
    previous = BatchResult.from_wire(details[0])
    return list(previous.records) if previous.task == task else []


def _json_payload(data: bytes) -> RawValue:
    """JSON encoded already, passed through as Temporal's own JSON converter would have written it."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))


@contextlib.asynccontextmanager
async def _heartbeating(progress: Callable[[], Any]) -> AsyncIterator[None]:
    """Heartbeat while the body runs, including while a slow request waits for its answer."""
    timeout = activity.info().heartbeat_timeout
    every = timeout.total_seconds() / 5 if timeout else 10.0

    async def beat() -> None:
        while True:
            activity.heartbeat(progress())
            await asyncio.sleep(every)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        activity.heartbeat(progress())
