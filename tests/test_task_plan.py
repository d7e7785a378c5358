"""execute.TaskPlan: a task compiled once for a fan-out gives each item exactly the request `prepare`
gives it; it renders what the items share only once (and never renders a rendered value again), and fails
each item as `prepare` would when a shared part cannot be rendered."""

from __future__ import annotations

from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.errors import HttptaskError, TemplateError
from httptask.execute import TaskPlan, prepare
from httptask.secrets import SecretStore
from httptask.tasks import parse_task
from httptask.templating import base_context, render_value, varies

ENV = {"HTTPTASK_SECRET_API_KEY": "sk_test_plan"}
ITEMS = [{"id": "inv_1", "amount": 100}, {"id": "a/b", "amount": 7}, {"id": "é 2", "amount": 1}]
REFUND = {
    "id": "refund",
    "operation": "chargebee.refund_invoice",
    "forEach": "{{ input.invoices }}",
    "credentials": "api_key",
    "server": {"url": "{{ input.api_url }}"},
    "request": {
        "path": {"invoice-id": "{{ item.id }}"},
        "body": {
            "comment": "{{ input.comment }}",
            "refund_amount": "{{ item.amount }}",
            "credit_note": {
                "reason_code": "other",
                "create_reason_code": "{{ item.id }}-{{ input.comment }}",
            },
        },
    },
}
INPUTS = {"invoices": ITEMS, "api_url": "https://acme.test/api/v2", "comment": "ok {{ item.id }}"}


def _plan(task: dict[str, Any], inputs: dict[str, Any]) -> TaskPlan:
    return TaskPlan(
        parse_task(task), inputs=inputs, catalog=Catalog.default(), secrets=SecretStore(environ=ENV)
    )


def _one_by_one(task: dict[str, Any], inputs: dict[str, Any], item: Any, seed: str) -> Any:
    return prepare(
        parse_task(task),
        inputs=inputs,
        catalog=Catalog.default(),
        secrets=SecretStore(environ=ENV),
        extra={"item": item},
        key_seed=seed,
    ).request


def test_each_item_gets_the_request_prepare_gives_it() -> None:
    plan = _plan(REFUND, INPUTS)
    for n, item in enumerate(ITEMS):
        assert plan.prepare({"item": item}, key_seed=f"s/{n}").request == _one_by_one(
            REFUND, INPUTS, item, f"s/{n}"
        )


def test_a_shared_value_is_rendered_once_and_never_again() -> None:
    # The input holds template markup: it is data, and must reach the wire as written.
    request = _plan(REFUND, INPUTS).prepare({"item": ITEMS[0]}, key_seed="s").request
    assert b"comment=ok+%7B%7B+item.id+%7D%7D" in request.content
    assert request.content.index(b"comment=") < request.content.index(b"refund_amount=")


def test_a_shared_part_that_fails_fails_every_item_as_prepare_does() -> None:
    task = {**REFUND, "server": {"url": "{{ input.nowhere }}"}}
    plan = _plan(task, INPUTS)
    for item in ITEMS:
        with pytest.raises(HttptaskError) as planned:
            plan.prepare({"item": item}, key_seed="s")
        with pytest.raises(HttptaskError) as alone:
            _one_by_one(task, INPUTS, item, "s")
        assert str(planned.value) == str(alone.value)
        assert "'input' has no attribute 'nowhere'" in str(planned.value)


def test_an_invalid_item_is_refused_with_its_issues() -> None:
    plan = _plan(REFUND, INPUTS)
    with pytest.raises(HttptaskError) as caught:
        plan.prepare({"item": {"id": "inv_9", "amount": "lots"}}, key_seed="s")
    assert "$.body.refund_amount" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ item.id }}", True),
        ("x-{{ item['id'] | upper }}", True),
        ("{{ input.a }}", False),
        ("{{ tasks.t1.response.body.id }}", False),
        ("{{ now('unix') }}", True),
        ("{{ uuid() }}", True),
        ("Bearer {{ secret('API_KEY') }}", True),
        ("{{ input.a", True),  # a syntax error is reported per item, where it is rendered
    ],
)
def test_which_templates_vary_per_item(source: str, expected: bool) -> None:
    assert varies(source, frozenset({"item"})) is expected


LOOKUPS = ["item", "item.id", "item['id']", "item.tags[0]", "item.tags[-1]", "item.keys", "item.nope",
           "item.id.x", "input.a.b", "input.missing", "item.tags[5]", "nothing", "item.n"]  # fmt: skip
ITEM_VALUES = [{"id": "inv_1", "tags": ["a", "b"], "n": None}, "plain", 7, ["x"]]


@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("item", ITEM_VALUES, ids=str)
def test_a_plain_lookup_renders_as_the_sandbox_renders_it(lookup: str, item: Any) -> None:
    """`{{ X }}` is read directly, `{{ X if true }}` goes through the sandbox: same value, same error."""
    context = base_context(inputs={"a": {"b": [1, {"c": 2}]}}, extra={"item": item})

    def render(source: str) -> Any:
        try:
            value = render_value(source, context, task_id="t", field_path="f")
            return (type(value).__name__, value)
        except TemplateError as exc:
            return ("error", str(exc))

    assert render(f"{{{{ {lookup} }}}}") == render(f"{{{{ {lookup} if true }}}}")


CHECKED_ITEMS = [
    {"id": "inv_1", "amount": 100},
    {"id": "..", "amount": 1},
    {"id": "inv_2", "amount": "lots"},
    {"id": "inv_3"},
    {"id": "inv_\ud800", "amount": 5},
    {"id": "inv_4", "amount": float("nan")},
    {"id": "a\r\nb", "amount": 2},
    {"id": "é", "amount": 3},
    {"id": "inv_5", "amount": 4, "lines": [1, 2]},
    "plain",
]
HEADED = {**REFUND, "request": {**REFUND["request"], "headers": {"x-note": "{{ item.id }}"}}}
LISTED = {
    **REFUND,
    "request": {**REFUND["request"], "body": {"credit_note": {"lines": "{{ item.lines | default(None) }}"}}},
}
RAW = {
    "id": "raw",
    "forEach": "{{ input.invoices }}",
    "httpRequest": {
        "method": "POST",
        "url": "{{ input.api_url }}/refunds/{{ item.id }}",
        "headers": {"x-note": "{{ item.id }}"},
        "body": {"amount": "{{ item.amount }}"},
    },
}


@pytest.mark.parametrize(
    ("task", "environ"),
    [(REFUND, ENV), (HEADED, ENV), (LISTED, ENV), (REFUND, {}), (RAW, ENV)],
    ids=["refund", "header", "list in an object", "no credentials", "raw"],
)
def test_the_pre_send_check_fails_each_item_exactly_as_prepare_does(
    task: dict[str, Any], environ: dict[str, str]
) -> None:
    def plan() -> TaskPlan:
        return TaskPlan(
            parse_task(task), inputs=INPUTS, catalog=Catalog.default(), secrets=SecretStore(environ=environ)
        )

    def outcome(make: Any) -> Any:
        try:
            make()
        except HttptaskError as exc:
            return (type(exc).__name__, str(exc), [issue.to_dict() for issue in getattr(exc, "issues", [])])
        return "ok"

    checked, prepared = plan(), plan()
    outcomes = []
    for n, item in enumerate(CHECKED_ITEMS):
        found = outcome(lambda: checked.check({"item": item}))  # noqa: B023 - called at once
        assert found == outcome(lambda: prepared.prepare({"item": item}, key_seed=f"s/{n}"))  # noqa: B023
        outcomes.append(found if found == "ok" else found[1])
    assert "ok" in outcomes or environ == {}
    assert len(set(outcomes)) >= 4, outcomes  # the items fail in different ways
