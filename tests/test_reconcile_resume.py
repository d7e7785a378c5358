"""`httptask run --resume --reconcile` against the sandbox: a run killed between 'sent' and the answer is
settled by reading the server. Found means resolved (journaled with the evidence), not found means sent once;
two requests that carry the same values to match on are counted, never taken for each other."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from httptask.catalog import Catalog
from httptask.sandbox import SandboxThread

ROOT = Path(__file__).resolve().parents[1]
CRASH = str(ROOT / "tests" / "crashpoints.py")

WORKFLOW = """\
name: offline-refunds
inputs:
  refunds: {type: array}
  api_url: {type: string}
tasks:
  - id: record
    operation: chargebee.record_refund
    forEach: "{{ input.refunds }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "{{ item.invoice }}"}
      body:
        memo: Refunded by check.
        transaction: {amount: "{{ item.cents }}", payment_method: check, date: "{{ item.date }}"}
"""


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(Catalog.default()) as running:
        yield running


def _refunds_acted(sandbox: SandboxThread) -> Counter[str]:
    """How many record_refund requests the sandbox acted on, by invoice."""
    records = httpx.get(f"{sandbox.url}/_sandbox/requests", timeout=10).json()
    return Counter(
        r["path_params"]["invoice-id"]
        for r in records
        if r["operation"] == "chargebee.record_refund" and r["status"] == 200 and not r["replayed"]
    )


class Run:
    def __init__(self, tmp_path: Path, sandbox: SandboxThread, refunds: list[dict[str, Any]]) -> None:
        self.workflow = tmp_path / "refunds.yaml"
        self.workflow.write_text(WORKFLOW)
        self.journal = tmp_path / "journal.sqlite3"
        self.env = {
            **os.environ,
            "HTTPTASK_JOURNAL": str(self.journal),
            "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_reconcile_key",
        }
        self.inputs = json.dumps({"refunds": refunds, "api_url": f"{sandbox.url}/chargebee/api/v1"})

    def killed_at(self, point: str, n: int) -> str:
        process = subprocess.run(
            [sys.executable, CRASH, point, str(n), "run", str(self.workflow), "--input", self.inputs,
             "--concurrency", "1"],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert process.returncode == -signal.SIGKILL, process.stderr
        with sqlite3.connect(self.journal) as connection:
            (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
        return str(run_id)

    def httptask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "httptask", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def rows(self, sql: str) -> list[Any]:
        with sqlite3.connect(self.journal) as connection:
            return connection.execute(sql).fetchall()


REFUNDS = [{"invoice": f"inv_{n}", "cents": 500 + n, "date": 1763800000 + n} for n in range(5)]


@pytest.mark.parametrize(
    ("point", "decision", "state"),
    [
        ("after-answer-before-finished", "reconciled-done", "resolved"),
        ("after-sent-before-write", "reconciled-absent", "succeeded"),
    ],
)
def test_reconcile_settles_the_request_of_unknown_outcome_from_the_invoice(
    tmp_path: Path, sandbox: SandboxThread, point: str, decision: str, state: str
) -> None:
    run = Run(tmp_path, sandbox, REFUNDS)
    run_id = run.killed_at(point, 3)  # the third refund (item 2) is of unknown outcome
    assert run.rows("SELECT item, state FROM steps WHERE item >= 0 ORDER BY item") == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "sent"),
        (3, "scheduled"),
        (4, "scheduled"),
    ]
    plain = run.httptask("run", "--resume", run_id, "--json")
    assert plain.returncode == 1
    assert [e["item"] for e in json.loads(plain.stdout)["errors"]] == [2]

    done = run.httptask("run", "--resume", run_id, "--reconcile", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _refunds_acted(sandbox) == {f"inv_{n}": 1 for n in range(5)}
    assert run.rows("SELECT item, state FROM steps WHERE item = 2") == [(2, state)]
    [(action, evidence)] = run.rows("SELECT action, evidence FROM decisions")
    evidence = json.loads(evidence)
    assert (action, evidence["read"], evidence["status"]) == (decision, "chargebee.retrieve_invoice", 200)
    assert evidence["match"] == {"txn_type": "refund", "txn_amount": 502, "txn_date": 1763800002}
    if decision == "reconciled-done":
        assert evidence["found"]["txn_amount"] == 502 and evidence["matches"] == 1
    [task] = json.loads(done.stdout)["tasks"]
    expected = {"succeeded": 4, "resolved by reconciliation": 1} if state == "resolved" else {"succeeded": 5}
    assert task["items"] == expected


@pytest.mark.parametrize(
    ("point", "acted"), [("after-answer-before-finished", 2), ("after-sent-before-write", 1)]
)
def test_twins_are_counted_not_taken_for_each_other(
    tmp_path: Path, sandbox: SandboxThread, point: str, acted: int
) -> None:
    """Two refunds of the same invoice, amount and date: one read cannot tell them apart, but it can count."""
    twin = {"invoice": "inv_t", "cents": 700, "date": 1763800000}
    run = Run(tmp_path, sandbox, [twin, twin])
    run_id = run.killed_at(point, 2)
    done = run.httptask("run", "--resume", run_id, "--reconcile", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _refunds_acted(sandbox) == {"inv_t": 2}
    [(action,)] = run.rows("SELECT action FROM decisions")
    assert action == ("reconciled-done" if acted == 2 else "reconciled-absent")


def test_a_request_the_read_cannot_settle_keeps_waiting(tmp_path: Path, sandbox: SandboxThread) -> None:
    """Three twins, one known sent and two of unknown outcome, one of which arrived: 2 found of 3 cannot say
    which of the two it was."""
    twin = {"invoice": "inv_u", "cents": 700, "date": 1763800000}
    run = Run(tmp_path, sandbox, [twin, twin, twin])
    run_id = run.killed_at("after-answer-before-finished", 2)
    # Item 1 arrived, unknown to the journal; item 2 never started. Make item 2 of unknown outcome too, as if
    # it had been sent and lost before the server read it.
    with sqlite3.connect(run.journal) as connection:
        connection.execute(
            "UPDATE steps SET state = 'sent', idempotent = 0, request = '{}', outcome = 'unknown', "
            "sent_at = 1 "
            "WHERE run_id = ? AND item = 2",
            (run_id,),
        )
    done = run.httptask("run", "--resume", run_id, "--reconcile", "--json")
    assert done.returncode == 1
    errors = json.loads(done.stdout)["errors"]
    assert [e["item"] for e in errors] == [1, 2]
    assert "3 requests of task record carry the same values to match on; 2 found" in errors[0]["message"]
    assert _refunds_acted(sandbox) == {"inv_u": 2}
    assert run.rows("SELECT count(*) FROM decisions") == [(0,)]
