"""The generic workflow that runs an httptask workflow on Temporal, and the child workflow of a fan-out chunk.

Deterministic by construction: the worker parses the YAML and renders templates in activities; these workflows
only schedule. A task starts when what it `needs` has succeeded and is skipped otherwise; a `forEach` runs in
child workflows of bounded size, each a sliding window of at most `concurrency` activities;
idempotent requests go K per activity, the others one per activity with a single attempt, and an unknown
outcome waits for an operator's `decide` signal.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from .model import (
        ACTIVITY,
        CHUNK_WORKFLOW,
        DECIDE_SIGNAL,
        NOT_SENT,
        RUN_INVALID,
        RUN_WORKFLOW,
        STATE_QUERY,
        BatchArgs,
        BatchResult,
        ChunkInput,
        ChunkSummary,
        Decision,
        DecisionRecord,
        Expanded,
        ItemError,
        ItemRecord,
        OutputsResult,
        Plan,
        RunInput,
        RunRef,
        RunSummary,
        Settings,
        Source,
        TaskPlan,
        TaskState,
        Wire,
    )

__all__ = ["ChunkWorkflow", "RunWorkflow"]

_MAX_ERRORS = 1000
_OK = ("succeeded", "resolved")
# Activities that send nothing (plan, expand, outputs, note): retried while workers come and go.
_QUIET = RetryPolicy(maximum_interval=timedelta(seconds=10), non_retryable_error_types=[RUN_INVALID])


class Tally:
    """Counts, HTTP statuses, the first errors and the unknown outcomes of a set of item records."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.summary = ChunkSummary()

    def add(self, records: list[ItemRecord], *, for_each: bool) -> None:
        """Count `records`; one for an item whose outcome was unknown replaces that outcome."""
        s = self.summary
        for record in records:
            previous = next((u for u in s.unknown if u.item == record.item), None)
            if previous is not None:
                s.unknown.remove(previous)
                _bump(s.counts, "unknown", -1)
                _bump(s.statuses, _status(previous), -1)
            _bump(s.counts, record.state, 1)
            _bump(s.statuses, _status(record), 1)
            if record.response and record.response.get("issues"):
                s.off_spec += 1
                s.first_off_spec = s.first_off_spec or record
            if record.state == "unknown":
                s.unknown.append(record)
            elif record.state == "failed":
                s.error_count += 1
                if len(s.errors) < _MAX_ERRORS:
                    s.errors.append(
                        ItemError(self.task, record.item if for_each else None, record.error or "")
                    )

    def merge(self, other: ChunkSummary) -> None:
        s = self.summary
        for key, n in other.counts.items():
            _bump(s.counts, key, n)
        for key, n in other.statuses.items():
            _bump(s.statuses, key, n)
        s.errors += other.errors[: max(0, _MAX_ERRORS - len(s.errors))]
        s.error_count += other.error_count
        s.unknown += other.unknown
        s.off_spec += other.off_spec
        s.first_off_spec = s.first_off_spec or other.first_off_spec


def _bump(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n
    if not counts[key]:
        del counts[key]


def _status(record: ItemRecord) -> str:
    return str(record.http_status) if record.http_status else "no answer"


async def send_range(
    ref: RunRef,
    task: TaskPlan,
    start: int,
    stop: int,
    *,
    sources: dict[str, Source],
    fingerprint: str | None,
    settings: Settings,
    on_records: Callable[[list[ItemRecord]], None],
) -> None:
    """Send items [start, stop) with at most `settings.concurrency` requests at once: batches of idempotent
    items send several each, so fewer activities carry the same number of requests."""
    size = settings.batch_size if task.batched else 1
    lanes = settings.lanes(task.batched)
    pending = deque((lo, min(lo + size, stop)) for lo in range(start, stop, size))

    async def lane() -> None:
        while pending:
            lo, hi = pending.popleft()
            args = BatchArgs(ref, task.id, lo, hi, sources, fingerprint, lanes)
            if task.batched:
                result, left = await _send_batch(task, args, settings)
            else:
                result, left = await _send_one(task, args, settings), []
            on_records(result.records)
            pending.extendleft(reversed(left))

    in_flight = max(1, settings.concurrency // lanes)
    await asyncio.gather(*(lane() for _ in range(min(in_flight, len(pending)))))


async def _send_batch(
    task: TaskPlan, args: BatchArgs, settings: Settings
) -> tuple[BatchResult, list[tuple[int, int]]]:
    """Idempotent items, K per activity, and the ranges of its items still to send. Temporal retries a lost
    batch, which skips the items its heartbeats confirmed; an item sent again carries the same idempotency
    key."""
    attempts = max(task.retry_max_attempts, settings.lost_batch_attempts)
    retry = RetryPolicy(
        initial_interval=timedelta(seconds=task.retry_interval_seconds),
        backoff_coefficient=task.retry_backoff,
        maximum_interval=timedelta(seconds=task.retry_max_interval_seconds),
        maximum_attempts=attempts,
        non_retryable_error_types=[NOT_SENT],
    )
    try:
        wire: Wire = await workflow.execute_activity(
            ACTIVITY.SEND_BATCH,
            args,
            result_type=dict,
            start_to_close_timeout=_item_time(task, args.stop - args.start),
            heartbeat_timeout=timedelta(seconds=settings.heartbeat_seconds),
            retry_policy=retry,
        )
        result = BatchResult.from_wire(wire)
        return result, [(result.next, args.stop)] if result.next is not None else []
    except ActivityError as exc:
        confirmed = _confirmed(exc, task.id)
        done = {r.item for r in confirmed}
        if done:
            # Its attempts confirmed items before they were lost (a worker killed, or too busy to heartbeat
            # in time): what they confirmed is kept, and the rest goes on in new batches. Only attempts that
            # confirm nothing at all end it.
            return await _note(BatchResult(task.id, confirmed)), _gaps(args.start, args.stop, done)
        reason = _reason(exc)
        lost = [
            ItemRecord(
                i,
                "failed",
                error=f"not finished: {reason}, {attempts} times without confirming an item; "
                + (
                    "nothing was sent"
                    if _not_sent(exc)
                    else "it may have reached the server, under an idempotency key derived from this run: "
                    "check on the server before sending it in a new run, whose keys differ"
                ),
                outcome="not_sent" if _not_sent(exc) else "unknown",
            )
            for i in range(args.start, args.stop)
        ]
        return await _note(BatchResult(task.id, lost)), []


def _gaps(start: int, stop: int, done: set[int]) -> list[tuple[int, int]]:
    """The ranges of [start, stop) not in `done`, in order."""
    gaps: list[tuple[int, int]] = []
    for i in range(start, stop):
        if i in done:
            continue
        if gaps and gaps[-1][1] == i:
            gaps[-1] = (gaps[-1][0], i + 1)
        else:
            gaps.append((i, i + 1))
    return gaps


async def _send_one(task: TaskPlan, args: BatchArgs, settings: Settings) -> BatchResult:
    """A request that is not idempotent: one activity, one attempt. If the activity is lost after it may
    have sent the request, its outcome is unknown and nothing sends it again without a decision."""
    try:
        wire: Wire = await workflow.execute_activity(
            ACTIVITY.SEND_ONE,
            args,
            result_type=dict,
            start_to_close_timeout=_item_time(task, 1),
            heartbeat_timeout=timedelta(seconds=settings.heartbeat_seconds),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return BatchResult.from_wire(wire)
    except ActivityError as exc:
        if _not_sent(exc):
            record = ItemRecord(args.start, "failed", error=f"not sent: {_reason(exc)}", outcome="not_sent")
        else:
            record = ItemRecord(
                args.start,
                "unknown",
                error=f"the worker sending it was lost ({_reason(exc)}); the server may have received the "
                "request: check, then decide with --mark-done or --resend",
                outcome="unknown",
            )
        return await _note(BatchResult(task.id, [record]))


async def _note(result: BatchResult) -> BatchResult:
    """Records the workflow made itself (a lost activity, a decision) go through an activity that returns
    them, so that every record is an activity result in the history, in order."""
    noted: Wire = await workflow.execute_activity(
        ACTIVITY.NOTE,
        result.to_wire(),
        result_type=dict,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=_QUIET,
    )
    return BatchResult.from_wire(noted)


def _item_time(task: TaskPlan, items: int) -> timedelta:
    return timedelta(seconds=60 + task.item_seconds * items)


def _confirmed(exc: ActivityError, task: str) -> list[ItemRecord]:
    """The records a lost batch had confirmed in its last heartbeat."""
    cause = exc.cause
    if isinstance(cause, TimeoutError) and cause.last_heartbeat_details:
        result = BatchResult.from_wire(cause.last_heartbeat_details[0])
        return [r for r in result.records if r.state != "unknown"] if result.task == task else []
    return []


def _not_sent(exc: ActivityError) -> bool:
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == NOT_SENT


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, TimeoutError):
        return f"{cause.type.name.lower() if cause.type else 'activity'} timeout".replace("_", "-")
    return str(cause.message if isinstance(cause, ApplicationError) else cause or exc)


@workflow.defn(name=CHUNK_WORKFLOW)
class ChunkWorkflow:
    """Items [start, stop) of one `forEach`: its own history, so a fan-out's size is not bounded by one."""

    def __init__(self) -> None:
        self._tally = Tally("")

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, int]:
        """Its items' states so far, for a live view of the fan-out."""
        return dict(self._tally.summary.counts)

    @workflow.run
    async def run(self, chunk: ChunkInput) -> ChunkSummary:
        started = workflow.now()
        tally = self._tally = Tally(chunk.task.id)
        await send_range(
            chunk.ref,
            chunk.task,
            chunk.start,
            chunk.stop,
            sources=chunk.sources,
            fingerprint=chunk.fingerprint,
            settings=chunk.settings,
            on_records=lambda records: tally.add(records, for_each=True),
        )
        tally.summary.elapsed_ms = (workflow.now() - started).total_seconds() * 1000
        return tally.summary


@workflow.defn(name=RUN_WORKFLOW)
class RunWorkflow:
    """One run of an httptask workflow; its workflow id is the run id, the root of every idempotency key."""

    def __init__(self) -> None:
        self._summary = RunSummary(run_id="", workflow="", file="", status="starting")
        self._tallies: dict[str, Tally] = {}
        self._decisions: dict[str, list[DecisionRecord]] = {}
        self._fingerprints: dict[str, str] = {}

    @workflow.query(name=STATE_QUERY)
    def state(self) -> RunSummary:
        for state in self._summary.tasks:
            self._fill(state)
        if self._summary.status == "running" and any(t.state == "waiting" for t in self._summary.tasks):
            return dataclasses.replace(self._summary, status="waiting")
        return self._summary

    @workflow.signal(name=DECIDE_SIGNAL)
    def decide(self, decision: Decision) -> None:
        """Applies to the items of unknown outcome when it arrives; any other item it names is ignored."""
        record = DecisionRecord(decision)
        tally = self._tallies.get(decision.task)
        unknown = {r.item for r in tally.summary.unknown} if tally is not None else set()
        waiting = {i for records in self._decisions.get(decision.task, []) for i in records.applied}
        if decision.action not in ("mark-done", "resend"):
            record.ignored.append(f"unknown action {decision.action!r}: use mark-done or resend")
        elif tally is None:
            record.ignored.append(f"the run has no task {decision.task!r}")
        else:
            for item in sorted(unknown) if decision.items is None else decision.items:
                if item in unknown and item not in waiting:
                    record.applied.append(item)
                    waiting.add(item)
                else:
                    record.ignored.append(f"item {item} has no unknown outcome waiting for a decision")
        self._summary.decisions.append(record)
        if record.applied:
            self._decisions.setdefault(decision.task, []).append(record)

    @workflow.run
    async def run(self, start: RunInput) -> RunSummary:
        info = workflow.info()
        ref = RunRef(info.workflow_id, info.run_id)
        summary = self._summary
        summary.run_id, summary.file, summary.status = info.workflow_id, start.file, "running"
        try:
            plan = await workflow.execute_activity(
                ACTIVITY.PLAN,
                ref,
                result_type=Plan,
                # No heartbeat: the check of every request runs without a pause, a minute per 100,000.
                start_to_close_timeout=timedelta(minutes=30),
                retry_policy=_QUIET,
            )
        except ActivityError as exc:
            summary.status = "invalid"
            cause = exc.cause
            summary.errors = [ItemError("", None, _reason(exc))]
            if isinstance(cause, ApplicationError) and cause.details:
                summary.issues = list(cause.details[0])
            summary.error_count = 1
            return summary
        summary.workflow = plan.name
        summary.tasks = [TaskState(task.id, task.for_each) for task in plan.tasks]
        self._tallies = {task.id: Tally(task.id) for task in plan.tasks}
        finished = {task.id: asyncio.Event() for task in plan.tasks}
        sources: dict[str, Source] = {}
        states = {state.task: state for state in summary.tasks}
        await asyncio.gather(
            *(self._run_task(ref, task, states, finished, sources, start.settings) for task in plan.tasks)
        )
        for state in summary.tasks:
            self._fill(state)
            tally = self._tallies[state.task].summary
            if state.state == "failed" and not tally.errors and state.error:
                summary.errors.append(ItemError(state.task, None, state.error))
                summary.error_count += 1
            elif state.state == "failed":
                summary.errors += tally.errors[: max(0, _MAX_ERRORS - len(summary.errors))]
                summary.error_count += tally.error_count
        if not summary.error_count and plan.outputs:
            result = await workflow.execute_activity(
                ACTIVITY.OUTPUTS,
                BatchArgs(ref, "", 0, 0, sources),
                result_type=OutputsResult,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=max(30.0, start.settings.heartbeat_seconds)),
                retry_policy=_QUIET,
            )
            summary.outputs = result.outputs
            summary.errors += result.errors
            summary.error_count += len(result.errors)
        summary.status = "failed" if summary.error_count else "succeeded"
        return summary

    def _fill(self, state: TaskState) -> None:
        tally = self._tallies.get(state.task)
        if tally is not None:
            state.counts = dict(tally.summary.counts)
            state.statuses = dict(tally.summary.statuses)
            state.unknown = sorted(tally.summary.unknown, key=lambda record: record.item)
            state.off_spec, state.first_off_spec = tally.summary.off_spec, tally.summary.first_off_spec

    async def _run_task(
        self,
        ref: RunRef,
        task: TaskPlan,
        states: dict[str, TaskState],
        finished: dict[str, asyncio.Event],
        sources: dict[str, Source],
        settings: Settings,
    ) -> None:
        state = states[task.id]
        tally = self._tallies[task.id]
        try:
            for need in task.needs:
                await finished[need].wait()
            started = workflow.now()
            blocked = [need for need in task.needs if states[need].state != "succeeded"]
            if blocked:
                state.state = "skipped"
                state.error = "not run: it needs " + ", ".join(f"{n} ({states[n].state})" for n in blocked)
                return
            state.state = "running"
            # Every finished task's source: the worker picks the ones this task's templates may see.
            needed = dict(sources)
            if task.for_each:
                await self._fan_out(ref, task, state, tally, needed, settings)
            else:
                state.items = 1
                await send_range(
                    ref,
                    task,
                    0,
                    1,
                    sources=needed,
                    fingerprint=None,
                    settings=settings,
                    on_records=lambda records: self._absorb(task, state, tally, records),
                )
            if state.state == "running":
                await self._settle(ref, task, state, tally, needed, settings)
                failed = tally.summary.counts.get("failed", 0)
                state.state = "failed" if failed else "succeeded"
                if failed and task.for_each:
                    state.error = f"{failed} of {state.items} items failed"
            state.elapsed_ms = (workflow.now() - started).total_seconds() * 1000
        finally:
            sources[task.id] = Source(chunks=state.chunks)
            self._fill(state)
            finished[task.id].set()

    @staticmethod
    def _absorb(task: TaskPlan, state: TaskState, tally: Tally, records: list[ItemRecord]) -> None:
        tally.add(records, for_each=task.for_each)
        if not task.for_each and records:
            state.http_status, state.attempts = records[-1].http_status, records[-1].attempts

    async def _fan_out(
        self,
        ref: RunRef,
        task: TaskPlan,
        state: TaskState,
        tally: Tally,
        needed: dict[str, Source],
        settings: Settings,
    ) -> None:
        try:
            expanded = await workflow.execute_activity(
                ACTIVITY.EXPAND,
                BatchArgs(ref, task.id, 0, 0, needed),
                result_type=Expanded,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=max(30.0, settings.heartbeat_seconds)),
                retry_policy=_QUIET,
            )
        except ActivityError as exc:
            state.state, state.error = "failed", _reason(exc)
            return
        state.items = expanded.count
        self._fingerprints[task.id] = expanded.fingerprint
        size = settings.chunk_size(task.batched)
        for number, lo in enumerate(range(0, expanded.count, size)):
            chunk = ChunkInput(
                ref, task, lo, min(lo + size, expanded.count), needed, expanded.fingerprint, settings
            )
            state.chunks = number + 1
            try:
                done = await workflow.execute_child_workflow(
                    CHUNK_WORKFLOW,
                    chunk,
                    id=chunk_id(ref.workflow_id, task.id, number),
                    result_type=ChunkSummary,
                )
            except ChildWorkflowError as exc:
                state.state, state.error = (
                    "failed",
                    f"items {chunk.start} to {chunk.stop - 1}: {exc.cause or exc}",
                )
                return
            tally.merge(done)

    async def _settle(
        self,
        ref: RunRef,
        task: TaskPlan,
        state: TaskState,
        tally: Tally,
        needed: dict[str, Source],
        settings: Settings,
    ) -> None:
        """Wait for a decision on each item of unknown outcome, and carry it out."""
        queue = self._decisions.setdefault(task.id, [])
        while tally.summary.unknown:
            state.state = "waiting"
            await workflow.wait_condition(lambda: bool(queue))
            state.state = "running"
            record = queue.pop(0)
            decision = record.decision
            note = {
                "action": decision.action,
                "who": decision.who,
                "evidence": decision.evidence,
                "at": decision.at,
            }
            if decision.action == "mark-done":
                resolved = [
                    ItemRecord(
                        i,
                        "resolved",
                        error="marked done by an operator: the outcome was not known, no response is kept",
                        decision=note,
                    )
                    for i in record.applied
                ]
                result = await _note(BatchResult(task.id, resolved))
                self._absorb(task, state, tally, result.records)
                continue
            for item in record.applied:
                resent: list[ItemRecord] = []
                await send_range(
                    ref,
                    task,
                    item,
                    item + 1,
                    sources=needed,
                    fingerprint=self._fingerprints.get(task.id),
                    settings=settings,
                    on_records=resent.extend,
                )
                for r in resent:
                    r.decision = note
                self._absorb(task, state, tally, resent)


def chunk_id(run_id: str, task: str, number: int) -> str:
    """The workflow id of a fan-out chunk: derived, so that workers and readers find it without being told."""
    return f"{run_id}/{task}/{number}"
