"""Real loopback test servers on 127.0.0.1: one records every request byte for byte and answers what the test
says; the other misbehaves on purpose (refuse, reset, slow, 500 then 200, 429 with Retry-After then 200); and
`served` runs any aiohttp application a test writes on a thread of its own."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar

from aiohttp import web

__all__ = [
    "Recorded",
    "RecordingServer",
    "Served",
    "closed_port",
    "faults_server",
    "recording_server",
    "served",
    "serving_handler",
    "serving_refunds",
]


@dataclass(frozen=True)
class Served:
    """An aiohttp application answering on 127.0.0.1: its base URL, and the loop its handlers run on."""

    url: str
    loop: asyncio.AbstractEventLoop


@contextmanager
def served(app: web.Application) -> Iterator[Served]:
    """`app` on a free port of 127.0.0.1, on its own event loop and thread, until the block ends."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


class _Handling(Protocol):
    url: str

    async def handle(self, request: web.Request) -> web.StreamResponse: ...


class _Refunding(Protocol):
    url: str
    release: asyncio.Event | None

    async def refund(self, request: web.Request) -> web.StreamResponse: ...


H = TypeVar("H", bound=_Handling)
R = TypeVar("R", bound=_Refunding)


@contextmanager
def serving_handler(state: H) -> Iterator[H]:
    """`state.handle` answering every method and path on 127.0.0.1, its base URL in `state.url`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    with served(app) as server:
        state.url = server.url
        yield state


@contextmanager
def serving_refunds(state: R) -> Iterator[R]:
    """A Chargebee stand-in's `state.refund` on 127.0.0.1, for refund_invoice (v2) and record_refund (v1); the
    refunds it holds (`state.release`, set on its loop) are let go as the block ends."""
    app = web.Application()
    app.router.add_post("/api/v2/invoices/{id}/refund", state.refund)
    app.router.add_post("/api/v1/invoices/{id}/record_refund", state.refund)
    with served(app) as server:
        state.release = asyncio.Event()
        state.url = server.url
        try:
            yield state
        finally:
            server.loop.call_soon_threadsafe(state.release.set)


@dataclass(frozen=True)
class Recorded:
    """One request as received: method, raw path (with query), headers in order (names lower-cased), and
    body bytes."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


@dataclass
class RecordingServer:
    """A threaded HTTP/1.1 server; `answers` is a queue of (status, headers, body) used in order, then
    `default`."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    default: tuple[int, dict[str, str], bytes] = (200, {"Content-Type": "application/json"}, b'{"ok": true}')
    # After reading a request: "answer", "reset" (close without a reply), "slow" (wait, then answer) or "drip"
    # (the head, then the body a byte every `drip_seconds`, until the client goes away).
    behaviours: list[str] = field(default_factory=list)
    slow_seconds: float = 2.0
    drip_seconds: float = 0.1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, headers or {}, body))


def _read_request(rfile: BinaryIO) -> Recorded | None:
    line = rfile.readline(65537)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = []
    while True:
        raw = rfile.readline(65537).decode("latin-1").rstrip("\r\n")
        if not raw:
            break
        name, _, value = raw.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    length = int(next((v for k, v in headers if k == "content-length"), "0"))
    body = rfile.read(length) if length else b""
    return Recorded(method, target, tuple(headers), body)


def _handler(server: RecordingServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                request = _read_request(self.rfile)
                if request is None:
                    return
                with server.lock:
                    server.requests.append(request)
                    behaviour = server.behaviours.pop(0) if server.behaviours else "answer"
                    status, headers, body = server.answers.pop(0) if server.answers else server.default
                if behaviour == "reset":
                    # SO_LINGER 0 makes close() send RST: the client sees a reset after writing its request.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    return
                if behaviour == "slow":
                    time.sleep(server.slow_seconds)
                head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
                # A drip sends the head and the body's first byte, then the rest a byte at a time.
                first = len(data) - len(body) + 1 if behaviour == "drip" else len(data)
                pieces = [data[:first], *(data[at : at + 1] for at in range(first, len(data)))]
                try:
                    for number, piece in enumerate(pieces):
                        if number:
                            time.sleep(server.drip_seconds)
                        self.wfile.write(piece)
                        self.wfile.flush()
                except OSError:
                    return

    return Handler


class _Threaded(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def recording_server() -> Iterator[RecordingServer]:
    """Start a recording server on 127.0.0.1 with a free port; stops when the block ends."""
    state = RecordingServer()
    server = _Threaded(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


faults_server = recording_server  # the same server: tests script faults through `behaviours` and `answers`


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
