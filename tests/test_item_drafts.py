"""item_drafts: a task whose items fill fields in whole (`{{ item.id }}`) drafts and prepares each item
without the general path, and gives exactly what the general path gives it: the same draft and request byte
for byte, with the same values, or the same error with the same issues and paths, over valid, invalid and
odd items (big and odd numbers, unicode, empty text, values to percent-encode, values that are not plain,
items that are not objects)."""

from __future__ import annotations

import collections
from typing import Any
from urllib.parse import urlencode

import pytest

from httptask.catalog import Catalog
from httptask.encoding import encode_form, form_field
from httptask.errors import HttptaskError
from httptask.execute import TaskPlan
from httptask.secrets import SecretStore
from httptask.tasks import parse_task
from httptask.templating import whole_lookup

ENV = {"HTTPTASK_SECRET_API_KEY": "sk_test_items"}
INPUTS = {"api_url": "https://acme.test/api/v2", "comment": "ok & done", "org": "10234695"}

CHARGEBEE = {  # examples/refund-invoices.yaml's task, with a query read from each item too
    "id": "refund",
    "operation": "chargebee.refund_invoice",
    "forEach": "{{ input.invoices }}",
    "credentials": "api_key",
    "server": {"url": "{{ input.api_url }}"},
    "request": {
        "path": {"invoice-id": "{{ item.id }}"},
        "query": {"note": "{{ item.note }}", "fixed": "a b"},
        "body": {"refund_amount": "{{ item.amount }}", "comment": "{{ input.comment }}"},
    },
}
ZOHO = {  # a JSON body, a header from the spec
    "id": "refund",
    "operation": "zoho-billing.refund_credit_note",
    "forEach": "{{ input.invoices }}",
    "credentials": "api_key",
    "request": {
        "path": {"creditnote_id": "{{ item.id }}"},
        "headers": {"X-com-zoho-subscriptions-organizationid": "{{ input.org }}"},
        "body": {"amount": "{{ item.amount }}", "description": "{{ item.note }}"},
    },
}
STRIPE = {  # brackets-style form fields, and an object read whole
    "id": "refund",
    "operation": "stripe.report_payment_record_refund",
    "forEach": "{{ input.invoices }}",
    "credentials": "api_key",
    "request": {
        "path": {"id": "{{ item.id }}"},
        "body": {
            "outcome": "refunded",
            "refunded": {"refunded_at": 1700000000},
            "processor_details": {"type": "custom", "custom": {"refund_reference": "r-{{ input.org }}"}},
            "initiated_at": "{{ item.amount }}",
            "metadata": {"k": "v & w"},
            "expand": ["{{ input.comment }}"],
        },
    },
}
DEEP = {**CHARGEBEE, "request": {**CHARGEBEE["request"], "path": {"invoice-id": "{{ item.invoice.id }}"}}}

ITEMS: list[Any] = [
    {"id": "inv_1", "amount": 100, "note": "plain"},
    {"id": "a/b?c#d", "amount": 1, "note": "a b+c&d=e%25"},
    {"id": "é ü 日本 🎉", "amount": 2, "note": "ünïcode ✓"},
    {"id": "", "amount": 3, "note": ""},
    {"id": ".", "amount": 3, "note": "."},
    {"id": "..", "amount": 3, "note": ".."},
    {"id": "inv_\ud800", "amount": 5, "note": "x"},
    {"id": "inv_2", "amount": 5, "note": "half \udfff"},
    {"id": "inv_3", "amount": 2**53 - 1, "note": "x"},
    {"id": "inv_4", "amount": 2**53, "note": "x"},
    {"id": "inv_5", "amount": -(2**53), "note": "x"},
    {"id": "inv_6", "amount": 2**63, "note": "x"},
    {"id": "inv_7", "amount": 10**30, "note": "x"},
    {"id": "inv_8", "amount": 1.5, "note": "x"},
    {"id": "inv_9", "amount": 1e-7, "note": "x"},
    {"id": "inv_10", "amount": 1e300, "note": "x"},
    {"id": "inv_11", "amount": float("nan"), "note": "x"},
    {"id": "inv_12", "amount": float("inf"), "note": "x"},
    {"id": "inv_13", "amount": -0.0, "note": "x"},
    {"id": "inv_14", "amount": 100.0, "note": "x"},
    {"id": "inv_15", "amount": True, "note": None},
    {"id": "inv_16", "amount": None, "note": False},
    {"id": "inv_17", "amount": "100", "note": 7},
    {"id": "inv_18", "amount": "lots", "note": 1.25},
    {"id": "inv_19", "amount": [1], "note": "x"},
    {"id": "inv_20", "amount": {"a": 1}, "note": "x"},
    {"id": 7, "amount": 1, "note": "x"},
    {"id": None, "amount": 1, "note": "x"},
    {"id": True, "amount": 1, "note": "x"},
    {"id": {"x": 1}, "amount": 1, "note": "x"},
    {"id": "inv_21", "amount": 1, "note": "a\r\nb"},
    {"id": "inv_22", "amount": 1, "note": "nul \x00"},
    {"id": "inv_23", "amount": 1, "note": "x" * 5000},
    {"id": "inv_24", "amount": 1, "note": "x", "meta": {"k": "v"}},
    {"id": "inv_25", "amount": 1, "note": "x", "meta": ""},
    {"id": "inv_26", "amount": 1, "note": "x", "meta": None},
    {"id": "inv_27", "amount": 1, "note": "x", "meta": "a=b&c"},
    {"id": "inv_28", "amount": 1, "note": "x", "invoice": {"id": "deep"}},
    {"id": "inv_28", "amount": 1, "note": "x", "invoice": {"id": "a/b"}},
    {"id": "inv_29", "amount": 1, "note": "x", "invoice": ["deep"]},
    {"id": "inv_30", "amount": 1, "note": "x", "invoice": {}},
    {"amount": 1, "note": "x"},
    {"id": "inv_31", "note": "x"},
    {},
    collections.OrderedDict(id="inv_32", amount=1, note="x"),
    "plain",
    5,
    None,
    [1, 2],
]


def _plan(task: dict[str, Any], *, quick: bool = True) -> TaskPlan:
    plan = TaskPlan(
        parse_task(task), inputs=INPUTS, catalog=Catalog.default(), secrets=SecretStore(environ=ENV)
    )
    if not quick:
        plan.__dict__["_drafter"] = None  # every item the general way
    return plan


def _prepared(plan: TaskPlan, names: dict[str, Any]) -> Any:
    made = plan.prepare(names, key_seed="run/refund/1")
    return made.request, made.values, made.idempotent, made.idempotency_key, made.operation.id, made.task.id


def _outcome(make: Any) -> Any:
    try:
        return make()
    except HttptaskError as exc:
        return (type(exc).__name__, str(exc), [issue.to_dict() for issue in getattr(exc, "issues", [])])


@pytest.mark.parametrize(
    ("task", "quick_ones"),
    [(CHARGEBEE, 11), (ZOHO, 11), (STRIPE, 2), (DEEP, 1)],
    ids=["chargebee form", "zoho json", "stripe brackets", "nested keys"],
)
def test_each_item_is_drafted_and_checked_as_the_general_path_does_it(
    task: dict[str, Any], quick_ones: int
) -> None:
    quick, general = _plan(task), _plan(task, quick=False)
    assert quick.draftable and quick._drafter is not None
    drafted = 0
    for item in ITEMS:
        names = {"item": item}
        made = _outcome(lambda: quick.draft(names))  # noqa: B023 - called at once
        assert made == _outcome(lambda: general.draft(names)), item  # noqa: B023
        assert _outcome(lambda: quick.check(names)) == _outcome(lambda: general.check(names))  # noqa: B023
        assert _outcome(lambda: _prepared(quick, names)) == _outcome(lambda: _prepared(general, names))  # noqa: B023
        if quick._drafter.draft(item) is not None:
            drafted += 1
            assert made == quick._drafter.draft(item)
            assert (
                quick.finish(made, "run/refund/1").request
                == general.prepare(names, key_seed="run/refund/1").request
            )
    assert drafted >= quick_ones  # the quick path did the work, and the odd items fell back


@pytest.mark.parametrize(
    "request_",
    [
        {"path": {"invoice-id": "inv_{{ item.id }}"}},  # text around it: rendered to text
        {"path": {"invoice-id": "{{ item.id }}"}, "headers": {"x-note": "{{ item.note }}"}},
        {
            "path": {"invoice-id": "{{ item.id }}"},
            "body": {"credit_note": {"reason_code": "{{ item.note }}"}},
        },
        {"path": {"invoice-id": "{{ item.id | lower }}"}},
        {"path": {"invoice-id": "{{ item['id'] }}"}, "body": "{{ item.body }}"},
    ],
    ids=["text", "header", "nested", "filter", "whole body"],
)
def test_other_tasks_are_drafted_the_general_way(request_: dict[str, Any]) -> None:
    plan = _plan({**CHARGEBEE, "request": request_})
    assert plan.draftable and plan._drafter is None


def test_a_task_with_its_own_key_is_drafted_the_general_way_which_checks_the_key_for_a_secret() -> None:
    plan = _plan({**STRIPE, "idempotencyKey": "refund-{{ input.org }}"})
    assert plan.draftable and plan._drafter is None


def test_whole_lookups_are_told_apart_from_other_templates() -> None:
    assert whole_lookup("{{ item.id }}") == ("item", "id")
    assert whole_lookup(" {{- item['a'].b[0] -}} ") == ("item", "a", "b", 0)
    assert whole_lookup("{{ item }}") == ("item",)
    for other in (
        "inv_{{ item.id }}",
        "{{ item.id }}{{ item.id }}",
        "{{ item[input.k] }}",
        "{{ now() }}",
        "{{ item.id | lower }}",
        "{{ secret('API_KEY') }}",
        "{{ range }}",
        "{{ item.",
        "id",
    ):
        assert whole_lookup(other) is None, other  # fmt: skip


def test_a_form_is_its_fields_each_written_alone() -> None:
    body = {
        "a": 1,
        "b": {"c": "é&", "d": {"e": True}},
        "e": [],
        "f": None,
        "g": ["x", "y"],
        "h": 1.5e-7,
        "i": "",
    }
    for style in ("brackets", "index-last"):
        expected = encode_form(body, style)[1].decode()
        assert "&".join(form_field(key, value, style) for key, value in body.items()) == expected
    listed = {"j": [{"k": 1}, {"k": [2, 3]}]}
    assert form_field("j", listed["j"], "brackets") == encode_form(listed, "brackets")[1].decode()


def test_a_text_or_integer_field_is_written_as_urlencode_writes_it() -> None:
    values = ["", "plain", "a b+c&d=e%25/?#[]", "é ü 日本 🎉", "~-._", 0, -7, 2**70, 10**30]
    for name in ("a", "refund amount", "é&="):
        for value in values:
            for style in ("brackets", "index-last"):
                assert form_field(name, value, style) == urlencode([(name, str(value))])
    assert form_field("a", True) == "a=true" and form_field("a", 1.5) == "a=1.5"


def test_a_finished_draft_is_the_prepared_request_field_for_field() -> None:
    plan = _plan(CHARGEBEE)
    item = ITEMS[1]
    made = plan.finish(plan.draft({"item": item}), "run/refund/1")
    expected = plan.prepare({"item": item}, key_seed="run/refund/1")
    assert made == type(expected)(**{**expected.__dict__, "values": None})
    assert made.request == expected.request and made.request.content == expected.request.content
    assert made.__dict__.keys() == expected.__dict__.keys()
    assert made.request.__dict__.keys() == expected.request.__dict__.keys()
