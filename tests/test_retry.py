"""Retries against real faults from a loopback server: refused, reset, slow (read timeout), 500, 429 with
Retry-After. A non-idempotent POST whose answer was lost is not re-sent; one with an idempotency key is,
with the same key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.errors import DestinationRefused, NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from httptask.execute import prepare, send_prepared
from httptask.messages import HttpResponse
from httptask.netguard import DestinationPolicy
from httptask.outcome import Outcome
from httptask.retry import retry_after_seconds, send_with_retries
from httptask.secrets import SecretStore
from httptask.tasks import RetryPolicy, parse_task
from httptask.transport import Sender
from servers import RecordingServer, closed_port, faults_server

FAST = {"maxAttempts": 3, "intervalSeconds": 0.5, "backoffRate": 2, "maxIntervalSeconds": 30}


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    with faults_server() as running:
        running.slow_seconds = 0.6
        yield running


@pytest.fixture(autouse=True)
def _fresh(server: RecordingServer) -> None:
    server.requests.clear()
    server.answers.clear()
    server.behaviours.clear()


def _task(url: str, *, keyed: bool, retry: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """chargebee.refund_invoice takes an idempotency key; record_refund does not (both POST)."""
    if keyed:
        task = {
            "operation": "chargebee.refund_invoice",
            "request": {"path": {"invoice-id": "inv_1"}, "body": {"refund_amount": 100}},
        }
    else:
        task = {
            "operation": "chargebee.record_refund",
            "request": {"path": {"invoice-id": "inv_1"}, "body": {"memo": "m"}},
        }
    return {
        "id": "t1",
        "server": {"url": url},
        "retry": retry or FAST,
        "readTimeoutSeconds": 0.3,
        "connectionTimeoutSeconds": 0.5,
        **task,
        **extra,
    }


def _run(task: dict[str, Any]) -> tuple[Any, int, list[float]]:
    prepared = prepare(
        parse_task(task), inputs={}, catalog=Catalog.default(), secrets=SecretStore(environ={})
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> tuple[Any, int]:
        async with Sender() as sender:
            return await send_prepared(prepared, sender, sleep=sleep)

    response, attempts = asyncio.run(go())
    return response, attempts, waits


def test_a_refused_connection_is_retried_and_then_reported() -> None:
    port = closed_port()
    with pytest.raises(SendError) as caught:
        _run(_task(f"http://127.0.0.1:{port}", keyed=False))
    assert str(caught.value).startswith(f"Could not connect to http://127.0.0.1:{port}: ")
    assert not isinstance(caught.value, OutcomeUnknown)


def test_a_reset_after_a_keyless_post_is_not_sent_again(server: RecordingServer) -> None:
    server.behaviours.append("reset")
    with pytest.raises(OutcomeUnknown) as caught:
        _run(_task(server.url, keyed=False))
    assert len(server.requests) == 1
    assert str(caught.value).startswith(f"The connection to {server.url} failed after the request was sent")
    assert str(caught.value).endswith(
        "task t1 (chargebee.record_refund) is not idempotent, so it was not sent again: check on the server "
        "whether it was received before sending it again."
    )


def test_a_reset_with_an_idempotency_key_is_re_sent_with_the_same_key(server: RecordingServer) -> None:
    server.behaviours.extend(["reset", "reset"])
    response, attempts, waits = _run(_task(server.url, keyed=True))
    assert (response.status, attempts, waits) == (200, 3, [0.5, 1.0])
    keys = [r.header("chargebee-idempotency-key") for r in server.requests]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]
    assert len({r.body for r in server.requests}) == 1


def test_a_read_timeout_on_a_keyless_post_is_an_unknown_outcome(server: RecordingServer) -> None:
    server.behaviours.append("slow")
    with pytest.raises(OutcomeUnknown) as caught:
        _run(_task(server.url, keyed=False))
    assert str(caught.value).startswith(
        f"No answer from {server.url} within 0.3 s (read timeout); the server may have received the request."
    )
    assert len(server.requests) == 1


def test_a_read_timeout_with_a_key_is_retried_with_the_same_key(server: RecordingServer) -> None:
    server.behaviours.append("slow")
    response, attempts, _ = _run(_task(server.url, keyed=True))
    assert (response.status, attempts) == (200, 2)
    assert len({r.header("chargebee-idempotency-key") for r in server.requests}) == 1


def test_500_then_200_is_retried_only_when_safe(server: RecordingServer) -> None:
    server.answer(500, b"oops")
    response, attempts, waits = _run(_task(server.url, keyed=True))
    assert (response.status, attempts, waits) == (200, 2, [0.5])
    server.requests.clear()
    server.answer(500, b"oops")
    response, attempts, waits = _run(_task(server.url, keyed=False))
    assert (response.status, attempts, waits, len(server.requests)) == (500, 1, [], 1)


def test_429_is_retried_after_the_time_the_server_asks_even_without_a_key(server: RecordingServer) -> None:
    server.answer(429, b"slow down", {"Retry-After": "7"})
    response, attempts, waits = _run(_task(server.url, keyed=False))
    assert (response.status, attempts, waits) == (200, 2, [7.0])


def test_attempts_are_bounded_and_the_last_answer_is_returned(server: RecordingServer) -> None:
    for _ in range(5):
        server.answer(503, b"down")
    response, attempts, _ = _run(_task(server.url, keyed=True, retry={**FAST, "maxAttempts": 2}))
    assert (response.status, attempts, len(server.requests)) == (503, 2, 2)


def test_total_time_bounds_the_retries(server: RecordingServer) -> None:
    server.answer(429, b"", {"Retry-After": "600"})
    response, attempts, waits = _run(_task(server.url, keyed=False, retry={**FAST, "maxElapsedSeconds": 60}))
    assert (response.status, attempts, waits) == (429, 1, [])


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert retry_after_seconds("soon") is None


# -- outcomes through the retries ---------------------------------------------------------------------------


def _scripted(*results: HttpResponse | SendError) -> tuple[Callable[[], Awaitable[HttpResponse]], list[int]]:
    """A send function giving `results` in turn; the list counts the calls."""
    calls: list[int] = []

    async def send() -> HttpResponse:
        calls.append(len(calls) + 1)
        result = results[len(calls) - 1]
        if isinstance(result, SendError):
            raise result
        return result

    return send, calls


def _retry(send: Callable[[], Awaitable[HttpResponse]], *, idempotent: bool) -> tuple[HttpResponse, int]:
    async def no_sleep(seconds: float) -> None:
        pass

    policy = RetryPolicy(max_attempts=4, interval_seconds=0.5)
    return asyncio.run(send_with_retries(send, policy, idempotent=idempotent, what="task t1", sleep=no_sleep))


def test_an_unknown_outcome_of_a_request_that_is_not_idempotent_says_so() -> None:
    """The engine journals what the error says: an OutcomeUnknown must say 'unknown', or a resume re-sends."""
    send, calls = _scripted(OutcomeUnknown("No answer."))
    with pytest.raises(OutcomeUnknown) as caught:
        _retry(send, idempotent=False)
    assert (caught.value.outcome, caught.value.may_have_acted, calls) == (Outcome.UNKNOWN, True, [1])


def test_a_refusal_that_would_happen_again_is_not_retried() -> None:
    for refusal in (DestinationRefused("Refused."), NotSent("Not sent: bad URL.", retryable=False)):
        send, calls = _scripted(refusal, refusal)
        with pytest.raises(NotSent) as caught:
            _retry(send, idempotent=True)
        assert (caught.value, calls) == (refusal, [1])


def test_the_guard_refuses_at_once_without_retries() -> None:
    prepared = prepare(
        parse_task(_task("http://169.254.169.254/latest", keyed=False)),
        inputs={},
        catalog=Catalog.default(),
        secrets=SecretStore(environ={}),
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        async with Sender(policy=DestinationPolicy()) as sender:
            await send_prepared(prepared, sender, sleep=sleep)

    with pytest.raises(DestinationRefused):
        asyncio.run(go())
    assert waits == []


def test_a_not_sent_attempt_after_an_unknown_one_leaves_the_outcome_unknown() -> None:
    send, calls = _scripted(
        OutcomeUnknown("No answer."), NotSent("Could not connect."), NotSent("Could not connect.")
    )
    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(
            send_with_retries(
                send,
                RetryPolicy(max_attempts=3),
                idempotent=True,
                what="task t1",
                sleep=lambda s: asyncio.sleep(0),
            )
        )
    assert (
        str(caught.value)
        == "Could not connect. Attempt 1 of 3 may have been received, so the outcome is unknown."
    )
    assert calls == [1, 2, 3]


def test_an_answer_too_large_is_final_and_counts_as_acted() -> None:
    too_large = ResponseTooLarge("Too large.", status=200)
    send, calls = _scripted(too_large, too_large)
    with pytest.raises(ResponseTooLarge) as caught:
        _retry(send, idempotent=True)
    assert (caught.value.outcome, caught.value.may_have_acted, calls) == (Outcome.ANSWERED, True, [1])


def test_a_not_sent_attempt_of_a_request_that_is_not_idempotent_is_retried() -> None:
    answer = HttpResponse(201, (), b"{}", 1.0)
    send, calls = _scripted(NotSent("Could not connect."), answer)
    assert (_retry(send, idempotent=False), calls) == ((answer, 2), [1, 2])
