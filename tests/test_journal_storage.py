"""A journal that cannot be written (a full disk, a file-size limit): the run refuses to send what it cannot
record, says so in one sentence that names the file and what to do, and a resume once there is room acts on
every refund exactly once."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from faults import fault_server
from httptask.errors import UsageError
from httptask.journal import Journal
from test_fault_matrix import BODIES, WORKFLOW

ITEMS = 120
FULL = "could not be written ({why}); nothing more is sent. Free space on its disk or make it writable"


def _limit_file_size(limit: int) -> None:
    """In the child: writes past `limit` bytes fail with EFBIG (as on a full disk) instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_run_whose_journal_fills_up_stops_sending_and_a_resume_acts_on_each_refund_once(
    tmp_path: Path,
) -> None:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(WORKFLOW % {"operation": "record_refund", "body": BODIES["record_refund"]})
    journal = tmp_path / "journal.sqlite3"
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_storage_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(journal), **secret}
    invoices = [f"inv_{n:03d}" for n in range(ITEMS)]
    with fault_server() as server:
        inputs = json.dumps({"invoices": invoices, "api_url": server.url})
        full = subprocess.run(
            [sys.executable, "-m", "httptask", "run", str(workflow), "--input", inputs, "--concurrency", "8"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: _limit_file_size(300_000),
        )
        assert full.returncode == 2, full.stdout + full.stderr
        assert f"error: The journal {str(journal)!r} {FULL.format(why='disk I/O error')}" in full.stderr
        assert "Traceback" not in full.stderr
        with sqlite3.connect(journal) as connection:
            (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
        reader = Journal(journal)
        steps = {step.item: step for step in reader.steps(run_id) if step.item >= 0}
        reader.close()
        # In flight when the journal failed: 'sent', or 'failed' with an outcome that may have acted.
        unknown = {index for index, step in steps.items() if step.outcome_unknown}
        acted = server.acted()
        assert 0 < len(acted) < ITEMS, "the journal filled up before the run's end"
        for index, invoice in enumerate(invoices):
            if acted[f"/invoices/{invoice}/record_refund"]:  # nothing acted on that the journal does not hold
                step = steps.get(index)
                assert step is not None and (step.state == "succeeded" or index in unknown), (index, step)

        resumed = subprocess.run(
            [sys.executable, "-m", "httptask", "run", "--resume", run_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode in (0, 1), resumed.stderr
        waiting = {error["item"] for error in json.loads(resumed.stdout)["errors"]}
        assert waiting == unknown
        # Waiting for a decision is not sent again: acted on once if it had reached the server, else not yet.
        after = server.acted()
        for index, invoice in enumerate(invoices):
            path = f"/invoices/{invoice}/record_refund"
            assert after[path] == (acted[path] if index in unknown else 1), (index, after[path])


def test_a_full_journal_refuses_a_new_run_with_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    (pages,) = journal._reader.execute("PRAGMA page_count").fetchone()
    journal._reader.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'database or disk is full'
    with pytest.raises(UsageError) as refused:
        journal.create_run(
            "r", workflow="w", file="w.yaml", workflow_text="x" * 100_000, inputs={}, inputs_redacted=False,
            options={},
        )  # fmt: skip
    assert str(refused.value).startswith(
        f"The journal {str(path)!r} {FULL.format(why='database or disk is full')}"
    )
