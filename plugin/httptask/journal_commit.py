"""The journal's group commit: requests (plain data) applied to SQLite in one transaction that first renews
the run's lease. The journal's writer (`journal_writer`) runs it in a process of its own (with nothing but the
standard library and this package's small stdlib-only modules imported), or on a thread.

A request is `(id, kind, payload)`; `id` 0 asks for no answer. The process reads frames (a 4-byte length and a
`marshal`led list of requests) from the socket it is given, commits everything that has arrived in one
transaction, and answers each commit with one frame (`Answer`). It ends at STOP or
when the socket closes: the parent has ended, even by `kill -9`, so the writer never outlives it.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import re
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import frames
from .keys import is_derived
from .processes import boot_clock

__all__ = [
    "BEGIN_SEND",
    "EXECUTE",
    "LEASE",
    "SENT",
    "STOP",
    "Answer",
    "Committer",
    "Request",
    "connect",
    "execute",
    "fingerprint",
    "frame",
    "read_frames",
]

EXECUTE = 0  # payload: [(sql, params), ...]
BEGIN_SEND = 1  # payload: (key, method, url, body, the parameters of SENT but the last two, first_send)
LEASE = 2  # payload: (run_id, token, seconds between renewals), or None: the lease commits are fenced by
STOP = 3

Request = tuple[int, int, Any]

# A step journaled as 'sent'; `key_scope` and `fingerprint` are those of its idempotency key (`_begin_send`).
SENT = (
    "INSERT INTO steps (run_id, task, item, state, idempotent, idempotency_key, request, outcome, sent_at, "
    "item_value, updated_at, key_scope, fingerprint) "
    "VALUES (?, ?, ?, 'sent', ?, ?, ?, 'unknown', ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, task, item) DO UPDATE SET state = 'sent', idempotent = excluded.idempotent, "
    "idempotency_key = excluded.idempotency_key, item_value = excluded.item_value, "
    "request = excluded.request, response = NULL, error = NULL, http_status = NULL, outcome = 'unknown', "
    "sent_at = excluded.sent_at, updated_at = excluded.updated_at, key_scope = excluded.key_scope, "
    "fingerprint = excluded.fingerprint"
)
_HELD = (
    "SELECT idempotency_key, key_scope, fingerprint, request, sent_at FROM steps "
    "WHERE run_id = ? AND task = ? AND item = ?"
)
_FIRST = "SELECT fingerprint, request, run_id, task, item FROM idempotency_keys WHERE scope = ? AND key = ?"
_KEEP = "INSERT OR IGNORE INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_AUTHORITY = re.compile(r"[^:/?#]+://[^/?#]*")
_LEASE_TOKEN = "SELECT lease_token FROM runs WHERE run_id = ?"
# (commits so far, when the lease was last renewed, the error that stopped commits or None, [(id, result)])
Answer = tuple[int, float, tuple[str, Any] | None, list[tuple[int, Any]]]


def connect(path: Path | str, *, autocommit: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode; `autocommit` leaves every BEGIN and COMMIT to the caller."""
    connection = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    if autocommit:
        connection.isolation_level = None
    connection.row_factory = sqlite3.Row
    # A new journal's pages are 16 KB (an existing one keeps its own): a step's row (its request and response,
    # about 1.3 KB) then fits in its page of the WITHOUT ROWID table, where with 4 KB pages it spilled into an
    # overflow page of its own, 4.7 KB a step instead of 1.3 KB.
    connection.execute("PRAGMA page_size = 16384")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit the engine waited for survives a power cut, not just a killed process.
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def frame(message: Any) -> bytes:
    return frames.frame(marshal.dumps(message))


def read_frames(buffer: bytearray) -> list[Any]:
    """The complete frames at the start of `buffer`, taken out of it."""
    return frames.unframe(buffer, marshal.loads)


class Committer:
    """Applies requests in group commits on one connection, fenced by the run's lease."""

    def __init__(self, path: Path | str) -> None:
        self.connection = connect(path, autocommit=True)
        self.lease: tuple[str, str] | None = None
        # The run's row holds its inputs (megabytes for a long list of items), which SQLite reads and writes
        # again to renew the lease: a commit renews it once this many seconds have passed since it last did,
        # and otherwise only checks that the run is still this lease's.
        self.renew_seconds = 0.0
        # `PRAGMA data_version` when the lease was last found held: until another connection commits, it is.
        self.held_at: int | None = None
        self.commits = 0
        # time.monotonic() (one clock for the whole machine) when the lease was last renewed
        self.renewed = 0.0
        # After a failed commit nothing more is committed: the run stops sending (the parent reads the error).
        self.failure: tuple[str, Any] | None = None

    def commit(self, requests: Sequence[Request]) -> Answer:
        """Apply `requests` in one transaction; the answer to send back (`Answer`)."""
        for _, kind, payload in requests:
            if kind == LEASE:  # a lease set before this group's work applies to it
                self.lease = None if payload is None else (payload[0], payload[1])
                self.renew_seconds = 0.0 if payload is None else payload[2]
                self.renewed, self.held_at = 0.0, None  # renewed by the next commit
        work = [r for r in requests if r[1] in (EXECUTE, BEGIN_SEND)]
        results: dict[int, Any] = {}
        if self.failure is None and (work or self.lease is not None):
            connection, started = self.connection, time.monotonic()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    renewing = started - self.renewed >= self.renew_seconds
                    self._fence(renewing)
                    results = _apply(connection, work)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:  # a failed COMMIT (a full disk) has rolled back already
                        connection.execute("ROLLBACK")
                    raise
                self.commits += 1
                if renewing:
                    self.renewed = started
            except sqlite3.Error as exc:
                self.failure = ("unwritable", str(exc))
            except _TakenOver as exc:
                self.failure = ("taken", exc.args)
        answers = [(number, results.get(number)) for number, _, _ in requests if number]
        return self.commits, self.renewed, self.failure, answers

    def _fence(self, renewing: bool) -> None:
        """Commit nothing for a run another process has taken over; renew the lease when `renewing`."""
        if self.lease is None:
            return
        run_id, token = self.lease
        # Inside this transaction: what other connections committed before it began is counted.
        version = self.connection.execute("PRAGMA data_version").fetchone()[0]
        if not renewing:
            if version == self.held_at:  # no other connection has committed (a takeover is a commit)
                return
            held = self.connection.execute(_LEASE_TOKEN, (run_id,)).fetchone()
            if held is not None and held[0] == token:
                self.held_at = version
                return
        renewed = self.connection.execute(
            "UPDATE runs SET heartbeat_at = ?, heartbeat_boot = ? WHERE run_id = ? AND lease_token = ?",
            (time.time(), boot_clock(), run_id, token),
        ).rowcount
        if not renewed:
            row = self.connection.execute("SELECT pid FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            raise _TakenOver(run_id, row[0] if row else None)
        self.held_at = version

    def close(self) -> None:
        self.connection.close()


class _TakenOver(Exception):
    pass


def execute(connection: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run `statements` in order, each run of one statement's rows in one `executemany`."""
    start = 0
    while start < len(statements):
        sql, stop = statements[start][0], start + 1
        while stop < len(statements) and statements[stop][0] == sql:
            stop += 1
        if stop - start == 1:
            connection.execute(sql, statements[start][1])
        else:
            connection.executemany(sql, [params for _, params in statements[start:stop]])
        start = stop


def _apply(connection: sqlite3.Connection, work: Sequence[Request]) -> dict[int, Any]:
    """Apply a group's requests in order; the result of each that is answered, by its number."""
    results: dict[int, Any] = {}
    statements: list[tuple[str, Sequence[Any]]] = []
    for number, kind, payload in work:
        if kind == EXECUTE:
            statements += payload
            results[number] = None
        else:
            if statements:
                execute(connection, statements)
                statements = []
            results[number] = _begin_send(connection, *payload)
    if statements:
        execute(connection, statements)
    return results


def fingerprint(method: str, url: str, body: str) -> str:
    """What an idempotency key promises the server stays the same: method, URL and body (as journaled,
    redacted, so a rotated secret is not a different payload)."""
    # The text `json.dumps([method, url, body])` writes, which the keys journaled so far were made from;
    # written here without the encoder's machinery around its string escaping.
    text = f"[{_json_string(method.upper())}, {_json_string(url)}, {_json_string(body)}]"
    return hashlib.sha256(text.encode()).hexdigest()


def key_scope(url: str) -> str:
    """Where a key was sent: scheme://host:port of the request's URL as journaled (redacted), read as
    `transport.origin` reads a URL. Taken from the journaled URL, never given apart from it, so that it can
    hold no more than the request's own record (a secret in a host name is masked there)."""
    found = _AUTHORITY.match(url)
    return _scope(found.group() if found is not None else url)


@functools.lru_cache(maxsize=256)
def _scope(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # a mask inside the brackets of an IPv6 host
        return url
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _begin_send(
    connection: sqlite3.Connection,
    key: str | None,
    method: str,
    url: str,
    body: str,
    row: Sequence[Any],
    first_send: bool = False,
) -> tuple[str, str] | None:
    """Journal a request as 'sent' (`row`: the parameters of `SENT` but its key's scope and fingerprint) under
    its idempotency key; where the key was first sent, and with what request, when it was sent to the same
    origin (`key_scope`) before with another payload (then nothing is written).

    A key derived for this very request (`keys.is_derived`) is sent by no other request: the step's own row
    keeps where it was sent and with what fingerprint, written in step order with the 'sent' record. The
    `idempotency_keys` table (a random page per key) holds the keys templates gave, and a derived key's
    earlier scope once its step is sent to another server. With `first_send` (the step of a new run, sent for
    the first time) the caller vouches that its row holds no key yet, so it is not read."""
    run_id, task, item, request = row[0], row[1], row[2], row[5]
    print_, scope = fingerprint(method, url, body), key_scope(url)
    if key is not None:
        first = None
        held: Any = None if first_send else connection.execute(_HELD, (run_id, task, item)).fetchone()
        holds = held is not None and held[2] is not None
        if holds and (held[0], held[1]) != (key, scope):  # the key record the row holds moves to the table
            connection.execute(_KEEP, (held[1], held[0], held[2], held[3], run_id, task, item, held[4]))
        if not is_derived(key, run_id, task, item):
            first = _first_send(connection, scope, key, print_, request, row)
        elif holds and (held[0], held[1]) == (key, scope):
            first = (held[2], held[3], run_id, task, item)
        elif holds or (held is not None and held[3] is not None):  # sent elsewhere, or by version 4
            first = connection.execute(_FIRST, (scope, key)).fetchone()
        if first is not None and first[0] != print_:
            return f"run {first[2]}, task {first[3]}, item {first[4]}", first[1]
    connection.execute(SENT, (*row, None if key is None else scope, None if key is None else print_))
    return None


def _first_send(
    connection: sqlite3.Connection, scope: str, key: str, print_: str, request: str, row: Sequence[Any]
) -> Any:
    """The first send of a templated key to `scope`, recorded now when this is it."""
    first = connection.execute(_FIRST, (scope, key)).fetchone()
    if first is None:
        connection.execute(_KEEP, (scope, key, print_, request, row[0], row[1], row[2], row[6]))
    return first


def serve(channel: socket.socket, path: str) -> None:
    """The writer process: commit what arrives, answer each commit, end at STOP or when the parent is gone."""
    committer = Committer(path)
    buffer = bytearray()
    stopping = False
    try:
        while not stopping:
            chunk = channel.recv(1 << 20)
            if not chunk:  # the parent has gone: what it had sent is committed, then this process ends
                stopping = True
            buffer += chunk
            channel.setblocking(False)  # take everything else that has arrived into this group
            try:
                while chunk := channel.recv(1 << 20):
                    buffer += chunk
                else:
                    stopping = True
            except BlockingIOError:
                pass
            channel.setblocking(True)
            requests = [request for message in read_frames(buffer) for request in message]
            stopping = stopping or any(kind == STOP for _, kind, _ in requests)
            answer = committer.commit(requests)
            try:
                channel.sendall(frame(answer))
            except OSError:
                return
    finally:
        committer.close()


def main() -> None:
    """The writer process: `FD PATH` as arguments (see `journal_writer.command`)."""
    # Ctrl-C reaches the whole process group: the parent decides when its writer stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[-2])), sys.argv[-1])
