"""Sending through the real transport to a recording server on 127.0.0.1: the exact bytes of each seed
operation arrive; redirects to another host are refused; responses are capped (decoded bytes counted); gzip
and deflate are decoded; URLs go out encoded; JSON is parsed, the rest is text."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.errors import NotSent, OutcomeUnknown, ResponseTooLarge, SendError
from httptask.execute import prepare, send_prepared
from httptask.messages import HttpRequest, HttpResponse
from httptask.netguard import DestinationPolicy, static_resolve
from httptask.secrets import SecretStore
from httptask.tasks import parse_task
from httptask.transport import Sender, Timeouts, wire_url
from servers import RecordingServer

SECRET = "sk_live_ZEBRA42_do_not_leak"
ENV = {"HTTPTASK_SECRET_API_KEY": SECRET, "HTTPTASK_SECRET_GEINS_USER": "geins-user:geins-pass"}
BASIC = "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()


def _send(task: dict[str, Any]) -> HttpResponse:
    prepared = prepare(
        parse_task({"id": "t1", **task}),
        inputs={},
        catalog=Catalog.default(),
        secrets=SecretStore(environ=ENV),
    )

    async def go() -> HttpResponse:
        async with Sender() as sender:
            response, _ = await send_prepared(prepared, sender)
            return response

    return asyncio.run(go())


SEED_CASES = [
    pytest.param(
        {
            "operation": "stripe.report_payment_record_refund",
            "credentials": "api_key",
            "request": {
                "path": {"id": "pr_1"},
                "body": {
                    "refunded": {"refunded_at": 1706702400},
                    "outcome": "refunded",
                    "processor_details": {"type": "custom"},
                    "expand": ["a"],
                },
            },
        },
        "/v1/payment_records/pr_1/report_refund",
        {"content-type": "application/x-www-form-urlencoded", "authorization": f"Bearer {SECRET}"},
        b"refunded[refunded_at]=1706702400&outcome=refunded&processor_details[type]=custom&expand[]=a",
        "idempotency-key",
        id="stripe.report_payment_record_refund",
    ),
    pytest.param(
        {
            "operation": "chargebee.record_refund",
            "credentials": "api_key",
            "request": {
                "path": {"invoice-id": "inv_1"},
                "body": {
                    "memo": "m",
                    "transaction": {"amount": 1000, "payment_method": "check", "date": 1706702400},
                },
            },
        },
        "/invoices/inv_1/record_refund",
        {"content-type": "application/x-www-form-urlencoded", "authorization": BASIC},
        b"memo=m&transaction[amount]=1000&transaction[payment_method]=check&transaction[date]=1706702400",
        None,
        id="chargebee.record_refund",
    ),
    pytest.param(
        {
            "operation": "chargebee.refund_invoice",
            "credentials": "api_key",
            "request": {
                "path": {"invoice-id": "a/b"},
                "body": {"refund_amount": 1, "credit_note": {"reason_code": "other"}},
            },
        },
        "/invoices/a%2Fb/refund",
        {"content-type": "application/x-www-form-urlencoded", "authorization": BASIC},
        b"refund_amount=1&credit_note[reason_code]=other",
        "chargebee-idempotency-key",
        id="chargebee.refund_invoice",
    ),
    pytest.param(
        {
            "operation": "zoho-billing.refund_credit_note",
            "credentials": "api_key",
            "request": {
                "path": {"creditnote_id": "9030"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "1"},
                "body": {"amount": 10},
            },
        },
        "/creditnotes/9030/refunds",
        {
            "content-type": "application/json",
            "authorization": f"Zoho-oauthtoken {SECRET}",
            "x-com-zoho-subscriptions-organizationid": "1",
        },
        b'{"amount":10}',
        None,
        id="zoho-billing.refund_credit_note",
    ),
    pytest.param(
        {
            "operation": "zoho-billing.refund_payment",
            "credentials": "api_key",
            "request": {
                "path": {"payment_id": "9031"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "1"},
                "body": {"amount": 2.5, "description": "dup"},
            },
        },
        "/payments/9031/refunds",
        {
            "content-type": "application/json",
            "authorization": f"Zoho-oauthtoken {SECRET}",
            "x-com-zoho-subscriptions-organizationid": "1",
        },
        b'{"amount":2.5,"description":"dup"}',
        None,
        id="zoho-billing.refund_payment",
    ),
    pytest.param(
        {
            "operation": "zoho-billing.get_credit_note_refund",
            "credentials": "api_key",
            "request": {
                "path": {"refund_id": "../x y"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "1"},
            },
        },
        "/creditnotes/refunds/..%2Fx%20y",
        {"authorization": f"Zoho-oauthtoken {SECRET}", "x-com-zoho-subscriptions-organizationid": "1"},
        b"",
        None,
        id="zoho-billing.get_credit_note_refund",
    ),
    pytest.param(
        {
            "operation": "geins.create_order_refund",
            "credentials": {"apiKey": "api_key", "basicAuth": "geins_user"},
            "request": {"path": {"orderId": 42}, "body": {"RefundAmount": 9.95}},
        },
        "/API/Order/42/Refund",
        {
            "content-type": "application/json",
            "x-apikey": SECRET,
            "authorization": "Basic " + base64.b64encode(b"geins-user:geins-pass").decode(),
        },
        b'{"RefundAmount":9.95}',
        None,
        id="geins.create_order_refund",
    ),
]


@pytest.mark.parametrize(("task", "path", "headers", "body", "key_header"), SEED_CASES)
def test_each_seed_operation_arrives_byte_for_byte(
    server: RecordingServer,
    task: dict[str, Any],
    path: str,
    headers: dict[str, str],
    body: bytes,
    key_header: str | None,
) -> None:
    op = Catalog.default().operation(task["operation"])
    response = _send({**task, "server": {"url": server.url + "/base"}})
    assert response.status == 200 and response.body() == {"ok": True}
    [received] = server.requests
    assert received.method == op.method
    assert received.path == "/base" + path
    assert received.body == body
    for name, value in headers.items():
        assert received.header(name) == value
    # Nothing else the API would see: no stray auth headers, and a key only where the API takes one.
    sent = {name for name, _ in received.headers}
    assert sent - set(headers) <= {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "content-length",
        *([key_header] if key_header else []),
    }
    if key_header:
        assert len(received.header(key_header) or "") == 36


def _send_raw(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    async def go() -> HttpResponse:
        async with Sender() as sender:
            return await sender.send(request, timeouts=Timeouts(connect=1, read=2), **kwargs)

    return asyncio.run(go())


def test_a_redirect_to_another_host_is_refused(server: RecordingServer) -> None:
    server.answer(302, headers={"Location": "http://localhost:1/elsewhere"})
    with pytest.raises(SendError) as caught:
        _send_raw(HttpRequest("GET", server.url + "/a"), follow_redirects=True)
    assert str(caught.value) == (
        f"Refused a redirect from {server.url} to another host (http://localhost:1); "
        "only same-host redirects are followed."
    )
    assert [r.path for r in server.requests] == ["/a"]


def test_a_same_host_redirect_is_followed_only_when_asked(server: RecordingServer) -> None:
    server.answer(307, headers={"Location": "/b"})
    assert _send_raw(HttpRequest("GET", server.url + "/a")).status == 307
    server.answer(307, headers={"Location": "/b"})
    assert _send_raw(HttpRequest("GET", server.url + "/a"), follow_redirects=True).status == 200
    assert [r.path for r in server.requests] == ["/a", "/a", "/b"]


def test_a_response_past_the_cap_is_a_clear_error(server: RecordingServer) -> None:
    server.answer(200, b"x" * 2048, {"Content-Type": "text/plain"})
    with pytest.raises(ResponseTooLarge) as caught:
        _send_raw(HttpRequest("GET", server.url + "/big"), max_response_bytes=1024)
    assert str(caught.value) == (
        f"The response from {server.url} is larger than the cap of 1,024 bytes; "
        "raise maxResponseBytes on the task if it is expected."
    )


def test_json_is_parsed_and_other_bodies_are_text(server: RecordingServer) -> None:
    server.answer(201, b'{"id": "re_1"}', {"Content-Type": "application/json; charset=utf-8"})
    server.answer(200, b"plain \xff", {"Content-Type": "text/plain"})
    assert _send_raw(HttpRequest("GET", server.url + "/j")).body() == {"id": "re_1"}
    assert _send_raw(HttpRequest("GET", server.url + "/t")).body() == "plain \ufffd"


ENCODINGS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 9110's deflate: zlib-wrapped
    "raw deflate": lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS),  # what some servers send instead
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_compressed_answer_is_decoded(server: RecordingServer, encoding: str) -> None:
    body = b'{"refund": "re_1", "note": "' + b"x" * 5000 + b'"}'
    server.answer(
        200,
        ENCODINGS[encoding](body),
        {"Content-Type": "application/json", "Content-Encoding": encoding.split()[-1]},
    )
    response = _send_raw(HttpRequest("GET", server.url + "/z"))
    assert response.content == body
    assert response.body() == {"refund": "re_1", "note": "x" * 5000}
    assert "gzip" in (server.requests[0].header("accept-encoding") or "")


def test_the_cap_counts_decoded_bytes_so_a_compression_bomb_stops_at_it(server: RecordingServer) -> None:
    bomb = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)  # 64 MiB of zeros in about 64 KB
    server.answer(200, bomb, {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    with pytest.raises(ResponseTooLarge):
        _send_raw(HttpRequest("GET", server.url + "/bomb"), max_response_bytes=2**20)


def test_a_url_with_non_ascii_and_stray_characters_is_encoded_and_escapes_are_kept(
    server: RecordingServer,
) -> None:
    _send_raw(HttpRequest("GET", server.url + "/café/a%2Fb/x y?q=ü ö&r=%zz&s=%41"))
    assert server.requests[0].path == "/caf%C3%A9/a%2Fb/x%20y?q=%C3%BC%20%C3%B6&r=%25zz&s=%41"


def test_a_non_ascii_host_goes_out_in_idna(server: RecordingServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    sender = Sender(
        policy=DestinationPolicy(allow_hosts=["bücher.test", "xn--bcher-kva.test"]),
        resolve=static_resolve({"xn--bcher-kva.test": ["127.0.0.1"]}),
    )

    async def go() -> HttpResponse:
        async with sender:
            return await sender.send(HttpRequest("GET", f"http://bücher.test:{port}/r"))

    assert asyncio.run(go()).status == 200
    assert server.requests[0].header("host") == f"xn--bcher-kva.test:{port}"


def test_wire_url_leaves_a_clean_url_as_it_is() -> None:
    url = "http://127.0.0.1:8080/invoices/a%2Fb/refund?x=%C3%A9&y=1#f"
    assert wire_url(url) == url


def test_a_header_that_would_split_the_request_is_not_sent(server: RecordingServer) -> None:
    with pytest.raises(NotSent) as caught:
        _send_raw(HttpRequest("GET", server.url + "/h", (("x-note", "a\r\nx-evil: 1"),)))
    assert (str(caught.value), caught.value.retryable) == (
        "Not sent: the header 'x-note' holds a line break or NUL, which would split the request.",
        False,
    )
    assert server.requests == []


def test_a_body_goes_out_with_the_content_type_given_or_none(server: RecordingServer) -> None:
    _send_raw(HttpRequest("POST", server.url + "/b", (), b"raw"))
    _send_raw(HttpRequest("POST", server.url + "/b", (("content-type", "text/csv"),), b"a,b"))
    first, second = server.requests
    assert (first.body, first.header("content-type")) == (b"raw", None)
    assert (second.body, second.header("content-type")) == (b"a,b", "text/csv")


def test_the_total_timeout_bounds_a_slow_answer(server: RecordingServer) -> None:
    server.behaviours.append("slow")

    async def go() -> HttpResponse:
        async with Sender() as sender:
            return await sender.send(
                HttpRequest("POST", server.url + "/slow", (), b"{}"),
                timeouts=Timeouts(connect=1, read=5, total=0.3),
            )

    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(go())
    assert str(caught.value) == (
        f"No answer from {server.url} within 0.3 s (total timeout); the server may have received the request."
    )


def test_a_reason_phrase_keeps_no_control_characters() -> None:
    # A server's escape sequences in its reason phrase reached the terminal through 'run' and 'runs show'.
    async def main() -> HttpResponse:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 402 Pay \x1b]0;owned\x07now\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, Sender() as sender:
            return await sender.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))

    response = asyncio.run(main())
    assert (response.status, response.reason) == (402, "Pay \\x1b]0;owned\\x07now")


def test_the_quick_check_for_characters_to_encode_agrees_with_the_full_one() -> None:
    from httptask.transport import _UNSAFE, _unsafe

    for character in map(chr, range(0x180)):
        for url in (
            f"http://h/a{character}b",
            f"http://h/a%{character}1",
            f"http://h/%4{character}",
            f"{character}",
        ):
            assert _unsafe(url) is (_UNSAFE.search(url) is not None), repr(url)


def test_the_host_header_names_a_port_only_when_it_is_not_the_default() -> None:
    from httptask.transport import _destination

    assert _destination("http://h.test:80").host_header == "h.test"
    assert _destination("https://h.test:443").host_header == "h.test"
    assert _destination("http://h.test:443").host_header == "h.test:443"
    assert _destination("http://[::1]:8080").host_header == "[::1]:8080"
    assert _destination("HTTPS://H.test").origin == ("https", "h.test", 443)
