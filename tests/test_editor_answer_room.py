"""The editor holds the answers of Test requests in progress within a budget of bytes: each is counted at its
size limit before it is sent, so that many heavy answers at once cannot take the editor's memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web

from browser_setup import running_editor
from httptask.catalog import Catalog
from httptask.server import ServerConfig
from servers import served

LIMIT = 1_000_000  # each Test request's maxResponseBytes
BODY = b"x" * 200_000


@dataclass
class Upstream:
    url: str
    in_flight: int = 0
    peak: int = 0
    received: int = 0


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """Answers every request after 0.3 s, counting how many it is answering at once."""
    state = Upstream("")

    async def answer(request: web.Request) -> web.Response:
        state.received += 1
        state.in_flight += 1
        state.peak = max(state.peak, state.in_flight)
        try:
            await asyncio.sleep(0.3)
            return web.Response(body=BODY, content_type="text/plain")
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    with served(app) as server:
        state.url = server.url
        yield state


def _test_requests(editor: str, url: str, count: int) -> list[httpx.Response]:
    task = {"id": "heavy", "httpRequest": {"url": f"{url}/report"}, "maxResponseBytes": LIMIT}
    with httpx.Client(base_url=editor, timeout=60) as client, ThreadPoolExecutor(count) as pool:
        sent = [pool.submit(client.post, "/api/test-request", json={"task": task}) for _ in range(count)]
        return [future.result() for future in sent]


def _config(upstream: Upstream, wait: float) -> ServerConfig:
    host = urlsplit(upstream.url).netloc
    return ServerConfig(allow_hosts=(host,), answer_memory_bytes=2 * LIMIT, answer_wait_seconds=wait)


def test_test_requests_past_the_room_wait_their_turn(catalog: Catalog, upstream: Upstream) -> None:
    with running_editor(_config(upstream, wait=30), catalog) as editor:
        answers = _test_requests(editor, upstream.url, 6)
    assert [answer.status_code for answer in answers] == [200] * 6, [a.text[:300] for a in answers]
    assert all(len(answer.json()["response"]["body"]) == len(BODY) for answer in answers)
    # Two answers of up to 1 MB fit in the 2 MB room: never more than two were in progress at once.
    assert (upstream.received, upstream.peak) == (6, 2)


def test_a_test_request_that_finds_no_room_in_time_is_a_503_and_is_not_sent(
    catalog: Catalog, upstream: Upstream
) -> None:
    with running_editor(_config(upstream, wait=0.1), catalog) as editor:
        answers = _test_requests(editor, upstream.url, 6)
    statuses = [answer.status_code for answer in answers]
    assert sorted(set(statuses)) == [200, 503], statuses
    refused = [answer.json() for answer in answers if answer.status_code == 503]
    assert all("nothing was sent" in body["error"] for body in refused)
    assert all("maxResponseBytes" in body["error"] for body in refused)
    assert all(body["request"]["url"] == f"{upstream.url}/report" for body in refused)
    # The upstream saw exactly the Test requests that were answered, never more than two at once.
    assert upstream.received == statuses.count(200)
    assert upstream.peak <= 2
