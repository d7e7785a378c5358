"""Sending a Test request, from the editor or `httptask test-request`: the task's attempts within one bound on
the whole, after which the outcome is unknown. The transport's own total (300 s) is for runs; a person waiting
on one request, or a server dripping its answer a byte at a time, gets `TEST_REQUEST_SECONDS`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .errors import OutcomeUnknown

if TYPE_CHECKING:  # the CLI reads TEST_REQUEST_SECONDS for every command, and sends only for this one
    from .execute import Prepared
    from .messages import HttpResponse
    from .transport import Sender

__all__ = ["TEST_REQUEST_SECONDS", "send_test_request"]

TEST_REQUEST_SECONDS = 60.0


async def send_test_request(
    prepared: Prepared, sender: Sender, seconds: float = TEST_REQUEST_SECONDS, *, more_time: str = ""
) -> tuple[HttpResponse, int]:
    """`execute.send_prepared` within `seconds`; past them `OutcomeUnknown`, whose message says what to
    check before sending again, and `more_time` (how to give the server longer) when given."""
    from .execute import send_prepared

    try:
        async with asyncio.timeout(seconds):
            return await send_prepared(prepared, sender)
    except TimeoutError:
        raise OutcomeUnknown(
            f"The request of {prepared.label} got no complete answer within {seconds:g} s and was "
            "abandoned. The server may have received it and acted: the outcome is unknown. Check on the "
            "server (its dashboard or its API) whether it did before you send it again"
            + (f"; {more_time}." if more_time else ".")
        ) from None
