"""Every attempt's outcome is exact: not sent, answered or unknown. Every aiohttp error class is classified on
purpose, and each real fault of a loopback server gives the outcome it must."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import aiohttp
import pytest

from faults import FaultServer, always, fault_server
from httptask.errors import (
    AnswerRefused,
    DestinationRefused,
    NotSent,
    OutcomeUnknown,
    ResponseTooLarge,
    SendError,
)
from httptask.messages import HttpRequest, HttpResponse
from httptask.netguard import DestinationPolicy, static_resolve
from httptask.outcome import Outcome, may_have_acted
from httptask.transport import AIOHTTP_OUTCOMES, Sender, Timeouts, classify
from servers import closed_port

# A generous connect timeout: on a busy machine a loopback connect may wait for the event loop, and no test
# here is about connect timeouts; the read timeout is what the faults below run into.
FAST = Timeouts(connect=5.0, read=0.4)


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    """`root` and its subclasses as their modules define them now. A stale copy of a class (its module run
    twice, the copy not yet collected, as once seen in a full run) is left out: aiohttp cannot raise it."""
    found = {root} if getattr(sys.modules.get(root.__module__), root.__qualname__, None) is root else set()
    for sub in root.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_every_aiohttp_error_class_is_classified_on_purpose() -> None:
    classes = _subclasses(aiohttp.ClientError)
    assert len(classes) > 25 and aiohttp.NonHttpUrlRedirectClientError in classes
    missing = {c.__qualname__ for c in classes if c not in AIOHTTP_OUTCOMES}
    assert missing == set(), "classify these in transport.AIOHTTP_OUTCOMES: not sent, or unknown?"


@pytest.mark.parametrize(
    ("error", "outcome", "retryable"),
    [
        # A subclass may say more than its base: a timeout while connecting means nothing was written.
        (aiohttp.ConnectionTimeoutError("connect"), Outcome.NOT_SENT, True),
        (aiohttp.SocketTimeoutError("read"), Outcome.UNKNOWN, True),
        (aiohttp.ServerTimeoutError("timeout"), Outcome.UNKNOWN, True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), Outcome.UNKNOWN, True),
        (aiohttp.ServerDisconnectedError(), Outcome.UNKNOWN, True),
        (aiohttp.ClientPayloadError("cut"), Outcome.UNKNOWN, True),
        (aiohttp.InvalidURL("http://x:99999"), Outcome.NOT_SENT, False),
        (aiohttp.NonHttpUrlClientError("ftp://x"), Outcome.NOT_SENT, False),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), Outcome.UNKNOWN, True),
        (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), Outcome.NOT_SENT, False),
        # The total timeout: aiohttp raises a bare TimeoutError, whatever stage the exchange had reached.
        (TimeoutError(), Outcome.UNKNOWN, True),
        (ValueError("not an error of the wire"), Outcome.UNKNOWN, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classification_of_single_errors(error: BaseException, outcome: Outcome, retryable: bool) -> None:
    assert classify(error) == (outcome, retryable)


def test_the_aiohttp_error_closest_to_the_socket_decides() -> None:
    """An error wrapping another is judged by the innermost aiohttp error: a reset after the write, reported
    on as a connection error, still says the server may have the request."""
    try:
        try:
            raise aiohttp.ClientOSError(104, "Connection reset by peer")
        except aiohttp.ClientOSError as inner:
            raise aiohttp.ConnectionTimeoutError("reported as") from inner
    except aiohttp.ConnectionTimeoutError as outer:
        assert classify(outer) == (Outcome.UNKNOWN, True)


@pytest.mark.parametrize(
    ("outcome", "status", "acted"),
    [
        (Outcome.NOT_SENT, None, False),
        (Outcome.UNKNOWN, None, True),
        (Outcome.UNKNOWN, 404, True),
        (Outcome.ANSWERED, 200, True),
        (Outcome.ANSWERED, 302, True),
        (Outcome.ANSWERED, 400, False),
        (Outcome.ANSWERED, 429, False),
        (Outcome.ANSWERED, 500, True),
        (Outcome.ANSWERED, 503, True),
    ],
)
def test_which_outcomes_may_have_acted(outcome: Outcome, status: int | None, acted: bool) -> None:
    assert may_have_acted(outcome, status) is acted


# -- real faults ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        running.stall_seconds = 1.5
        running.oversize_bytes = 4096
        yield running


def _send(url: str, *, sender: Sender | None = None, cap: int = 1024) -> HttpResponse:
    async def go() -> HttpResponse:
        async with sender or Sender() as using:
            return await using.send(
                HttpRequest("POST", url, (("content-type", "application/json"),), b'{"amount":1}'),
                timeouts=FAST,
                max_response_bytes=cap,
            )

    return asyncio.run(go())


def _error(url: str, **kwargs: object) -> SendError:
    with pytest.raises(SendError) as caught:
        _send(url, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("fault", "kind", "outcome", "status", "acted"),
    [
        ("reset-before-body", OutcomeUnknown, Outcome.UNKNOWN, None, 0),
        ("reset-after-body", OutcomeUnknown, Outcome.UNKNOWN, None, 1),
        ("stall", OutcomeUnknown, Outcome.UNKNOWN, None, 1),
        ("truncated", OutcomeUnknown, Outcome.UNKNOWN, 200, 1),
        ("oversize", ResponseTooLarge, Outcome.ANSWERED, 200, 1),
    ],
)
def test_a_fault_after_the_connection_gives_its_outcome(
    server: FaultServer, fault: str, kind: type[SendError], outcome: Outcome, status: int | None, acted: int
) -> None:
    server.reset(always(fault))
    error = _error(server.url + "/refunds/r1")
    assert type(error) is kind
    assert (error.outcome, error.status, error.may_have_acted) == (outcome, status, True)
    assert server.acted()["/refunds/r1"] == acted


@pytest.mark.parametrize(("fault", "status"), [("500", 500), ("502", 502), ("503", 503), ("429", 429)])
def test_an_error_status_is_an_answer(server: FaultServer, fault: str, status: int) -> None:
    server.reset(always(fault))
    assert _send(server.url + "/refunds/r1").status == status


def test_a_body_that_is_not_json_is_an_answer_kept_as_text(server: FaultServer) -> None:
    server.reset(always("non-json"))
    response = _send(server.url + "/refunds/r1")
    assert (response.status, response.body()) == (200, "<html>not json</html>")


def test_messages_say_what_the_server_may_have_seen(server: FaultServer) -> None:
    server.reset(always("stall"))
    assert str(_error(server.url + "/r")) == (
        f"No answer from {server.url} within 0.4 s (read timeout); the server may have received the request."
    )
    server.reset(always("truncated"))
    assert str(_error(server.url + "/r")).startswith(
        f"The answer from {server.url} (status 200) was cut off: "
    )
    server.reset(always("reset-after-body"))
    assert str(_error(server.url + "/r")) == (
        f"The connection to {server.url} failed after the request was sent: Connection reset by peer; "
        "the server may have received it."
    )


def test_a_refused_connection_is_not_sent() -> None:
    port = closed_port()
    error = _error(f"http://127.0.0.1:{port}/r")
    assert type(error) is NotSent and error.retryable
    assert (
        str(error) == f"Could not connect to http://127.0.0.1:{port}: Connection refused; nothing was sent."
    )


def test_a_failed_dns_lookup_is_not_sent() -> None:
    sender = Sender(policy=DestinationPolicy(allow_hosts=["refunds.test"]), resolve=static_resolve({}))
    error = _error("http://refunds.test/r", sender=sender)
    assert type(error) is NotSent and error.retryable
    assert str(error) == "Could not resolve refunds.test (unknown host refunds.test); nothing was sent."


def test_a_destination_the_guard_refuses_is_not_sent_and_not_worth_retrying() -> None:
    sender = Sender(
        policy=DestinationPolicy(), resolve=static_resolve({"metadata.test": ["169.254.169.254"]})
    )
    error = _error("http://metadata.test/latest", sender=sender)
    assert type(error) is DestinationRefused
    assert (error.outcome, error.retryable, error.may_have_acted) == (Outcome.NOT_SENT, False, False)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://127.0.0.1:99999/r",
            "Not sent: 'http://127.0.0.1:99999/r' is not a valid URL (Port out of range 0-65535).",
        ),
        (
            "http://127.0.0.1:0/r",
            "Not sent: 'http://127.0.0.1:0/r' has the port 0; give a port from 1 to 65535.",
        ),
        ("ftp://127.0.0.1/r", "Not sent: 'ftp://127.0.0.1/r' is not an http or https URL."),
        ("refunds/r1", "Not sent: 'refunds/r1' is not an http or https URL."),
        ("http:///r", "Not sent: 'http:///r' has no host."),
        ("http://[::1/r", "Not sent: 'http://[::1/r' is not a valid URL (Invalid IPv6 URL)."),
    ],
)
def test_a_url_that_cannot_be_sent_is_refused_before_any_connection(url: str, message: str) -> None:
    error = _error(url)
    assert type(error) is NotSent
    assert (str(error), error.retryable) == (message, False)


def test_a_redirect_elsewhere_is_an_answer_that_acted() -> None:
    error = AnswerRefused("moved", status=302)
    assert (error.outcome, error.may_have_acted, error.retryable) == (Outcome.ANSWERED, True, False)
