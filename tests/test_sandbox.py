"""sandbox: one real server on 127.0.0.1 per module, driven over loopback with hand-built requests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from httptask import sandbox as sandbox_module
from httptask.catalog import Catalog, spec_files
from httptask.encoding import encode_body
from httptask.messages import HttpResponse
from httptask.reconcile import placed, reconcile_of
from httptask.requests import expand_path, sandbox_base_url
from httptask.resources import bundled_dir
from httptask.responses import check_response
from httptask.samples import sample_value
from httptask.sandbox import MAX_BODY_BYTES, SandboxThread
from servers import RecordingServer

BUNDLED = Catalog([(api, path, True) for api, path in spec_files(bundled_dir("specs"))])
FORM = "application/x-www-form-urlencoded"

CHARGEBEE_AUTH = ("cb_test_key", "")
STRIPE_AUTH = {"Authorization": "Bearer sk_test_123"}
GEINS_AUTH = {"X-ApiKey": "geins-key", "Authorization": "Basic dXNlcjpwYXNz"}
ZOHO_HEADERS = {"Authorization": "Zoho-oauthtoken 1000.abc",
                "X-com-zoho-subscriptions-organizationid": "10234695"}

RECORD_REFUND = (
    "transaction[amount]=1000&transaction[payment_method]=check&transaction[reference_number]=CHQ-10023"
    "&transaction[date]=1517467200&memo=Refunded+by+check"
)
REPORT_REFUND = (
    "outcome=refunded&refunded[refunded_at]=1730297763&processor_details[type]=custom"
    "&processor_details[custom][refund_reference]=acme_pay_re_5521&amount[value]=1000&amount[currency]=usd"
    "&expand[]=payment_method_details"
)


@pytest.fixture
def client(sandbox: SandboxThread) -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must never see loopback test traffic.
    with httpx.Client(base_url=sandbox.url, trust_env=False, timeout=10) as http:
        http.delete("/_sandbox/requests")
        yield http


def example_response(operation_id: str) -> tuple[int, Any]:
    op = BUNDLED.operation(operation_id)
    response = next(r for r in op.responses if r.status.startswith("2"))
    return int(response.status), response.media_types[0].example


def url(operation_id: str, **path: str) -> str:
    op = BUNDLED.operation(operation_id)
    return sandbox_base_url(op, "") + expand_path(op.path, path)


def post_record_refund(client: httpx.Client, body: str = RECORD_REFUND, **kwargs: Any) -> httpx.Response:
    return client.post(url("chargebee.record_refund", **{"invoice-id": "inv_1"}), content=body,
                       headers={"Content-Type": FORM, **kwargs.pop("headers", {})},
                       auth=kwargs.pop("auth", CHARGEBEE_AUTH), **kwargs)


def post_report_refund(client: httpx.Client, body: str = REPORT_REFUND, headers: dict[str, str] | None = None,
                       record_id: str = "pr_5RV7bLSu4AzMD4oJ") -> httpx.Response:
    return client.post(url("stripe.report_payment_record_refund", id=record_id), content=body,
                       headers={"Content-Type": FORM, **STRIPE_AUTH, **(headers or {})})


def post_geins(client: httpx.Client, body: Any, order_id: str = "1042", **headers: str) -> httpx.Response:
    return client.post(url("geins.create_order_refund", orderId=order_id), content=json.dumps(body),
                       headers={"Content-Type": "application/json", **GEINS_AUTH, **headers})


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "about:blank"
    assert problem["title"] == "The request does not match the spec"
    return list(problem["errors"])


def paths(response: httpx.Response) -> list[str]:
    return [error["path"] for error in errors(response)]


def test_health_counts_the_operations(client: httpx.Client) -> None:
    assert client.get("/_sandbox/health").json() == {"status": "ok", "operations": len(BUNDLED.ids())}


def test_operations_are_served_under_the_api_name_and_server_base_path() -> None:
    invoice = {"invoice-id": "x"}
    assert url("chargebee.record_refund", **invoice) == "/chargebee/api/v1/invoices/x/record_refund"
    assert url("chargebee.refund_invoice", **invoice) == "/chargebee/api/v2/invoices/x/refund"
    assert url("stripe.report_payment_record_refund", id="x") == "/stripe/v1/payment_records/x/report_refund"
    assert url("geins.create_order_refund", orderId="1") == "/geins/API/Order/1/Refund"
    assert url("zoho-billing.refund_credit_note", creditnote_id="x") == (
        "/zoho-billing/billing/v1/creditnotes/x/refunds"
    )


# --- the seven seed operations answer valid requests with their examples ---------------------------------


def test_chargebee_record_refund(client: httpx.Client) -> None:
    response = post_record_refund(client)
    assert (response.status_code, response.json()) == example_response("chargebee.record_refund")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-sandbox-request-id"]


def test_chargebee_refund_invoice(client: httpx.Client) -> None:
    response = client.post(url("chargebee.refund_invoice", **{"invoice-id": "__demo_inv__9"}),
                           content="refund_amount=500&comment=Partial+refund&credit_note[create_reason_code]=Other",
                           headers={"Content-Type": FORM, "chargebee-idempotency-key": "cb-key-1"},
                           auth=CHARGEBEE_AUTH)
    assert (response.status_code, response.json()) == example_response("chargebee.refund_invoice")


def test_chargebee_refund_invoice_takes_no_body_at_all(client: httpx.Client) -> None:
    response = client.post(url("chargebee.refund_invoice", **{"invoice-id": "inv_2"}), auth=CHARGEBEE_AUTH)
    assert response.status_code == 200, response.text


def test_stripe_report_payment_record_refund(client: httpx.Client) -> None:
    response = post_report_refund(client)
    assert (response.status_code, response.json()) == example_response("stripe.report_payment_record_refund")


def test_geins_create_order_refund(client: httpx.Client) -> None:
    body = {"OrderRowId": 5512, "RefundAmount": 299.0, "RefundType": 0, "Settled": False}
    response = post_geins(client, body)
    assert (response.status_code, response.json()) == example_response("geins.create_order_refund")


@pytest.mark.parametrize(("operation_id", "name"), [("zoho-billing.refund_credit_note", "creditnote_id"),
                                                    ("zoho-billing.refund_payment", "payment_id")])
def test_zoho_refunds(client: httpx.Client, operation_id: str, name: str) -> None:
    response = client.post(url(operation_id, **{name: "90300000081375"}), headers=ZOHO_HEADERS,
                           json={"amount": 20, "description": "Refund for discount Offer"})
    assert (response.status_code, response.json()) == example_response(operation_id)


def test_zoho_get_credit_note_refund(client: httpx.Client) -> None:
    response = client.get(url("zoho-billing.get_credit_note_refund", refund_id="90300000081385"),
                          headers=ZOHO_HEADERS)
    assert (response.status_code, response.json()) == example_response("zoho-billing.get_credit_note_refund")


@pytest.mark.parametrize("operation_id", BUNDLED.ids())
def test_every_operation_accepts_its_own_spec_example_and_answers_as_its_spec_says(
    client: httpx.Client, operation_id: str
) -> None:
    op = BUNDLED.operation(operation_id)
    path = {p.name: str(sample_value(p.schema)) for p in op.parameters_in("path")}
    headers = {p.name: str(sample_value(p.schema)) for p in op.parameters_in("header") if p.required}
    headers.update({"Authorization": "Basic a2V5Og==" if op.api == "chargebee" else "Bearer t"})
    headers.update({"X-ApiKey": "k", "Authorization": "Basic dTpw"} if op.api == "geins" else {})
    headers.update({"Authorization": "Zoho-oauthtoken t"} if op.api == "zoho-billing" else {})
    content = b""
    if op.request_body is not None:
        media = op.request_body.default
        more, content = encode_body(media.example, media.content_type, form_style=media.form_style)
        headers.update(more)
    response = client.request(op.method, sandbox_base_url(op, "") + expand_path(op.path, path),
                              content=content, headers=headers)
    status, body = example_response(operation_id)
    answered = HttpResponse(response.status_code, tuple(response.headers.items()), response.content, 0.0)
    assert check_response(op, answered) == []
    reads = {rec.operation: rec for i in BUNDLED.ids() if (rec := reconcile_of(BUNDLED.operation(i)))}
    if operation_id in reads:
        # A read that reconciles a refund lists the refunds the sandbox received, not the example's own.
        assert (response.status_code, placed(reads[operation_id], response.json(), [])) == (
            status,
            placed(reads[operation_id], body, []),
        )
    else:
        assert (response.status_code, response.json()) == (status, body)


# --- invalid requests: 422 with JSON paths ---------------------------------------------------------------


def test_chargebee_missing_required_field(client: httpx.Client) -> None:
    response = post_record_refund(client, "transaction[payment_method]=check&transaction[date]=1517467200")
    assert errors(response) == [
        {"path": "$.body.memo", "message": "is required but missing", "expected": "a value"}
    ]
    assert response.json()["operation"] == "chargebee.record_refund"


def test_chargebee_wrong_enum_and_wrong_type(client: httpx.Client) -> None:
    body = "transaction[amount]=ten&transaction[payment_method]=card&transaction[date]=1517467200&memo=m"
    assert errors(post_record_refund(client, body)) == [
        {"path": "$.body.transaction.amount", "message": "must be of type integer, not string 'ten'",
         "expected": "integer", "actual": "ten"},
        {"path": "$.body.transaction.payment_method",
         "message": "must be one of 'cash', 'check', 'chargeback', 'bank_transfer', 'other', not 'card'",
         "expected": ["cash", "check", "chargeback", "bank_transfer", "other"], "actual": "card"},
    ]


def test_stripe_nested_and_enum_errors(client: httpx.Client) -> None:
    body = "outcome=refund&refunded[refunded_at]=yesterday&processor_details[type]=custom"
    assert paths(post_report_refund(client, body)) == [
        "$.body.outcome",
        "$.body.refunded.refunded_at",
    ]


def test_stripe_unknown_field(client: httpx.Client) -> None:
    assert paths(post_report_refund(client, REPORT_REFUND + "&refund_reason=dup")) == ["$.body.refund_reason"]


def test_geins_wrong_types_in_body_and_path(client: httpx.Client) -> None:
    response = post_geins(client, {"RefundAmount": "299", "RefundType": 7}, order_id="abc")
    assert paths(response) == ["$.body.RefundAmount", "$.body.RefundType", "$.path.orderId"]


def test_geins_missing_body(client: httpx.Client) -> None:
    response = client.post(url("geins.create_order_refund", orderId="1"), headers=GEINS_AUTH)
    assert paths(response) == ["$.body"]


def test_zoho_missing_header_and_amount(client: httpx.Client) -> None:
    response = client.post(url("zoho-billing.refund_payment", payment_id="1"),
                           headers={"Authorization": "Zoho-oauthtoken t"}, json={"description": "no amount"})
    assert paths(response) == ["$.body.amount", "$.headers.x-com-zoho-subscriptions-organizationid"]


def test_zoho_json_string_for_a_number_stays_a_type_error(client: httpx.Client) -> None:
    response = client.post(url("zoho-billing.refund_payment", payment_id="1"), headers=ZOHO_HEADERS,
                           json={"amount": "20"})
    assert paths(response) == ["$.body.amount"]


def test_a_body_in_the_wrong_content_type_is_415(client: httpx.Client) -> None:
    response = client.post(url("chargebee.record_refund", **{"invoice-id": "inv_1"}), json={"memo": "m"},
                           auth=CHARGEBEE_AUTH)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "chargebee.record_refund takes application/x-www-form-urlencoded, not 'application/json'."
    )


def test_a_body_without_content_type_is_415(client: httpx.Client) -> None:
    response = client.post(url("geins.create_order_refund", orderId="1"), content=b'{"RefundAmount": 1}',
                           headers=GEINS_AUTH)
    assert response.status_code == 415
    assert "no Content-Type header" in response.json()["detail"]


def test_bad_json_is_400(client: httpx.Client) -> None:
    response = client.post(url("geins.create_order_refund", orderId="1"), content=b'{"RefundAmount": ',
                           headers={"Content-Type": "application/json", **GEINS_AUTH})
    assert response.status_code == 400
    problem = response.json()
    assert problem["title"] == "The body cannot be read"
    assert problem["detail"].startswith("The body is not valid JSON")


def test_a_body_over_the_cap_is_413(client: httpx.Client) -> None:
    response = post_geins(client, {"Description": "x" * MAX_BODY_BYTES})
    assert response.status_code == 413
    assert response.json()["detail"] == f"The sandbox takes request bodies of at most {MAX_BODY_BYTES} bytes."


# --- auth ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation_id", "path", "headers", "named"),
    [
        ("chargebee.record_refund", {"invoice-id": "i"}, {}, "'Authorization: Basic ...'"),
        ("chargebee.record_refund", {"invoice-id": "i"}, {"Authorization": "Bearer s3cr3t-value"}, "Basic"),
        ("stripe.report_payment_record_refund", {"id": "p"}, {"Authorization": "Basic s3cr3t-value"},
         "Bearer"),
        ("geins.create_order_refund", {"orderId": "1"}, {"X-ApiKey": "s3cr3t-value"}, "Basic"),
        ("geins.create_order_refund", {"orderId": "1"}, {"Authorization": "Basic s3cr3t-value"}, "X-ApiKey"),
        ("zoho-billing.refund_payment", {"payment_id": "1"}, {"Authorization": "Bearer s3cr3t-value"},
         "'Zoho-oauthtoken ...'"),
        ("zoho-billing.get_credit_note_refund", {"refund_id": "1"}, {"Authorization": "Zoho-oauthtoken"},
         "'Zoho-oauthtoken ...'"),
    ],
)
def test_missing_or_malformed_credentials_are_401(
    client: httpx.Client, operation_id: str, path: dict[str, str], headers: dict[str, str], named: str
) -> None:
    op = BUNDLED.operation(operation_id)
    response = client.request(op.method, url(operation_id, **path), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert named in response.json()["detail"]
    assert "s3cr3t" not in response.text


def test_401_names_the_scheme_in_a_sentence(client: httpx.Client) -> None:
    response = client.post(url("stripe.report_payment_record_refund", id="p"), content=REPORT_REFUND,
                           headers={"Content-Type": FORM})
    assert response.json() == {
        "type": "about:blank",
        "title": "Authentication required",
        "status": 401,
        "detail": "stripe.report_payment_record_refund needs bearer authentication (bearerAuth): "
                  "an 'Authorization: Bearer ...' header.",
        "operation": "stripe.report_payment_record_refund",
        "schemes": [["bearerAuth"]],
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="sandbox"'


# --- paths -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a/b", "../x", "..", "100% sure", "inv?id=1#x", "ünï"])
def test_a_percent_encoded_path_value_arrives_as_one_value(client: httpx.Client, value: str) -> None:
    response = post_report_refund(client, record_id=value)
    assert response.status_code == 200, response.text
    (record,) = client.get("/_sandbox/requests").json()
    assert record["path_params"] == {"id": value}
    assert record["path"] == url("stripe.report_payment_record_refund", id=value)


def test_an_encoded_slash_in_an_integer_path_value_is_reported_decoded(client: httpx.Client) -> None:
    response = post_geins(client, {"RefundAmount": 1}, order_id="1/2")
    assert errors(response) == [
        {"path": "$.path.orderId", "message": "must be of type integer, not string '1/2'",
         "expected": "integer", "actual": "1/2"}
    ]


def test_unknown_route_is_404_problem(client: httpx.Client) -> None:
    response = client.get("/stripe/v1/charges", headers=STRIPE_AUTH)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "No such endpoint"
    assert "sk_test" not in response.text


def test_an_empty_path_value_does_not_match(client: httpx.Client) -> None:
    response = client.post("/zoho-billing/billing/v1/payments//refunds", headers=ZOHO_HEADERS,
                           json={"amount": 1})
    assert response.status_code == 404


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.get(url("stripe.report_payment_record_refund", id="p"), headers=STRIPE_AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["detail"] == (
        "/stripe/v1/payment_records/p/report_refund does not take GET; it takes POST."
    )


def test_literal_segments_win_over_parameters(client: httpx.Client) -> None:
    # GET /creditnotes/refunds/{refund_id} and POST /creditnotes/{creditnote_id}/refunds overlap here.
    get = client.get("/zoho-billing/billing/v1/creditnotes/refunds/refunds", headers=ZOHO_HEADERS)
    post = client.post("/zoho-billing/billing/v1/creditnotes/refunds/refunds", headers=ZOHO_HEADERS,
                       json={"amount": 1})
    assert (get.status_code, post.status_code) == (200, 201)
    first, second = client.get("/_sandbox/requests").json()
    assert (first["operation"], first["path_params"]) == ("zoho-billing.get_credit_note_refund",
                                                          {"refund_id": "refunds"})
    assert (second["operation"], second["path_params"]) == ("zoho-billing.refund_credit_note",
                                                            {"creditnote_id": "refunds"})


# --- idempotency -----------------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_replays_the_first_response(client: httpx.Client) -> None:
    first = post_report_refund(client, headers={"Idempotency-Key": "key-replay"})
    again = post_report_refund(client, headers={"Idempotency-Key": "key-replay"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert again.headers["x-sandbox-idempotent-replay"] == "true"
    assert "x-sandbox-idempotent-replay" not in first.headers
    records = client.get("/_sandbox/requests").json()
    assert [(r["replayed"], r["idempotency_key"], r["status"]) for r in records] == [
        (False, "key-replay", 200), (True, "key-replay", 200)]
    assert sum(1 for r in records if not r["replayed"] and r["status"] < 300) == 1


def test_the_same_key_with_a_different_body_is_409(client: httpx.Client) -> None:
    assert post_report_refund(client, headers={"Idempotency-Key": "key-conflict"}).status_code == 200
    response = post_report_refund(client, REPORT_REFUND.replace("1000", "999"),
                                  headers={"Idempotency-Key": "key-conflict"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "This idempotency key was used with a different request"


def test_keys_are_per_operation_and_invalid_requests_are_not_stored(client: httpx.Client) -> None:
    invalid = post_report_refund(client, "outcome=nope", headers={"Idempotency-Key": "key-shared"})
    assert invalid.status_code == 422
    assert post_report_refund(client, headers={"Idempotency-Key": "key-shared"}).status_code == 200
    response = client.post(url("chargebee.refund_invoice", **{"invoice-id": "i"}), content="refund_amount=5",
                           headers={"Content-Type": FORM, "chargebee-idempotency-key": "key-shared"},
                           auth=CHARGEBEE_AUTH)
    assert response.status_code == 200
    assert "x-sandbox-idempotent-replay" not in response.headers


def test_chargebee_idempotency_key_replays(client: httpx.Client) -> None:
    def send() -> httpx.Response:
        return client.post(url("chargebee.refund_invoice", **{"invoice-id": "i"}), content="refund_amount=5",
                           headers={"Content-Type": FORM, "chargebee-idempotency-key": "cb-replay"},
                           auth=CHARGEBEE_AUTH)

    first, again = send(), send()
    assert again.content == first.content
    assert again.headers["x-sandbox-idempotent-replay"] == "true"


# --- the request log ----------------------------------------------------------------------------------------


def test_requests_are_listed_oldest_first_with_credentials_redacted(client: httpx.Client) -> None:
    post_geins(client, {"RefundAmount": 1}, **{"X-Client-Secret": "hush", "X-Trace": "t-1"})
    post_record_refund(client, headers={"X-Session-Token": "tok-777"})
    post_report_refund(client, headers={"Idempotency-Key": "visible-key"})
    client.get("/nowhere?api_key=zzz&page=2")
    geins, chargebee, stripe, nowhere = client.get("/_sandbox/requests").json()

    assert geins["operation"] == "geins.create_order_refund"
    assert geins["method"] == "POST"
    assert geins["path"] == "/geins/API/Order/1042/Refund"
    assert geins["headers"]["x-apikey"] == "***"
    assert geins["headers"]["authorization"] == "***"
    assert geins["headers"]["x-client-secret"] == "***"
    assert geins["headers"]["x-trace"] == "t-1"
    assert geins["body"] == {"RefundAmount": 1}
    assert geins["raw_body"] == '{"RefundAmount": 1}'
    assert (geins["status"], geins["replayed"], geins["idempotency_key"]) == (200, False, None)

    assert chargebee["headers"]["x-session-token"] == "***"
    assert chargebee["body"] == {"transaction": {"amount": 1000, "payment_method": "check",
                                                 "reference_number": "CHQ-10023", "date": 1517467200},
                                 "memo": "Refunded by check"}
    assert stripe["headers"]["idempotency-key"] == "visible-key"
    assert stripe["idempotency_key"] == "visible-key"
    assert nowhere["operation"] is None
    assert nowhere["status"] == 404
    assert nowhere["query"] == {"api_key": "***", "page": "2"}

    listed = json.dumps([geins, chargebee, stripe, nowhere])
    for secret in ("hush", "tok-777", "geins-key", "dXNlcjpwYXNz", "sk_test_123", "zzz"):
        assert secret not in listed
    ids = [geins["id"], chargebee["id"], stripe["id"], nowhere["id"]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_the_response_header_names_the_logged_request(client: httpx.Client) -> None:
    response = post_record_refund(client)
    (record,) = client.get("/_sandbox/requests").json()
    assert response.headers["x-sandbox-request-id"] == record["id"]


def test_delete_clears_the_log(client: httpx.Client) -> None:
    post_record_refund(client)
    assert client.delete("/_sandbox/requests").status_code == 204
    assert client.get("/_sandbox/requests").json() == []


def test_the_log_keeps_only_the_latest_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "MAX_RECORDS", 3)
    with SandboxThread(BUNDLED) as running, httpx.Client(base_url=running.url, trust_env=False) as http:
        for n in range(5):
            http.get(f"/nowhere/{n}")
        assert [r["path"] for r in http.get("/_sandbox/requests").json()] == [
            "/nowhere/2", "/nowhere/3", "/nowhere/4"]


def test_the_thread_stops_cleanly_and_frees_its_port() -> None:
    with SandboxThread(BUNDLED) as running:
        root = running.url
        with httpx.Client(trust_env=False) as http:
            assert http.get(root + "/_sandbox/health").status_code == 200
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
        http.get(root + "/_sandbox/health")


def test_a_taken_port_is_one_line_not_a_traceback(server: RecordingServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "httptask", "sandbox", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: The sandbox cannot listen on 127.0.0.1:{port} (error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use); give another --port (0 picks a free one) "
        "or --host.\n"
    )
