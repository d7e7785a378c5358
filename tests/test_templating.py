"""Tests for httptask.templating: kept types, error messages, the sandbox, references and speed."""

from __future__ import annotations

import base64
import collections
import copy
import re
import time
import types
from typing import Any

import pytest

from httptask import templating
from httptask.errors import TemplateError, UsageError
from httptask.secrets import SecretStore
from httptask.templating import (
    base_context,
    check_template,
    expression_path,
    is_template,
    references,
    render_value,
    secret_call,
    secret_names,
)

INPUTS: dict[str, Any] = {
    "id": "00123",
    "amount": 100,
    "rate": 12.5,
    "settled": True,
    "note": None,
    "customer": {"email": "ann@example.com", "tags": ["vip"]},
    "items": [{"price": "price_1", "qty": 1}, {"price": "price_2", "qty": 2}],
}
TASKS: dict[str, Any] = {"t1": {"response": {"status": 200, "body": {"id": "re_1", "items": [1, 2]}}}}


def render(value: Any, **extra: Any) -> Any:
    context = base_context(inputs=INPUTS, tasks=TASKS, extra=extra or None)
    return render_value(value, context, task_id="record_refund", field_path="body.memo", secrets_allowed=True)


def problem(source: str, **extra: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        render(source, **extra)
    assert str(caught.value).startswith("task record_refund, body.memo: ")
    return caught.value.problem


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.amount }}", 100),
        ("{{input.rate}}", 12.5),
        ("  {{ input.settled }}\n", True),
        ("{{ input.note }}", None),
        ("{{ input.id }}", "00123"),
        ("{{ input.customer }}", {"email": "ann@example.com", "tags": ["vip"]}),
        ("{{ input.items }}", INPUTS["items"]),
        ("{{ input.customer.tags[0] }}", "vip"),
        ("{{ tasks.t1.response.body.id }}", "re_1"),
        ("{{ input['items'][1].qty * 2 }}", 4),
        ("{{- input.amount -}}", 100),
        ("{{ input.items | map(attribute='qty') | list }}", [1, 2]),
        ("{{ input.customer | tojson }}", '{"email": "ann@example.com", "tags": ["vip"]}'),
        ("{{ input.get('missing', 'fallback') }}", "fallback"),
        ("{{ input.missing | default(7) }}", 7),
        ("{{ input.missing is defined }}", False),
        ("{{ '}}' }}", "}}"),
        ("{{ input.amount }}{# why #}", "100"),
        ("{% raw %}{{ input.amount }}{% endraw %}", "{{ input.amount }}"),
    ],
)
def test_whole_expression_keeps_its_type(source: str, expected: Any) -> None:
    result = render(source)
    assert result == expected
    assert type(result) is type(expected)


def test_returned_containers_are_copies() -> None:
    result = render("{{ input.customer }}")
    result["tags"].append("changed")
    assert INPUTS["customer"]["tags"] == ["vip"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Refund {{ input.id }}", "Refund 00123"),
        ("{{ input.amount }} cents", "100 cents"),
        ("{{ input.amount }}{{ input.id }}", "10000123"),
        ("{% if input.settled %}yes{% endif %}", "yes"),
        ("{% for i in input.items %}{{ i.price }};{% endfor %}", "price_1;price_2;"),
        ("line\n", "line\n"),
        ("{{ input.id }}\n", "00123"),
        ("a\n{{ input.amount }}\n", "a\n100\n"),
    ],
)
def test_mixed_text_renders_to_a_string(source: str, expected: str) -> None:
    assert render(source) == expected


def test_body_walk_with_field_paths() -> None:
    body = {
        "transaction": {"amount": "{{ input.amount }}", "payment_method": "cash", "date": 1700000000},
        "items": [{"price": "{{ input.items[0].price }}"}, {"price": "{{ input.nope }}"}],
        "memo": "Refund {{ input.id }}",
    }
    context = base_context(inputs=INPUTS)
    with pytest.raises(TemplateError) as caught:
        render_value(body, context, task_id="t", field_path="body")
    assert str(caught.value) == "task t, body.items[1].price: 'input' has no attribute 'nope'"
    assert caught.value.issues[0].path == "$.body.items[1].price"

    body["items"] = [{"price": "{{ input.items[0].price }}"}]
    assert render_value(body, context, task_id="t", field_path="body") == {
        "transaction": {"amount": 100, "payment_method": "cash", "date": 1700000000},
        "items": [{"price": "price_1"}],
        "memo": "Refund 00123",
    }
    headers = {"X-Foo": "{{ input.nope }}"}
    with pytest.raises(TemplateError) as caught:
        render_value(headers, context, task_id="t", field_path="headers")
    assert str(caught.value) == "task t, headers.X-Foo: 'input' has no attribute 'nope'"


def test_plain_values_are_left_alone() -> None:
    value = {"a": 1, "b": [True, None, 2.5], "c": "no markup { here }"}
    assert render_value(value, {}, task_id="t") == value


OVERFLOW = "a number is too large for a decimal number (over 1.8e308); use smaller numbers"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ input.memo }}", "'input' has no attribute 'memo'"),
        ("Refund {{ input.memo }}", "'input' has no attribute 'memo'"),
        ("{{ input.customer.phone }}", "'input.customer' has no attribute 'phone'"),
        ("{{ input.customer.phone.x }}", "'input.customer' has no attribute 'phone'"),
        ("{{ [1, input.customer.phone] }}", "'input.customer' has no attribute 'phone'"),
        ("{{ tasks.refund.response.body.id }}", "'tasks' has no attribute 'refund'"),
        ("{{ tasks.t1.response.body.amount }}", "'tasks.t1.response.body' has no attribute 'amount'"),
        ("{{ input.items[3] }}", "'input.items' has no item 3"),
        ("{{ input.items[1].tax }}", "'input.items[1]' has no attribute 'tax'"),
        ("{{ input['customer']['x y'] }}", "'input.customer' has no attribute 'x y'"),
        ("{{ foo }}", "'foo' is undefined"),
        ("{{ item.sku }}", "'item' has no attribute 'sku'"),
        ("{{ input.amount + 'x' }}", "rendering failed: unsupported operand type(s) for +: 'int' and 'str'"),
        ("{{ 10.0 ** 400 }}", OVERFLOW),
        ("{{ (10 ** 400) | filesizeformat }}", OVERFLOW),
        ("{{ (10 ** 400) / 3 }}", OVERFLOW),
        (
            "{{ range(10 ** 12) | list | length }}",
            "range() gives at most 100,000 numbers in a template; loop over fewer",
        ),
        (
            "{% for i in range(10 ** 9) %}{% endfor %}",
            "range() gives at most 100,000 numbers in a template; loop over fewer",
        ),
        ("{{ now('week') }}", "now() takes 'iso' or 'unix', not 'week'"),
        (
            "{{ secret('stripe') }}",
            "secret('stripe') cannot be used here because no secret store was configured",
        ),
    ],
)
def test_error_messages(source: str, message: str) -> None:
    assert problem(source, item={"id": 1}) == message


def test_error_message_word_for_word() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ input.memo }}")
    assert str(caught.value) == "task record_refund, body.memo: 'input' has no attribute 'memo'"


def test_syntax_error() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("{{ input.id }", task_id="t", field_path="body.memo")
    assert str(caught.value) == "task t, body.memo: template syntax error at line 1: unexpected '}'"
    with pytest.raises(TemplateError) as caught:
        render("ok\n{% if %}")
    assert str(caught.value).startswith("task record_refund, body.memo: template syntax error at line 2: ")
    assert "Expected an expression" in str(caught.value)
    check_template("{{ input.id }}", task_id="t", field_path="body.memo")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ input.__class__ }}", "access to '__class__' is not allowed in templates"),
        ("{{ ''.__class__.__mro__ }}", "access to '__class__' is not allowed in templates"),
        ("{{ now.__globals__ }}", "access to '__globals__' is not allowed in templates"),
        ("{{ input._data }}", "access to '_data' is not allowed in templates"),
        ("{{ input.get.__self__ }}", "access to '__self__' is not allowed in templates"),
        ("{{ input['__class__'] }}", "access to '__class__' is not allowed in templates"),
        ("{{ input.items | attr('__class__') }}", "access to '__class__' is not allowed in templates"),
        ("{{ input.update({'a': 1}) }}", "templates cannot change their inputs"),
        ("{{ input.items.append(1) }}", "templates cannot change their inputs"),
        ("{{ input.customer.tags.pop() }}", "templates cannot change their inputs"),
        ("{{ input.customer.setdefault('x', 1) }}", "templates cannot change their inputs"),
        ("{{ tasks.t1.response.body.items.clear() }}", "templates cannot change their inputs"),
        ("{% set x = [1] %}{{ x.append(2) }}", "templates cannot change values; 'append' is not allowed"),
    ],
)
def test_escape_attempts_are_refused(source: str, message: str) -> None:
    before = copy.deepcopy((INPUTS, TASKS))
    assert problem(source) == message
    assert before == (INPUTS, TASKS)


def test_inputs_unchanged_after_many_renders() -> None:
    before = copy.deepcopy((INPUTS, TASKS))
    render({"a": "{{ input.items }}", "b": "{{ input.customer }}", "c": "{{ tasks.t1 }}"})["a"].clear()
    assert before == (INPUTS, TASKS)


def test_now_and_uuid() -> None:
    unix = render("{{ now('unix') }}")
    assert isinstance(unix, int)
    assert abs(unix - time.time()) < 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", render("{{ now() }}"))
    first, second = render("{{ uuid() }}"), render("{{ uuid() }}")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", first)
    assert first != second


def test_secret_registers_with_the_redactor() -> None:
    store = SecretStore(environ={"HTTPTASK_SECRET_CHARGEBEE": "cb_test_abc"})
    context = base_context(inputs={}, secrets=store)
    header = render_value(
        {"X-Key": "{{ secret('chargebee') }}", "Note": "key {{ secret('chargebee') }}"},
        context,
        task_id="t",
        field_path="headers",
        secrets_allowed=True,
    )
    assert header == {"X-Key": "cb_test_abc", "Note": "key cb_test_abc"}
    basic = base64.b64encode(b"cb_test_abc:").decode()
    assert store.redactor.redact(f"Basic {basic} key cb_test_abc") == "Basic *** key ***"


def test_missing_secret_becomes_a_template_error() -> None:
    context = base_context(inputs={}, secrets=SecretStore(environ={}))
    with pytest.raises(TemplateError) as caught:
        render_value(
            "{{ secret('geins') }}",
            context,
            task_id="refund",
            field_path="headers.X-ApiKey",
            secrets_allowed=True,
        )
    assert str(caught.value) == (
        "task refund, headers.X-ApiKey: No secret named 'geins': looked in the environment variable "
        "HTTPTASK_SECRET_GEINS (no secrets file is set). Secrets come only from "
        "HTTPTASK_SECRET_<NAME> variables and the secrets file. Set HTTPTASK_SECRET_GEINS, or name a secrets "
        "file holding 'geins' in HTTPTASK_SECRETS_FILE."
    )


def test_plain_mapping_context_is_wrapped() -> None:
    context = {"input": {"a": {"b": 1}}, "item": [1, 2]}
    assert render_value("{{ input.a.b + item[1] }}", context, task_id="t") == 3
    with pytest.raises(TemplateError) as caught:
        render_value("{{ input.a.c }}", context, task_id="t", field_path="body.x")
    assert caught.value.problem == "'input.a' has no attribute 'c'"


def test_reserved_extra_names() -> None:
    with pytest.raises(UsageError) as caught:
        base_context(inputs={}, extra={"input": 1})
    assert str(caught.value) == "The template name 'input' is reserved; give the extra value another name."


def test_is_template() -> None:
    assert is_template("{{ x }}")
    assert is_template("{% if x %}y{% endif %}")
    assert not is_template("price {x}")


@pytest.mark.parametrize(
    ("source", "paths"),
    [
        ("{{ input.invoices }}", [("input", "invoices")]),
        ("{{ tasks.t1.response.body.id }}", [("tasks", "t1", "response", "body", "id")]),
        ("{{ item }}", [("item",)]),
        ("{{ input['a-b'][0].c }}", [("input", "a-b", 0, "c")]),
        ("{{ input.items[i].price }}", [("input", "items"), ("i",)]),
        ("{{ input.items[input.n] }}", [("input", "items"), ("input", "n")]),
        ("{{ input.get('memo', 'x') }}", [("input", "memo")]),
        ("{{ input.customer.keys() | list }}", [("input", "customer")]),
        ("{{ (input.a | default('x')).b }}", [("input", "a")]),
        ("{{ now() }} {{ uuid() }} {{ secret('s') }} {{ range(2) }}", []),
        ("Refund {{ input.id }} of {{ input.id }}", [("input", "id")]),
        (
            "{% for inv in input.invoices %}{{ inv.id }}{{ loop.index }}{{ tasks.t2.x }}{% endfor %}"
            "{{ inv }}",
            [("input", "invoices"), ("tasks", "t2", "x"), ("inv",)],
        ),
        ("{% set total = input.amount %}{{ total + input.fee }}", [("input", "amount"), ("input", "fee")]),
        (
            "{% if input.a %}{{ input.b }}{% else %}{{ input.c }}{% endif %}",
            [("input", "a"), ("input", "b"), ("input", "c")],
        ),
        ("{{ oops", []),
    ],
)
def test_references(source: str, paths: list[tuple[str | int, ...]]) -> None:
    assert references(source) == paths


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("{{ input.amount }}", ("input", "amount")),
        (" {{ tasks.t1.response.body['id'] }} ", ("tasks", "t1", "response", "body", "id")),
        ("{{ a.b[0].c }}", ("a", "b", 0, "c")),
        ("{{ item }}", ("item",)),
        ("{{ input.amount + 1 }}", None),
        ("{{ input.amount | int }}", None),
        ("Refund {{ input.id }}", None),
        ("{{ input.a }}{{ input.b }}", None),
        ("{{ input.items[i] }}", None),
        ("{{ now() }}", None),
        ("{{ now }}", None),
        ("plain", None),
        ("{{ broken", None),
    ],
)
def test_expression_path(source: str, path: tuple[str | int, ...] | None) -> None:
    assert expression_path(source) == path


def test_rendering_is_fast() -> None:
    context = base_context(inputs=INPUTS)
    for source in ("{{ input.amount }}", "Refund {{ input.id }} at {{ now() }}"):
        started = time.perf_counter()
        for _ in range(10_000):
            render_value(source, context, task_id="t", field_path="body.x")
        # About 15-20 microseconds each when cached; compiling every time would take over ten times longer.
        assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("source", "names", "whole"),
    [
        ("{{ secret('A') }}", ["A"], "A"),
        (' {{- secret("B") -}} ', ["B"], "B"),
        ("Bearer {{ secret('A') }}", ["A"], None),
        ("{{ secret('A') ~ secret('B') ~ secret('A') }}", ["A", "B"], None),
        ("{% if input.x %}{{ secret('C') | upper }}{% endif %}", ["C"], None),
        ("{{ secret(input.name) }}", [], None),
        ("secret('D') without markup", [], None),
        ("{{ secret('E'", [], None),
    ],
)
def test_secret_calls_are_found_by_the_parser(source: str, names: list[str], whole: str | None) -> None:
    assert secret_names(source) == names
    assert secret_call(source) == whole


@pytest.mark.parametrize(
    ("value", "view"),
    [
        ({"a": 1}, "_MappingView"),
        ([1], "_SequenceView"),
        ((1,), "_SequenceView"),
        (collections.OrderedDict(a=1), "_MappingView"),
        (types.MappingProxyType({"a": 1}), "_MappingView"),
        (collections.UserList([1]), "_SequenceView"),
        (range(2), "_SequenceView"),
        ("text", None),
        (b"bytes", None),
        ({1}, None),
    ],
)
def test_a_value_is_viewed_as_its_kind_whether_plain_or_not(value: Any, view: str | None) -> None:
    """A dict or a list is told apart by its type before the abstract checks, as those would tell it."""
    viewed = templating._view(value, ("x",))
    assert type(viewed).__name__ == view if view else viewed is value
    if view:
        assert viewed == value if not isinstance(value, range | tuple) else list(viewed) == list(value)
