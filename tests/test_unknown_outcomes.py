"""A request whose outcome is unknown is journaled as unknown, and a plain `--resume` does not send it again.

Each case runs `httptask run` as a process against the fault server, then `httptask run --resume`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import FaultServer, always, fault_server

RECORD_REFUND = """\
name: record-refund
inputs:
  api_url: {type: string}
tasks:
  - id: record
    operation: chargebee.record_refund
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    readTimeoutSeconds: 0.5
    retry: {maxAttempts: 3, intervalSeconds: 0.05}
    request:
      path: {invoice-id: inv_1}
      body:
        memo: Refunded by check.
        transaction: {amount: 100, payment_method: check, date: 1517467200}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_unknown_key",
    }


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        running.stall_seconds = 2.0
        yield running


def httptask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args], env=env, text=True, capture_output=True, timeout=60
    )


def _step(env: dict[str, str]) -> tuple[Any, ...]:
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        query = "SELECT run_id, state, outcome FROM steps"
        row: tuple[Any, ...] = connection.execute(query).fetchone()
        return row


@pytest.mark.parametrize("fault", ["stall", "reset-after-body", "truncated", "500"])
def test_a_refund_of_unknown_outcome_is_not_sent_again_by_a_retry_or_a_plain_resume(
    server: FaultServer, env: dict[str, str], tmp_path: Path, fault: str
) -> None:
    workflow = tmp_path / "record-refund.yaml"
    workflow.write_text(RECORD_REFUND)
    server.reset(always(fault))
    first = httptask(env, "run", str(workflow), "--input", json.dumps({"api_url": server.url + "/api/v1"}))
    assert first.returncode == 1, first.stderr
    run_id, state, outcome = _step(env)
    assert (state, outcome) == ("failed", "answered" if fault == "500" else "unknown")
    assert server.arrivals() == {"/api/v1/invoices/inv_1/record_refund": 1}

    server.reset(always("answer"))
    resumed = httptask(env, "run", "--resume", run_id)
    assert resumed.returncode == 1
    assert resumed.stderr.startswith("error: task record: outcome unknown (sent 20")  # then the time sent
    assert (
        "not idempotent), so it was not sent again. Check on the server, then resume with --mark-done "
        "'record' if it was received or --resend 'record' if it was not.\n" in resumed.stderr
    )
    assert server.arrivals() == {}
    # A second plain resume does the same: nothing.
    assert httptask(env, "run", "--resume", run_id).returncode == 1
    assert server.arrivals() == {}


KEYED_REFUNDS = """\
name: keyed-refunds
inputs:
  refunds: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ input.refunds }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    idempotencyKey: "refund-{{ item.invoice }}"
    request:
      path: {invoice-id: "{{ item.invoice }}"}
      body: {refund_amount: "{{ item.cents }}"}
"""


def test_a_re_run_that_changes_the_payload_under_the_same_key_is_refused(
    server: FaultServer, env: dict[str, str], tmp_path: Path
) -> None:
    """Chargebee would answer the second run with the first refund's result and hide the new amount."""
    workflow = tmp_path / "keyed.yaml"
    workflow.write_text(KEYED_REFUNDS)
    server.reset(always("answer"))

    def run(cents: int) -> subprocess.CompletedProcess[str]:
        refunds = [{"invoice": "inv_1", "cents": cents}, {"invoice": "inv_2", "cents": 100}]
        return httptask(
            env,
            "run",
            str(workflow),
            "--json",
            "--input",
            json.dumps({"refunds": refunds, "api_url": server.url}),
        )

    first = run(100)
    assert first.returncode == 0, first.stdout
    assert run(100).returncode == 0  # the same payload again: replayed by the server, not refused
    changed = run(900)
    assert changed.returncode == 1
    [error] = json.loads(changed.stdout)["errors"]
    first_id = json.loads(first.stdout)["run_id"]
    assert (error["item"], error["message"]) == (
        0,
        f"Not sent: the idempotency key refund-inv_1 was sent before (run {first_id}, task refund, item 0) "
        "with another payload, and the server would answer with the first request's result, hiding the "
        "change.\n"
        f"  first: POST {server.url}/invoices/inv_1/refund refund_amount=100\n"
        f"  now:   POST {server.url}/invoices/inv_1/refund refund_amount=900\n"
        "Send the first payload again, or give the new payload a key of its own.",
    )
    assert server.arrivals()["/invoices/inv_1/refund"] == 2  # the first run and its identical re-run
