"""The run journal: every run, task, forEach item and attempt in SQLite (WAL), written by one thread.

The writer thread owns its connection and commits whatever has queued up as one transaction (group
commit). `Journal.durable` returns only once its records are committed: the engine awaits it before a request
with side effects goes on the wire. Everything else is queued and committed with the next group. Callers
redact: nothing here sees a secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = [
    "JOURNAL_VAR",
    "TASK_ROW",
    "Journal",
    "RunRecord",
    "StepRecord",
    "default_journal_path",
    "process_alive",
]

JOURNAL_VAR = "HTTPTASK_JOURNAL"
# The item number of a forEach task's own row (its state as a whole); items are numbered from 0, and a task
# without forEach has the single item 0.
TASK_ROW = -1

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
    errors TEXT
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
    maybe_received INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, task, item)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    item INTEGER NOT NULL,
    number INTEGER NOT NULL,
    http_status INTEGER,
    error TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_step ON attempts (run_id, task, item);
"""

_SCHEDULE = (
    "INSERT INTO steps (run_id, task, item, state, updated_at) VALUES (?, ?, ?, 'scheduled', ?) "
    "ON CONFLICT (run_id, task, item) DO NOTHING"
)
_SENT = (
    "INSERT INTO steps (run_id, task, item, state, idempotent, idempotency_key, request, updated_at) "
    "VALUES (?, ?, ?, 'sent', ?, ?, ?, ?) ON CONFLICT (run_id, task, item) DO UPDATE SET state = 'sent', "
    "idempotent = excluded.idempotent, idempotency_key = excluded.idempotency_key, "
    "request = excluded.request, response = NULL, error = NULL, http_status = NULL, maybe_received = 0, "
    "updated_at = excluded.updated_at"
)
_FINISH = (
    "INSERT INTO steps (run_id, task, item, state, attempts, http_status, elapsed_ms, response, error, "
    "maybe_received, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, task, item) DO UPDATE SET state = excluded.state, "
    "attempts = steps.attempts + excluded.attempts, http_status = excluded.http_status, "
    "elapsed_ms = excluded.elapsed_ms, response = excluded.response, error = excluded.error, "
    "maybe_received = excluded.maybe_received, updated_at = excluded.updated_at"
)
_ATTEMPT = (
    "INSERT INTO attempts (run_id, task, item, number, http_status, error, at) VALUES (?, ?, ?, ?, ?, ?, ?)"
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

    @property
    def interrupted(self) -> bool:
        """Marked running, but its process is gone (killed, or the machine stopped)."""
        return self.status == "running" and (self.pid is None or not process_alive(self.pid))

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
    maybe_received: bool

    @property
    def outcome_unknown(self) -> bool:
        """Sent with no answer recorded, or failed in a way the server may still have acted on."""
        return self.state == "sent" or (self.state == "failed" and self.maybe_received)


_Statement = tuple[str, Sequence[Any]]


class _Batch:
    """Statements to commit together, and the future (if any) to resolve once they are committed."""

    __slots__ = ("future", "statements")

    def __init__(self, statements: list[_Statement], future: asyncio.Future[None] | None) -> None:
        self.statements = statements
        self.future = future


_STOP = object()


class Journal:
    """The SQLite journal: reads on the calling thread, writes through one writer thread in group commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._reader = _connect(path)
            with self._reader:
                self._reader.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"The journal {str(path)!r} cannot be opened ({exc}); set {JOURNAL_VAR} to a writable file."
            ) from exc
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self.commits = 0

    # -- writing -----------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer thread; durable writes resolve their futures on `loop`."""
        self._loop = loop
        self._thread = threading.Thread(target=self._write_forever, name="httptask-journal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued and stop the writer thread; raises if a commit failed."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._failure is not None:
            raise UsageError(f"The journal {str(self.path)!r} could not be written ({self._failure}).")

    def close(self) -> None:
        self.stop()
        self._reader.close()

    def queue(self, statements: list[_Statement]) -> None:
        """Commit these with the next group; nothing waits for it."""
        if self._thread is None:
            with self._reader:
                _execute(self._reader, statements)
            return
        self._queue.put(_Batch(statements, None))

    async def durable(self, statements: list[_Statement]) -> None:
        """Return once these statements (and everything queued before them) are committed."""
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Batch(statements, future))
        await future

    async def flush(self) -> None:
        await self.durable([])

    def _write_forever(self) -> None:
        connection = _connect(self.path)
        try:
            stopping = False
            while not stopping:
                batches = [self._queue.get()]
                while True:
                    try:
                        batches.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batches:
                    stopping = True
                    batches = [b for b in batches if b is not _STOP]
                self._commit(connection, batches)
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, batches: list[_Batch]) -> None:
        error: BaseException | None = None
        try:
            with connection:
                for batch in batches:
                    _execute(connection, batch.statements)
            self.commits += 1
        except sqlite3.Error as exc:
            error = self._failure = exc
        waiting = [b.future for b in batches if b.future is not None]
        if waiting and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, waiting, error, self.path)

    # -- records -----------------------------------------------------------------------------------------

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
        with self._reader:
            self._reader.execute(
                "INSERT INTO runs (run_id, workflow, file, workflow_text, inputs, inputs_redacted, options, "
                "status, pid, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    run_id,
                    workflow,
                    file,
                    workflow_text,
                    _dumps(inputs),
                    int(inputs_redacted),
                    _dumps(options),
                    os.getpid(),
                    time.time(),
                ),
            )

    def claim_run(self, run_id: str) -> None:
        """Mark a run as running again in this process (for a resume)."""
        with self._reader:
            self._reader.execute(
                "UPDATE runs SET status = 'running', pid = ?, finished_at = NULL WHERE run_id = ?",
                (os.getpid(), run_id),
            )

    def finish_run(self, run_id: str, status: str, outputs: Any, errors: list[dict[str, Any]]) -> None:
        with self._reader:
            self._reader.execute(
                "UPDATE runs SET status = ?, finished_at = ?, outputs = ?, errors = ?, pid = NULL "
                "WHERE run_id = ?",
                (status, time.time(), _dumps(outputs), _dumps(errors), run_id),
            )

    @staticmethod
    def schedule(run_id: str, task: str, items: Iterable[int]) -> list[_Statement]:
        now = time.time()
        return [(_SCHEDULE, (run_id, task, item, now)) for item in items]

    @staticmethod
    def sent(
        run_id: str, task: str, item: int, *, idempotent: bool, key: str | None, request: dict[str, Any]
    ) -> _Statement:
        return _SENT, (run_id, task, item, int(idempotent), key, _dumps(request), time.time())

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
        maybe_received: bool = False,
    ) -> _Statement:
        return _FINISH, (
            run_id,
            task,
            item,
            state,
            attempts,
            http_status,
            elapsed_ms,
            None if response is None else _dumps(response),
            error,
            int(maybe_received),
            time.time(),
        )

    @staticmethod
    def attempt(
        run_id: str, task: str, item: int, number: int, http_status: int | None, error: str | None
    ) -> _Statement:
        return _ATTEMPT, (run_id, task, item, number, http_status, error, time.time())

    # -- reading -----------------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord:
        row = self._reader.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(
                f"No run {run_id!r} in the journal {str(self.path)!r}; "
                "'httptask runs list' shows the runs it holds."
            )
        return _run_record(row)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._reader.execute(
            "SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run_record(row) for row in rows]

    def steps(self, run_id: str) -> list[StepRecord]:
        rows = self._reader.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY task, item", (run_id,))
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
                maybe_received=bool(row["maybe_received"]),
            )
            for row in rows
        ]

    def step_counts(self, run_id: str) -> dict[str, int]:
        rows = self._reader.execute(
            "SELECT state, count(*) FROM steps WHERE run_id = ? AND item >= 0 GROUP BY state", (run_id,)
        )
        return {state: count for state, count in rows}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit the engine waited for survives a power cut, not just a killed process.
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def _execute(connection: sqlite3.Connection, statements: list[_Statement]) -> None:
    for sql, params in statements:
        connection.execute(sql, params)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None, path: Path) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(
                UsageError(f"The journal {str(path)!r} could not be written ({error}); nothing more is sent.")
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
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
