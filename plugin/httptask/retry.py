"""When to send again: bounded by attempts and total time, and only where a retry cannot act twice.

A request that was not sent may be tried again, unless it would be refused again (an invalid URL, a refused
destination). A 429 asks to come back later and was not acted on. A 5xx, a timeout or a reset may have been
acted on: only an idempotent request (by method, or by an idempotency key kept the same on every attempt) is
sent again; any other one ends with `OutcomeUnknown`, and is never sent again without a decision.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import OutcomeUnknown, SendError
from .messages import HttpResponse
from .outcome import Outcome
from .tasks import RetryPolicy

__all__ = ["Attempt", "retry_after_seconds", "send_with_retries"]

_RETRY_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True)
class Attempt:
    number: int
    response: HttpResponse | None
    error: SendError | None

    @property
    def outcome(self) -> Outcome:
        return self.error.outcome if self.error is not None else Outcome.ANSWERED

    @property
    def status(self) -> int | None:
        if self.error is not None:
            return self.error.status
        return self.response.status if self.response is not None else None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def send_with_retries(
    send: Callable[[], Awaitable[HttpResponse]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[HttpResponse, int]:
    """Send until a final answer; returns the last response and how many attempts were made.

    Raises the last `SendError` when attempts or time run out; `OutcomeUnknown` when a request that is not
    idempotent may have been received (it is not sent again), or when the last attempt was not sent but an
    earlier one may have been received.
    """
    started = clock()
    attempt = 0
    maybe_received_by: int | None = None
    while True:
        attempt += 1
        response: HttpResponse | None = None
        error: SendError | None = None
        try:
            response = await send()
        except SendError as exc:
            error = exc
        if on_attempt is not None:
            on_attempt(Attempt(attempt, response, error))
        if error is not None and error.may_have_acted:
            if not idempotent:
                raise OutcomeUnknown(
                    f"{error} {what} is not idempotent, so it was not sent again: check on the server "
                    "whether it was received before sending it again.",
                    status=error.status,
                ) from error
            maybe_received_by = attempt
        wait = _next_wait(policy, attempt, response, error, idempotent)
        out_of_budget = attempt >= policy.max_attempts or (
            wait is not None and clock() - started + wait > policy.max_elapsed_seconds
        )
        if wait is None or out_of_budget:
            if response is not None:
                return response, attempt
            assert error is not None
            if maybe_received_by is not None and not error.may_have_acted:
                raise OutcomeUnknown(
                    f"{error} Attempt {maybe_received_by} of {attempt} may have been received, so the "
                    "outcome is unknown.",
                    status=error.status,
                ) from error
            raise error
        await sleep(wait)


def _next_wait(
    policy: RetryPolicy,
    attempt: int,
    response: HttpResponse | None,
    error: SendError | None,
    idempotent: bool,
) -> float | None:
    """Seconds to wait before the next attempt, or None when this outcome is final."""
    if error is not None:
        safe = idempotent or not error.may_have_acted
        return policy.delay(attempt) if error.retryable and safe else None
    assert response is not None
    if response.status == 429 or (response.status in _RETRY_STATUSES and idempotent):
        asked = retry_after_seconds(response.header("retry-after"))
        return max(asked, policy.delay(attempt)) if asked is not None else policy.delay(attempt)
    return None
