"""The embedded local engine: a workflow's tasks on one asyncio loop, with bounded concurrency, one connection
pool, and every step journaled so that a killed run can be resumed without acting twice. The run lifecycle
(checks, starting, resuming) is in `runs`, which builds this engine from a `Wiring` and drives it.

Templates see `tasks.ID.response` (`status`, `headers`, `body`, redacted) for a task without `forEach`, and a
list `tasks.ID` of `{item, response}` in item order for a `forEach` task; only the tasks a task `needs`
(directly or through others) are visible, so what a template sees never depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..decisions import (
    KEY_KEPT_SECONDS,
    MARK_DONE,
    RECONCILED_ABSENT,
    RECONCILED_DONE,
    RESOLVING,
    key_lapsed,
    needs_decision,
)
from ..errors import (
    HttptaskError,
    KeyReused,
    SendError,
    TemplateError,
)
from ..execute import Prepared, TaskPlan, answer_record, prepare, send_prepared
from ..items import LazySequence, direct_items
from ..journal import TASK_ROW, Decision, Journal, StepRecord, as_journaled, decider
from ..limits import outputs_seconds
from ..outcome import Outcome, final_state
from ..reconcile import Reconcile, match_values, reconcile_of, settle
from ..requests import SAFE_METHODS, step_seed
from ..retry import Attempt
from ..tasks import Task
from ..templating import Columns, base_context, render_value
from .protocol import Resumption, RunResult, StepLookup, StepResult, TaskResult, Wiring

if TYPE_CHECKING:
    from ..shards import Starter

__all__ = ["LocalEngine"]

# A forEach's rows are scheduled in transactions of this many, so that no list of a row per item is ever held.
_SCHEDULE_ROWS = 10_000


class LocalEngine:
    """Runs one workflow once: each task starts when what it needs has succeeded, and is skipped otherwise."""

    def __init__(self, wiring: Wiring) -> None:
        self.workflow = wiring.workflow
        self._catalog = wiring.catalog
        self._secrets = wiring.secrets
        self._journal = wiring.journal
        self._sender = wiring.sender
        self._concurrency = wiring.concurrency
        self._workers = wiring.workers
        self._strict_responses = wiring.strict_responses
        self._sandbox_url = wiring.sandbox_url
        self._drafts = wiring.drafts
        self._progress = wiring.on_progress or (lambda more, done: None)
        self._task_update = wiring.on_task or (lambda result: None)
        self._slots = asyncio.Semaphore(wiring.concurrency)
        self._results: dict[str, TaskResult] = {}
        self._plans: dict[str, TaskPlan] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._previous: StepLookup = {}
        self._resumed = False
        # A run this process created: each of its steps is sent once, by this process (the engines of its
        # workers are never told so), so the journal need not read a step's row before its 'sent' record.
        self._new_run = False
        self._decisions: Mapping[tuple[str, int], Decision] = {}
        self._reconcile = False
        self._twins: dict[tuple[str, int], tuple[int, int]] = {}
        self._run_id = ""
        self._inputs: Mapping[str, Any] = {}

    async def run(
        self, run_id: str, inputs: Mapping[str, Any], resumption: Resumption | None = None
    ) -> RunResult:
        """Run every task; a resumed run starts from its journaled steps and decisions, and with
        `reconcile` settles the other unknown outcomes by reading the server where the operation has an
        x-reconcile."""
        self._resumed = resumption is not None
        self._new_run = resumption is None
        resumption = resumption or Resumption()
        self._run_id = run_id
        self._inputs = inputs
        self._previous = resumption.previous
        self._decisions = resumption.decisions
        self._reconcile = resumption.reconcile
        self._finished = {task.id: asyncio.Event() for task in self.workflow.tasks}
        await asyncio.gather(*(self._run_task(task) for task in self.workflow.tasks))
        tasks = [self._results[task.id] for task in self.workflow.tasks]
        errors = [error for result in tasks for error in _errors(result, run_id)]
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
                result.state = "running"
                self._task_update(result)
                result.steps = [await self._step(task, 0, None, self._context(task), for_each=False)]
                result.state = "succeeded" if result.steps[0].done else "failed"
            else:
                result.state = "running"
                self._task_update(result)
                await self._fan_out(task, result)
            result.elapsed_ms = (time.perf_counter() - started) * 1000
            self._task_update(result)
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
        items = self._items(task, result, context)
        if items is None:
            return
        result.items = items
        try:
            changed = self._changed_items(task, items)
        except HttptaskError as exc:  # the items file cannot be read again
            changed = self._secrets.redactor.redact(str(exc))
        if changed is not None:
            self._fail_task(task, result, changed)
            return
        if self._reconcile:
            self._count_twins(task, items, context)
        self._progress(len(items), 0)
        # Every row is committed before the first item is sent (a resume counts them), one batch at a time,
        # so that no statement per item is ever queued.
        for first in range(TASK_ROW, len(items), _SCHEDULE_ROWS):
            rows = range(first, min(first + _SCHEDULE_ROWS, len(items)))
            await self._journal.durable(Journal.schedule(self._run_id, task.id, rows))
        unread: list[str] = []

        def counted(step: StepResult) -> None:
            result.count(step)
            self._task_update(result)

        # Items read lazily from a file are acted on in this process: a worker is handed its items.
        if self._workers is not None and isinstance(items, list) and len(items) > 1:
            result.stopped = await self._shard_out(task, self._workers, items, context, counted)
        else:
            if self._drafts is not None and not self._resumed:
                self._drafts.bind(task.id, items)
            await self._act(task, _numbered(items, unread), len(items), context, result, counted)
        if self._drafts is not None:
            self._drafts.drop(task.id)
        result.steps.sort(key=lambda step: step.item)
        # What needs this task reads its items' responses from the journal: every one must be committed.
        await self._journal.flush()
        result.journaled = ForEachResults(self._journal, self._run_id, task.id, items)
        failed = result.tally.get("failed", 0)
        unknown = result.tally.get("unknown", 0)
        result.state = "succeeded" if failed + unknown == 0 and not result.stopped else "failed"
        if result.state == "failed":
            parts = [f"{failed} of {len(items)} items failed"] if failed else []
            parts += (
                [f"{unknown} of {len(items)} of unknown outcome, waiting for a decision"] if unknown else []
            )
            parts += result.stopped
            result.error = "; ".join(parts)
        if unread:  # the items after the last one read were not taken up
            result.state = "failed"
            why = self._secrets.redactor.redact(unread[0])
            result.error = f"{why}; {result.error}" if result.error else why
        self._journal.queue(
            [Journal.finished(self._run_id, task.id, TASK_ROW, result.state, error=result.error)]
        )

    async def _act(
        self,
        task: Task,
        items: Iterable[tuple[int, Any]],
        count: int,
        context: dict[str, Any],
        result: TaskResult,
        on_step: Callable[[StepResult], None],
    ) -> None:
        """Act on a forEach task's `count` (index, item) pairs, `concurrency` at a time."""
        pending = iter(items)

        async def worker() -> None:
            for index, item in pending:
                on_step(await self._step(task, index, item, context, for_each=True))

        # Twice as many workers as connections: while `concurrency` requests are on the wire, as many more can
        # have their 'sent' records committed (see `_send`).
        await asyncio.gather(*(worker() for _ in range(min(2 * self._concurrency, count))))

    async def _shard_out(
        self,
        task: Task,
        starter: Starter,
        items: list[Any],
        context: dict[str, Any],
        on_step: Callable[[StepResult], None],
    ) -> list[str]:
        """Act on the items in `workers` processes (`shards`), this one owning the run meanwhile; why each
        worker that did not finish its items stopped."""
        from ..shards import Shard, run_shards, shard_items, task_operations

        await self._journal.flush()  # the items are scheduled before any worker acts on one
        lease = self._journal.lease
        assert lease is not None
        # A worker reads an earlier forEach's results from the journal itself, a page at a time as its
        # templates ask: a copy of them all, every response, would be held here and pickled to each worker.
        plain = {name: v for name, v in context.items() if not isinstance(v, ForEachResults)}
        journaled = {name: v.source() for name, v in context.items() if isinstance(v, ForEachResults)}
        shares = shard_items(items, starter.workers)
        operations = task_operations(task, self._catalog, reconcile=self._reconcile)

        def mine(found: Any, share: list[tuple[int, Any]]) -> dict[Any, Any]:
            """What `found` (journaled steps, decisions or twins by task and item) holds of `share`."""
            held = ((i, found.get((task.id, i))) for i, _ in share)
            return {(task.id, i): value for i, value in held if value is not None}

        shards = [
            Shard(
                journal=str(self._journal.path),
                run_id=self._run_id,
                lease=lease,
                workflow=self.workflow,
                task_id=task.id,
                operations=operations,
                number=number,
                workers=len(shares),
                items=share,
                context=plain,
                journaled=journaled,
                inputs=self._inputs,
                secret_variables=self._secrets.variables(),
                secrets_file=str(self._secrets.file) if self._secrets.file else None,
                sandbox_url=self._sandbox_url,
                concurrency=-(-self._concurrency // len(shares)),
                strict_responses=self._strict_responses,
                previous=mine(self._previous, share),
                decisions=mine(self._decisions, share),
                reconcile=self._reconcile,
                twins=mine(self._twins, share),
            )
            for number, share in enumerate(shares)
        ]

        def stepped(step: StepResult) -> None:
            self._progress(0, 1)
            on_step(step)

        return [self._secrets.redactor.redact(why) for why in await run_shards(shards, stepped, starter)]

    async def act_on(
        self,
        run_id: str,
        inputs: Mapping[str, Any],
        resumption: Resumption,
        twins: Mapping[tuple[str, int], tuple[int, int]],
        task: Task,
        items: list[tuple[int, Any]],
        context: dict[str, Any],
        on_step: Callable[[StepResult], None],
    ) -> None:
        """In a worker of `--workers`: act on these items of a forEach task of a run another process owns."""
        self._run_id, self._inputs = run_id, inputs
        self._previous, self._decisions = resumption.previous, resumption.decisions
        self._reconcile, self._twins = resumption.reconcile, dict(twins)
        result = self._results[task.id] = TaskResult(task.id, for_each=True)
        await self._act(task, items, len(items), context, result, on_step)

    def _items(self, task: Task, result: TaskResult, context: dict[str, Any]) -> Sequence[Any] | None:
        """The items of a forEach: when forEach is `{{ input.NAME }}`, the input's own (an items file read
        as it goes, or its list, not a copy), else the list forEach renders to; None (the task failed) when it
        gives no list."""
        assert task.for_each is not None
        direct = direct_items(task.for_each, self._inputs)
        if direct is not None:
            return direct
        try:
            items = render_value(
                task.for_each,
                base_context(inputs=self._inputs, tasks=context, secrets=self._secrets),
                task_id=task.id,
                field_path="forEach",
            )
        except TemplateError as exc:
            self._fail_task(task, result, self._secrets.redactor.redact(exc.message))
            return None
        if not isinstance(items, list):
            self._fail_task(
                task,
                result,
                f"task {task.id}, forEach: gives {type(items).__name__}, not a list: "
                f"{self._secrets.redactor.redact(_short(items))}",
            )
            return None
        return items

    def _changed_items(self, task: Task, items: Sequence[Any]) -> str | None:
        """On a resume, why `items` are not the list the run sent before (None when they are): item N must be
        what it was, or a resume would count one item's refund as another's and send the first one again.
        The journaled values are read a page at a time beside the items, never all at once."""
        if not self._resumed:
            return None
        before = self._journal.item_count(self._run_id, task.id)
        if not before:
            return None
        fix = (
            f"so nothing of this task is sent: a resume must find each item where it was (does forEach read "
            f"now() or uuid()?). 'httptask runs show {self._run_id}' lists what was done; send the rest in a "
            "new run."
        )
        # Killed while its rows were being scheduled, the run sent nothing: there is nothing to compare.
        every = range(0, 1 << 62)
        if not self._journal.steps(self._run_id, task=task.id, items=every, started=True, limit=1):
            return None
        if before != len(items):
            then = f"{before} when run {self._run_id} sent them"
            return f"forEach gives {len(items)} items now, {then}, {fix}"
        # Only items sent with side effects journal their value: a page of them at a time, in item order.
        sent = self._journal.item_values(self._run_id, task.id)
        following = next(sent, None)
        redact = self._secrets.redactor.redact_value
        for index, item in enumerate(items):
            if following is None:
                break
            if index != following[0]:
                continue
            now = as_journaled(redact(item))
            if now != following[1]:
                return (
                    f"forEach gives other items now than when run {self._run_id} sent them: item {index} was "
                    f"{_short(following[1])}, now {_short(now)}, {fix}"
                )
            following = next(sent, None)
        return None

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
        waiting = unknown is not None and needs_decision(unknown, time.time())
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
            journal.queue(Journal.decided(run_id, decision))  # not received: sent once more, below
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
        """The request for one item; an item sent before keeps the idempotency key it was sent with. The
        task is compiled once (what its items share rendered and checked once), on its first item; an item
        the pre-send check made a draft of is sent as it made it."""
        if self._drafts is not None and unknown is None and for_each:
            drafted = self._drafts.take(task.id, index, step_seed(self._run_id, task.id, index))
            if drafted is not None:
                return drafted
        plan = self._plans.get(task.id)
        if plan is None:
            plan = self._plans[task.id] = TaskPlan(
                task,
                inputs=self._inputs,
                catalog=self._catalog,
                secrets=self._secrets,
                sandbox_url=self._sandbox_url,
                tasks=context,
                varying=("item",) if for_each else (),
            )
        return plan.prepare(
            {"item": item} if for_each else None,
            key_seed=step_seed(self._run_id, task.id, index),
            idempotency_key=unknown.idempotency_key if unknown is not None else None,
        )

    async def _send(self, task: Task, index: int, item: Any, prepared: Prepared) -> StepResult:
        run_id, journal, redactor = self._run_id, self._journal, self._secrets.redactor
        attempts: list[Attempt] = []
        # A request that cannot act twice (its API deduplicates its key, or its method is idempotent) is sent
        # again under its key by a resume: its 'sent' record is committed before it waits for a connection,
        # and the commit's wait overlaps other requests' exchanges. One that could act twice is committed
        # only once it holds its connection: after a crash, at most `concurrency` of them wait for a decision.
        early = prepared.idempotent
        if early and (refused := await self._journal_sent(task, index, item, prepared)) is not None:
            return refused
        async with self._slots:
            if not early and (refused := await self._journal_sent(task, index, item, prepared)) is not None:
                return refused
            result = self._results[task.id]
            result.in_flight += 1  # what a progress bar shows: requests on the wire, at most `concurrency`
            try:
                response, count = await send_prepared(
                    prepared, self._sender, on_attempt=attempts.append, before_attempt=journal.check_owner
                )
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
                state = final_state(exc.outcome, exc.status, ok=False, idempotent=prepared.idempotent)
                return StepResult(index, state, exc.status, error=message, attempts=len(attempts))
            finally:
                result.in_flight -= 1
        record, error = answer_record(prepared, response, strict=self._strict_responses)
        journaled = "succeeded" if error is None else "failed"
        journal.queue(
            [
                *self._attempt_rows(task, index, attempts),
                Journal.finished(
                    run_id,
                    task.id,
                    index,
                    journaled,
                    attempts=count,
                    http_status=response.status,
                    elapsed_ms=response.elapsed_ms,
                    response=record,
                    error=error,
                    outcome=Outcome.ANSWERED,
                ),
            ]
        )
        # A 5xx may come after the work was done: the journal keeps the answer, the step waits for a decision.
        # So may a 2xx that strict responses refuse: it is an answer, so never sent again without a decision.
        ok = error is None
        state = final_state(Outcome.ANSWERED, response.status, ok=ok, idempotent=prepared.idempotent)
        return StepResult(index, state, response.status, response.elapsed_ms, record, error, count)

    # -- requests of unknown outcome -----------------------------------------------------------------------

    async def _journal_sent(self, task: Task, index: int, item: Any, prepared: Prepared) -> StepResult | None:
        """Journal that `prepared` is about to be sent (committed before it is on the wire, unless its method
        is safe); the failed step when its idempotency key was sent by another run already."""
        run_id, journal, redactor = self._run_id, self._journal, self._secrets.redactor
        idempotent, key, request = prepared.idempotent, prepared.idempotency_key, prepared.redacted_request()
        try:
            if prepared.request.method in SAFE_METHODS:
                sent = Journal.sent(run_id, task.id, index, idempotent=idempotent, key=key, request=request)
                journal.queue([sent])
            else:
                await journal.begin_send(
                    run_id, task.id, index, idempotent=idempotent, key=key, request=request,
                    item_value=redactor.redact_value(item), first_send=self._new_run,
                )  # fmt: skip
        except KeyReused as exc:
            message = redactor.redact(str(exc))
            journal.queue([Journal.finished(run_id, task.id, index, "failed", error=message)])
            return StepResult(index, "failed", error=message)
        return None

    def _waiting(self, task: Task, index: int, unknown: StepRecord, reason: str) -> StepResult:
        """A request that may have been acted on and waits for a decision; the journal keeps it as it is."""
        where = f"{task.id}[{index}]" if task.for_each is not None else task.id
        sent = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unknown.sent_at)) if unknown.sent_at else "?"
        why = f" --reconcile could not tell: {reason}." if reason else ""
        kind = (
            f"under an idempotency key older than the {KEY_KEPT_SECONDS // 3600} hours an API keeps one"
            if key_lapsed(unknown, time.time())
            else "not idempotent"
        )
        message = (
            f"outcome unknown (sent {sent}, {kind}), so it was not sent again.{why} Check on the "
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

    def _count_twins(self, task: Task, items: Sequence[Any], context: dict[str, Any]) -> None:
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
        # Counted in CPU time: a busy machine must not fail a run whose requests all went through.
        items = sum(len(result.items) for result in self._results.values() if result.for_each)
        seconds = outputs_seconds(items)
        for name, template in self.workflow.outputs.items():
            try:
                outputs[name] = render_value(
                    template, context, task_id="outputs", field_path=name, seconds=seconds, cpu_seconds=True
                )
            except TemplateError as exc:
                errors.append(
                    {
                        "task": None,
                        "item": None,
                        "message": self._secrets.redactor.redact(f"outputs.{exc.field_path}: {exc.problem}"),
                    }
                )
        return self._secrets.redactor.redact_value(outputs), errors


class ForEachResults(LazySequence[dict[str, Any]], Columns):
    """`tasks.ID` of a forEach task: `{item, response}` per item, in item order, read from the journal a page
    at a time, so that a run of a million items never holds a million responses. A number in every response
    (`response.status`) is read as a column, with no response decoded."""

    _PAGE = 1000

    def __init__(self, journal: Journal, run_id: str, task_id: str, items: Sequence[Any]) -> None:
        self._journal, self._run_id, self._task_id, self._items = journal, run_id, task_id, items
        self._page: tuple[int, dict[int, Any]] = (-1, {})

    def __len__(self) -> int:
        return len(self._items)

    def source(self) -> tuple[str, Sequence[Any]]:
        """The task and the items these results are read for: with a run's journal, all it takes to read
        them again (in a worker of `--workers`)."""
        return self._task_id, self._items

    def column(self, path: tuple[str | int, ...]) -> list[int] | None:
        if len(path) < 2 or path[0] != "response" or not all(type(key) is str for key in path):
            return None
        keys = [str(key) for key in path[1:]]
        return self._journal.response_integers(self._run_id, self._task_id, len(self._items), keys)

    def _at(self, index: int) -> dict[str, Any]:
        first = index - index % self._PAGE
        if self._page[0] != first:
            responses = self._journal.responses(self._run_id, self._task_id, first, first + self._PAGE)
            self._page = (first, responses)
        return {"item": self._items[index], "response": self._page[1].get(index)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Item by item beside a page of responses at a time: items read from a file are read in order, never
        by index."""
        page: dict[int, Any] = {}
        for index, item in enumerate(self._items):
            if index % self._PAGE == 0:
                page = self._journal.responses(self._run_id, self._task_id, index, index + self._PAGE)
            yield {"item": item, "response": page.get(index)}


def _numbered(items: Iterable[Any], unread: list[str]) -> Iterator[tuple[int, Any]]:
    """The items with their numbers, shared by a forEach's workers; an items file that cannot be read to its
    end stops them and leaves why in `unread`."""
    try:
        yield from enumerate(items)
    except HttptaskError as exc:
        unread.append(str(exc))


def _errors(result: TaskResult, run_id: str) -> list[dict[str, Any]]:
    if result.state == "skipped":
        return []
    if not result.steps and result.error:
        return [{"task": result.task_id, "item": None, "message": result.error}]
    errors = [
        {"task": result.task_id, "item": step.item if result.for_each else None, "message": step.error}
        for step in result.steps
        if step.state in ("failed", "unknown")
    ]
    errors += [{"task": result.task_id, "item": None, "message": why} for why in result.stopped]
    if result.not_kept:
        more = (
            f"and {result.not_kept} more items that failed or wait for a decision; "
            f"'httptask runs show {run_id}' lists every item"
        )
        errors.append({"task": result.task_id, "item": None, "message": more})
    return errors


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
