"""The HTTP/1.1 client under a hostile server on 127.0.0.1: each answer a server may send (malformed, too
large, cut off, dripped, pipelined, interim, compressed) gives the exact outcome and a clear error, never a
hang, a traceback or a blow-up; the pool keeps its limit, drops connections the server closed before writing
to them, and never reuses one that was cancelled or not read to the end. On the loop the engines use."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from httptask import eventloop
from httptask.errors import NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from httptask.messages import HttpRequest, HttpResponse
from httptask.outcome import Outcome
from httptask.transport import Sender, Timeouts

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
QUICK = Timeouts(connect=2.0, read=1.0, total=5.0)
POST = ("POST", (("content-type", "application/json"),), b'{"amount":1}')


class Hostile:
    """A server on 127.0.0.1 that runs `handler` on every connection, and counts what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Hostile:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One whole request (head and Content-Length body), recorded."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answering(*answers: bytes, then: str = "keep") -> Callable[[Hostile], Handler]:
    """Each request on a connection gets the next answer, byte for byte; after the last, the connection is
    kept open (`keep`) or closed (`close`)."""

    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                await server.read_request(reader)
                writer.write(answer)
                await writer.drain()
            if then == "keep":
                await reader.read()

        return handler

    return make


def run(
    make: Callable[[Hostile], Handler],
    *requests: tuple[str, tuple[tuple[str, str], ...], bytes],
    timeouts: Timeouts = QUICK,
    cap: int = 2**20,
    pause: float = 0.0,
) -> tuple[Hostile, list[HttpResponse | SendError]]:
    """Send `requests` one after another through one Sender to a hostile server; each one's response or
    error."""

    async def main() -> tuple[Hostile, list[HttpResponse | SendError]]:
        server = Hostile(lambda r, w: handler(r, w))
        handler = make(server)
        said: list[HttpResponse | SendError] = []
        async with server, Sender() as sender:
            for method, headers, body in requests or [("GET", (), b"")]:
                try:
                    said.append(
                        await sender.send(
                            HttpRequest(method, server.url + "/r", headers, body),
                            timeouts=timeouts,
                            max_response_bytes=cap,
                        )
                    )
                except SendError as exc:
                    said.append(exc)
                await asyncio.sleep(pause)
        return server, said

    return eventloop.run(main())


def error(said: HttpResponse | SendError) -> SendError:
    assert isinstance(said, SendError), said
    return said


def answer(said: HttpResponse | SendError) -> HttpResponse:
    assert isinstance(said, HttpResponse), said
    return said


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- malformed answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "why"),
    [
        (b"HTTP/1.1 abc OK\r\n\r\n", None, "the answer is not valid HTTP/1.1 (Invalid status code)"),
        (b"SMTP ready\r\n\r\n", None, "the answer is not valid HTTP/1.1 (Expected HTTP/, RTSP/ or ICE/)"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            200,
            "the answer is not valid HTTP/1.1 (Invalid character in chunk size)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            None,
            "the answer is not valid HTTP/1.1 (Duplicate Content-Length)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            200,
            "the body does not decompress (Error -3 while decompressing data: incorrect header check)",
        ),
    ],
    ids=["status line", "not http", "chunk size", "two lengths", "bad gzip"],
)
def test_a_malformed_answer_is_unknown_with_what_was_wrong(raw: bytes, status: int | None, why: str) -> None:
    server, [said] = run(answering(raw), POST)
    failure = error(said)
    shown = f"{server.url} (status {status})" if status else server.url
    assert type(failure) is OutcomeUnknown and failure.status == status
    assert str(failure) == (
        f"The answer from {shown} could not be read: {why}; the server received the request and may have "
        "acted on it."
    )


def test_a_header_bomb_is_refused_at_the_head_cap_without_holding_it() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for n in range(100_000):  # 10 MB of headers that never end, unless the client stops reading
                writer.write(b"X-Bomb-%d: " % n + b"b" * 90 + b"\r\n")
                await writer.drain()

        return handler

    server, [said] = run(make, POST)
    assert str(error(said)) == (
        f"The answer from {server.url} could not be read: its head is larger than 65,536 bytes; the server "
        "received the request and may have acted on it."
    )


def test_one_endless_header_line_is_refused_too() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
            for _ in range(10_000):
                writer.write(b"a" * 1024)
                await writer.drain()

        return handler

    tracemalloc.start()
    try:
        _, [said] = run(make, POST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "its head is larger than 65,536 bytes" in str(error(said))
    assert peak < 8 * 2**20


# -- bodies --------------------------------------------------------------------------------------------------


def test_bytes_past_the_content_length_are_not_read_as_the_next_answer() -> None:
    # The extra bytes, and a whole pipelined answer nobody asked for, must not answer the next request.
    smuggled = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"
    server, said = run(answering(smuggled, OK, OK), POST, POST)
    assert [answer(s).content for s in said] == [b"ok", b"ok"]
    assert server.connections == 2

    server, said = run(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", OK), POST, POST)
    assert [answer(s).content for s in said] == [b"ok", b"ok"]
    assert server.connections == 2


def test_a_chunked_answer_and_interim_answers_before_it() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Id: 1\r\nX-Id: 2\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"
    )
    server, said = run(answering(raw, OK), POST, POST)
    first = answer(said[0])
    assert (first.status, first.reason, first.content) == (201, "Created", b"abcdefg")
    assert first.headers == (("transfer-encoding", "chunked"), ("x-id", "1"), ("x-id", "2"))
    assert answer(said[1]).content == b"ok" and server.connections == 1


def test_a_body_read_until_the_server_closes() -> None:
    raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    server, said = run(answering(raw, then="close"), POST, POST)
    assert answer(said[0]).content == b"all of it"
    assert answer(said[1]).content == b"all of it" and server.connections == 2


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
    ],
)
def test_answers_without_a_body(method: str, raw: bytes) -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                writer.write(raw if len(server.requests) == 1 else OK)

        return handler

    server, said = run(make, (method, (), b""), ("GET", (), b""))
    assert answer(said[0]).content == b"" and answer(said[1]).content == b"ok"
    # After HEAD the connection is not trusted with another request; after 204 and 304 it is.
    assert server.connections == (2 if method == "HEAD" else 1)


def test_connection_close_and_http_1_0_are_honoured() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server, said = run(answering(close, OK), POST, POST)
    assert [answer(s).content for s in said] == [b"ok", b"ok"] and server.connections == 2
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server, said = run(answering(old, OK), POST, POST)
    assert server.connections == 2


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, zlib.compress, lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)],
    ids=["gzip", "deflate", "raw deflate"],
)
def test_a_compressed_bomb_in_chunks_stops_at_the_cap_without_being_held(compress: Any) -> None:
    bomb = compress(b"\0" * (32 * 2**20))  # 32 MiB of zeros in about 32 KB
    encoding = b"gzip" if bomb[:2] == b"\x1f\x8b" else b"deflate"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(bomb[i : i + 8192]), bomb[i : i + 8192]) for i in range(0, len(bomb), 8192)
    )
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: "
        + encoding
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
    )
    tracemalloc.start()
    try:
        server, [said] = run(answering(raw + b"0\r\n\r\n"), POST, cap=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    failure = error(said)
    assert type(failure) is ResponseTooLarge and failure.status == 200 and failure.outcome is Outcome.ANSWERED
    assert str(failure) == (
        f"The response from {server.url} is larger than the cap of 1,048,576 bytes; "
        "raise maxResponseBytes on the task if it is expected."
    )
    assert peak < 16 * 2**20


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
            await reader.read()  # the body never comes: a client that waited for it would hang

        return handler

    _, [said] = run(make, POST, cap=1024)
    assert type(error(said)) is ResponseTooLarge


# -- cut off, slow, reset ------------------------------------------------------------------------------------


def test_a_close_after_the_head_is_unknown_with_the_status() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"
    server, [said] = run(answering(raw, then="close"), POST)
    failure = error(said)
    assert (type(failure), failure.status) == (OutcomeUnknown, 200)
    assert str(failure) == (
        f"The answer from {server.url} (status 200) was cut off: the server closed the connection; "
        "the server received the request and may have acted on it."
    )


def test_a_slow_drip_is_bounded_by_the_total_timeout() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                writer.write(bytes([byte]))  # a byte every 0.1 s: no read ever waits the read timeout
                await writer.drain()
                await asyncio.sleep(0.1)

        return handler

    server, [said] = run(make, POST, timeouts=Timeouts(connect=2, read=0.5, total=1.0))
    assert str(error(said)) == (
        f"No answer from {server.url} within 1 s (total timeout); the server may have received the request."
    )


def test_a_reset_after_half_the_request_is_unknown() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(100)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # close() resets

        return handler

    server, [said] = run(make, ("POST", (), b"x" * 2_000_000))
    failure = error(said)
    assert type(failure) is OutcomeUnknown and failure.status is None
    assert str(failure).startswith(f"The connection to {server.url} failed after the request was sent: ")


# -- the pool ------------------------------------------------------------------------------------------------


def test_a_kept_connection_the_server_closed_is_not_written_to() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(OK)  # keep-alive, then gone: a client that wrote on it would lose the request
            await writer.drain()

        return handler

    server, said = run(make, POST, POST, pause=0.2)
    assert [answer(s).content for s in said] == [b"ok", b"ok"]
    assert server.connections == 2 and len(server.requests) == 2


def test_64_at_once_through_a_pool_of_8() -> None:
    open_now = 0
    most = 0

    async def main() -> list[int]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal open_now, most
            open_now += 1
            most = max(most, open_now)
            try:
                while True:
                    await server.read_request(reader)
                    await asyncio.sleep(0.001)
                    writer.write(OK)
            finally:
                open_now -= 1

        server = Hostile(handler)
        async with server, Sender(max_connections=8) as sender:
            request = HttpRequest("POST", server.url + "/r", (), b"{}")
            said = await asyncio.gather(*(sender.send(request, timeouts=QUICK) for _ in range(640)))
        return [r.status for r in said]

    assert eventloop.run(main()) == [200] * 640
    assert most <= 8


def test_a_pool_wait_past_the_connect_timeout_is_not_sent() -> None:
    async def main() -> tuple[SendError, int, str]:
        release = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await release.wait()
            writer.write(OK)
            await reader.read()

        server = Hostile(handler)
        async with server, Sender(max_connections=1) as sender:
            first = asyncio.ensure_future(sender.send(HttpRequest("POST", server.url + "/a", (), b"{}")))
            await asyncio.sleep(0.2)
            with pytest.raises(NotSent) as caught:
                await sender.send(
                    HttpRequest("POST", server.url + "/b", (), b"{}"), timeouts=Timeouts(connect=0.3, read=5)
                )
            release.set()
            assert (await first).status == 200
        return caught.value, len(server.requests), server.url

    refused, arrived, url = eventloop.run(main())
    assert (refused.outcome, refused.retryable, arrived) == (Outcome.NOT_SENT, True, 1)
    assert str(refused) == f"Could not connect to {url} within 0.3 s (connect timeout); nothing was sent."


def test_a_cancelled_request_closes_its_connection_and_frees_its_place() -> None:
    async def main() -> tuple[int, int, bytes]:
        gone = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            if server.connections == 1:
                await reader.read()  # the cancelled client's side closes: the read ends
                gone.set()
                return
            writer.write(OK)
            await reader.read()

        server = Hostile(handler)
        async with server, Sender(max_connections=1) as sender:
            task = asyncio.ensure_future(sender.send(HttpRequest("POST", server.url + "/a", (), b"{}")))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(gone.wait(), 2)
            # The one place in the pool is free again, and the next request does not get the first's answer.
            response = await sender.send(HttpRequest("POST", server.url + "/b", (), b"{}"), timeouts=QUICK)
        return server.connections, response.status, response.content

    assert eventloop.run(main()) == (2, 200, b"ok")


# -- what is sent --------------------------------------------------------------------------------------------


def test_the_request_on_the_wire() -> None:
    server, _ = run(
        answering(OK, OK, OK),
        ("POST", (("Content-Type", "text/csv"), ("X-Note", "é"), ("Content-Length", "999")), b"a,b"),
        ("GET", (("Accept-Encoding", "identity"), ("Accept", "text/csv")), b""),
        ("DELETE", (), b""),
    )
    post, get, delete = server.requests
    port = server.url.rsplit(":", 1)[1]
    assert (
        post
        == (
            f"POST /r HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/csv\r\nX-Note: é\r\n"
            "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nUser-Agent: httptask/0.1.0\r\n"
            "Content-Length: 3\r\n\r\na,b"
        ).encode()
    )
    assert (
        get
        == (
            f"GET /r HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\nAccept: text/csv\r\n"
            "User-Agent: httptask/0.1.0\r\n\r\n"
        ).encode()
    )
    assert delete.startswith(b"DELETE /r HTTP/1.1\r\n") and b"Content-Length" not in delete


def test_user_info_in_a_url_is_sent_as_basic_credentials_and_never_shown() -> None:
    async def main() -> tuple[bytes, str]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.transport.abort()

        server = Hostile(handler)
        async with server, Sender() as sender:
            url = server.url.replace("://", "://us%40er:s3cret-canary@") + "/r"
            with pytest.raises(OutcomeUnknown) as caught:
                await sender.send(HttpRequest("GET", url), timeouts=QUICK)
        return server.requests[0], str(caught.value)

    request, message = eventloop.run(main())
    assert b"\r\nAuthorization: Basic dXNAZXI6czNjcmV0LWNhbmFyeQ==\r\n" in request  # us@er:s3cret-canary
    assert "s3cret" not in message and "us%40er" not in message


@pytest.mark.parametrize(
    ("method", "headers", "message"),
    [
        (
            "POST",
            (("X Bad", "1"),),
            "Not sent: 'X Bad' is not a valid HTTP header name or method (letters, digits and "
            "!#$%&'*+-.^_`|~ only).",
        ),
        (
            "PO ST",
            (),
            "Not sent: 'PO ST' is not a valid HTTP header name or method (letters, digits and "
            "!#$%&'*+-.^_`|~ only).",
        ),
        (
            "POST",
            (("x-note", "a\0b"),),
            "Not sent: the header 'x-note' holds a line break or NUL, which would split the request.",
        ),
    ],
)
def test_what_cannot_be_sent_is_refused_before_connecting(
    method: str, headers: tuple[tuple[str, str], ...], message: str
) -> None:
    server, [said] = run(answering(OK), (method, headers, b"{}"))
    failure = error(said)
    assert (type(failure), str(failure), failure.retryable) == (NotSent, message, False)
    assert server.connections == 0


def test_an_untrusted_certificate_is_not_sent_for_good(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def main() -> tuple[SendError, int, str]:
        received = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal received
            if await reader.read(1):
                received += 1

        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with server, Sender() as sender:
            with pytest.raises(NotSent) as caught:
                await sender.send(HttpRequest("POST", url + "/r", (), b"{}"), timeouts=QUICK)
        return caught.value, received, url

    refused, received, url = eventloop.run(main())
    assert (refused.retryable, received) == (False, 0)
    assert str(refused) == f"Could not connect to {url}: self-signed certificate; nothing was sent."


def test_a_connect_that_never_completes_is_not_sent() -> None:
    # A listener that never accepts, its backlog full: the kernel drops the next connection's SYN.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)

        async def main() -> NotSent:
            async with Sender() as sender:
                with pytest.raises(NotSent) as caught:
                    await sender.send(
                        HttpRequest("POST", f"http://127.0.0.1:{port}/r", (), b"{}"),
                        timeouts=Timeouts(connect=0.3, read=5),
                    )
            return caught.value

        refused = eventloop.run(main())
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert (refused.outcome, refused.retryable) == (Outcome.NOT_SENT, True)
    assert str(refused) == (
        f"Could not connect to http://127.0.0.1:{port} within 0.3 s (connect timeout); nothing was sent."
    )


def test_proxies_from_the_environment_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: a client using it would fail
    server, [said] = run(answering(OK), POST)
    assert answer(said).content == b"ok" and len(server.requests) == 1


def test_endless_interim_answers_are_a_head_that_never_ends() -> None:
    def make(server: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            while True:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 100)
                await writer.drain()

        return handler

    _, [said] = run(make, POST)
    assert "its head is larger than 65,536 bytes" in str(error(said))


def test_control_characters_in_a_header_value_are_read_but_a_bare_cr_is_not() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Note: a\x1bb\x00c\r\nContent-Length: 2\r\n\r\nok"
    _, [said] = run(answering(raw), POST)
    assert answer(said).header("x-note") == "a\x1bb\x00c"
    split = b"HTTP/1.1 200 OK\r\nX-Note: a\rContent-Length: 0\r\nContent-Length: 2\r\n\r\nok"
    _, [said] = run(answering(split), POST)
    assert "Missing expected LF after header value" in str(error(said))


def test_aclose_closes_the_kept_connections() -> None:
    async def main() -> bool:
        closed = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(OK)
            await reader.read()  # ends when the client closes its side
            closed.set()

        server = Hostile(handler)
        async with server:
            sender = Sender()
            assert (await sender.send(HttpRequest("GET", server.url + "/r"), timeouts=QUICK)).status == 200
            await asyncio.sleep(0.1)
            was_closed = closed.is_set()
            await sender.aclose()
            await asyncio.wait_for(closed.wait(), 2)
        return was_closed

    assert eventloop.run(main()) is False


def test_a_tls_handshake_that_never_completes_is_a_connect_timeout() -> None:
    async def main() -> tuple[NotSent, str, int]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # takes the client's hello and never answers it

        server = Hostile(handler)
        async with server, Sender() as sender:
            url = server.url.replace("http://", "https://")
            with pytest.raises(NotSent) as caught:
                await sender.send(HttpRequest("POST", url + "/r", (), b"{}"), timeouts=Timeouts(connect=0.3))
        return caught.value, url, server.connections

    refused, url, connections = eventloop.run(main())
    assert (refused.retryable, connections) == (True, 1)
    assert str(refused) == f"Could not connect to {url} within 0.3 s (connect timeout); nothing was sent."


def test_a_body_in_one_byte_chunks_is_held_as_its_bytes_only() -> None:
    # Half a million chunks of one byte: held chunk by chunk, each would cost a Python object (17 MB).
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 500_000 + b"0\r\n\r\n"
    tracemalloc.start()
    try:
        _, [said] = run(answering(raw), POST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer(said).content == b"a" * 500_000
    assert peak < 8 * 2**20
