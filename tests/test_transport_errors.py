"""Every error the transport can meet, from its HTTP/1.1 client and from Python itself, becomes a `SendError`
whose outcome is the one `WIRE_OUTCOMES` gives it: never an exception that escapes."""

from __future__ import annotations

import asyncio

import pytest

from httptask import http1
from httptask.errors import NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from httptask.messages import HttpRequest
from httptask.outcome import Outcome, may_have_acted
from httptask.transport import WIRE_OUTCOMES, Timeouts, classify, translate

REQUEST = HttpRequest("POST", "http://user:pw@127.0.0.1:9/refunds", (), b"amount=1")
TIMEOUTS = Timeouts(connect=1.0, read=2.0)


def _raised(kind: type[BaseException]) -> BaseException:
    return http1.AnswerTooLarge(1024, 200) if kind is http1.AnswerTooLarge else kind("boom")


def _translated(error: BaseException) -> SendError:
    translated = translate(error, REQUEST, TIMEOUTS)
    assert translated.outcome is classify(error)[0]
    # Not sent can never have acted; unknown always may have, so it is never re-sent blindly.
    if translated.outcome is not Outcome.ANSWERED:
        assert may_have_acted(translated.outcome) is (translated.outcome is Outcome.UNKNOWN)
    assert "127.0.0.1" in str(translated) and "pw" not in str(translated)
    return translated


@pytest.mark.parametrize("kind", list(WIRE_OUTCOMES), ids=lambda k: k.__qualname__)
def test_every_error_of_the_client_becomes_the_outcome_it_is_classified_as(kind: type[BaseException]) -> None:
    translated = _translated(_raised(kind))
    expected = {
        Outcome.NOT_SENT: NotSent,
        Outcome.UNKNOWN: OutcomeUnknown,
        Outcome.ANSWERED: ResponseTooLarge,
    }[WIRE_OUTCOMES[kind][0]]
    assert type(translated) is expected


@pytest.mark.parametrize(
    "kind", [TimeoutError, asyncio.TimeoutError, ConnectionResetError, ConnectionRefusedError, OSError]
)
def test_a_python_error_that_escapes_the_client_is_unknown(kind: type[BaseException]) -> None:
    assert type(_translated(kind("boom"))) is OutcomeUnknown


def test_a_reset_after_the_write_is_unknown_and_a_refused_connection_not_sent() -> None:
    reset = http1.ConnectionLost("reset")
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert str(_translated(reset)) == (
        "The connection to http://127.0.0.1:9 failed after the request was sent: Connection reset by peer; "
        "the server may have received it."
    )
    refused = http1.ConnectFailed("refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connect call failed")
    assert str(_translated(refused)) == (
        "Could not connect to http://127.0.0.1:9: Connection refused; nothing was sent."
    )
