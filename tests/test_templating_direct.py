"""Simple templates (`{{ item.id }}`, `inv_{{ item }}`, `{{ now('unix') }}`) are rendered without Jinja:
the direct renderer must give exactly what the sandboxed Jinja environment gives, value and type, or leave
the template to it (so every error is Jinja's own)."""

from __future__ import annotations

import dataclasses
import math
import time
import types
import uuid as uuid_module
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from httptask import limits, templating
from httptask.errors import TemplateError
from httptask.limits import MAX_SIZE, time_limit
from httptask.templating import base_context, render_value

NAMES = ["item", "x", "input", "tasks", "self", "loop", "range", "now", "uuid", "unknown"]
KEYS: list[str | int] = ["id", "amount", "a", "b", "keys", "get", "items", "upper", "_x", "append", 0, 1, 2]
HALF = "h" * (MAX_SIZE // 2 + 1)  # two of them in one text pass the size limit
FIXED_NOW = datetime(2026, 12, 1, 2, 3, 4, tzinfo=UTC)
FIXED_UUID = uuid_module.UUID("12345678-1234-4678-9234-567812345678")

leaves = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.sampled_from([2**14000, -(2**13300), 2**64]),  # past `MAX_DIGITS`, and within repr's digits
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.builds(Markup, st.text(max_size=5)),
    st.builds(Decimal, st.sampled_from(["12.50", "1E+3", "-0"])),
    st.just(HALF),
)
data = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(
            st.sampled_from(
                [
                    "now()", "now('unix')", "now('iso')", "now('bad')", "now(style='unix')", "now(1, 2)",
                    "uuid()", "uuid(1)", "now", "uuid", "secret('X')",
                ]
            )
        )  # fmt: skip
    text = draw(st.sampled_from(NAMES))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*KEYS, -1, True, 1.0]))
        if isinstance(key, str) and key.isidentifier() and draw(st.booleans()):
            text += f".{key}"
        else:
            text += f"[{key!r}]"
    return text


TEXTS = ["", " ", "inv_", "\n", "a\r\nb", "{# c #}"]


@st.composite
def templates(draw: st.DrawFn) -> str:
    """One expression alone (its value keeps its type), or text and expressions."""
    if draw(st.booleans()):
        space = draw(st.sampled_from(["", " ", "\n"]))
        return f"{space}{{{{ {draw(expressions())} }}}}{space}"
    source = ""
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            source += draw(st.sampled_from(TEXTS))
        else:
            dash = draw(st.sampled_from(["", "-"]))
            source += f"{{{{{dash} {draw(expressions())} {dash}}}}}"
    return source if "{{" in source else source + "{{ item }}"


def typed(value: Any) -> Any:
    """`value` with every type spelled out, so that 1, 1.0 and True differ, and NaN equals NaN."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, repr(value))


def outcome(render: Any, scope: dict[str, Any]) -> Any:
    try:
        return ("value", typed(render(scope, time_limit())))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def jinja(compiled: Any) -> Any:
    """`compiled`'s renderer with Jinja alone, as `_Compiled.render` calls it."""

    def render(scope: Any, limit: time_limit) -> Any:
        with limit:
            return compiled.jinja(scope)

    return render


class _FixedNow(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return FIXED_NOW


def check(source: str, inputs: dict[str, Any], extra: dict[str, Any]) -> None:
    scope = base_context(inputs=inputs, extra=extra)
    try:
        compiled = templating._compile(source)
    except Exception:
        return  # does not parse: nothing is rendered either way
    clock = mock.patch.object(templating, "datetime", _FixedNow)
    timer = mock.patch.object(templating.time, "time", return_value=FIXED_NOW.timestamp())
    ids = mock.patch.object(templating.uuid, "uuid4", return_value=FIXED_UUID)
    with clock, timer, ids:
        assert outcome(compiled.render, scope) == outcome(jinja(compiled), scope)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=templates(),
    inputs=st.dictionaries(st.sampled_from(KEYS[:4]).map(str), data, max_size=4),
    item=data,
    extra=st.dictionaries(st.sampled_from(["x", "self", "loop", "range"]), data, max_size=3),
)
def test_the_direct_renderer_gives_what_jinja_gives(
    source: str, inputs: dict[str, Any], item: Any, extra: dict[str, Any]
) -> None:
    check(source, inputs, {"item": item, **extra})


@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("{{ self }}", {"self": {"a": 1}}),
        ("{{ self.a }}", {"self": {"a": 1}}),
        ("{{ loop }}", {"loop": 1}),
        ("{{ x }}{{ x }}", {"x": HALF}),
        ("{{ x }}", {"x": HALF + HALF}),
        ("n={{ x }}", {"x": 2**14000}),
        ("{{ x.a }}", {"x": {"a": Markup("<b>")}}),
        ("v{{ x.a }}", {"x": {"a": Markup("<b>")}}),
        ("{{ x[0] }}-{{ x[1] }}", {"x": [1.0, float("nan")]}),
        ("{{ x }}", {"x": Decimal("12.50")}),
        ("a\r\nb {{ x }}\n", {"x": True}),
        ("{{ x.keys }}", {"x": {"a": 1}}),
        ("{{ x.keys }}", {"x": {"keys": 1}}),
        ("{{ x[1] }}", {"x": (1, 2)}),
        ("{{ now }}", {}),
        ("{{ x }}", {"x": None}),
    ],
)
def test_the_direct_renderer_gives_what_jinja_gives_at_the_edges(source: str, extra: dict[str, Any]) -> None:
    check(source, {}, extra)


def test_a_call_past_the_time_limit_is_stopped_either_way() -> None:
    compiled = templating._compile("{{ now('unix') }}")
    scope = base_context(inputs={})
    with time_limit(0):
        stopped = outcome(compiled.render, scope)
        assert stopped == outcome(jinja(compiled), scope)
    assert stopped[:2] == ("error", "LimitExceeded")


def direct(source: str, **extra: Any) -> Any:
    """`source` rendered with Jinja out of reach: only the direct renderer can answer."""
    compiled = templating._compile(source)
    assert compiled.direct is not None

    def no_jinja(scope: Any) -> Any:
        raise AssertionError(f"{source!r} was left to Jinja")

    scope = base_context(inputs={"comment": "Refund approved."}, extra=extra)
    return dataclasses.replace(compiled, jinja=no_jinja).render(scope, time_limit())


@pytest.mark.parametrize(
    ("amount", "kind"), [(100, int), (12.5, float), (True, bool), (None, type(None)), ("100", str)]
)
def test_an_amount_keeps_its_value_and_type_without_jinja(amount: Any, kind: type) -> None:
    rendered = direct("{{ item.amount }}", item={"id": "inv_1", "amount": amount})
    assert rendered == amount
    assert type(rendered) is kind


def test_the_usual_simple_templates_are_rendered_without_jinja() -> None:
    item = {"id": "inv_1", "amount": 250, "lines": [{"qty": 2}]}
    assert direct("{{ item.id }}", item=item) == "inv_1"
    assert direct("{{ item['amount'] }}", item=item) == 250
    assert direct("inv_{{ item.lines[0].qty }}", item=item) == "inv_2"
    assert direct("{{ input.comment }}", item=item) == "Refund approved."
    assert direct(" {{- item.lines -}} ", item=item) == [{"qty": 2}]
    assert isinstance(direct("{{ now('unix') }}"), int)
    made = direct("{{ uuid() }}")
    assert str(uuid_module.UUID(made, version=4)) == made


def test_what_the_direct_renderer_cannot_be_sure_of_goes_to_jinja_with_its_message() -> None:
    context = base_context(inputs={"n": 2**14000}, extra={"item": {"id": "inv_1"}})
    with pytest.raises(TemplateError, match="'item' has no attribute 'idd'"):
        render_value("inv_{{ item.idd }}", context, task_id="refund")
    with pytest.raises(TemplateError, match="more than 4,000 digits"):
        render_value("n={{ input.n }}", context, task_id="refund")
    with pytest.raises(TemplateError, match="now\\(\\) takes 'iso' or 'unix', not 'bad'"):
        render_value("{{ now('bad') }}", context, task_id="refund")
    assert render_value("{{ item.keys() | list }}", context, task_id="refund") == ["id"]


def test_every_template_of_a_value_shares_one_time_limit() -> None:
    """Jinja renders each template within the limit entered first: five templates of 0.3 s (a clock that
    moves 0.3 s at each reading) pass a limit of 1 s together, though each alone is within it."""
    ticks = iter(range(1000))
    clock = types.SimpleNamespace(monotonic=lambda: next(ticks) * 0.3, thread_time=time.thread_time)
    value = ["{{ input.a | upper }}"] * 5
    context = base_context(inputs={"a": "a"})
    with mock.patch.object(limits, "time", clock), pytest.raises(TemplateError, match="limit of 1 s"):
        render_value(value, context, task_id="refund", seconds=1.0)
    assert render_value(value[:1], context, task_id="refund", seconds=1.0) == ["A"]


values = st.recursive(
    st.one_of(templates(), st.text(max_size=4), st.integers(), st.none(), st.booleans()),
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, min_size=1, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, item=data, inputs=st.dictionaries(st.sampled_from(["a", "b"]), data, max_size=2))
def test_a_direct_tree_renders_what_render_value_renders_or_leaves_it(
    value: Any, item: Any, inputs: dict[str, Any]
) -> None:
    """`direct_renderer` (a forEach's per-item values, read without the walk) gives `render_value`'s value,
    or UNSURE, and then `render_value` says what went wrong."""
    scope = base_context(inputs=inputs, extra={"item": item})
    render = templating.direct_renderer(value)
    if render is None:
        return
    clock = mock.patch.object(templating, "datetime", _FixedNow)
    timer = mock.patch.object(templating.time, "time", return_value=FIXED_NOW.timestamp())
    ids = mock.patch.object(templating.uuid, "uuid4", return_value=FIXED_UUID)
    with clock, timer, ids:
        fast = render(scope)
        if fast is not templating.UNSURE:
            assert typed(fast) == typed(render_value(value, scope, task_id="t"))


def test_a_direct_tree_is_made_only_of_simple_templates_in_dicts() -> None:
    scope = base_context(inputs={"c": "ok"}, extra={"item": {"id": "inv_1", "amount": 7}})
    body = {"n": "{{ item.amount }}", "t": "x-{{ item.id }}", "k": 1}
    tree = {"path": {"id": "{{ item.id }}"}, "body": body}
    render = templating.direct_renderer(tree)
    assert render is not None
    assert render(scope) == {"path": {"id": "inv_1"}, "body": {"n": 7, "t": "x-inv_1", "k": 1}}
    # Jinja says what is missing.
    assert render(base_context(inputs={}, extra={"item": {}})) is templating.UNSURE
    slow = ["{{ item.id }}"], "{{ item.id | upper }}", "{{ secret('K') }}", "{{"
    for value in ({"a": value} for value in slow):
        assert templating.direct_renderer(value) is None
