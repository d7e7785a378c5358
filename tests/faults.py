"""A refund API on 127.0.0.1 that misbehaves on purpose, one scripted fault per request, for the fault
injection tests. It counts what it *acted on* per resource (the request path), so a test can tell a refund
received twice from one retried under the same idempotency key (replayed, not acted on again).

Faults, by what the server does after reading the request head:

    answer             read the body, act, answer 200 with JSON (after `delay_seconds`)
    reset-before-body  reset the connection without reading the body; nothing is acted on
    reset-after-body   read the body, act, reset the connection without an answer
    stall              read the body, act, answer only after `stall_seconds` (past the client's read timeout)
    500 / 502          read the body, act, then answer with that status (the work was done, the answer lost)
    503                read the body, do nothing, answer 503
    429                read the body, do nothing, answer 429 with `Retry-After: retry_after`
    truncated          read the body, act, answer 200 with a body cut short of its Content-Length
    non-json           read the body, act, answer 200 "application/json" that is not JSON
    oversize           read the body, act, answer 200 with `oversize_bytes` of JSON
    hold               read half the body, call `on_hold` (a test kills the client there), wait for it to go

`refusing()` closes the listening socket for a while, so connections are refused (nothing is sent).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = ["FAULTS", "FaultServer", "Received", "fault_server"]

FAULTS = (
    "answer",
    "reset-before-body",
    "reset-after-body",
    "stall",
    "500",
    "502",
    "503",
    "429",
    "truncated",
    "non-json",
    "oversize",
    "hold",
)
_KEY_HEADERS = ("idempotency-key", "chargebee-idempotency-key")
_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends a reset


@dataclass(frozen=True)
class Received:
    """One request as the server saw it; `acted` when it did the work (a replay under a known key is not)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    fault: str
    complete: bool
    acted: bool
    replayed: bool
    at: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    @property
    def key(self) -> str | None:
        return next((v for k, v in self.headers if k in _KEY_HEADERS), None)


Schedule = Callable[[str, int], str]
"""Chooses the fault for a request from its path and how many times that path arrived before (0, 1, ...)."""


def always(fault: str) -> Schedule:
    return lambda path, arrived: fault


def first_then_answer(fault: str, times: int = 1) -> Schedule:
    """`fault` for each path's first `times` arrivals, then answers."""
    return lambda path, arrived: fault if arrived < times else "answer"


@dataclass
class FaultServer:
    url: str = ""
    port: int = 0
    schedule: Schedule = field(default=always("answer"))
    stall_seconds: float = 5.0
    delay_seconds: float = 0.0
    retry_after: str = "0"
    oversize_bytes: int = 64 * 1024
    on_hold: Callable[[Received], None] | None = None
    # While set, every answer waits until this event is set (a test holds a client mid-run).
    gate: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    _arrivals: Counter[str] = field(default_factory=Counter)
    _closing: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- what the tests read --------------------------------------------------------------------------------

    def acted(self) -> Counter[str]:
        """How many times each path was acted on (a refund done twice shows as 2)."""
        with self.lock:
            return Counter(r.path for r in self.received if r.acted)

    def arrivals(self) -> Counter[str]:
        """How many requests reached each path, complete or not."""
        with self.lock:
            return Counter(r.path for r in self.received)

    def keys_by_path(self) -> dict[str, set[str | None]]:
        with self.lock:
            keys: dict[str, set[str | None]] = {}
            for r in self.received:
                keys.setdefault(r.path, set()).add(r.key)
            return keys

    def reset(self, schedule: Schedule | None = None) -> None:
        """Forget what was received (and the keys seen); use `schedule` from now on."""
        with self.lock:
            self.received.clear()
            self._keys.clear()
            self._arrivals.clear()
            if schedule is not None:
                self.schedule = schedule

    # -- running --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._closing.set()
        self._close_listener()
        for thread in list(self._threads):
            thread.join(5)

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """Connections to the server's port are refused inside the block."""
        self._close_listener()
        try:
            yield
        finally:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(target=self._accept_forever, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _close_listener(self) -> None:
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def _accept_forever(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()

    # -- one connection -------------------------------------------------------------------------------------

    def _serve(self, connection: socket.socket) -> None:
        reader: BinaryIO = connection.makefile("rb")
        try:
            while not self._closing.is_set() and self._serve_one(connection, reader):
                pass
        except OSError:
            pass
        finally:
            with suppress(OSError):
                reader.close()
                connection.close()

    def _serve_one(self, connection: socket.socket, reader: BinaryIO) -> bool:
        """Serve one request; False when the connection is done."""
        line = reader.readline(65537)
        if not line:
            return False
        method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            raw = reader.readline(65537).decode("latin-1").rstrip("\r\n")
            if not raw:
                break
            name, _, value = raw.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = int(next((v for k, v in headers if k == "content-length"), "0"))
        with self.lock:
            fault = self.schedule(target, self._arrivals[target])
            self._arrivals[target] += 1
        if fault == "reset-before-body":
            self._record(method, target, headers, b"", fault, complete=False)
            _reset(connection)
            return False
        if fault == "hold":
            body = reader.read(length // 2) if length > 1 else b""
            received = self._record(method, target, headers, body, fault, complete=False)
            if self.on_hold is not None:
                self.on_hold(received)
            with suppress(OSError):
                while reader.read(1):
                    pass
            return False
        body = reader.read(length) if length else b""
        acts = fault not in ("429", "503")
        received = self._record(method, target, headers, body, fault, complete=True, acts=acts)
        answer = self._answer_for(received)
        if fault == "reset-after-body":
            _reset(connection)
            return False
        if fault == "stall":
            self._closing.wait(self.stall_seconds)
        elif self.delay_seconds:
            self._closing.wait(self.delay_seconds)
        if self.gate is not None:
            self.gate.wait(120)
        status, extra, payload = {
            "500": (500, {}, b'{"error":"internal"}'),
            "502": (502, {}, b'{"error":"bad gateway"}'),
            "503": (503, {}, b'{"error":"unavailable"}'),
            "429": (429, {"Retry-After": self.retry_after}, b'{"error":"slow down"}'),
            "non-json": (200, {}, b"<html>not json</html>"),
            "oversize": (200, {}, b'{"pad":"' + b"x" * self.oversize_bytes + b'"}'),
        }.get(fault, (200, {}, answer))
        declared = len(payload) + 100 if fault == "truncated" else len(payload)
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {declared}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if fault == "truncated":
            connection.shutdown(socket.SHUT_WR)
            return False
        return True

    def _record(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        fault: str,
        *,
        complete: bool,
        acts: bool = False,
    ) -> Received:
        key = next((v for k, v in headers if k in _KEY_HEADERS), None)
        with self.lock:
            replayed = acts and key is not None and key in self._keys
            acted = acts and not replayed
            received = Received(
                method, path, tuple(headers), body, fault, complete, acted, replayed, time.time()
            )
            self.received.append(received)
            if acted and key is not None:
                answer = json.dumps({"id": f"re_{len(self.received)}", "path": path}).encode()
                self._keys[key] = (body, answer)
            return received

    def _answer_for(self, received: Received) -> bytes:
        """The stored answer for a key seen before, else a new refund record."""
        with self.lock:
            stored = self._keys.get(received.key or "")
            return (
                stored[1]
                if stored
                else json.dumps({"id": f"re_{len(self.received)}", "path": received.path}).encode()
            )


def _reset(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        connection.close()


@contextmanager
def fault_server(schedule: Schedule | None = None) -> Iterator[FaultServer]:
    """A started fault server on a free loopback port, stopped when the block ends."""
    server = FaultServer()
    if schedule is not None:
        server.schedule = schedule
    server.start()
    try:
        yield server
    finally:
        server.stop()
