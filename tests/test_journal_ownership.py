"""Who owns a run, what was decided about it, and which payload each idempotency key carries: the lease is
taken in one write transaction, a dead or lapsed owner is taken over, a taken-over owner writes nothing more,
a key never carries two payloads, and a journal of the previous version is read on the safe side."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import fault_server
from httptask import journal_commit, processes
from httptask.errors import KeyReused, RunBusy, RunTakenOver
from httptask.journal import LEASE_SECONDS, Decision, Journal, StepRecord, fingerprint
from httptask.keys import derive_key, step_seed
from httptask.outcome import Outcome
from httptask.processes import boot_clock, identity
from test_resume_crash import RECORD_REFUNDS

RUN = "20240101-000000-abcdef"
CRASH = str(Path(__file__).resolve().parent / "crashpoints.py")


def _create(journal: Journal, run_id: str = RUN) -> None:
    journal.create_run(
        run_id, workflow="w", file="w.yaml", workflow_text="", inputs={}, inputs_redacted=False, options={}
    )


def _set(path: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(sql, params)


@pytest.fixture
def sleeper() -> Iterator[int]:
    """The pid of a live process that is not this one."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def _held_by(path: Path, pid: int, *, heartbeat_age: float = 0.0, **columns: object) -> None:
    """The run's lease held by `pid`, as that process would have journaled it, renewed `heartbeat_age` ago
    on both clocks."""
    now, boot = time.time(), boot_clock()
    assert boot is not None, "Linux has CLOCK_BOOTTIME"
    values = {
        "pid": pid,
        "lease_process": identity(pid),
        "heartbeat_at": now - heartbeat_age,
        "heartbeat_boot": boot - heartbeat_age,
        **columns,
    }
    assert values["lease_process"] is not None
    _set(path, "UPDATE runs SET " + ", ".join(f"{name} = ?" for name in values), *values.values())


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_owned_by_a_live_process_is_not_claimed(tmp_path: Path, sleeper: int) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    since = time.time() - 5
    _held_by(path, sleeper, lease_purpose="resume", lease_since=since)
    second = Journal(path)
    with pytest.raises(RunBusy) as caught:
        second.claim_run(RUN)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    assert str(caught.value) == (
        f"Run {RUN} is being resumed by process {sleeper} since {when}; wait for it to end, or stop that "
        "process, then resume again."
    )
    assert second.run(RUN).pid == sleeper
    owner.close()
    second.close()


@pytest.mark.parametrize("why", ["its process died", "its lease lapsed"])
def test_a_dead_or_lapsed_owner_is_taken_over(tmp_path: Path, sleeper: int, why: str) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    if why == "its process died":
        _set(path, "UPDATE runs SET pid = ?", _dead_pid())
    else:  # a live pid (perhaps reused, perhaps a stopped process) that has not renewed its lease
        _held_by(path, sleeper, heartbeat_age=LEASE_SECONDS + 1)
    assert owner.run(RUN).state == "interrupted"
    second = Journal(path)
    second.claim_run(RUN)
    record = second.run(RUN)
    assert (record.pid, record.state, record.lease_purpose) == (os.getpid(), "running", "resume")
    second.close()


def test_a_wall_clock_set_forward_does_not_hand_a_live_owners_run_to_another(
    tmp_path: Path, sleeper: int
) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    _held_by(path, sleeper)
    # The wall clock jumped an hour forward since the last renewal; the boot clock did not move.
    _set(path, "UPDATE runs SET heartbeat_at = ?", time.time() - 3600)
    with pytest.raises(RunBusy):
        Journal(path).claim_run(RUN)
    assert owner.run(RUN).state == "running"


def test_a_pid_reused_by_another_process_is_not_an_owner(tmp_path: Path, sleeper: int) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    _held_by(path, sleeper)
    # The lease's holder had the sleeper's pid but started at another time: the pid was reused.
    boot, _, started = str(identity(sleeper)).rpartition(":")
    _set(path, "UPDATE runs SET lease_process = ?", f"{boot}:{int(started) - 1}")
    second = Journal(path)
    second.claim_run(RUN)
    assert second.run(RUN).pid == os.getpid()


def test_an_owner_that_proc_hides_is_judged_by_its_heartbeat(
    tmp_path: Path, sleeper: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc mounted with hidepid: another user's live process has no /proc entry, and signalling it is not
    # allowed. It was taken for dead and its run taken over however fresh its lease.
    path = tmp_path / "j.sqlite3"
    _create(Journal(path))
    _held_by(path, sleeper)
    started, kill = processes._started, os.kill

    def hidden_started(pid: int) -> int:
        if pid == sleeper:
            raise FileNotFoundError(pid)
        return started(pid)

    def hidden_kill(pid: int, sig: int) -> None:
        if pid == sleeper:
            raise PermissionError(pid)
        kill(pid, sig)

    with monkeypatch.context() as hidden:
        hidden.setattr(processes, "_started", hidden_started)
        hidden.setattr(os, "kill", hidden_kill)
        with pytest.raises(RunBusy):
            Journal(path).claim_run(RUN)
        _set(path, "UPDATE runs SET heartbeat_at = heartbeat_at - ?", LEASE_SECONDS + 1)
        Journal(path).claim_run(RUN)  # a lease not renewed for a lease's time is taken over, as anywhere


def test_a_zombie_owner_is_not_an_owner(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{exited.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        # Its identity was journaled while it ran: the same pid and start time, now a zombie (not reaped).
        _set(path, "UPDATE runs SET pid = ?, lease_process = ?", exited.pid, _identity_of_zombie(exited.pid))
        Journal(path).claim_run(RUN)
    finally:
        exited.wait()
    assert owner.run(RUN).pid == os.getpid()


def _identity_of_zombie(pid: int) -> str:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}:{fields[19]}"


def test_an_owner_that_was_taken_over_commits_nothing_more(tmp_path: Path, sleeper: int) -> None:
    path = tmp_path / "j.sqlite3"
    owner = Journal(path)
    _create(owner)
    # The owner stalled past its lease; another process took the run (here: with the sleeper's pid).
    _set(path, "UPDATE runs SET heartbeat_at = ?", time.time() - LEASE_SECONDS - 1)
    _held_by(path, sleeper, lease_token="theirs")

    async def main() -> None:
        owner.start(asyncio.get_running_loop())
        with pytest.raises(RunTakenOver) as caught:
            await owner.begin_send(RUN, "t", 0, idempotent=False, key=None, request={})
        assert str(caught.value) == (
            f"Run {RUN} was taken over by process {sleeper} while this process ran it "
            "(its lease had lapsed); "
            "this process sent nothing more. 'httptask runs show' tells what each request became."
        )

    asyncio.run(main())
    with pytest.raises(RunTakenOver):
        owner.stop()
    with pytest.raises(RunTakenOver):
        owner.finish_run(RUN, "succeeded", None, [])
    assert owner.steps(RUN) == []
    assert (owner.run(RUN).status, owner.run(RUN).pid) == ("running", sleeper)


def test_every_commit_renews_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    _create(journal)
    _set(path, "UPDATE runs SET heartbeat_at = 1")

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        await journal.flush()
        journal.stop()

    asyncio.run(main())
    heartbeat = journal.run(RUN).heartbeat_at
    assert heartbeat is not None and time.time() - heartbeat < LEASE_SECONDS
    journal.finish_run(RUN, "succeeded", None, [])
    record = journal.run(RUN)
    assert (record.status, record.pid, record.heartbeat_at) == ("succeeded", None, None)
    journal.close()


def test_commits_between_renewals_check_the_lease_without_writing_the_run_s_row(
    tmp_path: Path, sleeper: int
) -> None:
    """The run's row holds its inputs (megabytes for a long list of items), written again by each renewal: a
    commit within a tenth of a lease of the last renewal only checks that the run is still its lease's, and
    one after another process took the run over still commits nothing."""
    path = tmp_path / "j.sqlite3"
    journal = Journal(path, writer="thread")
    _create(journal)
    _set(path, "UPDATE runs SET heartbeat_at = 1")

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        await journal.flush()  # the first commit of a lease renews it
        assert time.time() - _heartbeat(path) < LEASE_SECONDS
        _set(path, "UPDATE runs SET heartbeat_at = 2")
        await journal.flush()  # within a tenth of a lease: checked, not renewed
        assert _heartbeat(path) == 2
        _held_by(path, sleeper, lease_token="theirs")
        with pytest.raises(RunTakenOver):
            await journal.begin_send(RUN, "t", 0, idempotent=False, key=None, request={})

    asyncio.run(main())
    with pytest.raises(RunTakenOver):
        journal.stop()
    assert journal.steps(RUN) == []


def _writer_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the journal's writer runs from now on, in order."""
    statements: list[str] = []
    connect = journal_commit.connect

    def traced(path: Path | str, *, autocommit: bool = False) -> sqlite3.Connection:
        connection = connect(path, autocommit=autocommit)
        if autocommit:  # the writer's connection
            connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(journal_commit, "connect", traced)
    return statements


def test_a_commit_between_renewals_reads_the_run_only_after_another_connection_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A takeover is a commit by another connection: until there is one the lease is still held, and the run's
    row (its inputs and all) is not read."""
    statements = _writer_statements(monkeypatch)
    path = tmp_path / "j.sqlite3"
    journal = Journal(path, writer="thread")
    _create(journal)

    def reads() -> list[str]:
        return [s for s in statements if "FROM runs" in s or s.startswith("UPDATE runs")]

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        await journal.flush()  # renews the lease
        statements.clear()
        await journal.flush()
        assert reads() == []
        _set(path, "UPDATE runs SET options = '{\"sandbox\": true}'")  # another connection commits
        await journal.flush()
        assert reads() == [f"SELECT lease_token FROM runs WHERE run_id = '{RUN}'"]
        journal.stop()

    asyncio.run(main())
    journal.close()


def _heartbeat(path: Path) -> float:
    with sqlite3.connect(path) as connection:
        value: float = connection.execute("SELECT heartbeat_at FROM runs").fetchone()[0]
        return value


CLAIM = """
import sys, time
from pathlib import Path
from httptask.errors import RunBusy
from httptask.journal import Journal
journal = Journal(Path(sys.argv[1]))
while time.time() < float(sys.argv[3]):
    pass
try:
    journal.claim_run(sys.argv[2])
except RunBusy:
    print("busy")
else:
    print("claimed")
    time.sleep(2)  # hold it while the others try
"""


def test_of_many_processes_claiming_one_run_at_once_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    _create(journal)
    _set(path, "UPDATE runs SET pid = ?", _dead_pid())
    journal.close()
    start = time.time() + 1.5  # every process spins until the same moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(path), RUN, str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in processes)
    assert said == ["busy"] * 5 + ["claimed"]


# -- idempotency keys ----------------------------------------------------------------------------------------


def _send(
    journal: Journal,
    run_id: str,
    item: int,
    key: str,
    body: str,
    scope: str = "https://api.test",
    *,
    first_send: bool = False,
) -> None:
    request = {"method": "POST", "url": f"{scope}/invoices/inv_1/refund", "body": body}

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        try:
            await journal.begin_send(
                run_id,
                "refund",
                item,
                idempotent=True,
                key=key,
                request=request,
                item_value={"id": f"inv_{item}"},
                first_send=first_send,
            )
        finally:
            journal.stop()

    asyncio.run(main())


def test_a_key_sent_again_with_its_payload_is_accepted_and_with_another_refused(tmp_path: Path) -> None:
    first, second = Journal(tmp_path / "j.sqlite3"), Journal(tmp_path / "j.sqlite3")
    _create(first, "run-a")
    _create(second, "run-b")
    _send(first, "run-a", 0, "key-1", "refund_amount=100")
    _send(second, "run-b", 0, "key-1", "refund_amount=100")  # a re-run with the same key and payload
    _send(second, "run-b", 1, "key-1", "refund_amount=900", scope="https://other.test")  # another server
    with pytest.raises(KeyReused) as caught:
        _send(second, "run-b", 2, "key-1", "refund_amount=900")
    assert str(caught.value) == (
        "Not sent: the idempotency key key-1 was sent before (run run-a, task refund, item 0) with another "
        "payload, and the server would answer with the first request's result, hiding the change.\n"
        "  first: POST https://api.test/invoices/inv_1/refund refund_amount=100\n"
        "  now:   POST https://api.test/invoices/inv_1/refund refund_amount=900\n"
        "Send the first payload again, or give the new payload a key of its own."
    )
    assert (caught.value.outcome, caught.value.retryable) == (Outcome.NOT_SENT, False)
    assert [s.item for s in second.steps("run-b")] == [0, 1]  # item 2 was not journaled as sent
    first.close()
    second.close()


@pytest.mark.parametrize("first_send", [False, True])
def test_a_new_run_s_first_sends_journal_what_the_full_check_journals(
    tmp_path: Path, first_send: bool
) -> None:
    """A step of a new run, sent for the first time, is journaled without reading its row first: the rows and
    key records are byte for byte those of the full check, and a templated key reused with another payload is
    still refused."""
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    _create(journal, "run-a")
    journal.queue(Journal.schedule("run-a", "refund", range(3)))
    derived = derive_key(step_seed("run-a", "refund", 0))
    _send(journal, "run-a", 0, derived, "refund_amount=100", first_send=first_send)
    _send(journal, "run-a", 1, "key-1", "refund_amount=100", first_send=first_send)
    with pytest.raises(KeyReused):
        _send(journal, "run-a", 2, "key-1", "refund_amount=900", first_send=first_send)
    journal.close()
    with sqlite3.connect(path) as connection:
        steps = connection.execute(
            "SELECT item, state, idempotent, idempotency_key, request, outcome, item_value, key_scope, "
            "fingerprint FROM steps ORDER BY item"
        ).fetchall()
        keys = connection.execute(
            "SELECT scope, key, fingerprint, request, item FROM idempotency_keys"
        ).fetchall()
    request = '{"method":"POST","url":"https://api.test/invoices/inv_1/refund","body":"refund_amount=100"}'
    print_ = fingerprint("POST", "https://api.test/invoices/inv_1/refund", "refund_amount=100")
    assert steps == [
        (0, "sent", 1, derived, request, "unknown", '{"id":"inv_0"}', "https://api.test", print_),
        (1, "sent", 1, "key-1", request, "unknown", '{"id":"inv_1"}', "https://api.test", print_),
        (2, "scheduled", None, None, None, None, None, None, None),
    ]
    assert keys == [("https://api.test", "key-1", print_, request, 1)]


def test_a_first_send_does_not_read_the_step_s_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a new run's first sends cheaper: the writer reads no row of `steps` before writing one."""
    statements = _writer_statements(monkeypatch)
    path = tmp_path / "j.sqlite3"
    journal = Journal(path, writer="thread")
    _create(journal, "run-a")
    _send(
        journal, "run-a", 0, derive_key(step_seed("run-a", "refund", 0)), "refund_amount=100", first_send=True
    )
    assert not [s for s in statements if s.startswith("SELECT") and "FROM steps" in s]
    _send(journal, "run-a", 1, derive_key(step_seed("run-a", "refund", 1)), "refund_amount=100")
    assert [s for s in statements if s.startswith("SELECT") and "FROM steps" in s]
    journal.close()


def _key_records(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT scope, key, item FROM idempotency_keys ORDER BY scope").fetchall()


def test_a_step_s_derived_key_is_kept_in_its_row_and_another_payload_under_it_is_refused(
    tmp_path: Path,
) -> None:
    """A derived key is sent by its step alone: its row keeps where it went with what payload, and the table
    of keys (one random page per key) stays untouched until the step goes to another server."""
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    _create(journal, "run-a")
    key = derive_key(step_seed("run-a", "refund", 0))
    _send(journal, "run-a", 0, key, "refund_amount=100")
    _send(journal, "run-a", 0, key, "refund_amount=100")  # a resume sends the same payload again
    assert _key_records(path) == []
    with pytest.raises(KeyReused) as caught:  # a payload rendered anew (a uuid() in the body, say)
        _send(journal, "run-a", 0, key, "refund_amount=900")
    assert "was sent before (run run-a, task refund, item 0) with another payload" in str(caught.value)
    assert "  first: POST https://api.test/invoices/inv_1/refund refund_amount=100\n" in str(caught.value)
    _send(journal, "run-a", 0, key, "refund_amount=900", scope="https://other.test")  # another server
    assert _key_records(path) == [("https://api.test", key, 0)]  # the first server's record moved there
    with pytest.raises(KeyReused) as caught:  # back to the first server, with the other payload
        _send(journal, "run-a", 0, key, "refund_amount=900")
    assert "  first: POST https://api.test/invoices/inv_1/refund refund_amount=100\n" in str(caught.value)
    with pytest.raises(KeyReused):
        _send(journal, "run-a", 0, key, "refund_amount=100", scope="https://other.test")
    _send(journal, "run-a", 0, key, "refund_amount=100")  # the first server with its own payload
    step = journal.steps("run-a")[0]
    assert (step.state, step.request) == (
        "sent",
        {"method": "POST", "url": "https://api.test/invoices/inv_1/refund", "body": "refund_amount=100"},
    )
    journal.close()


def test_a_version_4_journal_keeps_refusing_a_key_it_recorded_and_gains_the_key_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v4.sqlite3"
    old = Journal(path)
    _create(old, "run-a")
    old.close()
    key = derive_key(step_seed("run-a", "refund", 0))
    request = {"method": "POST", "url": "https://api.test/invoices/inv_1/refund", "body": "refund_amount=100"}
    with sqlite3.connect(path) as connection:  # what version 4 wrote when it sent item 0
        connection.execute("ALTER TABLE steps DROP COLUMN key_scope")
        connection.execute("ALTER TABLE steps DROP COLUMN fingerprint")
        connection.execute(
            "INSERT INTO steps (run_id, task, item, state, idempotent, idempotency_key, request, outcome, "
            "sent_at, updated_at) VALUES ('run-a', 'refund', 0, 'sent', 1, ?, ?, 'unknown', 1, 1)",
            (key, json.dumps(request)),
        )
        connection.execute(
            "INSERT INTO idempotency_keys VALUES ('https://api.test', ?, ?, ?, 'run-a', 'refund', 0, 1)",
            (key, fingerprint("POST", request["url"], request["body"]), json.dumps(request)),
        )
        connection.execute("PRAGMA user_version = 4")
    journal = Journal(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (5,)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(steps)")}
    assert {"key_scope", "fingerprint"} <= columns
    with pytest.raises(KeyReused) as caught:
        _send(journal, "run-a", 0, key, "refund_amount=900")
    assert "  first: POST https://api.test/invoices/inv_1/refund refund_amount=100\n" in str(caught.value)
    _send(journal, "run-a", 0, key, "refund_amount=100")  # its own payload again: sent
    assert [(s.item, s.state) for s in journal.steps("run-a")] == [(0, "sent")]
    journal.close()


# -- decisions -----------------------------------------------------------------------------------------------


def test_a_decision_is_journaled_with_who_when_and_the_state_it_changed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    _create(journal)
    journal.queue(
        [Journal.sent(RUN, "refund", 3, idempotent=False, key=None, request={"method": "POST", "url": "u"})]
    )
    decision = Decision("refund", 3, "mark-done", "ana@desk (pid 7)", 1700000000.0, evidence="seen in the UI")
    journal.queue(Journal.decided(RUN, decision, resolve="marked done by hand"))
    [step] = journal.steps(RUN)
    assert (step.state, step.decision, step.error, step.outcome) == (
        "resolved",
        "mark-done",
        "marked done by hand",
        Outcome.UNKNOWN,
    )
    assert journal.decisions(RUN) == [
        Decision(
            "refund", 3, "mark-done", "ana@desk (pid 7)", 1700000000.0, "seen in the UI", "sent", "unknown"
        )
    ]
    journal.close()


# -- the journal of the previous version ---------------------------------------------------------------------

VERSION_1 = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, file TEXT NOT NULL,
    workflow_text TEXT NOT NULL, inputs TEXT NOT NULL, inputs_redacted INTEGER NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL, pid INTEGER, started_at REAL NOT NULL, finished_at REAL, outputs TEXT, errors TEXT);
CREATE TABLE steps (run_id TEXT NOT NULL, task TEXT NOT NULL, item INTEGER NOT NULL, state TEXT NOT NULL,
    idempotent INTEGER, idempotency_key TEXT, attempts INTEGER NOT NULL DEFAULT 0, http_status INTEGER,
    elapsed_ms REAL, request TEXT, response TEXT, error TEXT, maybe_received INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, task, item)) WITHOUT ROWID;
CREATE TABLE attempts (run_id TEXT NOT NULL, task TEXT NOT NULL, item INTEGER NOT NULL,
    number INTEGER NOT NULL,
    http_status INTEGER, error TEXT, at REAL NOT NULL);
INSERT INTO runs VALUES ('old', 'w', 'w.yaml', '', '{}', 0, '{}', 'failed', NULL, 1, 2, NULL, '[]');
INSERT INTO steps VALUES ('old', 'r', 0, 'succeeded', 0, NULL, 1, 200, 5, '{}', '{}', NULL, 0, 1);
INSERT INTO steps VALUES ('old', 'r', 1, 'failed', 0, NULL, 1, NULL, NULL, '{}', NULL, 'No answer', 0, 1);
INSERT INTO steps VALUES ('old', 'r', 2, 'failed', 0, NULL, 1, 500, 5, '{}', '{}', 'answered 500', 1, 1);
INSERT INTO steps VALUES ('old', 'r', 3, 'failed', NULL, NULL, 0, NULL, NULL, NULL, NULL, 'not valid', 0, 1);
INSERT INTO steps VALUES ('old', 'r', 4, 'sent', 0, NULL, 0, NULL, NULL, '{}', NULL, NULL, 0, 1);
INSERT INTO steps VALUES ('old', 'r', 5, 'failed', 0, NULL, 1, 400, 5, '{}', '{}', 'answered 400', 0, 1);
"""


def test_a_journal_of_the_previous_version_is_read_on_the_safe_side(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(VERSION_1)
    journal = Journal(path)
    steps = {s.item: s for s in journal.steps("old")}
    # That version journaled a timed-out refund as not received (item 1): it is read as unknown.
    assert {item: (s.outcome, s.outcome_unknown) for item, s in steps.items()} == {
        0: (Outcome.ANSWERED, False),
        1: (Outcome.UNKNOWN, True),
        2: (Outcome.ANSWERED, True),
        3: (None, False),
        4: (Outcome.UNKNOWN, True),
        5: (Outcome.ANSWERED, False),
    }
    assert journal.run("old").state == "failed"
    journal.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (5,)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(steps)")}
    assert "maybe_received" not in columns and {"outcome", "key_scope", "fingerprint"} <= columns
    Journal(path).close()  # opening it again changes nothing


def test_a_version_3_journal_gains_lease_identities_and_its_leases_keep_the_wall_clock_rule(
    tmp_path: Path, sleeper: int
) -> None:
    path = tmp_path / "v3.sqlite3"
    _create(Journal(path))
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE runs DROP COLUMN lease_process")
        connection.execute("ALTER TABLE runs DROP COLUMN heartbeat_boot")
        connection.execute("UPDATE runs SET pid = ?, heartbeat_at = ?", (sleeper, time.time()))
        connection.execute("PRAGMA user_version = 3")
    with pytest.raises(RunBusy):  # a live pid, renewed lately: busy, as version 3 judged it
        Journal(path).claim_run(RUN)
    _set(path, "UPDATE runs SET heartbeat_at = ?", time.time() - LEASE_SECONDS - 1)
    second = Journal(path)
    second.claim_run(RUN)  # lapsed on the wall clock, and no identity to say otherwise
    record = second.run(RUN)
    assert (record.pid, record.lease_process) == (os.getpid(), identity())


def test_step_records_say_json_serialisable_things(tmp_path: Path) -> None:
    """`runs show --json` prints the step records as they are."""
    step = StepRecord("t", 0, "failed", False, None, 1, None, None, None, None, "x", Outcome.UNKNOWN)
    assert json.loads(json.dumps(step.__dict__))["outcome"] == "unknown"


# -- a stopped owner -----------------------------------------------------------------------------------------


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_an_owner_stopped_past_its_lease_sends_nothing_when_it_wakes(tmp_path: Path) -> None:
    """The owner stops between committing 'sent' and writing the request; another process takes the run over.
    Woken, the old owner must not write that request: the new owner may be deciding about it."""
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(RECORD_REFUNDS)
    env = {
        **os.environ,
        "HTTPTASK_JOURNAL": str(tmp_path / "j.sqlite3"),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_owner_key",
        "HTTPTASK_LEASE_SECONDS": "2",
    }
    invoices = [f"inv_{n}" for n in range(6)]
    with fault_server() as server:
        inputs = json.dumps({"invoices": invoices, "api_url": server.url})
        owner = subprocess.Popen(
            [sys.executable, CRASH, "stop:after-sent-before-write", "3", "run", str(workflow),
             "--input", inputs, "--concurrency", "1"],
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not _stopped(owner.pid):
                assert owner.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(2.2)  # the lease lapses
            taken = subprocess.run(
                [sys.executable, "-m", "httptask", "run", "--resume", _run_id(tmp_path / "j.sqlite3"),
                 "--json"],
                env=env, text=True, capture_output=True, timeout=60,
            )  # fmt: skip
            assert taken.returncode == 1, taken.stderr  # item 2 waits for a decision; 3 to 5 were sent
            assert [e["item"] for e in json.loads(taken.stdout)["errors"]] == [2]
        finally:
            owner.send_signal(signal.SIGCONT)
        _, err = owner.communicate(timeout=60)
    assert owner.returncode == 1
    assert "was taken over by " in err and "this process sent nothing more" in err
    arrived = server.arrivals()
    assert arrived["/invoices/inv_2/record_refund"] == 0  # the woken owner did not write it
    assert {p: n for p, n in arrived.items() if n != 1} == {}


def _run_id(journal: Path) -> str:
    with sqlite3.connect(journal) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
        return str(run_id)
