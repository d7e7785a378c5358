"""Kill -9 the engine mid-run and resume: every refund is acted on exactly once, and a non-idempotent request
of unknown outcome is never sent again without the user saying so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from servers import serving_refunds

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
KEY_HEADER = "chargebee-idempotency-key"


@dataclass
class Chargebee:
    """A stand-in for Chargebee on 127.0.0.1: acts on a request when it arrives, answers after `delay`, and
    replays the stored answer for an idempotency key it has seen (as Chargebee does)."""

    url: str = ""
    delay: float = 0.04
    hang: set[str] = field(default_factory=set)
    received: list[tuple[str, str | None]] = field(default_factory=list)
    acted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: asyncio.Event | None = None

    async def refund(self, request: web.Request) -> web.Response:
        invoice = request.match_info["id"]
        key = request.headers.get(KEY_HEADER)
        await request.read()
        with self.lock:
            self.received.append((invoice, key))
            if key is None or key not in self.answers:
                self.acted[invoice] += 1
                answer = {
                    "invoice": {"id": invoice, "status": "paid"},
                    "transaction": {"id": f"txn_{invoice}_{self.acted[invoice]}", "type": "refund"},
                }
                if key is not None:
                    self.answers[key] = answer
            else:
                answer = self.answers[key]
            hang = invoice in self.hang
            self.hang.discard(invoice)
        if hang:
            assert self.release is not None
            await self.release.wait()
        await asyncio.sleep(self.delay)
        return web.json_response(answer)

    def count(self) -> int:
        with self.lock:
            return len(self.acted)


@pytest.fixture
def chargebee() -> Iterator[Chargebee]:
    with serving_refunds(Chargebee()) as state:
        yield state


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_crash_key",
    }


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "httptask", "run", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(process: subprocess.Popen[str], condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]
    time.sleep(0.1)  # let the server read what was already on the wire


def _journal_rows(env: dict[str, str], sql: str) -> list[Any]:
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        return connection.execute(sql).fetchall()


def _succeeded_items(env: dict[str, str]) -> set[int]:
    return {
        row[0] for row in _journal_rows(env, "SELECT item FROM steps WHERE state = 'succeeded' AND item >= 0")
    }


def test_refunds_killed_three_times_and_resumed_are_each_acted_on_once(
    chargebee: Chargebee, env: dict[str, str]
) -> None:
    invoices = [{"id": f"inv_{n:02d}", "amount": 100 + n} for n in range(50)]
    inputs = json.dumps({"invoices": invoices, "api_url": f"{chargebee.url}/api/v2"})
    process = _start(env, str(EXAMPLE), "--input", inputs, "--concurrency", "4", "--json")
    _kill_when(process, lambda: chargebee.count() >= 10)
    [(run_id,)] = _journal_rows(env, "SELECT run_id FROM runs")
    for threshold in (25, 40, None):
        done = _succeeded_items(env)
        seen = len(chargebee.received)
        process = _start(env, "--resume", run_id, "--json", "--concurrency", "4")
        if threshold is not None:
            _kill_when(process, lambda t=threshold: chargebee.count() >= t)  # type: ignore[misc]
        else:
            out, err = process.communicate(timeout=30)
            assert process.returncode == 0, err
        # What the journal holds as succeeded is never sent again.
        assert (
            not {
                invoices.index(next(i for i in invoices if i["id"] == inv))
                for inv, _ in chargebee.received[seen:]
            }
            & done
        )
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"refunded": 50, "statuses": [200] * 50}
    keys_by_invoice: dict[str, set[str | None]] = defaultdict(set)
    for invoice, key in chargebee.received:
        keys_by_invoice[invoice].add(key)
    assert sorted(keys_by_invoice) == [i["id"] for i in invoices]
    assert all(len(keys) == 1 and None not in keys for keys in keys_by_invoice.values())
    assert len({key for invoice, key in chargebee.received}) == 50
    assert dict(chargebee.acted) == {i["id"]: 1 for i in invoices}
    assert _journal_rows(env, "SELECT state, count(*) FROM steps WHERE item >= 0 GROUP BY state") == [
        ("succeeded", 50)
    ]


RECORD_REFUNDS = """\
name: record-refunds
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: record
    operation: chargebee.record_refund
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    retry: {maxAttempts: 1}
    request:
      path: {invoice-id: "{{ item }}"}
      body:
        memo: Refunded by check.
        transaction: {amount: 100, payment_method: check, date: 1517467200}
"""


def _interrupted_record_refunds(
    chargebee: Chargebee, env: dict[str, str], tmp_path: Path, invoices: list[str]
) -> str:
    """Run record_refund over `invoices`, killed while the second one is in flight; returns the run id."""
    workflow = tmp_path / "record-refunds.yaml"
    workflow.write_text(RECORD_REFUNDS)
    chargebee.hang.add(invoices[1])
    inputs = json.dumps({"invoices": invoices, "api_url": f"{chargebee.url}/api/v1"})
    process = _start(env, str(workflow), "--input", inputs, "--concurrency", "1")
    _kill_when(process, lambda: chargebee.acted.get(invoices[1], 0) == 1)
    [(run_id,)] = _journal_rows(env, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    return str(run_id)


def test_a_non_idempotent_request_of_unknown_outcome_waits_for_a_decision_about_that_item(
    chargebee: Chargebee, env: dict[str, str], tmp_path: Path
) -> None:
    run_id = _interrupted_record_refunds(chargebee, env, tmp_path, ["inv_0", "inv_1", "inv_2"])
    plain = subprocess.run(
        [sys.executable, "-m", "httptask", "run", "--resume", run_id],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    # The item of unknown outcome is not sent again; the one never sent (inv_2) is, once.
    assert plain.returncode == 1
    assert "error: task record, item 1: outcome unknown (sent " in plain.stderr
    assert "resume with --mark-done 'record[1]' if it was received or --resend 'record[1]'" in plain.stderr
    assert dict(chargebee.acted) == {"inv_0": 1, "inv_1": 1, "inv_2": 1}

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "httptask",
            "run",
            "--resume",
            run_id,
            "--mark-done",
            "record[1]",
            "--note",
            "seen in the Chargebee dashboard",
            "--json",
        ],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    [task] = json.loads(done.stdout)["tasks"]
    assert (task["state"], task["items"]) == ("succeeded", {"succeeded": 2, "resolved by hand": 1})
    assert dict(chargebee.acted) == {"inv_0": 1, "inv_1": 1, "inv_2": 1}
    rows = _journal_rows(
        env, f"SELECT item, state, decision FROM steps WHERE run_id = '{run_id}' AND item = 1"
    )
    assert rows == [(1, "resolved", "mark-done")]
    [(action, by, evidence, before)] = _journal_rows(
        env, f"SELECT action, decided_by, evidence, state_before FROM decisions WHERE run_id = '{run_id}'"
    )
    assert (action, json.loads(evidence), before) == ("mark-done", "seen in the Chargebee dashboard", "sent")
    assert "(pid " in by


def test_resend_sends_the_named_request_of_unknown_outcome_again(
    chargebee: Chargebee, env: dict[str, str], tmp_path: Path
) -> None:
    run_id = _interrupted_record_refunds(chargebee, env, tmp_path, ["r_0", "r_1"])
    resent = subprocess.run(
        [sys.executable, "-m", "httptask", "run", "--resume", run_id, "--resend", "record[1]"],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert resent.returncode == 0, resent.stderr
    assert dict(chargebee.acted) == {"r_0": 1, "r_1": 2}
