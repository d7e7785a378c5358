"""HTTP/1.1 exchanges on asyncio Protocols, read by httptools (llhttp), over a pool of keep-alive connections
per origin under one limit. The only module that knows httptools.

It says how far an exchange got by the class of error it raises: a `ConnectFailed` comes before any byte of
the request was written, every other `WireError` after. What that means for the request is transport.py's.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

__all__ = [
    "MAX_HEAD_BYTES",
    "AnswerTooLarge",
    "ConnectFailed",
    "ConnectTimeout",
    "Connection",
    "ConnectionLost",
    "MalformedAnswer",
    "Origin",
    "Pool",
    "ReadTimeout",
    "ResolveFailed",
    "TLSFailed",
    "TotalTimeout",
    "WireError",
    "encode_request",
]

MAX_HEAD_BYTES = 64 * 1024
# A server closes a keep-alive connection it finds idle, often after 5 s (Node's default); a request written
# just as it does is lost with an unknown outcome. An idle connection older than this is not written to.
_IDLE_SECONDS = 4.0
_FRAMING_NAME_LENGTHS = frozenset(map(len, (b"content-length", b"transfer-encoding", b"content-encoding")))
_ZLIB_HEADER = 8  # the compression method in the low bits of a zlib stream's first byte (RFC 1950)

Origin = tuple[str, str, int]
"""(scheme, host as sent, port): what a pooled connection can be reused for."""

Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]
"""(status, reason, raw header pairs, decoded body) of a complete answer."""


class WireError(Exception):
    """An exchange that did not end in a complete answer; `status` once the answer's head had arrived."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectFailed(WireError):
    """No connection was made (refused, unreachable, reset while connecting): nothing was written."""


class ResolveFailed(ConnectFailed):
    """The host's name resolved to no address."""


class ConnectTimeout(ConnectFailed):
    """Neither a pooled connection nor a new one within the time given."""


class TLSFailed(ConnectFailed):
    """The TLS handshake failed (a certificate not trusted, say), before any byte of the request."""


class ConnectionLost(WireError):
    """The connection was reset or closed after the request was written, before the answer was complete."""


class ReadTimeout(WireError):
    """No byte of the answer for the read timeout."""


class TotalTimeout(WireError):
    """The total time ran out after the request was written."""


class MalformedAnswer(WireError):
    """The answer is not HTTP/1.1 this client reads: a bad status line, a head too large, a bad chunk size,
    a body that does not decompress."""


class AnswerTooLarge(WireError):
    """The answer's body, decoded, is larger than `cap` bytes (it was answered: `status` is set)."""

    def __init__(self, cap: int, status: int) -> None:
        super().__init__(f"the body is larger than {cap:,} bytes", status)
        self.cap = cap


def encode_request(method: str, target: str, header_lines: list[str], body: bytes) -> bytes:
    """The request's bytes on the wire; `header_lines` end in CRLF, their names and values checked."""
    return f"{method} {target} HTTP/1.1\r\n{''.join(header_lines)}\r\n".encode() + body


class Connection(asyncio.Protocol):
    """One connection, one exchange at a time; reusable only after a complete keep-alive answer."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.lost = False  # closed, or not to be trusted with another request
        self.reusable = False
        self.idle_since = 0.0
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # Control characters in a header value are read (and escaped where shown), as aiohttp read them; a
        # bare CR, a bad header name and every framing rule stay strict.
        self._parser.set_dangerous_leniencies(lenient_headers=True)
        self._done: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._fed = 0
        self._cap = 0
        self._head_only = False
        self._read_timeout = 0.0
        self._deadline = 0.0
        self._last_read = 0.0
        self._reset_answer()

    def _reset_answer(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._head_done = False
        self._until_close = False
        # The first chunk as it came (most answers are one); more are joined as they come, never kept one by
        # one: a body in chunks of one byte would cost a Python object per byte.
        self._body: bytes | bytearray = b""
        self._size = 0
        self._decoder: zlib._Decompress | None = None
        self._deflate = False
        self._first = b""  # a deflate body's first byte, held until the second tells its kind

    # -- the exchange ---------------------------------------------------------------------------------------

    def exchange(
        self, data: bytes, *, head_only: bool, cap: int, read_timeout: float, deadline: float
    ) -> asyncio.Future[Answer]:
        """Write the request and read its answer: the future's result, or a `WireError` (never a
        `ConnectFailed`: from here on the request may have been received)."""
        assert self._transport is not None and not self.lost
        self.reusable = False
        self._reset_answer()
        self._fed = 0  # counted across interim answers too: endless 100 Continues are a head that never ends
        self._cap = cap
        self._head_only = head_only
        self._read_timeout = read_timeout
        self._deadline = deadline
        done = self._done = self._loop.create_future()
        self._transport.write(data)
        self._last_read = now = self._loop.time()
        self._timer = self._loop.call_at(min(now + read_timeout, deadline), self._check_time)
        return done

    def unsent(self) -> int:
        """Bytes of the request not yet written: an answer that came before the whole request was (a 413,
        say) leaves them to be read by the server as the start of the next one."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def close(self) -> None:
        """Close at once (what the write buffer still holds is dropped)."""
        self.lost = True
        if self._transport is not None:
            self._transport.abort()

    def _finish(self, answer: Answer | None, error: WireError | None = None) -> None:
        done = self._done
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if done is None or done.done():
            return
        if error is not None:
            done.set_exception(error)
            self.close()
        else:
            assert answer is not None
            done.set_result(answer)

    def _check_time(self) -> None:
        now = self._loop.time()
        status = self._status or None
        if now >= self._deadline:
            self._timer = None
            self._finish(None, TotalTimeout("the total timeout passed", status))
        elif now - self._last_read >= self._read_timeout:
            self._timer = None
            self._finish(None, ReadTimeout(f"no data for {self._read_timeout:g} s (read timeout)", status))
        else:
            self._timer = self._loop.call_at(
                min(self._last_read + self._read_timeout, self._deadline), self._check_time
            )

    # -- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        done = self._done
        if done is None or done.done():
            self.close()  # bytes no request asked for: the next answer could not be told from them
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.lost = True  # an upgrade this client never asks for: what follows is not HTTP/1.1
            self._complete()
        except httptools.HttpParserError as exc:
            if done.done():  # more bytes after a complete answer: the connection is not reused
                self.close()
                return
            cause = exc.__context__
            error = cause if isinstance(cause, WireError) else None
            self._finish(
                None,
                error or MalformedAnswer(f"the answer is not valid HTTP/1.1 ({exc})", self._status or None),
            )
            return
        if not self._head_done:
            self._fed += len(data)
            if self._fed > MAX_HEAD_BYTES:  # bounds what httptools holds of a head that never ends
                self._finish(None, self._head_too_large())

    def eof_received(self) -> bool:
        self.lost = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is None and self._until_close and self._head_done:  # a body read until the server closes
            self._complete()
            return
        status = self._status or None
        if exc is None:
            error = ConnectionLost("the server closed the connection", status)
        else:
            error = ConnectionLost(str(exc), status)
            error.__cause__ = exc
        self._finish(None, error)

    # -- httptools callbacks --------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        done = self._done
        if done is None or done.done():
            raise MalformedAnswer("bytes after the complete answer")

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        self._head_size += len(reason) + 15

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        status = self._status = self._parser.get_status_code()
        if self._head_size > MAX_HEAD_BYTES:
            raise self._head_too_large()
        if 100 <= status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        self._head_done = True
        length = None
        chunked = False
        for name, value in self._headers:
            if len(name) not in _FRAMING_NAME_LENGTHS:  # most headers, told apart without lower-casing
                continue
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)  # llhttp refused any length that is not digits
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"content-encoding":
                self._decoder_for(value.strip().lower())
        if length is not None and length > self._cap:
            raise AnswerTooLarge(self._cap, status)
        if self._head_only:
            self.lost = True  # llhttp would read the next answer's bytes as this one's body
            self._complete()
            return
        self._until_close = length is None and not chunked and status not in (204, 304)

    def on_body(self, chunk: bytes) -> None:
        if self._head_only:
            raise MalformedAnswer("a body after the head of an answer to HEAD")
        if self._deflate:
            chunk = self._first + chunk
            if len(chunk) < 2:  # a first byte that came alone cannot tell zlib-wrapped from raw
                self._first = chunk
                return
            self._choose_deflate(chunk)
        decoder = self._decoder
        if decoder is not None:
            chunk = self._decoded(decoder, chunk)
        self._size += len(chunk)
        if self._size > self._cap:
            raise AnswerTooLarge(self._cap, self._status)
        body = self._body
        if not body:
            self._body = chunk
        elif isinstance(body, bytearray):
            body += chunk
        else:
            self._body = bytearray(body) + chunk

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:
            self._reset_answer()
            return
        if self._head_only:
            return
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # -- the answer -----------------------------------------------------------------------------------------

    def _complete(self) -> None:
        try:
            answer = self._answer()
        except WireError as exc:
            self._finish(None, exc)
            return
        self._finish(answer)

    def _answer(self) -> Answer:
        if self._deflate and self._first:  # a whole body of one byte: no deflate stream is that short
            raise MalformedAnswer("the body does not decompress (one byte of deflate)", self._status)
        decoder = self._decoder
        if decoder is not None and not self._head_only:
            try:
                rest = decoder.flush()
            except zlib.error as exc:
                raise MalformedAnswer(f"the body does not decompress ({exc})", self._status) from exc
            self._size += len(rest)
            if self._size > self._cap:
                raise AnswerTooLarge(self._cap, self._status)
            self._body += rest
        body = self._body if isinstance(self._body, bytes) else bytes(self._body)
        return self._status, self._reason, self._headers, body

    def _decoder_for(self, encoding: bytes) -> None:
        if encoding in (b"gzip", b"x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self._deflate = True  # zlib-wrapped or raw: told by the first byte (`_decoded`)

    def _decoded(self, decoder: zlib._Decompress, chunk: bytes) -> bytes:
        # At most one byte past the cap: a small compressed body that inflates to gigabytes is never held.
        try:
            return decoder.decompress(chunk, self._cap - self._size + 1)
        except zlib.error as exc:
            raise MalformedAnswer(f"the body does not decompress ({exc})", self._status) from exc

    def _choose_deflate(self, chunk: bytes) -> None:
        """Zlib-wrapped deflate (RFC 9110) or raw deflate (some servers send it), told by the first bytes."""
        wrapped = len(chunk) >= 2 and chunk[0] & 0x0F == _ZLIB_HEADER and (chunk[0] << 8 | chunk[1]) % 31 == 0
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        self._deflate = False

    def _head_too_large(self) -> MalformedAnswer:
        return MalformedAnswer(f"its head is larger than {MAX_HEAD_BYTES:,} bytes", self._status or None)


Resolve = Callable[[str, int], Awaitable[list[str]]]
"""The addresses to connect to for (host, port), checked by the caller's guard."""


class Pool:
    """Keep-alive connections per origin, at most `limit` open at once (idle, busy or connecting)."""

    def __init__(self, limit: int, resolve: Resolve) -> None:
        # The loop its connections live on: asyncio.get_running_loop() makes a system call (getpid) each time.
        self.loop = asyncio.get_running_loop()
        self._limit = limit
        self._resolve = resolve
        self._open: set[Connection] = set()
        self._connecting = 0
        self._idle: dict[Origin, list[Connection]] = {}
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tls: ssl.SSLContext | None = None

    async def acquire(self, origin: Origin, timeout: float, deadline: float) -> Connection:
        """A connection to `origin`: an idle one the server has not closed, else a new one once the limit
        allows; `ConnectTimeout` when neither comes within `timeout` seconds, or by `deadline` (loop time)."""
        connection = self.idle(origin)
        if connection is not None:
            return connection
        try:
            async with asyncio.timeout_at(min(self.loop.time() + timeout, deadline)):
                return await self._connection(origin)
        except TimeoutError:
            raise ConnectTimeout("no connection within the connect timeout") from None

    def release(self, connection: Connection) -> None:
        """Keep `connection` for its origin's next request when its answer allows, else close it."""
        if connection.lost or not connection.reusable or connection.unsent():
            self.discard(connection)
            return
        connection.idle_since = self.loop.time()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._wake()

    def discard(self, connection: Connection) -> None:
        connection.close()
        self._open.discard(connection)
        self._wake()

    def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    def idle(self, origin: Origin) -> Connection | None:
        """An idle connection to `origin` the server has not closed, taken from the pool, if there is one."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            connection = idle.pop()
            if not connection.lost and now - connection.idle_since < _IDLE_SECONDS:
                return connection
            self.discard(connection)
        return None

    async def _connection(self, origin: Origin) -> Connection:
        while True:
            connection = self.idle(origin)
            if connection is not None:
                return connection
            if len(self._open) + self._connecting < self._limit:
                return await self._connect(origin)
            if not self._close_an_idle_one():
                await self._wait()

    def _close_an_idle_one(self) -> bool:
        """Make room for another origin's connection: close the oldest idle connection."""
        idle = [c for connections in self._idle.values() for c in connections]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        self._idle[oldest.origin].remove(oldest)
        self.discard(oldest)
        return True

    async def _wait(self) -> None:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, but leaving: the next waiter gets the turn
            else:
                self._waiters.remove(waiter)
            raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, origin: Origin) -> Connection:
        self._connecting += 1
        try:
            connection = await self._open_connection(origin)
        except BaseException:
            self._connecting -= 1
            self._wake()  # the place it would have taken is free
            raise
        self._connecting -= 1
        self._open.add(connection)
        return connection

    async def _open_connection(self, origin: Origin) -> Connection:
        scheme, host, port = origin
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise ResolveFailed(str(exc)) from exc
        if not addresses:
            raise ResolveFailed("no address")
        tls = self._tls_context() if scheme == "https" else None
        loop = self.loop
        failure: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    lambda: Connection(origin),
                    address,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
                return connection
            except ssl.SSLError as exc:
                raise TLSFailed(getattr(exc, "verify_message", None) or exc.reason or str(exc)) from exc
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise ConnectFailed(str(failure)) from failure

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
