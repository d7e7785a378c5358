"""An API keeps an idempotency key for 24 hours (Stripe, and most others); past that, a request sent again
under its key is acted on as a new one. A keyed request of unknown outcome resumed a day later therefore
waits for a decision, like one without a key, instead of being sent again on the key's word."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from faults import fault_server
from test_fault_matrix import BODIES, WORKFLOW

CRASH = str(Path(__file__).resolve().parent / "crashpoints.py")
# The resume runs a day and an hour later: its clock is moved, since a test does not wait a day.
LATER = """
import sys, time
real = time.time
time.time = lambda: real() + 25 * 3600
from httptask.cli import main
sys.argv = ["httptask", *sys.argv[1:]]
main()
"""


def test_a_keyed_request_of_unknown_outcome_resumed_a_day_later_waits_for_a_decision(tmp_path: Path) -> None:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(WORKFLOW % {"operation": "refund_invoice", "body": BODIES["refund_invoice"]})
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_lapse_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"), **secret}

    def later(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LATER, *args], env=env, capture_output=True, text=True, timeout=120
        )

    with fault_server() as server:
        inputs = json.dumps({"invoices": ["inv_0", "inv_1", "inv_2"], "api_url": server.url})
        killed = subprocess.run(
            [sys.executable, CRASH, "after-sent-before-write", "3", "run", str(workflow), "--input", inputs,
             "--concurrency", "1"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        with sqlite3.connect(tmp_path / "journal.sqlite3") as connection:
            (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
        assert server.arrivals() == {"/invoices/inv_0/refund": 1, "/invoices/inv_1/refund": 1}

        resumed = later("run", "--resume", run_id)
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert (
            "error: task refund, item 2: outcome unknown (sent " in resumed.stderr
            and ", under an idempotency key older than the 24 hours an API keeps one), so it was not sent "
            "again. Check on the server, then resume with --mark-done 'refund[2]' if it was received or "
            "--resend 'refund[2]' if it was not." in resumed.stderr
        )
        assert server.arrivals()["/invoices/inv_2/refund"] == 0
        shown = json.loads(later("runs", "show", run_id, "--json").stdout)
        assert [w["item"] for w in shown["waiting"]] == [2]

        decided = later("run", "--resume", run_id, "--resend", "refund[2]")
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert server.acted() == {f"/invoices/inv_{n}/refund": 1 for n in range(3)}
