"""Sending one request: httpx's API over aiohttp's connection pool, with timeouts, a response size cap,
same-host redirects only, the optional SSRF guard, and errors translated at this boundary.

httpx runs on the `httpx-aiohttp` transport because on this kind of machine httpx's own async pool sends
about 190 small requests/s at concurrency 64 against about 1,700 through aiohttp (see bench/).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .errors import DestinationRefused, ResponseTooLarge, SendError
from .messages import HttpRequest, HttpResponse
from .netguard import DestinationPolicy, GuardedResolver, ResolveFunction

__all__ = ["Sender", "Timeouts"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 10.0


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
        connector = aiohttp.TCPConnector(limit=self._max_connections, resolver=resolver,
                                         limit_per_host=self._max_connections)
        # Proxies from the environment would bypass the guard's view of the destination: ignore them.
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return httpx.AsyncClient(transport=AiohttpTransport(client=self._session), trust_env=False)

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
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
        max_response_bytes: int = 10 * 1024 * 1024,
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
        raise SendError(f"Stopped after {_MAX_REDIRECTS} redirects from {request.url}.", maybe_received=True)

    async def _send_once(self, request: HttpRequest, timeouts: Timeouts, cap: int, started: float) -> HttpResponse:
        assert self._client is not None
        if self._policy is not None:
            self._policy.check_url(request.url)
        timeout = httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=timeouts.read,
                                pool=timeouts.connect)
        try:
            async with self._client.stream(request.method, request.url, headers=list(request.headers),
                                           content=request.content or None, timeout=timeout) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _too_large(request, cap)
                chunks = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(request, cap)
                    chunks.append(chunk)
                return HttpResponse(
                    status=response.status_code,
                    headers=tuple(response.headers.multi_items()),
                    content=b"".join(chunks),
                    elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                    url=request.url,
                    reason=response.reason_phrase,
                )
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            raise _translate(exc, request, timeouts) from exc


def _translate(exc: BaseException, request: HttpRequest, timeouts: Timeouts) -> SendError:
    """Whether the request may have reached the server decides whether a retry is safe, so classify by the
    original aiohttp error: httpx-aiohttp maps every aiohttp connection error, a reset after the request was
    written included, to httpx.ConnectTimeout."""
    chain = _causes(exc)
    refused = next((e for e in chain if isinstance(e, DestinationRefused)), None)
    if refused is not None:
        return refused
    origin = next((e for e in chain if isinstance(e, aiohttp.ClientError)), None)
    if origin is not None:
        not_sent = isinstance(origin, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        timed_out = isinstance(origin, aiohttp.ServerTimeoutError) and not not_sent
    else:
        not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                              | httpx.UnsupportedProtocol)
        timed_out = isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError) and not not_sent
    if not_sent:
        return SendError(f"Could not connect to {_origin(request.url)}: {_reason(exc)}.")
    if timed_out:
        return SendError(
            f"No answer from {_origin(request.url)} within {timeouts.read:g} s (read timeout); "
            "the server may have received the request.", maybe_received=True
        )
    return SendError(
        f"The connection to {_origin(request.url)} failed after the request was sent: {_reason(exc)}; "
        "the server may have received it.", maybe_received=True
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
        raise SendError(
            f"Refused a redirect from {_origin(request.url)} to another host ({_origin(target)}); "
            "only same-host redirects are followed.", maybe_received=True
        )
    if response.status == 303 or (response.status in (301, 302) and request.method == "POST"):
        headers = tuple((k, v) for k, v in request.headers if k.lower() not in ("content-type", "content-length"))
        return HttpRequest("GET", target, headers, b"")
    return HttpRequest(request.method, target, request.headers, request.content)


def _too_large(request: HttpRequest, cap: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"The response from {_origin(request.url)} is larger than the cap of {cap:,} bytes; "
        "raise maxResponseBytes on the task if it is expected."
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
