"""An API keeps an idempotency key for 24 hours (Stripe, and most others); past that, a request sent again
under its key is acted on as a new one. A keyed request of unknown outcome resumed a day later therefore
waits for a decision, like one without a key, instead of being sent again on the key's word."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from crashpoints import killed_run, later
from faults import fault_server
from test_fault_matrix import BODIES, WORKFLOW


def test_a_keyed_request_of_unknown_outcome_resumed_a_day_later_waits_for_a_decision(tmp_path: Path) -> None:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(WORKFLOW % {"operation": "refund_invoice", "body": BODIES["refund_invoice"]})
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_lapse_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"), **secret}

    def a_day_later(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", later(25), *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    with fault_server() as server:
        inputs = json.dumps({"invoices": ["inv_0", "inv_1", "inv_2"], "api_url": server.url})
        run_id = killed_run(env, "after-sent-before-write", 3, "run", str(workflow), "--input", inputs,
                            "--concurrency", "1")  # fmt: skip
        # Item 1 was sent while item 2's 'sent' record was committed (a keyed request is journaled before it
        # waits for its connection): it may have arrived, its answer not yet journaled.
        arrived = server.arrivals()
        assert arrived["/invoices/inv_0/refund"] == 1 and arrived.get("/invoices/inv_1/refund", 0) <= 1

        resumed = a_day_later("run", "--resume", run_id)
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert (
            "error: task refund, item 2: outcome unknown (sent " in resumed.stderr
            and ", under an idempotency key older than the 24 hours an API keeps one), so it was not sent "
            "again. Check on the server, then resume with --mark-done 'refund[2]' if it was received or "
            "--resend 'refund[2]' if it was not."
            in resumed.stderr
        )
        assert server.arrivals()["/invoices/inv_2/refund"] == 0
        shown = json.loads(a_day_later("runs", "show", run_id, "--json").stdout)
        waiting = [w["item"] for w in shown["waiting"]]
        assert waiting in ([2], [1, 2]), waiting

        # Each decided as the server's log tells: received, marked done; not received, sent again.
        decisions = ["--resend", "refund[2]"]
        if 1 in waiting:
            received = server.arrivals().get("/invoices/inv_1/refund", 0) == 1
            decisions += ["--mark-done" if received else "--resend", "refund[1]"]
        decided = a_day_later("run", "--resume", run_id, *decisions)
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert server.acted() == {f"/invoices/inv_{n}/refund": 1 for n in range(3)}
