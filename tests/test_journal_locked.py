"""A journal whose write lock another process holds and never lets go of (a run stopped with SIGSTOP inside a
group commit, say) refuses to be written with a sentence that says so, not one that blames the disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from httptask.errors import UsageError
from httptask.journal import Journal

LOCKED = (
    "The journal {path!r} stayed locked by another process (database is locked); nothing more is sent. "
    "A process that holds its lock and does not go on (one stopped with Ctrl-Z or SIGSTOP, or hung) "
    "keeps every other one out: continue or end it, then run or resume again."
)


def test_a_resume_blocked_by_a_process_holding_the_journal_s_lock_says_so(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    journal.create_run(
        "run-1", workflow="w", file="w.yaml", workflow_text="", inputs={}, inputs_redacted=False, options={}
    )
    journal.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a process stopped inside a group commit holds it
    resuming = Journal(path)
    resuming._reader.execute("PRAGMA busy_timeout = 50")  # the test waits 50 ms, not the 30 s a user would
    with pytest.raises(UsageError) as caught:
        resuming.claim_run("run-1")
    assert str(caught.value) == LOCKED.format(path=str(path))
    holder.execute("ROLLBACK")
    resuming.claim_run("run-1")  # once it lets go, the run is taken
    resuming.close()
    holder.close()
