"""Sending one request: httpx's API over aiohttp's connection pool, with timeouts, a response size cap,
same-host redirects only, the optional SSRF guard, and errors translated at this boundary.

httpx runs on the `httpx-aiohttp` transport because on this kind of machine httpx's own async pool sends
about 190 small requests/s at concurrency 64 against about 1,700 through aiohttp (see bench/).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .errors import AnswerRefused, NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from .messages import HttpRequest, HttpResponse
from .netguard import DestinationPolicy, GuardedResolver, ResolveFunction
from .outcome import Outcome
from .tasks import CONNECTION_TIMEOUT_SECONDS, MAX_RESPONSE_BYTES, READ_TIMEOUT_SECONDS

__all__ = [
    "AIOHTTP_OUTCOMES",
    "HTTPX_OUTCOMES",
    "Sender",
    "Timeouts",
    "check_url",
    "classify",
    "origin",
    "translate",
]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Timeouts:
    connect: float = CONNECTION_TIMEOUT_SECONDS
    read: float = READ_TIMEOUT_SECONDS


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
        self._client: httpx.AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None

    def _make_client(self) -> httpx.AsyncClient:
        resolver = GuardedResolver(self._policy, self._resolve) if self._policy is not None else None
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, resolver=resolver, limit_per_host=self._max_connections
        )
        # Proxies from the environment would bypass the guard's view of the destination: ignore them.
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        return httpx.AsyncClient(transport=AiohttpTransport(client=self._session), trust_env=False)

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
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
        if self._client is None:
            self._client = self._make_client()
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
        assert self._client is not None
        check_url(request.url, self._policy)
        timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.connect
        )
        status: int | None = None
        try:
            async with self._client.stream(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.content or None,
                timeout=timeout,
            ) as response:
                status = response.status_code
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _too_large(request, cap, status)
                chunks = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(request, cap, status)
                    chunks.append(chunk)
                return HttpResponse(
                    status=status,
                    headers=tuple(response.headers.multi_items()),
                    content=b"".join(chunks),
                    elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                    url=request.url,
                    reason=response.reason_phrase,
                )
        except _TRANSPORT_ERRORS as exc:
            raise translate(exc, request, timeouts, status) from exc


def check_url(url: str, policy: DestinationPolicy | None = None) -> None:
    """Refuse, before any connection, a URL that cannot be sent (not http(s), no host, a port out of range) or
    that `policy` refuses."""
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

# httpx errors that come without an aiohttp error behind them (httpx-aiohttp maps every aiohttp connection
# error, a reset after the write included, to ConnectTimeout, so the aiohttp error is looked at first).
HTTPX_OUTCOMES: dict[type[BaseException], Classification] = {
    httpx.HTTPError: _UNKNOWN,
    httpx.RequestError: _UNKNOWN,
    httpx.TransportError: _UNKNOWN,
    httpx.TimeoutException: _UNKNOWN,
    httpx.ConnectTimeout: _NOT_SENT,
    httpx.ReadTimeout: _UNKNOWN,
    httpx.WriteTimeout: _UNKNOWN,
    httpx.PoolTimeout: _NOT_SENT,
    httpx.NetworkError: _UNKNOWN,
    httpx.ConnectError: _NOT_SENT,
    httpx.ReadError: _UNKNOWN,
    httpx.WriteError: _UNKNOWN,
    httpx.CloseError: _UNKNOWN,
    httpx.ProxyError: _NOT_SENT,
    httpx.UnsupportedProtocol: _NOT_SENT_FOR_GOOD,
    httpx.ProtocolError: _UNKNOWN,
    httpx.LocalProtocolError: _NOT_SENT_FOR_GOOD,  # httpx refused to write a malformed request
    httpx.RemoteProtocolError: _UNKNOWN,
    httpx.DecodingError: _UNKNOWN,  # raw bytes are read, so this is not expected
    httpx.TooManyRedirects: _UNKNOWN,  # redirects are followed here, not by httpx
    httpx.HTTPStatusError: _UNKNOWN,  # raise_for_status is not used
    httpx.InvalidURL: _NOT_SENT_FOR_GOOD,
}

_TRANSPORT_ERRORS = (TimeoutError, OSError, httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError)


def classify(exc: BaseException) -> Classification:
    """The outcome of an attempt that raised `exc`, and whether trying again may do better."""
    return _judge(exc)[1]


def _judge(exc: BaseException) -> tuple[BaseException, Classification]:
    """The error that tells most about the request (aiohttp's, closest to the socket) and what it says."""
    chain = _causes(exc)
    for table in (AIOHTTP_OUTCOMES, HTTPX_OUTCOMES):
        for error in reversed(chain):
            kind = next((k for k in type(error).__mro__ if k in table), None)
            if kind is not None:
                return error, table[kind]
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
        elif isinstance(error, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout | httpx.PoolTimeout):
            message = (
                f"Could not connect to {where} within {timeouts.connect:g} s (connect timeout); "
                "nothing was sent."
            )
        elif isinstance(
            error,
            aiohttp.InvalidURL | httpx.InvalidURL | httpx.UnsupportedProtocol | aiohttp.NonHttpUrlClientError,
        ):
            message = f"Not sent: {request.url!r} is not a URL that can be sent ({_reason(error)})."
        else:
            message = f"Could not connect to {where}: {_reason(error)}; nothing was sent."
        return NotSent(message, retryable=retryable)
    if status is not None:
        return OutcomeUnknown(
            f"The answer from {where} (status {status}) was cut off: {_reason(error)}; the server received "
            "the request and may have acted on it.",
            status=status,
        )
    if isinstance(error, TimeoutError | httpx.TimeoutException):
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
        if (
            isinstance(os_error.errno, int)
            and os_error.errno > 0
            and not isinstance(os_error, socket.gaierror)
        ):
            return os.strerror(os_error.errno)
        if os_error.strerror or os_error.args:
            return str(os_error.strerror or os_error.args[0]).rstrip(".")
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
