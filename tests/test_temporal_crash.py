"""Workers come and go on Temporal: two share a fan-out, one is killed with SIGKILL mid fan-out and the other
finishes it with every refund acted on once per idempotency key, and a request that is not idempotent, lost
with its worker, waits for an operator's decision instead of being sent again."""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from temporal_support import RECORD_REFUNDS, ROOT, WorkerProcess, refund_inputs, vendor_server, wait_until

pytestmark = pytest.mark.temporal

REFUNDS = (ROOT / "examples" / "refund-invoices.yaml").read_text()


@pytest.fixture
def workers(temporal_server: Any, tmp_path: Path) -> Iterator[Any]:
    """Start workers on a queue of this test's own; each is stopped (or was killed) at the end."""
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    started: list[WorkerProcess] = []

    def start(name: str, key: str = "cb-key-crash") -> WorkerProcess:
        process = WorkerProcess(
            temporal_server.address, queue, tmp_path / f"{name}.log", secrets={"CHARGEBEE_API_KEY": key}
        )
        started.append(process)
        return process

    start.queue = queue  # type: ignore[attr-defined]
    yield start
    for process in started:
        process.stop()


def _connection(server: Any, queue: str) -> Any:
    from httptask.engines.temporal.connection import Connection

    return Connection(server.address, task_queue=queue)


def _start(server: Any, queue: str, text: str, inputs: dict[str, Any], **settings: Any) -> str:
    from httptask.engines.temporal.client import start_run
    from httptask.engines.temporal.model import Settings

    return asyncio.run(
        start_run(
            _connection(server, queue),
            workflow_text=text,
            file="workflow.yaml",
            inputs=inputs,
            settings=Settings(**settings),
        )
    )


def _wait(server: Any, queue: str, run_id: str) -> Any:
    from httptask.engines.temporal.client import wait_run

    return asyncio.run(asyncio.wait_for(wait_run(_connection(server, queue), run_id), 300))


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_two_workers_share_one_fan_out(temporal_server: Any, workers: Any) -> None:
    workers("a", key="key-of-a")
    workers("b", key="key-of-b")
    with vendor_server() as vendor:
        vendor.delay = 0.01
        run_id = _start(
            temporal_server,
            workers.queue,
            REFUNDS,
            refund_inputs(vendor.url, 300),
            # Eight batches in flight, each sending four of its items at once.
            concurrency=32,
            batch_size=10,
            batch_lanes=4,
        )
        summary = _wait(temporal_server, workers.queue, run_id)
        senders = {r.authorization for r in vendor.received}
        acted = dict(vendor.acted)
    assert summary.status == "succeeded"
    assert senders == {_basic("key-of-a"), _basic("key-of-b")}
    assert acted == {f"inv_{n}": 1 for n in range(300)}


def test_a_worker_killed_mid_fan_out_is_replaced_and_no_refund_is_acted_on_twice(
    temporal_server: Any, workers: Any
) -> None:
    victim = workers("victim", key="key-of-victim")
    with vendor_server() as vendor:
        vendor.delay = 0.02
        run_id = _start(
            temporal_server,
            workers.queue,
            REFUNDS,
            refund_inputs(vendor.url, 600),
            # Four batches in flight, each sending four of its items at once.
            concurrency=16,
            batch_size=20,
            batch_lanes=4,
            heartbeat_seconds=2,
        )
        # Past a whole number of batches: some of them are under way.
        wait_until(lambda: vendor.count() >= 130, "the victim to send a part of the fan-out")
        victim.kill()
        killed_at = time.monotonic()
        sent_by_victim = {r.invoice for r in vendor.received if r.authorization == _basic("key-of-victim")}
        workers("rescuer", key="key-of-rescuer")
        summary = _wait(temporal_server, workers.queue, run_id)
        received = list(vendor.received)
        acted = dict(vendor.acted)
    assert summary.status == "succeeded", summary
    assert summary.tasks[0].counts == {"succeeded": 600}
    # Every refund acted on once, none lost; an item sent again carried the key it had the first time.
    assert acted == {f"inv_{n}": 1 for n in range(600)}
    keys: dict[str, set[str | None]] = {}
    for request in received:
        keys.setdefault(request.invoice, set()).add(request.key)
    assert all(len(k) == 1 and None not in k for k in keys.values())
    assert len({k for ks in keys.values() for k in ks}) == 600
    # The victim's unfinished batches were taken over by the rescuer.
    batches = {int(invoice.split("_")[1]) // 20 for invoice in sent_by_victim}
    unfinished = [
        b for b in batches if any(f"inv_{n}" not in sent_by_victim for n in range(b * 20, b * 20 + 20))
    ]
    assert unfinished, "the victim was killed between batches; nothing of its work was in flight"
    resumed = min(
        r.at for r in received if r.at > killed_at and int(r.invoice.split("_")[1]) // 20 in unfinished
    )
    assert resumed - killed_at < 15


@pytest.mark.parametrize(("lanes", "delay"), [(1, 0.1), (4, 0.4)])
def test_a_lost_batch_that_confirmed_items_goes_on_after_them_whatever_its_attempts(
    temporal_server: Any, workers: Any, lanes: int, delay: float
) -> None:
    """With one attempt per batch, a batch lost with its worker after confirming items is not failed: what
    it confirmed is kept, and the rest goes on in new batches, each refund still acted on once; with its
    items sent `lanes` at once too, where what was confirmed need not be where the batch starts."""
    one_attempt = REFUNDS.replace("    credentials:", "    retry: {maxAttempts: 1}\n    credentials:", 1)
    victim = workers("victim", key="key-of-victim")
    with vendor_server() as vendor:
        vendor.delay = delay
        run_id = _start(
            temporal_server,
            workers.queue,
            one_attempt,
            refund_inputs(vendor.url, 40),
            concurrency=lanes,
            batch_size=20,
            batch_lanes=lanes,
            heartbeat_seconds=2,
            lost_batch_attempts=1,
        )
        # Heartbeats reach the server once a second: 1.5 s into its second batch, some of it is confirmed.
        wait_until(lambda: vendor.count() >= 35, "the victim to be well into its second batch")
        victim.kill()
        workers("rescuer", key="key-of-rescuer")
        summary = _wait(temporal_server, workers.queue, run_id)
        acted = dict(vendor.acted)
        rescued = {r.invoice for r in vendor.received if r.authorization == _basic("key-of-rescuer")}
    assert summary.status == "succeeded", summary.errors
    assert summary.tasks[0].counts == {"succeeded": 40}
    assert acted == {f"inv_{n}": 1 for n in range(40)}
    # The rescuer went on after what the victim's heartbeats confirmed, not from the start of its batch.
    assert rescued and "inv_20" not in rescued and "inv_39" in rescued


def test_a_request_lost_with_its_worker_waits_for_a_decision(temporal_server: Any, workers: Any) -> None:
    from httptask.engines.temporal.client import decide, read_state
    from httptask.engines.temporal.model import Decision

    first = workers("first")
    conn = _connection(temporal_server, workers.queue)
    with vendor_server() as vendor:
        vendor.hang = {"inv_1", "inv_2"}
        run_id = _start(
            temporal_server, workers.queue, RECORD_REFUNDS, refund_inputs(vendor.url, 3), heartbeat_seconds=2
        )
        wait_until(lambda: len({r.invoice for r in vendor.received}) == 3, "all three refunds to arrive")

        def first_answer_recorded() -> bool:
            tasks = asyncio.run(read_state(conn, run_id)).tasks
            return bool(tasks) and tasks[0].counts.get("succeeded", 0) == 1

        # Item 0 was answered; killed before Temporal recorded that, it would rightly be unknown too.
        wait_until(first_answer_recorded, "the first refund's answer to be recorded")
        first.kill()
        vendor.hang.clear()
        workers("second")

        def waiting() -> bool:
            return asyncio.run(read_state(conn, run_id)).status == "waiting"

        wait_until(waiting, "the run to wait for a decision", timeout=60)
        state = asyncio.run(read_state(conn, run_id))
        unknown = state.tasks[0].unknown
        assert [(r.item, r.state) for r in unknown] == [(1, "unknown"), (2, "unknown")]
        assert "the server may have received the request" in (unknown[0].error or "")
        assert len(vendor.requests_for("inv_1")) == 1  # not sent again by Temporal's retries

        cli = [sys.executable, "-m", "httptask"]
        where = ["--engine", "temporal", "--temporal", temporal_server.address, "--task-queue", workers.queue]
        shown = subprocess.run(
            [*cli, "runs", "show", run_id, *where], capture_output=True, text=True, check=True
        )
        assert shown.stdout.splitlines()[0] == f"run {run_id}: waiting"
        assert [line.split(":")[:2] for line in shown.stderr.splitlines()[:2]] == [
            ["waiting", " record[1]"],
            ["waiting", " record[2]"],
        ]
        refused = subprocess.run(
            [*cli, "run", "--resume", run_id, *where, "--resend", "record[0]"], capture_output=True, text=True
        )
        assert (refused.returncode, refused.stderr) == (
            2,
            (
                f"error: Task record of run {run_id} has no unknown outcome at item(s) 0; the items "
                "waiting for a decision: 1, 2.\n"
            ),
        )
        evidence = "seen in the vendor's dashboard"
        asyncio.run(decide(conn, run_id, [Decision("record", "mark-done", [1], "ops@example", evidence)]))
        resent = subprocess.run(
            [*cli, "run", "--resume", run_id, *where, "--resend", "record[2]", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        per_invoice = {n: len(vendor.requests_for(f"inv_{n}")) for n in range(3)}
    assert resent.returncode == 0, resent.stderr
    report = json.loads(resent.stdout)
    assert report["status"] == "succeeded"
    assert report["tasks"][0]["items"] == {"succeeded": 2, "resolved": 1}
    assert per_invoice == {0: 1, 1: 1, 2: 2}
    decided = [
        (d["action"], d["applied"], d["who"].split(" (pid")[0], d["evidence"]) for d in report["decisions"]
    ]
    assert decided == [
        ("mark-done", [1], "ops@example", evidence),
        ("resend", [2], f"{getpass.getuser()}@{socket.gethostname()}", None),
    ]


def test_ten_thousand_refunds_each_acted_on_once(temporal_server: Any, workers: Any) -> None:
    workers("one")
    with vendor_server() as vendor:
        run_id = _start(
            temporal_server,
            workers.queue,
            REFUNDS,
            refund_inputs(vendor.url, 10_000),
            concurrency=32,
            batch_size=50,
        )
        summary = _wait(temporal_server, workers.queue, run_id)
        acted = dict(vendor.acted)
        keys = {r.key for r in vendor.received}
    assert summary.status == "succeeded"
    assert summary.tasks[0].counts == {"succeeded": 10_000}
    assert summary.outputs["refunded"] == 10_000
    assert acted == {f"inv_{n}": 1 for n in range(10_000)}
    assert len(keys) == 10_000 and None not in keys
