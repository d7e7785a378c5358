"""x-reconcile: every bundled one names a read of its own document, the sandbox's reads show the writes it
received, and an answer decides received, not received, or nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.execute import prepare, send_prepared
from httptask.messages import HttpResponse, RequestValues
from httptask.reconcile import Reconcile, check_reconcile, judge, read_task, reconcile_of, sent_context
from httptask.sandbox import SandboxThread
from httptask.secrets import SecretStore
from httptask.spec import Operation
from httptask.tasks import Task, parse_task

SECRETS = SecretStore(environ={"HTTPTASK_SECRET_KEY": "test_reconcile_key"})
CATALOG = Catalog.default()
WITH_RECONCILE = [i for i in CATALOG.ids() if CATALOG.operation(i).reconcile is not None]


def test_the_bundled_specs_reconcile_the_refunds_that_a_read_can_settle() -> None:
    assert WITH_RECONCILE == ["chargebee.record_refund", "zoho-billing.refund_credit_note"]


@pytest.mark.parametrize("op_id", WITH_RECONCILE)
def test_each_bundled_x_reconcile_names_a_get_of_its_own_document(op_id: str) -> None:
    op = CATALOG.operation(op_id)
    rec = reconcile_of(op)
    assert rec is not None
    read = CATALOG.operation(rec.operation)
    assert (read.api, read.method) == (op.api, "GET")
    assert check_reconcile(op, read) == []
    # Every path parameter of the read is given, from the request as sent.
    assert {p.name for p in read.parameters_in("path")} == set(rec.request["path"])


def _op(reconcile: Any, method: str = "POST") -> Operation:
    return Operation(api="shop", operation_id="refund", method=method, path="/r", reconcile=reconcile)


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        ("retrieve", ["$.x-reconcile: must be a mapping with operation, items and match"]),
        (
            {"operation": "", "items": "list[*]", "match": {}, "request": {"body": {}}},
            [
                "$.x-reconcile.operation: must name an operationId of the same document",
                "$.x-reconcile.request: may only hold path, query and headers",
                "$.x-reconcile.items: must be a path such as $.list[*].refund",
                "$.x-reconcile.match: must map one or more fields of a candidate to their values",
            ],
        ),
        (
            {"operation": "get", "items": "$.a b", "match": {"id": 1}},
            ["$.x-reconcile.items: must be a path such as $.list[*].refund"],
        ),
    ],
)
def test_a_malformed_x_reconcile_is_reported_field_by_field(raw: Any, problems: list[str]) -> None:
    assert [str(issue) for issue in check_reconcile(_op(raw))] == problems
    with pytest.raises(ValueError):
        reconcile_of(_op(raw))


def test_a_reconciling_read_must_be_a_get() -> None:
    raw = {"operation": "refund", "items": "$.list[*]", "match": {"id": "x"}}
    [issue] = check_reconcile(_op(raw), read=_op(None, method="POST"))
    assert str(issue) == "$.x-reconcile.operation: names shop.refund, a POST: a reconciling read is a GET"


# -- deciding from an answer --------------------------------------------------------------------------------

REC = reconcile_of(
    _op(
        {
            "operation": "get",
            "items": "$.invoice.linked[*]",
            "match": {"type": "refund", "amount": "{{ sent.body.amount }}", "ref": "{{ sent.body.ref }}"},
        }
    )
)
SENT = RequestValues(body={"amount": 20, "ref": "R-7"}, has_body=True)


def _answer(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(
        status, (("content-type", "application/json"),), json.dumps(body).encode(), 1.0, url="u"
    )


def _judge(body: Any, status: int = 200, sent: RequestValues = SENT) -> tuple[bool | None, str]:
    assert REC is not None
    verdict = judge(REC, sent, _answer(body, status), task_id="t")
    return verdict.received, verdict.reason


def test_a_matching_candidate_means_received_whatever_the_number_type() -> None:
    linked = [
        {"type": "payment", "amount": 20, "ref": "R-7"},
        {"type": "refund", "amount": "20.0", "ref": "R-7"},
    ]
    assert _judge({"invoice": {"linked": linked}}) == (True, "found in $.invoice.linked[*]")


def test_no_matching_candidate_in_a_well_formed_answer_means_not_received() -> None:
    linked = [{"type": "refund", "amount": 20, "ref": "R-8"}, {"type": "refund", "amount": 21, "ref": "R-7"}]
    assert _judge({"invoice": {"linked": linked}}) == (False, "not among the 2 in $.invoice.linked[*]")
    # An API that leaves out an empty list says the same.
    assert _judge({"invoice": {"id": "inv_1"}}) == (False, "not among the 0 in $.invoice.linked[*]")


@pytest.mark.parametrize(
    ("body", "status", "sent", "reason"),
    [
        ({"invoice": {"linked": []}}, 404, SENT, "the read answered 404"),
        ({"error": "no such invoice"}, 200, SENT, "the answer has no $.invoice.linked[*]"),
        ({"invoice": {"linked": "none"}}, 200, SENT, "the answer has no $.invoice.linked[*]"),
        (
            {"invoice": {"linked": []}},
            200,
            RequestValues(body={"amount": 20, "ref": ""}, has_body=True),
            "the request carries no value for ref to match on",
        ),
    ],
)
def test_anything_else_decides_nothing(body: Any, status: int, sent: RequestValues, reason: str) -> None:
    assert _judge(body, status, sent) == (None, reason)


def test_a_value_the_request_never_had_decides_nothing() -> None:
    received, reason = _judge(
        {"invoice": {"linked": []}}, sent=RequestValues(body={"amount": 20}, has_body=True)
    )
    assert received is None and reason.startswith("the request carries no value to match on (")


# -- the sandbox: reads reflect the writes it received -------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(CATALOG) as running:
        yield running


def _task(**fields: Any) -> Task:
    return parse_task({"id": "t", "credentials": "key", **fields})


def _send(
    sandbox: SandboxThread, task: Task, extra: dict[str, Any] | None = None
) -> tuple[Any, RequestValues]:
    prepared = prepare(
        task, inputs={}, catalog=CATALOG, secrets=SECRETS, sandbox_url=sandbox.url, extra=extra
    )

    async def go() -> HttpResponse:
        from httptask.transport import Sender

        async with Sender() as sender:
            return (await send_prepared(prepared, sender))[0]

    response = asyncio.run(go())
    assert response.ok, response.body()
    assert prepared.values is not None
    return response, prepared.values


def _reconcile(
    sandbox: SandboxThread, op_id: str, task: Task, values: RequestValues
) -> tuple[bool | None, Any]:
    rec: Reconcile | None = reconcile_of(CATALOG.operation(op_id))
    assert rec is not None
    answer, _ = _send(sandbox, read_task(rec, task), extra=sent_context(values))
    verdict = judge(rec, values, answer, task_id=task.id)
    return verdict.received, verdict.evidence


def _record_refund(invoice: str, amount: int, date: int) -> Task:
    return _task(
        operation="chargebee.record_refund",
        request={
            "path": {"invoice-id": invoice},
            "body": {
                "memo": "by check",
                "transaction": {"amount": amount, "payment_method": "check", "date": date},
            },
        },
    )


def test_a_recorded_chargebee_refund_shows_on_its_invoice_in_the_sandbox(sandbox: SandboxThread) -> None:
    sent = _record_refund("inv_rec_1", 500, 1700000000)
    _, values = _send(sandbox, sent)
    received, evidence = _reconcile(sandbox, "chargebee.record_refund", sent, values)
    assert received is True
    assert {k: evidence["found"][k] for k in ("txn_type", "txn_amount", "txn_date")} == {
        "txn_type": "refund",
        "txn_amount": 500,
        "txn_date": 1700000000,
    }
    # The same refund of another date, and one for an invoice never refunded, were not received.
    other = _record_refund("inv_rec_1", 500, 1700000999)
    assert _reconcile(sandbox, "chargebee.record_refund", other, _values(other))[0] is False
    never = _record_refund("inv_rec_2", 500, 1700000000)
    assert _reconcile(sandbox, "chargebee.record_refund", never, _values(never))[0] is False


def test_a_zoho_credit_note_refund_shows_in_the_credit_notes_refunds_of_its_organisation(
    sandbox: SandboxThread,
) -> None:
    def refund(org: str, description: str) -> Task:
        return _task(
            operation="zoho-billing.refund_credit_note",
            request={
                "path": {"creditnote_id": "cn_9"},
                "headers": {"X-com-zoho-subscriptions-organizationid": org},
                "body": {"amount": 12.5, "description": description},
            },
        )

    sent = refund("org_1", "Refund for order 1001")
    _, values = _send(sandbox, sent)
    assert _reconcile(sandbox, "zoho-billing.refund_credit_note", sent, values)[0] is True
    for other in (refund("org_2", "Refund for order 1001"), refund("org_1", "Refund for order 1002")):
        assert _reconcile(sandbox, "zoho-billing.refund_credit_note", other, _values(other))[0] is False


def _values(task: Task) -> RequestValues:
    prepared = prepare(task, inputs={}, catalog=CATALOG, secrets=SECRETS, sandbox_url="http://127.0.0.1:9")
    assert prepared.values is not None
    return prepared.values
