"""Every error the transport can meet, from aiohttp (which it sends through directly) and from Python itself,
becomes a `SendError` whose outcome is "not sent" or "outcome unknown": never an answer, never an exception
that escapes."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from httptask.errors import NotSent, OutcomeUnknown
from httptask.messages import HttpRequest
from httptask.outcome import Outcome, may_have_acted
from httptask.transport import Timeouts, translate

REQUEST = HttpRequest("POST", "http://127.0.0.1:9/refunds", (), b"amount=1")
TIMEOUTS = Timeouts(connect=1.0, read=2.0)


def _subclasses(root: type[BaseException]) -> list[type[BaseException]]:
    found: dict[type[BaseException], None] = {root: None}
    for sub in root.__subclasses__():
        found.update(dict.fromkeys(_subclasses(sub)))
    return list(found)


AIOHTTP_ERRORS = _subclasses(aiohttp.ClientError)
PYTHON_ERRORS: list[type[BaseException]] = [
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionResetError,
    ConnectionRefusedError,
    OSError,
]


KEY = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)


def _carry(error: BaseException) -> None:
    """What aiohttp's constructors store, so that any error reads like one aiohttp raised."""
    Exception.__init__(error, "boom")
    error._conn_key = KEY  # type: ignore[attr-defined]
    error._os_error = ConnectionRefusedError(111, "boom")  # type: ignore[attr-defined]
    error._certificate_error = ValueError("boom")  # type: ignore[attr-defined]


def _raised(kind: type[BaseException]) -> BaseException:
    """An instance of `kind` whatever its constructor wants: a subclass that carries a message and what
    aiohttp stores, so that what decides is the class and its bases, as in the transport."""
    stand_in = type(
        kind.__name__, (kind,), {"__init__": lambda self, *args: _carry(self), "__str__": lambda self: "boom"}
    )
    error: BaseException = stand_in()
    return error


def _outcome(error: BaseException) -> Outcome:
    translated = translate(error, REQUEST, TIMEOUTS)
    assert isinstance(translated, NotSent | OutcomeUnknown), type(translated)
    assert translated.outcome in (Outcome.NOT_SENT, Outcome.UNKNOWN)
    # Not sent can never have acted; unknown always may have, so it is never re-sent blindly.
    assert may_have_acted(translated.outcome) is (translated.outcome is Outcome.UNKNOWN)
    assert str(translated)
    return translated.outcome


@pytest.mark.parametrize("kind", AIOHTTP_ERRORS, ids=lambda k: k.__qualname__)
def test_every_aiohttp_error_is_not_sent_or_unknown(kind: type[BaseException]) -> None:
    _outcome(_raised(kind))


@pytest.mark.parametrize("kind", PYTHON_ERRORS, ids=lambda k: k.__qualname__)
def test_every_python_error_is_not_sent_or_unknown(kind: type[BaseException]) -> None:
    _outcome(_raised(kind))


def test_a_reset_after_the_write_is_unknown_and_a_refused_connection_not_sent() -> None:
    assert _outcome(aiohttp.ClientOSError(104, "Connection reset by peer")) is Outcome.UNKNOWN
    refused = aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused"))
    assert _outcome(refused) is Outcome.NOT_SENT


def test_the_list_is_not_empty() -> None:
    # The parametrized tests above pass vacuously if aiohttp reorganises its error tree away from them.
    assert len(AIOHTTP_ERRORS) > 25
