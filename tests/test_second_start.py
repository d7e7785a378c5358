"""After a crash, the natural next command is the same one again. A new run would send every refund the
killed one sent (under new keys, so even keyed ones twice), so it is refused and the interrupted run is named
for --resume; --again starts it all the same, and a run that finished never stops the next one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from crashpoints import killed_run
from faults import fault_server
from test_fault_matrix import BODIES, WORKFLOW


def test_the_same_command_after_a_crash_is_refused_and_names_the_run_to_resume(tmp_path: Path) -> None:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(WORKFLOW % {"operation": "record_refund", "body": BODIES["record_refund"]})
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_again_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"), **secret}
    with fault_server() as server:
        inputs = json.dumps({"invoices": [f"inv_{n}" for n in range(6)], "api_url": server.url})
        command = ["run", str(workflow), "--input", inputs, "--concurrency", "1"]

        def httptask(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "httptask", *args]
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

        run_id = killed_run(env, "after-sent-before-write", 3, *command)
        sent = server.arrivals()

        again = httptask(*command)
        assert again.returncode == 2, again.stdout + again.stderr
        assert again.stderr == (
            f"error: Run {run_id} of this workflow with these inputs was interrupted; a new run would send "
            f"again what it sent. Finish it with 'httptask run --resume {run_id}' ('httptask runs show "
            f"{run_id}' tells what it did), or start a new run all the same with --again.\n"
        )
        assert server.arrivals() == sent

        resumed = httptask("run", "--resume", run_id, "--resend", "refund[2]")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert server.acted() == {f"/invoices/inv_{n}/record_refund": 1 for n in range(6)}
        finished_once_more = httptask(*command)  # the run finished: a new one is the user's to start
        assert finished_once_more.returncode == 0, finished_once_more.stderr
        assert httptask(*command, "--again").returncode == 0
        assert set(server.acted().values()) == {3}


def test_the_same_command_after_a_keyed_refund_timed_out_is_refused_since_a_new_run_has_new_keys(
    tmp_path: Path,
) -> None:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(WORKFLOW % {"operation": "refund_invoice", "body": BODIES["refund_invoice"]})
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_again_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"), **secret}

    def stall_inv_1(path: str, arrived: int) -> str:
        return "stall" if path == "/invoices/inv_1/refund" else "answer"

    with fault_server(stall_inv_1) as server:
        server.stall_seconds = 1.5
        inputs = json.dumps({"invoices": ["inv_0", "inv_1"], "api_url": server.url})
        command = [sys.executable, "-m", "httptask", "run", str(workflow), "--input", inputs]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 1, first.stdout + first.stderr
        with sqlite3.connect(tmp_path / "journal.sqlite3") as connection:
            (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2, again.stdout + again.stderr
        assert again.stderr.startswith(
            f"error: Run {run_id} of this workflow with these inputs has 1 request of unknown outcome; a new "
            "run would send again what it sent."
        )
        assert server.acted() == {"/invoices/inv_0/refund": 1, "/invoices/inv_1/refund": 1}
