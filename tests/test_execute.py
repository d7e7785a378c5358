"""execute.prepare: the exact request of each seed operation (method, URL, headers, body bytes), server URLs,
path encoding, header defaults, auth per scheme and idempotency keys; nothing is sent here."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.errors import RequestInvalid, UsageError
from httptask.execute import Prepared, prepare
from httptask.secrets import SecretStore
from httptask.tasks import parse_task

SECRET = "sk_live_ZEBRA42_do_not_leak"
ENV = {"HTTPTASK_SECRET_API_KEY": SECRET, "HTTPTASK_SECRET_GEINS_USER": "geins-user:geins-pass"}


def _prepare(task: dict[str, Any], inputs: dict[str, Any] | None = None) -> Prepared:
    return prepare(
        parse_task({"id": "t1", **task}),
        inputs=inputs or {},
        catalog=Catalog.default(),
        secrets=SecretStore(environ=ENV),
    )


def _headers(prepared: Prepared) -> dict[str, str]:
    return dict(prepared.request.headers)


def test_stripe_report_refund_is_a_bracket_form_with_bearer_auth_and_an_idempotency_key() -> None:
    prepared = _prepare(
        {
            "operation": "stripe.report_payment_record_refund",
            "credentials": "api_key",
            "request": {
                "path": {"id": "{{ input.record }}"},
                "body": {
                    "refunded": {"refunded_at": "{{ input.at }}"},
                    "outcome": "refunded",
                    "processor_details": {"type": "custom", "custom": {"refund_reference": "ref 1"}},
                    "expand": ["payment_method", "customer"],
                },
            },
        },
        {"record": "pr_123", "at": 1706702400},
    )
    request = prepared.request
    assert request.method == "POST"
    # The spec's server ends with '/': the path joins it without a double slash.
    assert request.url == "https://api.stripe.com/v1/payment_records/pr_123/report_refund"
    assert request.content == (
        b"refunded[refunded_at]=1706702400&outcome=refunded&processor_details[type]=custom"
        b"&processor_details[custom][refund_reference]=ref+1"
        b"&expand[]=payment_method&expand[]=customer"
    )
    headers = _headers(prepared)
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["idempotency-key"] == prepared.idempotency_key
    assert len(prepared.idempotency_key or "") == 36


def test_chargebee_record_refund_fills_server_defaults_and_uses_the_api_key_as_basic_user() -> None:
    prepared = _prepare(
        {
            "operation": "chargebee.record_refund",
            "credentials": "api_key",
            "server": {"site": "acme"},
            "request": {
                "path": {"invoice-id": "inv_1"},
                "body": {
                    "memo": "late",
                    "transaction": {"amount": 1000, "payment_method": "cash", "date": 1706702400},
                },
            },
        }
    )
    assert prepared.request.url == "https://acme.chargebee.com:443/api/v1/invoices/inv_1/record_refund"
    assert prepared.request.content == (
        b"memo=late&transaction[amount]=1000&transaction[payment_method]=cash&transaction[date]=1706702400"
    )
    expected_auth = "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()
    # Content-Type comes from the spec's header default; record_refund has no idempotency key.
    assert _headers(prepared) == {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": expected_auth,
    }
    assert prepared.idempotency_key is None and not prepared.idempotent


def test_chargebee_server_index_chooses_the_test_site() -> None:
    prepared = _prepare(
        {
            "operation": "chargebee.record_refund",
            "server": {"index": 1, "site": "acme"},
            "request": {"path": {"invoice-id": "i"}, "body": {"memo": "m"}},
        }
    )
    assert prepared.request.url == "https://acme-test.chargebee.com:443/api/v1/invoices/i/record_refund"


def test_chargebee_refund_invoice_uses_its_operation_level_server_and_idempotency_header() -> None:
    prepared = _prepare(
        {
            "operation": "chargebee.refund_invoice",
            "credentials": "api_key",
            "server": {"site": "acme"},
            "idempotencyKey": "refund-{{ input.id }}",
            "request": {"path": {"invoice-id": "inv_9"}, "body": {"refund_amount": 500}},
        },
        {"id": "inv_9"},
    )
    assert prepared.request.url == "https://acme.chargebee.com/api/v2/invoices/inv_9/refund"
    assert prepared.request.content == b"refund_amount=500"
    assert _headers(prepared)["chargebee-idempotency-key"] == "refund-inv_9"
    assert prepared.idempotent


def test_zoho_sends_its_token_with_the_oauth_prefix_as_json() -> None:
    prepared = _prepare(
        {
            "operation": "zoho-billing.refund_payment",
            "credentials": "api_key",
            "request": {
                "path": {"payment_id": "903"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "10234695"},
                "body": {"amount": 12.5, "description": "dup"},
            },
        }
    )
    assert prepared.request.url == "https://www.zohoapis.com/billing/v1/payments/903/refunds"
    assert prepared.request.content == b'{"amount":12.5,"description":"dup"}'
    assert _headers(prepared) == {
        "x-com-zoho-subscriptions-organizationid": "10234695",
        "content-type": "application/json",
        "authorization": f"Zoho-oauthtoken {SECRET}",
    }


def test_zoho_get_has_no_body_and_is_idempotent() -> None:
    prepared = _prepare(
        {
            "operation": "zoho-billing.get_credit_note_refund",
            "credentials": "api_key",
            "request": {
                "path": {"refund_id": "7"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "1"},
            },
        }
    )
    assert (prepared.request.method, prepared.request.content) == ("GET", b"")
    assert "content-type" not in _headers(prepared)
    assert prepared.idempotent


def test_geins_needs_an_api_key_header_and_basic_auth_mapped_by_scheme() -> None:
    prepared = _prepare(
        {
            "operation": "geins.create_order_refund",
            "credentials": {"apiKey": "api_key", "basicAuth": "geins_user"},
            "request": {"path": {"orderId": 42}, "body": {"RefundAmount": 9.95, "RefundType": 1}},
        }
    )
    assert prepared.request.url == "https://mgmtapi.geins.io/API/Order/42/Refund"
    assert prepared.request.content == b'{"RefundAmount":9.95,"RefundType":1}'
    headers = _headers(prepared)
    assert headers["x-apikey"] == SECRET
    assert headers["authorization"] == "Basic " + base64.b64encode(b"geins-user:geins-pass").decode()


def test_geins_with_one_secret_name_explains_the_credentials_map() -> None:
    with pytest.raises(UsageError) as caught:
        _prepare(
            {
                "operation": "geins.create_order_refund",
                "credentials": "api_key",
                "request": {"path": {"orderId": 1}, "body": {"RefundAmount": 1}},
            }
        )
    assert str(caught.value) == (
        "task t1: geins.create_order_refund needs apiKey and basicAuth together; give "
        "credentials as a map, e.g. credentials: {apiKey: SECRET_NAME, basicAuth: SECRET_NAME}."
    )


def test_a_missing_secret_names_the_environment_variable() -> None:
    with pytest.raises(UsageError) as caught:
        _prepare(
            {
                "operation": "stripe.report_payment_record_refund",
                "credentials": "stripe_key",
                "request": {
                    "path": {"id": "x"},
                    "body": {
                        "refunded": {"refunded_at": 1},
                        "outcome": "refunded",
                        "processor_details": {"type": "custom"},
                    },
                },
            }
        )
    assert "HTTPTASK_SECRET_STRIPE_KEY" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "segment"),
    [("../x", "..%2Fx"), ("a/b", "a%2Fb"), ("a/..", "a%2F.."), ("a b?c#d", "a%20b%3Fc%23d")],
)
def test_path_parameters_are_one_encoded_segment(value: str, segment: str) -> None:
    prepared = _prepare({"operation": "chargebee.refund_invoice", "request": {"path": {"invoice-id": value}}})
    assert prepared.request.url == f"https://demo.chargebee.com/api/v2/invoices/{segment}/refund"


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_a_dot_segment_or_empty_path_value_is_refused(value: str) -> None:
    # %2E%2E would be decoded and removed by URL normalisation on the way out, reaching another path.
    with pytest.raises(RequestInvalid) as caught:
        _prepare({"operation": "chargebee.refund_invoice", "request": {"path": {"invoice-id": value}}})
    assert [str(i) for i in caught.value.issues] == [
        f"$.path.invoice-id: must not be empty, '.' or '..', not {value!r}: it would change the "
        "request's path"
    ]


def test_the_idempotency_key_is_generated_once_and_from_a_seed_stays_the_same() -> None:
    task = {"operation": "chargebee.refund_invoice", "request": {"path": {"invoice-id": "i"}}}
    first, second = _prepare(task), _prepare(task)
    assert first.idempotency_key != second.idempotency_key
    seeded = [
        prepare(
            parse_task({"id": "t1", **task}),
            inputs={},
            catalog=Catalog.default(),
            secrets=SecretStore(environ={}),
            key_seed="run-1/t1",
        ).idempotency_key
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_server_url_replaces_the_base_and_the_path_follows_it() -> None:
    prepared = _prepare(
        {
            "operation": "stripe.report_payment_record_refund",
            "server": {"url": "http://127.0.0.1:9/"},
            "request": {
                "path": {"id": "p"},
                "body": {
                    "refunded": {"refunded_at": 1},
                    "outcome": "refunded",
                    "processor_details": {"type": "custom"},
                },
            },
        }
    )
    assert prepared.request.url == "http://127.0.0.1:9/v1/payment_records/p/report_refund"


def test_a_server_variable_outside_its_enum_and_an_unknown_one_are_both_reported() -> None:
    with pytest.raises(RequestInvalid) as caught:
        _prepare(
            {
                "operation": "chargebee.record_refund",
                "server": {"environment": "evil.com", "region": "eu"},
                "request": {"path": {"invoice-id": "i"}, "body": {"memo": "m"}},
            }
        )
    assert [str(i) for i in caught.value.issues] == [
        "$.server.environment: must be one of 'chargebee.com', not 'evil.com'",
        "$.server.region: is not a variable of the server {protocol}://{site}.{environment}:{port}/api/v1 "
        "(its variables: protocol, site, environment, port)",
    ]


def test_cr_lf_in_a_header_value_is_refused() -> None:
    with pytest.raises(RequestInvalid) as caught:
        _prepare(
            {
                "operation": "zoho-billing.get_credit_note_refund",
                "request": {
                    "path": {"refund_id": "7"},
                    "headers": {"X-com-zoho-subscriptions-organizationid": "1\r\nX-Evil: 1"},
                },
            }
        )
    assert [i.to_dict() for i in caught.value.issues] == [
        {
            "path": "$.headers.x-com-zoho-subscriptions-organizationid",
            "message": "must not contain a line break (CR or LF) or NUL",
            "actual": "1\r\nX-Evil: 1",
        }
    ]


SURROGATE = "half of a UTF-16 surrogate pair, which cannot be sent as UTF-8; fix the value it comes from"


@pytest.mark.parametrize(
    ("request_values", "path"),
    [
        ({"path": {"invoice-id": "inv_{{ input.bad }}"}}, "$.path.invoice-id"),
        ({"path": {"invoice-id": "inv_1"}, "body": {"comment": "{{ input.bad }}"}}, "$.body.comment"),
    ],
)
def test_a_lone_surrogate_from_json_input_is_an_issue_not_a_traceback(
    request_values: dict[str, Any], path: str
) -> None:
    # `--input '{"bad": "\\ud800"}'` gives a str that UTF-8 cannot encode: nothing can be sent, so say where.
    with pytest.raises(RequestInvalid) as caught:
        _prepare({"operation": "chargebee.refund_invoice", "request": request_values}, {"bad": "\ud800"})
    assert [str(i) for i in caught.value.issues] == [f"{path}: holds '\\ud800', {SURROGATE}"]


def test_a_lone_surrogate_in_a_raw_request_s_body_is_an_issue() -> None:
    form = "application/x-www-form-urlencoded"
    raw = {"url": "http://127.0.0.1:9/hook", "method": "POST", "contentType": form}
    task = {"httpRequest": {**raw, "body": {"a": ["\udfff"]}}}
    with pytest.raises(RequestInvalid) as caught:
        _prepare(task)
    assert [str(i) for i in caught.value.issues] == [f"$.httpRequest.body.a[0]: holds '\\udfff', {SURROGATE}"]


def test_a_raw_http_request_task_is_sent_as_written_without_spec_validation() -> None:
    prepared = _prepare(
        {
            "httpRequest": {
                "url": "http://127.0.0.1:9/hook?x=1",
                "method": "POST",
                "headers": {"X-Trace": "{{ input.trace }}"},
                "body": {"a": 1},
            }
        },
        {"trace": "abc"},
    )
    assert (prepared.request.method, prepared.request.url) == ("POST", "http://127.0.0.1:9/hook?x=1")
    assert _headers(prepared) == {"content-type": "application/json", "x-trace": "abc"}
    assert prepared.request.content == b'{"a":1}'
    assert not prepared.idempotent


def test_the_redacted_request_masks_credentials() -> None:
    prepared = _prepare(
        {
            "operation": "zoho-billing.get_credit_note_refund",
            "credentials": "api_key",
            "request": {
                "path": {"refund_id": "7"},
                "headers": {"X-com-zoho-subscriptions-organizationid": "1"},
            },
        }
    )
    assert SECRET not in str(prepared.redacted_request())
    assert prepared.redacted_request()["headers"]["authorization"] == "***"


def test_a_response_record_masks_credentials_echoed_in_the_reason_or_as_json_escapes() -> None:
    from httptask.execute import response_record
    from httptask.messages import HttpResponse
    from httptask.redaction import Redactor

    secret = "sk_test_5e2b9d71c4a8f063"
    redactor = Redactor()
    redactor.add(secret)
    escaped = "".join(f"\\u{ord(char):04x}" for char in secret)  # valid JSON no text search finds
    response = HttpResponse(
        status=401,
        headers=(("content-type", "application/json"),),
        content=b'{"seen": "' + escaped.encode() + b'"}',
        elapsed_ms=1.0,
        url="http://127.0.0.1/",
        reason=f"Bad key {secret}",
    )
    record = response_record(response, redactor)
    assert (record["reason"], record["body"]) == ("Bad key ***", {"seen": "***"})
