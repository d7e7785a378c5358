"""Starting a run on Temporal, waiting for it, reading its state and sending an operator's decision.

A run is checked here before it starts, as on the local engine, and its inputs are refused when they hold the
value of a secret this machine knows: Temporal would keep it in the run's history for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from ...catalog import Catalog
from ...errors import UsageError
from ...runs import check_run, new_run_id, preload_secrets
from ...secrets import SecretStore
from ...workflow import Workflow, parse_workflow_text
from .connection import Connection, connect
from .model import (
    DECIDE_SIGNAL,
    RUN_WORKFLOW,
    STATE_QUERY,
    BatchResult,
    Decision,
    ItemError,
    RunInput,
    RunSummary,
    Settings,
)
from .workflows import chunk_id

__all__ = ["decide", "follow_run", "read_state", "start_run", "wait_run"]

# Temporal refuses a payload over 2 MB; the run's input is one payload.
_MAX_INPUT_BYTES = 2 * 1024 * 1024 - 64 * 1024


async def start_run(
    connection: Connection,
    *,
    workflow_text: str,
    file: str,
    inputs: Mapping[str, Any],
    sandbox: bool = False,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    secrets: SecretStore | None = None,
) -> str:
    """Check the workflow and inputs, then start the run and return its id; nothing starts on a failure."""
    workflow = parse_workflow_text(workflow_text, file)
    values = check_run(workflow, inputs, catalog=catalog or Catalog.default())
    _refuse_secret_inputs(workflow, values, secrets or _KnownSecrets())
    start = RunInput(workflow_text, file, values, sandbox, settings or Settings())
    client = await connect(connection)
    size = client.data_converter.payload_converter.to_payloads([start])[0].ByteSize()
    if size > _MAX_INPUT_BYTES:
        raise UsageError(
            f"The workflow and its inputs take {size / 1e6:.1f} MB, and Temporal keeps a run's input in one "
            f"payload of at most 2 MB: split the inputs into runs of under {_MAX_INPUT_BYTES / 1e6:.1f} MB."
        )
    run_id = new_run_id()
    # A run id is never reused: idempotency keys derive from it, and a vendor would drop a new run's refunds.
    await client.start_workflow(
        RUN_WORKFLOW,
        start,
        id=run_id,
        task_queue=connection.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    return run_id


class _KnownSecrets(SecretStore):
    """The secrets this machine has; the workers, not the machine that starts a run, need them all."""

    def get(self, name: str) -> str:
        try:
            return super().get(name)
        except UsageError:
            return ""


def _refuse_secret_inputs(workflow: Workflow, inputs: Mapping[str, Any], secrets: SecretStore) -> None:
    """Refuse inputs that hold a secret the workflow names and this machine can resolve."""
    preload_secrets(workflow, secrets)
    if secrets.redactor.redact_value(dict(inputs)) != dict(inputs):
        raise UsageError(
            "The inputs hold the value of a secret; Temporal would keep it in the run's history. Pass "
            "credentials by name (credentials: NAME, or secret('NAME') in a template), and let the workers "
            "resolve them."
        )


async def wait_run(connection: Connection, run_id: str) -> RunSummary:
    """The run's summary once it ends (a run waiting for a decision waits with it)."""
    client = await connect(connection)
    handle = client.get_workflow_handle(run_id, result_type=RunSummary)
    try:
        summary: RunSummary = await handle.result()
    except WorkflowFailureError as exc:
        return _ended(run_id, str(exc.cause or exc))
    except RPCError as exc:
        raise _no_run(run_id, connection, exc) from None
    return summary


async def follow_run(
    connection: Connection,
    run_id: str,
    *,
    poll_seconds: float = 1.0,
    on_state: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """The run's summary once it ends, or its state as soon as it waits for an operator's decision;
    `on_state` sees its state at each poll, a fan-out's counts including its running chunk's."""
    client = await connect(connection)
    handle = client.get_workflow_handle(run_id, result_type=RunSummary)
    result = asyncio.ensure_future(handle.result())
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=poll_seconds)
            if done:
                summary: RunSummary = result.result()
                return summary
            state = await _read(client, connection, run_id)
            if state.status != "running":
                return state
            if on_state is not None:
                await _add_running_chunks(client, state)
                on_state(state)
    except WorkflowFailureError as exc:
        return _ended(run_id, str(exc.cause or exc))
    except RPCError as exc:
        raise _no_run(run_id, connection, exc) from None
    finally:
        result.cancel()


async def _add_running_chunks(client: Client, state: RunSummary) -> None:
    """Add to each running fan-out's counts those of its chunk under way: the run counts a chunk's items
    when the chunk ends, and the chunk a batch's when the batch ends; before that, the batch's heartbeats
    hold its records. Asked in that order, an item that moves on meanwhile is missed once, never counted
    twice."""
    for task in state.tasks:
        if task.state != "running" or not task.for_each or not task.chunks:
            continue
        chunk = client.get_workflow_handle(chunk_id(state.run_id, task.task, task.chunks - 1))
        try:
            counts: dict[str, int] = await chunk.query(STATE_QUERY, result_type=dict)
            pending = (await chunk.describe()).raw_description.pending_activities
            for activity in pending:
                if not activity.heartbeat_details.payloads:
                    continue
                (progress,) = await client.data_converter.decode(activity.heartbeat_details.payloads)
                if BatchResult.is_wire(progress):
                    for record in progress["records"]:
                        counts[record["state"]] = counts.get(record["state"], 0) + 1
        except (RPCError, WorkflowQueryFailedError):
            continue
        for key, n in counts.items():
            task.counts[key] = task.counts.get(key, 0) + n


async def read_state(connection: Connection, run_id: str) -> RunSummary:
    """The run's state: its result when it has ended, else what it reports while it runs."""
    client = await connect(connection)
    return await _read(client, connection, run_id)


async def _read(client: Client, connection: Connection, run_id: str) -> RunSummary:
    handle = client.get_workflow_handle(run_id, result_type=RunSummary)
    try:
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.RUNNING:
            state: RunSummary = await handle.query(STATE_QUERY, result_type=RunSummary)
            return state
        if described.status == WorkflowExecutionStatus.COMPLETED:
            result: RunSummary = await handle.result()
            return result
    except RPCError as exc:
        raise _no_run(run_id, connection, exc) from None
    status = described.status.name.lower() if described.status else "unknown"
    return _ended(run_id, f"the run was {status} on Temporal")


async def decide(connection: Connection, run_id: str, decisions: list[Decision]) -> RunSummary:
    """Send each decision as the `decide` signal, once the run confirms the items wait for one."""
    client = await connect(connection)
    state = await _read(client, connection, run_id)
    for decision in decisions:
        task = next((t for t in state.tasks if t.task == decision.task), None)
        if task is None:
            known = ", ".join(t.task for t in state.tasks) or "none"
            raise UsageError(f"Run {run_id} has no task {decision.task!r} (its tasks: {known}).")
        waiting = {r.item for r in task.unknown}
        if decision.items is None and task.for_each:
            listed = ", ".join(str(i) for i in sorted(waiting)) or "none"
            raise UsageError(
                f"--{decision.action} {decision.task!r}: task {decision.task} sends one request per item; "
                f"name the items, e.g. --{decision.action} '{decision.task}[{min(waiting, default=0)}]' "
                f"(waiting for a decision: {listed})."
            )
        named = set(decision.items) if decision.items is not None else {0}
        if not waiting or not named <= waiting:
            listed = ", ".join(str(i) for i in sorted(waiting)) or "none"
            raise UsageError(
                f"Task {decision.task} of run {run_id} has no unknown outcome at item(s) "
                f"{', '.join(str(i) for i in sorted(named - waiting)) or 'any'}; the items waiting for a "
                f"decision: {listed}."
            )
    handle = client.get_workflow_handle(run_id)
    for decision in decisions:
        stamped = Decision(
            decision.task,
            decision.action,
            decision.items,
            decision.who,
            decision.evidence,
            decision.at or time.time(),
        )
        await handle.signal(DECIDE_SIGNAL, stamped)
    return await _read(client, connection, run_id)


def _ended(run_id: str, reason: str) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        workflow="",
        file="",
        status="failed",
        error_count=1,
        errors=[ItemError("", None, reason)],
    )


def _no_run(run_id: str, connection: Connection, exc: RPCError) -> UsageError:
    return UsageError(
        f"No run {run_id!r} on Temporal at {connection.options()['target_host']} ({exc.message}); "
        "list the runs with 'temporal workflow list'."
    )
