"""Every attempt's outcome is exact: not sent, answered or unknown. Every error class of the HTTP/1.1 client
is classified on purpose, and each real fault of a loopback server gives the outcome it must."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from faults import FaultServer, always, fault_server
from httptask import http1
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
from httptask.transport import WIRE_OUTCOMES, Sender, Timeouts, classify
from servers import closed_port

# A generous connect timeout: on a busy machine a loopback connect may wait for the event loop, and no test
# here is about connect timeouts; the read timeout is what the faults below run into.
FAST = Timeouts(connect=5.0, read=0.4)


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    """`root` and its subclasses as their modules define them now (a stale copy of a class, its module run
    twice, is left out: the client cannot raise it)."""
    found = {root} if getattr(sys.modules.get(root.__module__), root.__qualname__, None) is root else set()
    for sub in root.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_every_error_class_of_the_client_is_classified_on_purpose() -> None:
    classes = _subclasses(http1.WireError)
    assert len(classes) >= 10 and http1.TLSFailed in classes
    missing = {c.__qualname__ for c in classes if c not in WIRE_OUTCOMES}
    assert missing == set(), "classify these in transport.WIRE_OUTCOMES: not sent, answered or unknown?"


@pytest.mark.parametrize(
    ("error", "outcome", "retryable"),
    [
        # Only what comes before any byte of the request is written is "not sent".
        (http1.ConnectFailed("refused"), Outcome.NOT_SENT, True),
        (http1.ResolveFailed("unknown host"), Outcome.NOT_SENT, True),
        (http1.ConnectTimeout("connect"), Outcome.NOT_SENT, True),
        (http1.TLSFailed("self-signed certificate"), Outcome.NOT_SENT, False),
        (http1.ConnectionLost("reset"), Outcome.UNKNOWN, True),
        (http1.ConnectionLost("closed", 200), Outcome.UNKNOWN, True),
        (http1.ReadTimeout("read"), Outcome.UNKNOWN, True),
        (http1.TotalTimeout("total"), Outcome.UNKNOWN, True),
        (http1.MalformedAnswer("bad status line"), Outcome.UNKNOWN, True),
        (http1.AnswerTooLarge(1024, 200), Outcome.ANSWERED, False),
        (ConnectionResetError(104, "Connection reset by peer"), Outcome.UNKNOWN, True),
        (TimeoutError(), Outcome.UNKNOWN, True),
        (ValueError("not an error of the wire"), Outcome.UNKNOWN, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classification_of_single_errors(error: BaseException, outcome: Outcome, retryable: bool) -> None:
    assert classify(error) == (outcome, retryable)


def test_the_client_error_closest_to_the_socket_decides() -> None:
    """An error wrapping another is judged by the innermost error of the client: a reset after the write,
    reported on as a connection failure, still says the server may have the request."""
    try:
        try:
            raise http1.ConnectionLost("Connection reset by peer")
        except http1.ConnectionLost as inner:
            raise http1.ConnectFailed("reported as") from inner
    except http1.ConnectFailed as outer:
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
