"""Sending one request through aiohttp's connection pool: timeouts (connect, read, total), a response size
cap, same-host redirects only, the optional SSRF guard as the resolver, gzip and deflate decoded, and errors
translated at this boundary. The only module that knows the HTTP client library.

aiohttp is used directly: on this kind of machine httpx's own async pool sends about 190 small requests/s at
concurrency 64 against several thousand through aiohttp, and httpx's models over aiohttp cost a third of an
engine's time per item (see bench/).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from .errors import AnswerRefused, NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from .messages import HttpRequest, HttpResponse, printable
from .netguard import DestinationPolicy, GuardedResolver, ResolveFunction, check_spelling
from .outcome import Outcome
from .tasks import CONNECTION_TIMEOUT_SECONDS, MAX_RESPONSE_BYTES, READ_TIMEOUT_SECONDS

__all__ = [
    "AIOHTTP_OUTCOMES",
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
# What would split a request in a header's name or value.
_BREAK = re.compile("[\r\n\0]")


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect (waiting for a pooled connection included), for each read, and for it all."""

    connect: float = CONNECTION_TIMEOUT_SECONDS
    read: float = READ_TIMEOUT_SECONDS
    total: float = 300.0


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
        self._session: aiohttp.ClientSession | None = None
        # The (scheme, netloc) pairs, as urlsplit reads them, of URLs `check_url` let through: it reads
        # nothing else of a URL, so every request of a run to the same origin need not be checked again.
        self._checked: set[tuple[str, str]] = set()

    def _make_session(self) -> aiohttp.ClientSession:
        resolver = GuardedResolver(self._policy, self._resolve) if self._policy is not None else None
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, resolver=resolver, limit_per_host=self._max_connections
        )
        # Proxies from the environment would bypass the guard's view of the destination: ignore them. A body
        # goes out with the content type the request names, or none (never aiohttp's octet-stream guess).
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Content-Type",),
        )

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        request: HttpRequest,
        *,
        timeouts: Timeouts = Timeouts(),
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        follow_redirects: bool = False,
    ) -> HttpResponse:
        if self._session is None:
            self._session = self._make_session()
        started = time.perf_counter()
        current = request
        for _ in range(_MAX_REDIRECTS + 1):
            response = await self._send_once(current, timeouts, max_response_bytes, started)
            if not follow_redirects or response.status not in _REDIRECTS or not response.header("location"):
                return response
            current = _redirected(current, response)
        raise AnswerRefused(
            f"Stopped after {_MAX_REDIRECTS} redirects from {request.url}.", status=response.status
        )

    async def _send_once(
        self, request: HttpRequest, timeouts: Timeouts, cap: int, started: float
    ) -> HttpResponse:
        assert self._session is not None
        self._check_url(request.url)
        _check_headers(request)
        status: int | None = None
        try:
            async with self._session.request(
                request.method,
                wire_url(request.url),
                headers=request.headers,
                data=request.content or None,
                timeout=_client_timeout(timeouts),
                allow_redirects=False,
            ) as response:
                status = response.status
                content = await _read_capped(response, request, cap)
                return HttpResponse(
                    status=status,
                    headers=tuple([(name.lower(), value) for name, value in response.headers.items()]),
                    content=content,
                    elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                    url=request.url,
                    reason=_shown(response.reason or ""),
                )
        except _TRANSPORT_ERRORS as exc:
            raise translate(exc, request, timeouts, status) from exc

    def _check_url(self, url: str) -> None:
        """`check_url` with this sender's policy, once per origin."""
        try:
            parts = urlsplit(url)
        except ValueError:  # check_url says why
            check_url(url, self._policy)
            raise
        where = (parts.scheme, parts.netloc)
        if where not in self._checked:
            check_url(url, self._policy)
            if len(self._checked) >= _CHECKED_KEPT:  # a long-lived editor reaches many origins
                self._checked.clear()
            self._checked.add(where)


async def _read_capped(response: aiohttp.ClientResponse, request: HttpRequest, cap: int) -> bytes:
    """The body, decoded (gzip, deflate), refused past `cap` bytes before more than a chunk is held."""
    declared = response.content_length
    if declared is not None and declared > cap:
        raise _too_large(request, cap, response.status)
    if declared is not None and "content-encoding" not in response.headers:
        return await response.read()
    # Chunked, or compressed: only the decoded size counts, so it is counted as it comes.
    chunks = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise _too_large(request, cap, response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _shown(reason: str) -> str:
    """A reason phrase as it may be shown: its control characters escaped (a server's escape sequences)."""
    return reason if reason.isprintable() else printable(reason)


@functools.lru_cache(maxsize=64)
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # `connect` covers the wait for a pooled connection and the connection: either way nothing was sent.
    return aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read)


def wire_url(url: str) -> URL:
    """`url` as it goes on the wire: escapes already in it kept byte for byte (`%2F` stays a slash inside a
    segment), anything that cannot stand in a URL percent-encoded as UTF-8, and a non-ASCII host in IDNA."""
    if _UNSAFE.search(url) is None:
        return URL(url, encoded=True)
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
    return URL(encoded, encoded=True)


def _quote(part: str) -> str:
    return _UNSAFE.sub(lambda m: quote(m.group(0), safe=""), part)


def _check_headers(request: HttpRequest) -> None:
    """A header with CR, LF or NUL would split the request (aiohttp refuses it after connecting): refuse it
    here, before anything is sent."""
    if _BREAK.search("".join([name + value for name, value in request.headers])) is None:
        return
    for name, value in request.headers:
        if _BREAK.search(name) or _BREAK.search(value):
            raise NotSent(
                f"Not sent: the header {name!r} holds a line break or NUL, which would split the request.",
                retryable=False,
            )


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

_NOT_SENT, _NOT_SENT_FOR_GOOD, _UNKNOWN = (
    (Outcome.NOT_SENT, True),
    (Outcome.NOT_SENT, False),
    (Outcome.UNKNOWN, True),
)

# Every aiohttp error class, by what it says about the request; an error is looked up by its class, then by
# each base class in turn. tests/test_transport_outcomes.py fails when aiohttp adds a class not listed here.
AIOHTTP_OUTCOMES: dict[type[BaseException], Classification] = {
    aiohttp.ClientError: _UNKNOWN,
    aiohttp.ClientConnectionError: _UNKNOWN,
    aiohttp.ClientConnectionResetError: _UNKNOWN,  # a write to a closing connection: part may have gone out
    aiohttp.ClientOSError: _UNKNOWN,  # an OS error on an open connection: a reset after the write
    aiohttp.ClientConnectorError: _NOT_SENT,  # the connection was never made
    aiohttp.ClientConnectorDNSError: _NOT_SENT,
    aiohttp.ClientProxyConnectionError: _NOT_SENT,
    aiohttp.client_exceptions.UnixClientConnectorError: _NOT_SENT,
    aiohttp.ClientSSLError: _NOT_SENT_FOR_GOOD,  # the TLS handshake comes before any byte of the request
    aiohttp.ClientConnectorSSLError: _NOT_SENT_FOR_GOOD,
    aiohttp.ClientConnectorCertificateError: _NOT_SENT_FOR_GOOD,
    aiohttp.ServerFingerprintMismatch: _NOT_SENT_FOR_GOOD,
    aiohttp.ServerConnectionError: _UNKNOWN,
    aiohttp.ServerDisconnectedError: _UNKNOWN,
    aiohttp.ServerTimeoutError: _UNKNOWN,
    aiohttp.ConnectionTimeoutError: _NOT_SENT,  # sock_connect, or waiting for a pooled connection
    aiohttp.SocketTimeoutError: _UNKNOWN,  # sock_read: the request was written, the answer is late
    aiohttp.ClientPayloadError: _UNKNOWN,  # the answer's body was cut off
    aiohttp.client_exceptions.UploadAbortedError: _UNKNOWN,
    aiohttp.ClientResponseError: _UNKNOWN,  # raise_for_status, json() and redirects are not used here
    aiohttp.ContentTypeError: _UNKNOWN,
    aiohttp.WSServerHandshakeError: _UNKNOWN,
    aiohttp.TooManyRedirects: _UNKNOWN,
    aiohttp.ClientHttpProxyError: _NOT_SENT,  # the proxy refused the tunnel; the destination saw nothing
    aiohttp.RedirectClientError: _UNKNOWN,
    aiohttp.InvalidURL: _NOT_SENT_FOR_GOOD,
    aiohttp.InvalidUrlClientError: _NOT_SENT_FOR_GOOD,
    aiohttp.InvalidUrlRedirectClientError: _NOT_SENT_FOR_GOOD,
    aiohttp.NonHttpUrlClientError: _NOT_SENT_FOR_GOOD,
    aiohttp.NonHttpUrlRedirectClientError: _NOT_SENT_FOR_GOOD,
}

_TRANSPORT_ERRORS = (TimeoutError, OSError, aiohttp.ClientError)


def classify(exc: BaseException) -> Classification:
    """The outcome of an attempt that raised `exc`, and whether trying again may do better."""
    return _judge(exc)[1]


def _judge(exc: BaseException) -> tuple[BaseException, Classification]:
    """The error that tells most about the request (aiohttp's, closest to the socket) and what it says."""
    for error in reversed(_causes(exc)):
        kind = next((k for k in type(error).__mro__ if k in AIOHTTP_OUTCOMES), None)
        if kind is not None:
            return error, AIOHTTP_OUTCOMES[kind]
    return exc, _UNKNOWN


def translate(
    exc: BaseException, request: HttpRequest, timeouts: Timeouts, status: int | None = None
) -> SendError:
    """The `SendError` for an attempt that raised `exc`; `status` is set when an answer had begun."""
    refused = next((e for e in _causes(exc) if isinstance(e, NotSent)), None)
    if refused is not None:
        return refused
    error, (outcome, retryable) = _judge(exc)
    where = origin(request.url)
    if outcome is Outcome.NOT_SENT:
        if isinstance(error, aiohttp.ClientConnectorDNSError):
            message = (
                f"Could not resolve {urlsplit(request.url).hostname} ({_reason(error)}); nothing was sent."
            )
        elif isinstance(error, aiohttp.ConnectionTimeoutError):
            message = (
                f"Could not connect to {where} within {timeouts.connect:g} s (connect timeout); "
                "nothing was sent."
            )
        elif isinstance(error, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
            message = f"Not sent: {request.url!r} is not a URL that can be sent ({_reason(error)})."
        else:
            message = f"Could not connect to {where}: {_reason(error)}; nothing was sent."
        return NotSent(message, retryable=retryable)
    # aiohttp raises a bare TimeoutError when the total time runs out (its read timeout has its own class).
    late = isinstance(error, TimeoutError) and not isinstance(error, aiohttp.SocketTimeoutError)
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
    if isinstance(error, aiohttp.SocketTimeoutError):
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
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _reason(exc: BaseException) -> str:
    """The OS's words where there are some ('Connection refused'), else the error's own text."""
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(os_error, OSError):
        # asyncio words a refused connection "Connect call failed (...)": the errno says it better.
        errno = os_error.errno
        if isinstance(errno, int) and errno > 0 and not isinstance(os_error, socket.gaierror):
            return os.strerror(errno)
        if os_error.strerror or os_error.args:
            return str(os_error.strerror or os_error.args[0]).rstrip(".")
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
