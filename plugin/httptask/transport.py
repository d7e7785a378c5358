"""Sending one request through our HTTP/1.1 client (`http1`): timeouts (connect, read, total), a response
size cap, same-host redirects only, the optional SSRF guard as the resolver, gzip and deflate decoded, and
errors translated at this boundary into an exact outcome. The only module the rest of httptask sends through.

A client of our own: at concurrency 64 on uvloop, raw aiohttp spends about 110 µs of CPU per request and this
one about 30 with every check above (bench/sender.py).
"""

from __future__ import annotations

import base64
import functools
import os
import re
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from . import __version__, http1
from .errors import AnswerRefused, NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from .messages import HttpRequest, HttpResponse, printable
from .netguard import DestinationPolicy, GuardedResolver, ResolveFunction, check_spelling
from .outcome import Outcome
from .tasks import CONNECTION_TIMEOUT_SECONDS, MAX_RESPONSE_BYTES, READ_TIMEOUT_SECONDS

__all__ = [
    "WIRE_OUTCOMES",
    "Sender",
    "Timeouts",
    "check_url",
    "classify",
    "origin",
    "translate",
    "wire_url",
]

_REDIRECTS = (301, 302, 303, 307, 308)
_CHECKED_KEPT = 1024
_MAX_REDIRECTS = 5
# Characters that cannot stand in a URL on the wire as they are (non-ASCII, space, controls, `"<>\^`{|}`),
# and a `%` that starts no escape; a URL without any is sent byte for byte.
_UNSAFE = re.compile(r'[^\x21-\x7e]|["<>\\^`{|}]|%(?![0-9A-Fa-f]{2})')
# Every character `_UNSAFE` can match at: one character class, which is searched several times faster.
_SUSPECT = re.compile(r"[^\x21\x23\x24\x26-\x3b\x3d\x3f-\x5b\x5d\x5f\x61-\x7a\x7e]")
# What would split a request in a header's name or value.
_BREAK = re.compile("[\r\n\0]")
# A header name or a method: an HTTP token (RFC 9110, 5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A URL as `wire_url` gives it: scheme and authority, then the rest (path, query, fragment).
_AUTHORITY = re.compile(r"[^:/?#]+://[^/?#]*")
_NO_BODY = ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE")
_FRAMING = frozenset(("content-length", "transfer-encoding", "host"))
# Sent unless the request has its own.
_DEFAULTS = (
    ("accept", "Accept: */*\r\n"),
    ("accept-encoding", "Accept-Encoding: gzip, deflate\r\n"),
    ("user-agent", f"User-Agent: httptask/{__version__}\r\n"),
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect (waiting for a pooled connection included), for each read, and for it all."""

    connect: float = CONNECTION_TIMEOUT_SECONDS
    read: float = READ_TIMEOUT_SECONDS
    total: float = 300.0


@dataclass(frozen=True)
class _Destination:
    """Where a URL's scheme and authority send a request: the pool's origin, the Host header, and the Basic
    credentials of a URL's user info (as aiohttp sent them)."""

    origin: http1.Origin
    host_header: str
    authorization: str | None


class Sender:
    """One shared connection pool; `send` makes a single attempt (retries live in `retry`)."""

    def __init__(
        self,
        *,
        policy: DestinationPolicy | None = None,
        max_connections: int = 100,
        resolve: ResolveFunction | None = None,
    ) -> None:
        self._policy = policy
        self._max_connections = max_connections
        self._resolve = resolve
        self._pool: http1.Pool | None = None
        # The origins (scheme and authority) of URLs `check_url` let through: it reads
        # nothing else of a URL, so every request of a run to the same origin need not be checked again.
        self._checked: set[str | tuple[str, str]] = set()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def send(
        self,
        request: HttpRequest,
        *,
        timeouts: Timeouts = Timeouts(),
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        follow_redirects: bool = False,
    ) -> HttpResponse:
        pool = self._pool
        if pool is None:
            # Proxies from the environment are never read: they would bypass the guard's view of the address.
            resolver = GuardedResolver(self._policy, self._resolve)
            pool = self._pool = http1.Pool(self._max_connections, resolver.addresses)
        started = pool.loop.time()
        deadline = started + timeouts.total
        current = request
        for _ in range(_MAX_REDIRECTS + 1):
            response = await self._send_once(pool, current, timeouts, max_response_bytes, started, deadline)
            if not follow_redirects or response.status not in _REDIRECTS or not response.header("location"):
                return response
            current = _redirected(current, response)
        raise AnswerRefused(
            f"Stopped after {_MAX_REDIRECTS} redirects from {request.url}.", status=response.status
        )

    async def _send_once(
        self,
        pool: http1.Pool,
        request: HttpRequest,
        timeouts: Timeouts,
        cap: int,
        started: float,
        deadline: float,
    ) -> HttpResponse:
        destination, target = self._where(request.url)
        data = _encoded(request, destination, target)
        connection = pool.idle(destination.origin)
        try:
            if connection is None:
                connection = await pool.acquire(destination.origin, timeouts.connect, deadline)
            # From here on, bytes of the request may reach the server.
            status, reason, headers, content = await connection.exchange(
                data,
                head_only=request.method == "HEAD",
                cap=cap,
                read_timeout=timeouts.read,
                deadline=deadline,
            )
        except BaseException as exc:
            if connection is not None:
                pool.discard(connection)  # cancelled or failed mid-exchange: never reused
            if isinstance(exc, http1.WireError | OSError):
                raise translate(exc, request, timeouts) from exc
            raise
        pool.release(connection)
        return HttpResponse(
            status=status,
            headers=tuple(
                [
                    (
                        name.decode("utf-8", "surrogateescape").lower(),
                        value.decode("utf-8", "surrogateescape"),
                    )
                    for name, value in headers
                ]
            ),
            content=content,
            elapsed_ms=round((pool.loop.time() - started) * 1000, 2),
            url=request.url,
            reason=_reason_phrase(reason),
        )

    def _where(self, url: str) -> tuple[_Destination, str]:
        """Where `url` goes and its request target, once `check_url` with this sender's policy let its origin
        through (checked once per origin: it reads nothing else of a URL)."""
        wire = wire_url(url)
        # A URL sent as it is: its scheme and authority, as urlsplit would read them, are what precedes the
        # first '/', '?' or '#' after '://'. Anything else is read by urlsplit itself.
        found = _AUTHORITY.match(wire) if wire is url else None
        key: str | tuple[str, str]
        if found is not None:
            key = found.group()
        else:
            try:
                parts = urlsplit(url)
            except ValueError:  # check_url says why
                check_url(url, self._policy)
                raise
            key = (parts.scheme, parts.netloc)
        if key not in self._checked:
            check_url(url, self._policy)
            if len(self._checked) >= _CHECKED_KEPT:  # a long-lived editor reaches many origins
                self._checked.clear()
            self._checked.add(key)
        found = found or _AUTHORITY.match(wire)
        assert found is not None  # check_url let through only http(s) URLs with a host
        target = wire[found.end() :]
        if "#" in target:
            target = target.partition("#")[0]
        return _destination(found.group()), target if target.startswith("/") else "/" + target


@functools.lru_cache(maxsize=64)
def _reason_phrase(reason: bytes) -> str:
    return _shown(reason.decode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=256)
def _name(name: str) -> str:
    """A header name or method in lower case, once it is checked to be an HTTP token."""
    if not _TOKEN.fullmatch(name):
        raise NotSent(
            f"Not sent: {name!r} is not a valid HTTP header name or method "
            "(letters, digits and !#$%&'*+-.^_`|~ only).",
            retryable=False,
        )
    return name.lower()


def _encoded(request: HttpRequest, destination: _Destination, target: str) -> bytes:
    """The request's bytes; `NotSent` for a method or header that cannot be sent as it is (a line break would
    split the request), before any connection."""
    method = request.method
    _name(method)
    lines = [f"Host: {destination.host_header}\r\n"]
    given = set()
    for name, value in request.headers:
        lowered = _name(name)
        if _BREAK.search(value):
            raise NotSent(
                f"Not sent: the header {name!r} holds a line break or NUL, which would split the request.",
                retryable=False,
            )
        if lowered in _FRAMING:
            continue  # the client frames the body itself; the Host header names the URL's host
        given.add(lowered)
        lines.append(f"{name}: {value}\r\n")
    for lowered, line in _DEFAULTS:
        if lowered not in given:
            lines.append(line)
    if destination.authorization is not None and "authorization" not in given:
        lines.append(f"Authorization: {destination.authorization}\r\n")
    body = request.content
    if body or method not in _NO_BODY:
        lines.append(f"Content-Length: {len(body)}\r\n")
    try:
        return http1.encode_request(method, target, lines, body)
    except UnicodeEncodeError:
        raise NotSent(
            "Not sent: a header holds characters that cannot be encoded as UTF-8.", retryable=False
        ) from None


@functools.lru_cache(maxsize=256)
def _destination(authority: str) -> _Destination:
    parts = urlsplit(authority)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = (
        shown if parts.port is None or port == (443 if scheme == "https" else 80) else f"{shown}:{port}"
    )
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return _Destination((scheme, host, port), host_header, authorization)


def _shown(reason: str) -> str:
    """A reason phrase as it may be shown: its control characters escaped (a server's escape sequences)."""
    return reason if reason.isprintable() else printable(reason)


def wire_url(url: str) -> str:
    """`url` as it goes on the wire: escapes already in it kept byte for byte (`%2F` stays a slash inside a
    segment), anything that cannot stand in a URL percent-encoded as UTF-8, and a non-ASCII host in IDNA."""
    if not _unsafe(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc
    if not host.isascii():
        netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
    encoded = urlunsplit(
        (
            parts.scheme,
            netloc,
            _quote(parts.path),
            _quote(parts.query),
            _quote(parts.fragment),
        )
    )
    return encoded


def _unsafe(url: str) -> bool:
    suspect = _SUSPECT.search(url)
    return suspect is not None and _UNSAFE.search(url, suspect.start()) is not None


def _quote(part: str) -> str:
    return _UNSAFE.sub(lambda m: quote(m.group(0), safe=""), part)


def check_url(url: str, policy: DestinationPolicy | None = None) -> None:
    """Refuse, before any connection, a URL that cannot be sent (not http(s), no host, a port out of range, a
    host not written the usual way) or that `policy` refuses."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NotSent(f"Not sent: {url!r} is not a valid URL ({_reason(exc)}).", retryable=False) from None
    if policy is not None:
        policy.check_url(url)
    if parts.scheme not in ("http", "https"):
        raise NotSent(f"Not sent: {url!r} is not an http or https URL.", retryable=False)
    if not parts.hostname:
        raise NotSent(f"Not sent: {url!r} has no host.", retryable=False)
    check_spelling(parts.hostname)
    if port == 0:
        raise NotSent(f"Not sent: {url!r} has the port 0; give a port from 1 to 65535.", retryable=False)


Classification = tuple[Outcome, bool]
"""What an error says about the request: its outcome, and whether the same request may do better next time."""

_NOT_SENT, _NOT_SENT_FOR_GOOD, _UNKNOWN, _ANSWERED = (
    (Outcome.NOT_SENT, True),
    (Outcome.NOT_SENT, False),
    (Outcome.UNKNOWN, True),
    (Outcome.ANSWERED, False),
)

# Every error class of the HTTP/1.1 client, by what it says about the request; an error is looked up by its
# class, then by each base class in turn. tests/test_transport_outcomes.py fails when one is not listed here.
WIRE_OUTCOMES: dict[type[BaseException], Classification] = {
    http1.WireError: _UNKNOWN,
    http1.ConnectFailed: _NOT_SENT,  # refused, unreachable: the connection was never made
    http1.ResolveFailed: _NOT_SENT,
    http1.ConnectTimeout: _NOT_SENT,  # connecting, or waiting for a pooled connection
    http1.TLSFailed: _NOT_SENT_FOR_GOOD,  # the TLS handshake comes before any byte of the request
    http1.ConnectionLost: _UNKNOWN,  # reset or closed after the write
    http1.ReadTimeout: _UNKNOWN,  # the request was written, the answer is late
    http1.TotalTimeout: _UNKNOWN,
    http1.MalformedAnswer: _UNKNOWN,  # the server answered something, but not HTTP this client reads
    http1.AnswerTooLarge: _ANSWERED,  # refused by the cap: the head said what the server did
}


def classify(exc: BaseException) -> Classification:
    """The outcome of an attempt that raised `exc`, and whether trying again may do better."""
    return _judge(exc)[1]


def _judge(exc: BaseException) -> tuple[BaseException, Classification]:
    """The client's error closest to the socket, and what it says; anything else may have been sent."""
    for error in reversed(_causes(exc)):
        kind = next((k for k in type(error).__mro__ if k in WIRE_OUTCOMES), None)
        if kind is not None:
            return error, WIRE_OUTCOMES[kind]
    return exc, _UNKNOWN


def translate(exc: BaseException, request: HttpRequest, timeouts: Timeouts) -> SendError:
    """The `SendError` for an attempt that raised `exc`."""
    refused = next((e for e in _causes(exc) if isinstance(e, NotSent)), None)
    if refused is not None:
        return refused
    error, (outcome, retryable) = _judge(exc)
    where = origin(request.url)
    status = error.status if isinstance(error, http1.WireError) else None
    if isinstance(error, http1.AnswerTooLarge):
        return _too_large(request, error.cap, error.status or 0)
    if outcome is Outcome.NOT_SENT:
        if isinstance(error, http1.ResolveFailed):
            message = (
                f"Could not resolve {urlsplit(request.url).hostname} ({_reason(error)}); nothing was sent."
            )
        elif isinstance(error, http1.ConnectTimeout):
            seconds, which = min((timeouts.connect, "connect"), (timeouts.total, "total"))
            message = (
                f"Could not connect to {where} within {seconds:g} s ({which} timeout); nothing was sent."
            )
        else:
            message = f"Could not connect to {where}: {_reason(error)}; nothing was sent."
        return NotSent(message, retryable=retryable)
    late = isinstance(error, http1.TotalTimeout)
    if isinstance(error, http1.MalformedAnswer):
        answer = f"The answer from {where}" + (f" (status {status})" if status is not None else "")
        return OutcomeUnknown(
            f"{answer} could not be read: {_reason(error)}; the server received the request and may have "
            "acted on it.",
            status=status,
        )
    if status is not None:
        why = f"the total timeout of {timeouts.total:g} s passed" if late else _reason(error)
        return OutcomeUnknown(
            f"The answer from {where} (status {status}) was cut off: {why}; the server received "
            "the request and may have acted on it.",
            status=status,
        )
    if late:
        return OutcomeUnknown(
            f"No answer from {where} within {timeouts.total:g} s (total timeout); "
            "the server may have received the request."
        )
    if isinstance(error, http1.ReadTimeout):
        return OutcomeUnknown(
            f"No answer from {where} within {timeouts.read:g} s (read timeout); "
            "the server may have received the request."
        )
    return OutcomeUnknown(
        f"The connection to {where} failed after the request was sent: {_reason(error)}; "
        "the server may have received it."
    )


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _redirected(request: HttpRequest, response: HttpResponse) -> HttpRequest:
    target = urljoin(request.url, response.header("location") or "")
    old, new = urlsplit(request.url), urlsplit(target)
    if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
        raise AnswerRefused(
            f"Refused a redirect from {origin(request.url)} to another host ({origin(target)}); "
            "only same-host redirects are followed.",
            status=response.status,
        )
    if response.status == 303 or (response.status in (301, 302) and request.method == "POST"):
        headers = tuple(
            (k, v) for k, v in request.headers if k.lower() not in ("content-type", "content-length")
        )
        return HttpRequest("GET", target, headers, b"")
    return HttpRequest(request.method, target, request.headers, request.content)


def _too_large(request: HttpRequest, cap: int, status: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"The response from {origin(request.url)} is larger than the cap of {cap:,} bytes; "
        "raise maxResponseBytes on the task if it is expected.",
        status=status,
    )


def origin(url: str) -> str:
    """scheme://host:port of `url`, without any user or password."""
    # Read from the scheme and authority alone where urlsplit reads them alike (as in `Sender._where`), so
    # that every item of a run to one origin is read once.
    found = None if _unsafe(url) else _AUTHORITY.match(url)
    return _origin(found.group() if found is not None else url)


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _reason(exc: BaseException) -> str:
    """The OS's words where there are some ('Connection refused'), else the error's own text."""
    os_error = exc.__cause__ if isinstance(exc, http1.WireError) else exc
    if isinstance(os_error, OSError) and not isinstance(os_error, ssl.SSLError):
        # asyncio words a refused connection "Connect call failed (...)": the errno says it better.
        errno = os_error.errno
        if isinstance(errno, int) and errno > 0 and not isinstance(os_error, socket.gaierror):
            return os.strerror(errno)
        if os_error.strerror or os_error.args:
            return str(os_error.strerror or os_error.args[0]).rstrip(".")
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
