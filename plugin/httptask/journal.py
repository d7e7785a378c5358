"""The run journal: every run, task, forEach item, attempt, decision and idempotency key in SQLite (WAL),
written in group commits by one writer (a thread, or a process of its own), and owned by one process at a
time.

Before a request with side effects goes on the wire, `begin_send` commits it as 'sent' (with its idempotency
key and the fingerprint of its payload); its outcome is written after the wire. A run is owned through a lease
(`claim_run`) taken in one write transaction: every later group commit fails, sending nothing, once another
process has taken it over, and renews it every tenth of a lease. Callers redact, and every text and JSON
column passes the process's redactor (`redaction.redact_for_process`) on its way to the file as well.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import jsontext
from .errors import KeyReused, NotSent, RunBusy, RunTakenOver, UsageError
from .journal_commit import BEGIN_SEND, EXECUTE, LEASE, SENT, Answer, Request, connect, execute, fingerprint
from .journal_writer import WRITERS, Spawned, Writer, WriterProcess, WriterThread
from .outcome import Outcome, may_have_acted
from .processes import boot_clock, identity, same_process
from .redaction import redact_for_process

__all__ = [
    "DEFAULT_WRITER",
    "JOURNAL_VAR",
    "LEASE_SECONDS",
    "LEASE_VAR",
    "TASK_ROW",
    "WRITER_VAR",
    "Decision",
    "Journal",
    "RunRecord",
    "StepRecord",
    "as_journaled",
    "decider",
    "default_journal_path",
    "fingerprint",
    "process_alive",
]

JOURNAL_VAR = "HTTPTASK_JOURNAL"
# The item number of a forEach task's own row (its state as a whole); items are numbered from 0, and a task
# without forEach has the single item 0.
TASK_ROW = -1
LEASE_VAR = "HTTPTASK_LEASE_SECONDS"
# Where group commits are made: "process" (the default; `journal_writer`) or "thread". Once the engine's own
# work per item fell to some 65 µs, the writer thread's Python work held the interpreter's lock for a third of
# the event loop's time: on a quiet 2-core machine a 3,000-item run's fan-out took 94-97 µs per item with the
# thread and 75-88 with the process (bench/README.md, session 6). A run starts its writer process before its
# checks (`spawn_writer`), so its start-up is not waited for. Compare them with `bench/writer.py --engine`.
WRITER_VAR = "HTTPTASK_JOURNAL_WRITER"
DEFAULT_WRITER = "process"


def _lease_seconds() -> float:
    text = os.environ.get(LEASE_VAR, "30")
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 3600:
        raise UsageError(f"{LEASE_VAR} is {text!r}; give the lease of a run in seconds, from 1 to 3600.")
    return seconds


# A lease not renewed for this long is taken over even if its process still seems alive (a reused pid, a
# stopped process). The owner renews it with a commit every tenth of a lease (every commit checks it, and a
# commit is made every HEARTBEAT_SECONDS when nothing else is), and sends nothing
# once half a lease has passed since its last renewal: a process stopped and woken after a takeover does not
# send what the new owner may be deciding about. What is left is a stop between that check and the socket
# write, a window of microseconds. On the holder's own machine a lease's age is read on the boot clock, not
# the wall clock (`processes`): setting the clock forward does not hand a live owner's run to another.
LEASE_SECONDS = _lease_seconds()
HEARTBEAT_SECONDS = LEASE_SECONDS / 6
# How long rows no one waits for (answers, attempts) may wait for a commit someone needs: a group commit costs
# a sync of the disk (about 200 µs of CPU and milliseconds of latency) however few rows it holds, and a 'sent'
# record arriving while such a commit syncs waits for it. A kill -9 meanwhile leaves those steps 'sent', of
# unknown outcome, which a resume never sends again without a decision.
HOLD_SECONDS = 0.05
_VERSION = 5
# A key `response_integers` may name in a JSON path as it is, unquoted.
_JSON_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    file TEXT NOT NULL,
    workflow_text TEXT NOT NULL,
    inputs TEXT NOT NULL,
    inputs_redacted INTEGER NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    started_at REAL NOT NULL,
    finished_at REAL,
    outputs TEXT,
    errors TEXT,
    lease_token TEXT,
    lease_host TEXT,
    lease_purpose TEXT,
    lease_since REAL,
    heartbeat_at REAL,
    lease_process TEXT,
    heartbeat_boot REAL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    item INTEGER NOT NULL,
    state TEXT NOT NULL,
    idempotent INTEGER,
    idempotency_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    elapsed_ms REAL,
    request TEXT,
    response TEXT,
    error TEXT,
    outcome TEXT,
    sent_at REAL,
    decision TEXT,
    item_value TEXT,
    updated_at REAL NOT NULL,
    key_scope TEXT,
    fingerprint TEXT,
    PRIMARY KEY (run_id, task, item)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    item INTEGER NOT NULL,
    number INTEGER NOT NULL,
    http_status INTEGER,
    error TEXT,
    outcome TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_step ON attempts (run_id, task, item);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    item INTEGER NOT NULL,
    action TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at REAL NOT NULL,
    evidence TEXT,
    state_before TEXT,
    outcome_before TEXT
);
CREATE INDEX IF NOT EXISTS decisions_run ON decisions (run_id, task, item);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    item INTEGER NOT NULL,
    first_sent_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""

# A journal written before outcomes were journaled: its steps gain the outcome, read on the safe side (a
# failure with no status that had been sent is unknown: that version could journal a timeout as not received).
_MIGRATE_FROM_1 = """
ALTER TABLE runs ADD COLUMN lease_token TEXT;
ALTER TABLE runs ADD COLUMN lease_host TEXT;
ALTER TABLE runs ADD COLUMN lease_purpose TEXT;
ALTER TABLE runs ADD COLUMN lease_since REAL;
ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
ALTER TABLE steps ADD COLUMN outcome TEXT;
ALTER TABLE steps ADD COLUMN sent_at REAL;
ALTER TABLE steps ADD COLUMN decision TEXT;
ALTER TABLE attempts ADD COLUMN outcome TEXT;
UPDATE steps SET outcome = CASE
    WHEN http_status IS NOT NULL THEN 'answered'
    WHEN state = 'sent' OR (state = 'failed' AND request IS NOT NULL) THEN 'unknown'
END;
ALTER TABLE steps DROP COLUMN maybe_received;
"""

_SCHEDULE = (
    "INSERT INTO steps (run_id, task, item, state, updated_at) VALUES (?, ?, ?, 'scheduled', ?) "
    "ON CONFLICT (run_id, task, item) DO NOTHING"
)
_FINISH = (
    "INSERT INTO steps (run_id, task, item, state, attempts, http_status, elapsed_ms, response, error, "
    "outcome, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, task, item) DO UPDATE SET state = excluded.state, "
    "attempts = steps.attempts + excluded.attempts, http_status = excluded.http_status, "
    "elapsed_ms = excluded.elapsed_ms, response = excluded.response, error = excluded.error, "
    "outcome = coalesce(excluded.outcome, steps.outcome), updated_at = excluded.updated_at"
)
_ATTEMPT = (
    "INSERT INTO attempts (run_id, task, item, number, http_status, error, outcome, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DECISION = (
    "INSERT INTO decisions (run_id, task, item, action, decided_by, decided_at, evidence, state_before, "
    "outcome_before) SELECT ?, ?, ?, ?, ?, ?, ?, state, outcome FROM steps "
    "WHERE run_id = ? AND task = ? AND item = ?"
)
_RESOLVE = (
    "UPDATE steps SET state = 'resolved', decision = ?, error = ?, response = coalesce(?, response), "
    "updated_at = ? WHERE run_id = ? AND task = ? AND item = ?"
)


def default_journal_path() -> Path:
    """`$HTTPTASK_JOURNAL`, else `journal.sqlite3` in the user data folder of httptask."""
    if os.environ.get(JOURNAL_VAR):
        return Path(os.environ[JOURNAL_VAR])
    from platformdirs import user_data_dir

    return Path(user_data_dir("httptask")) / "journal.sqlite3"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    workflow: str
    file: str
    workflow_text: str
    inputs: dict[str, Any]
    inputs_redacted: bool
    options: dict[str, Any]
    status: str
    pid: int | None
    started_at: float
    finished_at: float | None
    outputs: Any
    errors: list[dict[str, Any]]
    lease_host: str | None = None
    lease_purpose: str | None = None
    lease_since: float | None = None
    heartbeat_at: float | None = None
    lease_process: str | None = None  # the holder's identity (`processes.identity`), on this machine
    heartbeat_boot: float | None = None  # `processes.boot_clock()` at the last renewal

    @property
    def owned(self) -> bool:
        """A live process holds the run: its lease was renewed lately, and (on this machine) its pid lives."""
        if self.status != "running" or self.pid is None:
            return False
        if self.heartbeat_at is None:  # written before leases: only the pid tells
            return process_alive(self.pid)
        if self.lease_host == socket.gethostname() and self.lease_process and self.heartbeat_boot is not None:
            # On the holder's machine, its identity and the boot clock decide: a wall clock set forward
            # must not make a live holder look lapsed.
            same = same_process(self.pid, self.lease_process)
            now = boot_clock()
            if same is False:
                return False
            if same and now is not None:
                return now - self.heartbeat_boot < LEASE_SECONDS
        if time.time() - self.heartbeat_at >= LEASE_SECONDS:
            return False
        return self.lease_host != socket.gethostname() or process_alive(self.pid)

    @property
    def interrupted(self) -> bool:
        """Marked running, but its process is gone (killed, or the machine stopped)."""
        return self.status == "running" and not self.owned

    @property
    def state(self) -> str:
        return "interrupted" if self.interrupted else self.status


@dataclass(frozen=True)
class StepRecord:
    """One journaled request (a task, or one item of a forEach task) as last written."""

    task: str
    item: int
    state: str
    idempotent: bool | None
    idempotency_key: str | None
    attempts: int
    http_status: int | None
    elapsed_ms: float | None
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    error: str | None
    outcome: Outcome | None = None
    sent_at: float | None = None
    decision: str | None = None
    item_value: Any = None
    # When the step was last written: for a finished step, when its outcome came.
    updated_at: float | None = None

    @property
    def outcome_unknown(self) -> bool:
        """Sent with no final answer recorded, and the server may have acted: killed between 'sent' and the
        answer, a timeout or a reset after the write, a 5xx, or an answer that could not be used."""
        return _unknown(self.state, self.outcome, self.http_status)


@dataclass(frozen=True)
class Decision:
    """What a person or a reconciliation decided about a request of unknown outcome, and on what evidence."""

    task: str
    item: int
    action: str  # mark-done, resend, reconciled-done, reconciled-absent
    decided_by: str
    decided_at: float
    evidence: Any = None
    state_before: str | None = None
    outcome_before: str | None = None


_Statement = tuple[str, Sequence[Any]]


class Journal:
    """The SQLite journal: reads on the calling thread; writes shipped from the event loop to one writer (a
    thread, or a process of its own: `WRITER_VAR`) and committed there in groups."""

    def __init__(self, path: Path, *, writer: str | None = None) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._reader = connect(path)
            _create_or_migrate(self._reader)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"The journal {str(path)!r} cannot be opened ({exc}); set {JOURNAL_VAR} to a writable file."
            ) from exc
        self._writer_kind = _writer_kind(writer)
        self._writer: Writer | None = None
        self._spawned: Spawned | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Shipped together: on this turn of the event loop once someone waits for a commit (or the lease
        # changes), else after HOLD_SECONDS, so rows no one waits for ride with the next commit someone needs.
        self._pending: list[Request] = []
        self._shipping: asyncio.Handle | None = None
        self._urgent = False
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._numbers = itertools.count(1)
        self._failure: BaseException | None = None
        self._lease: tuple[str, str] | None = None
        self._renewed = 0.0  # time.monotonic() of the lease's last renewal
        self._heartbeat = threading.Event()
        self.commits = 0

    # -- writing -----------------------------------------------------------------------------------------

    def spawn_writer(self) -> None:
        """Where the journal commits in a process of its own, start that process now, for the next `start` to
        take: a run does so before its checks, which its start-up then overlaps."""
        if self._writer_kind is WriterProcess and self._spawned is None:
            self._spawned = Spawned(self.path)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer; durable writes resolve their futures on `loop`."""
        self._loop = loop
        self._heartbeat.clear()
        self._failure = None
        spawned, self._spawned = self._spawned, None
        self._writer = self._writer_kind(self.path, loop, self._answered, spawned)
        self._writer.ship([(0, LEASE, _lease_payload(self._lease))])
        threading.Thread(target=self._beat, name="httptask-lease", daemon=True).start()

    def stop(self) -> None:
        """Commit what is queued and stop the writer; raises if a commit failed."""
        self._heartbeat.set()
        if self._writer is not None:
            self._ship()
            self._writer.stop()
            self._writer = None
        if self._failure is not None:
            raise self._refusal()

    def drop_spawned_writer(self) -> None:
        """End the writer process `spawn_writer` started, unless a run took it (one that did not begin)."""
        if self._spawned is not None:
            self._spawned.close()
            self._spawned = None

    def close(self) -> None:
        self.drop_spawned_writer()
        self.stop()
        self._reader.close()

    def queue(self, statements: list[_Statement]) -> None:
        """Commit these with the next group; nothing waits for it."""
        if self._writer is None:
            with self._writing(), self._reader:
                execute(self._reader, statements)
            return
        self._request(0, EXECUTE, statements)

    async def durable(self, statements: list[_Statement]) -> None:
        """Return once these statements (and everything queued before them) are committed."""
        await self._transact(EXECUTE, statements)

    async def flush(self) -> None:
        await self.durable([])

    async def _transact(self, kind: int, payload: Any) -> Any:
        assert self._loop is not None
        if self._failure is not None:  # nothing more is committed
            raise self._refusal()
        number = next(self._numbers)
        future = self._waiting[number] = self._loop.create_future()
        self._request(number, kind, payload)
        return await future

    def _request(self, number: int, kind: int, payload: Any) -> None:
        if self._failure is not None:
            return
        self._pending.append((number, kind, payload))
        if self._urgent:
            return
        assert self._loop is not None
        if number or kind != EXECUTE:
            self._urgent = True
            if self._shipping is not None:
                self._shipping.cancel()
            self._shipping = self._loop.call_soon(self._ship)
        elif self._shipping is None:
            self._shipping = self._loop.call_later(HOLD_SECONDS, self._ship)

    def _ship(self) -> None:
        if self._shipping is not None:
            self._shipping.cancel()
            self._shipping, self._urgent = None, False
        if self._pending and self._writer is not None:
            pending, self._pending = self._pending, []
            self._writer.ship(pending)

    def _answered(self, answer: Answer) -> None:
        """A commit's answer, on the loop's thread: resolve what waited for it, or fail it with the error."""
        commits, renewed, failure, results = answer
        self.commits = max(self.commits, commits)
        self._renewed = max(self._renewed, renewed)
        if failure is not None and self._failure is None:
            self._failure = _failure(failure)
        error = None if failure is None else self._refusal()
        for number, result in results:
            future = self._waiting.pop(number, None)
            if future is None or future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
        if failure is not None and failure[0] == "gone":  # nothing more will be answered
            for future in self._waiting.values():
                future.set_exception(self._refusal())
            self._waiting.clear()

    def _refusal(self) -> BaseException:
        """What a write raises once the journal cannot commit (`_failure` is set)."""
        if isinstance(self._failure, RunTakenOver):
            return self._failure
        assert self._failure is not None
        return _unwritable(self.path, self._failure)

    def _beat(self) -> None:
        """Renew the lease while the run waits on slow servers and nothing else is committed (from a thread of
        its own, so a loop busy for a while keeps its lease; a stopped process renews nothing)."""
        while not self._heartbeat.wait(HEARTBEAT_SECONDS):
            writer = self._writer
            if self._lease is not None and writer is not None:
                writer.ship([(0, EXECUTE, [])])

    # -- owning runs -------------------------------------------------------------------------------------

    def check_owner(self) -> None:
        """Raise NotSent unless this process still surely owns its run: not taken over, and its lease renewed
        within half a lease (a process that was stopped longer may have been taken over meanwhile)."""
        if self._lease is None:
            return
        run_id = self._lease[0]
        if isinstance(self._failure, RunTakenOver):
            raise NotSent(f"Not sent: {self._failure}", retryable=False)
        age = time.monotonic() - self._renewed
        if age > LEASE_SECONDS / 2 and self._writer is not None:
            self._writer.poll()  # a renewal may be waiting to be read
            age = time.monotonic() - self._renewed
        if isinstance(self._failure, RunTakenOver):
            raise NotSent(f"Not sent: {self._failure}", retryable=False)
        if age > LEASE_SECONDS / 2:
            raise NotSent(
                f"Not sent: this process may no longer own run {run_id}: its lease was last renewed "
                f"{age:.0f} s ago, and another process may take a run over after {LEASE_SECONDS:g} s.",
                retryable=False,
            )

    def create_run(
        self,
        run_id: str,
        *,
        workflow: str,
        file: str,
        workflow_text: str,
        inputs: dict[str, Any],
        inputs_redacted: bool,
        options: dict[str, Any],
    ) -> None:
        """Journal a new run, owned by this process."""
        token, now = secrets.token_hex(8), time.time()
        with self._writing(), self._reader:
            self._reader.execute(
                "INSERT INTO runs (run_id, workflow, file, workflow_text, inputs, inputs_redacted, options, "
                "status, started_at, pid, lease_token, lease_host, lease_purpose, lease_since, heartbeat_at, "
                "lease_process, heartbeat_boot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    _text(workflow),
                    _text(file),
                    _text(workflow_text),
                    _dumps(inputs),
                    int(inputs_redacted),
                    _dumps(options),
                    now,
                    *_holder(token, "run", now),
                ),
            )
        self._own((run_id, token))

    def claim_run(self, run_id: str, purpose: str = "resume") -> None:
        """Take the run for this process in one write transaction; `RunBusy` when a live process holds it."""
        token, now = secrets.token_hex(8), time.time()
        connection = self._reader
        with self._writing():
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None:
                    raise _no_run(run_id, self.path)
                record = _run_record(row)
                if record.owned and record.pid != os.getpid():
                    raise RunBusy(
                        run_id,
                        record.pid or 0,
                        record.lease_since or record.started_at,
                        record.lease_purpose or "run",
                    )
                connection.execute(
                    "UPDATE runs SET status = 'running', pid = ?, finished_at = NULL, lease_token = ?, "
                    "lease_host = ?, lease_purpose = ?, lease_since = ?, heartbeat_at = ?, "
                    "lease_process = ?, heartbeat_boot = ? WHERE run_id = ?",
                    (*_holder(token, purpose, now), run_id),
                )
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
        self._own((run_id, token))

    def finish_run(self, run_id: str, status: str, outputs: Any, errors: list[dict[str, Any]]) -> None:
        """Record the end of the run and give up its lease; `RunTakenOver` if another process holds it now."""
        token = self._lease[1] if self._lease is not None and self._lease[0] == run_id else None
        with self._writing(), self._reader:
            done = self._reader.execute(
                "UPDATE runs SET status = ?, finished_at = ?, outputs = ?, errors = ?, pid = NULL, "
                "lease_token = NULL, heartbeat_at = NULL, heartbeat_boot = NULL "
                "WHERE run_id = ? AND lease_token IS ?",
                (status, time.time(), _dumps(outputs), _dumps(errors), run_id, token),
            ).rowcount
        self._own(None)
        if not done:
            raise RunTakenOver(run_id, self.run(run_id).pid)

    @property
    def lease(self) -> tuple[str, str] | None:
        """(run id, token) of the run this process owns, if any."""
        return self._lease

    def share_lease(self, run_id: str, token: str) -> None:
        """Write under the lease another process of this run holds (a worker of `--workers`): every commit
        renews it, and none is made once another process has taken the run over."""
        self._own((run_id, token))

    def _own(self, lease: tuple[str, str] | None) -> None:
        """Hold `lease` (or none): each commit renews it, and nothing is committed once it is lost."""
        self._lease = lease
        self._renewed = time.monotonic()
        if self._writer is not None:
            self._request(0, LEASE, _lease_payload(lease))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write on the calling thread: a full disk or a read-only file is a sentence saying what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _unwritable(self.path, exc) from None

    # -- records -----------------------------------------------------------------------------------------

    async def begin_send(
        self,
        run_id: str,
        task: str,
        item: int,
        *,
        idempotent: bool,
        key: str | None,
        request: dict[str, Any],
        item_value: Any = None,
        first_send: bool = False,
    ) -> None:
        """Commit the request (redacted) as 'sent' (outcome unknown until its answer is journaled) before it
        goes on the wire, with its forEach item's value (redacted). `KeyReused` when its idempotency key was
        sent to the request's origin before with a different payload. `first_send`: the caller knows that
        no process has sent this step (of a run it created) before, so the writer need not read its row."""
        now, text = time.time(), _dumps(request)
        row = (run_id, task, item, int(idempotent), key, text, now, _dumps(item_value), now)
        # The writer takes the key's fingerprint and scope from method, URL and body: no hashing on the loop.
        method, url, body = request.get("method", ""), request.get("url", ""), request.get("body", "")
        payload = (key, str(method), str(url), str(body), row, first_send)
        refused = await self._transact(BEGIN_SEND, payload)
        if refused is not None:
            where, first = refused
            raise KeyReused(key or "", json.loads(first), request, where)

    @staticmethod
    def schedule(run_id: str, task: str, items: Iterable[int]) -> list[_Statement]:
        now = time.time()
        return [(_SCHEDULE, (run_id, task, item, now)) for item in items]

    @staticmethod
    def sent(
        run_id: str, task: str, item: int, *, idempotent: bool, key: str | None, request: dict[str, Any]
    ) -> _Statement:
        """A 'sent' record without the key check of `begin_send`, for requests without side effects."""
        now = time.time()
        return SENT, (run_id, task, item, int(idempotent), key, _dumps(request), now, None, now, None, None)

    @staticmethod
    def finished(
        run_id: str,
        task: str,
        item: int,
        state: str,
        *,
        attempts: int = 0,
        http_status: int | None = None,
        elapsed_ms: float | None = None,
        response: dict[str, Any] | None = None,
        error: str | None = None,
        outcome: Outcome | None = None,
    ) -> _Statement:
        """The step's state after the wire; `outcome` is None for a step that was never sent."""
        return _FINISH, (
            run_id,
            task,
            item,
            state,
            attempts,
            http_status,
            elapsed_ms,
            None if response is None else _dumps(response),
            _text(error),
            None if outcome is None else outcome.value,
            time.time(),
        )

    @staticmethod
    def attempt(
        run_id: str,
        task: str,
        item: int,
        number: int,
        http_status: int | None,
        error: str | None,
        outcome: Outcome,
    ) -> _Statement:
        return _ATTEMPT, (run_id, task, item, number, http_status, _text(error), outcome.value, time.time())

    @staticmethod
    def decided(
        run_id: str, decision: Decision, *, resolve: str | None = None, response: dict[str, Any] | None = None
    ) -> list[_Statement]:
        """Journal a decision; with `resolve` (the note to keep as the step's error) the step is resolved."""
        statements: list[_Statement] = [
            (
                _DECISION,
                (
                    run_id,
                    decision.task,
                    decision.item,
                    decision.action,
                    decision.decided_by,
                    decision.decided_at,
                    _dumps(decision.evidence),
                    run_id,
                    decision.task,
                    decision.item,
                ),
            )
        ]
        if resolve is not None:
            statements.append(
                (
                    _RESOLVE,
                    (
                        decision.action,
                        _text(resolve),
                        None if response is None else _dumps(response),
                        decision.decided_at,
                        run_id,
                        decision.task,
                        decision.item,
                    ),
                )
            )
        return statements

    # -- reading -----------------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        row = self._reader.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise _no_run(run_id, self.path)
        return _run_record(row)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._reader.execute(
            "SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run_record(row) for row in rows]

    def latest_same_run(self, workflow_text: str, inputs: dict[str, Any]) -> RunRecord | None:
        """The latest run of this workflow text with these inputs (as journaled: redacted), if any."""
        row = self._reader.execute(
            "SELECT * FROM runs WHERE workflow_text = ? AND inputs = ? ORDER BY started_at DESC LIMIT 1",
            (_text(workflow_text), _dumps(inputs)),
        ).fetchone()
        return None if row is None else _run_record(row)

    def unknown_outcomes(self, run_id: str) -> int:
        """How many of the run's requests have an unknown outcome (`StepRecord.outcome_unknown`), counted
        without reading their requests and responses."""
        rows = self._reader.execute(
            "SELECT state, outcome, http_status FROM steps WHERE run_id = ? AND item >= 0 "
            "AND state IN ('sent', 'failed')",
            (run_id,),
        )
        return sum(_unknown(state, None if o is None else Outcome(o), status) for state, o, status in rows)

    def steps(
        self,
        run_id: str,
        *,
        task: str | None = None,
        items: range | None = None,
        states: Sequence[str] | None = None,
        started: bool = False,
        after: tuple[str, int] | None = None,
        limit: int = -1,
        offset: int = 0,
    ) -> list[StepRecord]:
        """The run's steps in task and item order; only `task`'s, only its `items` (a range of item numbers,
        the task row excluded), only those in `states`, with `started` only those past 'scheduled', only
        those after the step `after` (task, item); at most `limit` of them, from the `offset`-th on."""
        where: list[str] = ["run_id = ?"]
        params: list[Any] = [run_id]
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if items is not None:
            where.append("item >= ? AND item < ?")
            params += [max(items.start, 0), items.stop]
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += states
        if started:
            where.append("state != 'scheduled'")
        if after is not None:
            where.append("(task > ? OR (task = ? AND item > ?))")
            params += [after[0], after[0], after[1]]
        rows = self._reader.execute(
            f"SELECT * FROM steps WHERE {' AND '.join(where)} ORDER BY task, item LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [
            StepRecord(
                task=row["task"],
                item=row["item"],
                state=row["state"],
                idempotent=None if row["idempotent"] is None else bool(row["idempotent"]),
                idempotency_key=row["idempotency_key"],
                attempts=row["attempts"],
                http_status=row["http_status"],
                elapsed_ms=row["elapsed_ms"],
                request=_loads(row["request"]),
                response=_loads(row["response"]),
                error=row["error"],
                outcome=None if row["outcome"] is None else Outcome(row["outcome"]),
                sent_at=row["sent_at"],
                decision=row["decision"],
                item_value=_loads(row["item_value"]),
                updated_at=row["updated_at"],
            )
            for row in rows
        ]

    def iter_steps(
        self, run_id: str, *, states: Sequence[str] | None = None, page: int = 1000
    ) -> Iterator[StepRecord]:
        """Every step of the run (only those in `states`), in task and item order, read a page at a time."""
        after: tuple[str, int] | None = None
        while True:
            steps = self.steps(run_id, states=states, after=after, limit=page)
            yield from steps
            if len(steps) < page:
                return
            after = (steps[-1].task, steps[-1].item)

    def step_total(self, run_id: str) -> int:
        """How many steps the run has, its task rows included."""
        row = self._reader.execute("SELECT count(*) FROM steps WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0])

    def item_count(self, run_id: str, task: str) -> int:
        """How many item rows `task` has in the run (a forEach schedules one per item before sending)."""
        row = self._reader.execute(
            "SELECT count(*) FROM steps WHERE run_id = ? AND task = ? AND item >= 0", (run_id, task)
        ).fetchone()
        return int(row[0])

    def item_values(self, run_id: str, task: str, *, page: int = 1000) -> Iterator[tuple[int, Any]]:
        """(item, value) of every item of `task` journaled with its value (redacted), in item order, read a
        page at a time."""
        after = -1
        while True:
            rows = self._reader.execute(
                "SELECT item, item_value FROM steps WHERE run_id = ? AND task = ? AND item > ? "
                "AND item_value IS NOT NULL ORDER BY item LIMIT ?",
                (run_id, task, after, page),
            ).fetchall()
            for item, text in rows:
                value = _loads(text)
                if value is not None:  # a request without an item journals null
                    yield item, value
            if len(rows) < page:
                return
            after = rows[-1][0]

    def responses(self, run_id: str, task: str, first: int, stop: int) -> dict[int, Any]:
        """The journaled responses of items `first` to `stop - 1` of a forEach task, by item (None where an
        item has none)."""
        rows = self._reader.execute(
            "SELECT item, response FROM steps WHERE run_id = ? AND task = ? AND item >= ? AND item < ?",
            (run_id, task, first, stop),
        )
        return {item: _loads(response) for item, response in rows}

    def response_integers(self, run_id: str, task: str, count: int, keys: Sequence[str]) -> list[int] | None:
        """The integer at `keys` (`("status",)`) in the journaled response of each of the `count` items of a
        forEach task, in item order; None unless every item has one. SQLite cuts each one's JSON text out of
        its response in one pass, and only those few characters are decoded: what `responses` gives, read
        without decoding a response."""
        if not all(_JSON_KEY.fullmatch(key) for key in keys):
            return None
        try:
            # `->` gives a value's own JSON text (true stays true, "200" a string), NULL where there is none.
            found = self._reader.execute(
                "SELECT count(*), group_concat(item), group_concat(coalesce(response -> ?, 'null')) "
                "FROM (SELECT item, response FROM steps WHERE run_id = ? AND task = ? AND item >= 0 "
                "AND item < ? ORDER BY item)",
                ("$." + ".".join(keys), run_id, task, count),
            ).fetchone()
            rows, items, values = found[0], _listed(found[1]), _listed(found[2])
        except (sqlite3.Error, orjson.JSONDecodeError):  # JSON that SQLite or orjson cannot read
            return None
        if rows != count or items != list(range(count)):
            return None
        # Integers only: orjson reads one past 64 bits as a float, where `responses` gives an int.
        return values if set(map(type, values)) <= {int} else None

    def step_counts(self, run_id: str) -> dict[str, int]:
        rows = self._reader.execute(
            "SELECT state, count(*) FROM steps WHERE run_id = ? AND item >= 0 GROUP BY state", (run_id,)
        )
        return {state: count for state, count in rows}

    def decisions(self, run_id: str) -> list[Decision]:
        rows = self._reader.execute(
            "SELECT * FROM decisions WHERE run_id = ? ORDER BY decided_at, task, item", (run_id,)
        )
        return [
            Decision(
                task=row["task"],
                item=row["item"],
                action=row["action"],
                decided_by=row["decided_by"],
                decided_at=row["decided_at"],
                evidence=_loads(row["evidence"]),
                state_before=row["state_before"],
                outcome_before=row["outcome_before"],
            )
            for row in rows
        ]


def as_journaled(value: Any) -> Any:
    """`value` as the journal gives it back once written (JSON, redacted)."""
    return _loads(_dumps(value))


def _unknown(state: str, outcome: Outcome | None, status: int | None) -> bool:
    if state == "sent":
        return True
    return state == "failed" and outcome is not None and may_have_acted(outcome, status)


def decider() -> str:
    """Who decides, as journaled with a decision: user@host (pid N)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _holder(token: str, purpose: str, now: float) -> tuple[Any, ...]:
    """A lease's holder as journaled: pid, token, host, purpose, since, heartbeat, identity, boot clock."""
    return (os.getpid(), token, socket.gethostname(), purpose, now, now, identity(), boot_clock())


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_or_migrate(connection: sqlite3.Connection) -> None:
    if connection.execute("PRAGMA user_version").fetchone()[0] >= _VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if connection.execute("PRAGMA user_version").fetchone()[0] < _VERSION:
            columns = {row[1] for row in connection.execute("PRAGMA table_info(steps)")}
            if columns and "outcome" not in columns:
                for statement in _MIGRATE_FROM_1.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            if columns and "item_value" not in columns:
                connection.execute("ALTER TABLE steps ADD COLUMN item_value TEXT")
            if columns and "fingerprint" not in columns:  # version 4: every key's record in idempotency_keys
                connection.execute("ALTER TABLE steps ADD COLUMN key_scope TEXT")
                connection.execute("ALTER TABLE steps ADD COLUMN fingerprint TEXT")
            runs = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
            if runs and "lease_process" not in runs:  # version 3: leases judged by the wall clock only
                connection.execute("ALTER TABLE runs ADD COLUMN lease_process TEXT")
                connection.execute("ALTER TABLE runs ADD COLUMN heartbeat_boot REAL")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {_VERSION}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


def _lease_payload(lease: tuple[str, str] | None) -> tuple[str, str, float] | None:
    """The lease as its writer holds it: renewed by a commit once a tenth of a lease has passed since the
    last renewal (each commit between checks that the run is still this lease's), so that its age stays far
    below the half a lease after which `check_owner` stops sending."""
    return None if lease is None else (*lease, LEASE_SECONDS / 10)


def _writer_kind(given: str | None) -> type[WriterProcess] | type[WriterThread]:
    name = given or os.environ.get(WRITER_VAR) or DEFAULT_WRITER
    if name not in WRITERS:
        raise UsageError(f"{WRITER_VAR} is {name!r}; give 'thread' or 'process' (where the journal commits).")
    return WRITERS[name]


def _failure(failure: tuple[str, Any]) -> BaseException:
    """The writer's error as this process raises it."""
    kind, detail = failure
    if kind == "taken":
        return RunTakenOver(*detail)
    if kind == "gone":
        how = f"was killed by signal {-detail}" if detail and detail < 0 else f"ended (exit status {detail})"
        return _WriterGone(f"its writer process {how}")
    return sqlite3.OperationalError(detail)


class _WriterGone(OSError):
    """The journal's writer process ended before the run did: the disk is not to blame."""


def _unwritable(path: Path, error: BaseException) -> UsageError:
    if isinstance(error, _WriterGone):
        return UsageError(
            f"The journal {str(path)!r} could not be written ({error}); nothing more is sent, and what was "
            "sent is journaled: resume the run ('httptask runs list' shows it)."
        )
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        # SQLite waited for the lock (`journal_commit.connect`) in vain: the disk is not to blame.
        return UsageError(
            f"The journal {str(path)!r} stayed locked by another process ({error}); nothing more is sent. "
            "A process that holds its lock and does not go on (one stopped with Ctrl-Z or SIGSTOP, or hung) "
            "keeps every other one out: continue or end it, then run or resume again."
        )
    return UsageError(
        f"The journal {str(path)!r} could not be written ({error}); nothing more is sent. Free space on its "
        f"disk or make it writable (or set {JOURNAL_VAR} to another file), then run or resume again."
    )


def _no_run(run_id: str, path: Path) -> UsageError:
    return UsageError(
        f"No run {run_id!r} in the journal {str(path)!r}; 'httptask runs list' shows the runs it holds."
    )


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        workflow=row["workflow"],
        file=row["file"],
        workflow_text=row["workflow_text"],
        inputs=json.loads(row["inputs"]),
        inputs_redacted=bool(row["inputs_redacted"]),
        options=json.loads(row["options"]),
        status=row["status"],
        pid=row["pid"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outputs=_loads(row["outputs"]),
        errors=_loads(row["errors"]) or [],
        lease_host=row["lease_host"],
        lease_purpose=row["lease_purpose"],
        lease_since=row["lease_since"],
        heartbeat_at=row["heartbeat_at"],
        lease_process=row["lease_process"],
        heartbeat_boot=row["heartbeat_boot"],
    )


def _dumps(value: Any) -> str:
    text = _json(value)
    redacted = redact_for_process(text)
    if redacted == text or _is_json(redacted):
        return redacted
    # A mask inside a number (a secret's digits in an amount) leaves text that is not JSON, which no read of
    # the journal could parse: such a number is kept as its redacted text, a string, where a mask may stand.
    redacted = redact_for_process(_json(_masked_numbers(value)))
    return redacted if _is_json(redacted) else _json(redacted)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits, which only the standard library writes
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _is_json(text: str) -> bool:
    try:
        jsontext.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _masked_numbers(value: Any) -> Any:
    """`value` with each number the process's redactor would mask replaced by its redacted text."""
    if isinstance(value, dict):
        return {key: _masked_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked_numbers(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = _json(value)
        redacted = redact_for_process(text)
        return value if redacted == text else redacted
    return value


def _text(value: str | None) -> str | None:
    """A free-text column as written to the file: redacted, like every JSON column (`_dumps`)."""
    return None if value is None else redact_for_process(value)


def _listed(joined: str | None) -> list[Any]:
    """The JSON values of a `group_concat` (None for no rows) as a list."""
    return orjson.loads(f"[{joined or ''}]")  # type: ignore[no-any-return]


def _loads(text: str | None) -> Any:
    return None if text is None else jsontext.loads(text)
