"""Hypothesis against every reader of untrusted input: templates, task and workflow YAML, specs, `--input`.

Whatever it is given, each ends in a value or in httptask's own error with a sentence; never in another
exception, and never past its bounds. What the fuzzers found became cases of the bad-input corpus.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httptask.catalog import Catalog
from httptask.checks import check_workflow_text
from httptask.cli.console import parse_input
from httptask.errors import HttptaskError
from httptask.spec import parse_spec
from httptask.tasks import parse_task
from httptask.templating import base_context, render_value
from httptask.yamlsource import parse_document, parse_source

# HTTPTASK_FUZZ_EXAMPLES=5000 searches longer; the suite's default keeps it to a few seconds.
SETTINGS = settings(
    max_examples=int(os.environ.get("HTTPTASK_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SECONDS = 2.0

# -- templates -----------------------------------------------------------------------------------------------

_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["10**9", "10**400", "3", "2.5", "1e308", "-0.0", "4" * 50]),
)
_STRINGS = st.sampled_from(["'a'", "'ab' * 3", "input.s", "'%d'", "'{:>5}'", "'\\t'", "''"])
_VALUES = st.one_of(
    _NUMBERS, _STRINGS, st.sampled_from(["input.n", "input.l", "input.d", "[1, 2]", "{'k': 1}"])
)
_OPERATORS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "in", "and", "or"])
_FILTERS = st.sampled_from(
    [
        "upper", "list", "join(',')", "length", "center(80)", "indent(4)", "tojson", "string", "sum",
        "replace('a', 'bb')", "batch(3)", "slice(2)", "first", "int", "float", "abs", "round", "unique",
        "sort", "reverse", "map('string') | list", "format(1)", "truncate(3)", "wordwrap(5)",
    ]
)  # fmt: skip


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(_VALUES)
    kind = draw(st.sampled_from(["op", "filter", "call", "paren"]))
    if kind == "op":
        return f"{draw(_expressions(depth + 1))} {draw(_OPERATORS)} {draw(_expressions(depth + 1))}"
    if kind == "filter":
        return f"{draw(_expressions(depth + 1))} | {draw(_FILTERS)}"
    if kind == "call":
        method = draw(st.sampled_from(["ljust(9)", "zfill(4)", "split()", "replace('a', 'b')", "upper()"]))
        return f"({draw(_expressions(depth + 1))}).{method}"
    return f"({draw(_expressions(depth + 1))})"


_TEMPLATES = st.one_of(
    _expressions().map(lambda e: "{{ " + e + " }}"),
    st.tuples(_expressions(), _expressions()).map(lambda p: f"x {{{{ {p[0]} }}}} y {{{{ {p[1]} }}}}"),
    _expressions().map(lambda e: "{% for i in range(3) %}{{ " + e + " }}{% endfor %}"),
    st.text(alphabet="{}%#()[]'\"|~+-*/ abcinput.0123456789", max_size=60),
)


@SETTINGS
@given(source=_TEMPLATES)
def test_a_template_renders_or_says_why(source: str) -> None:
    context = base_context(inputs={"s": "text", "n": 7, "l": [1, 2, 3], "d": {"a": 1}})
    started = time.monotonic()
    try:
        render_value(source, context, task_id="t", field_path="body.x")
    except HttptaskError as exc:
        assert exc.message and "\n" not in exc.message
    assert time.monotonic() - started < SECONDS


# -- YAML documents ------------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["{{ input.x }}", "{{ secret('K') }}", "{{ 3 ** 400000000 }}", "https://e.example/"]),
)  # fmt: skip
_KEYS = st.sampled_from(
    ["id", "operation", "httpRequest", "url", "method", "headers", "body", "request", "path", "query",
     "server", "retry", "maxAttempts", "needs", "forEach", "tasks", "name", "inputs", "outputs",
     "credentials", "idempotencyKey", "type", "x"]
)  # fmt: skip
# Keys that YAML reads as null, a number or a boolean when written plainly (`~:`, `1:`, `on:`).
_YAML_KEYS = _KEYS | st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_YAML_KEYS, inner, max_size=5)),
    max_leaves=25,
)  # fmt: skip


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


_TEXTS = st.one_of(
    _DATA.map(_dump),
    st.text(alphabet="abc:-&*[]{}!|>'\"#\n\t %@`?,", max_size=200),
    st.tuples(st.sampled_from(["&a [1]", "*a", "&a {b: *a}", "!!int 9", "!!float x", "!!binary x", "<<: *a"]),
              st.text(alphabet="abc:\n ", max_size=20)).map(lambda p: f"x: {p[0]}\ny: {p[1]}"),
)  # fmt: skip


@SETTINGS
@given(text=_TEXTS)
def test_a_task_file_parses_or_says_where(text: str) -> None:
    try:
        source = parse_source(text, "t.yaml")
        parse_task(source.data, source=source)
    except HttptaskError as exc:
        assert exc.message


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.default()


@SETTINGS
@given(text=_TEXTS, tasks=st.lists(_DATA, max_size=3))
def test_a_workflow_is_checked_or_says_where(catalog: Catalog, text: str, tasks: list[Any]) -> None:
    for document in (text, _dump({"name": "w", "tasks": tasks})):
        issues = check_workflow_text(document, catalog, "w.yaml")
        assert all(issue.message for issue in issues)


@SETTINGS
@given(document=st.dictionaries(_KEYS | st.sampled_from(["openapi", "info", "paths", "components"]), _DATA))
def test_a_spec_loads_or_says_where(document: dict[str, Any]) -> None:
    document.setdefault("openapi", "3.1.0")
    try:
        parse_spec(parse_document(_dump(document), "fuzz.yaml"), api="fuzz", source="fuzz.yaml")
    except HttptaskError as exc:
        assert exc.message


@SETTINGS
# Text only: `@FILE` names a file, whose errors are the file's (the corpus covers them), and a generated
# `@name` would read whatever file happens to have that name.
@given(
    text=st.one_of(
        st.text(max_size=80).filter(lambda t: not t.startswith("@")),
        _DATA.map(json.dumps),
        _DATA.map(lambda d: json.dumps(d)[:-1]),
    )
)
def test_input_text_parses_or_says_why(text: str) -> None:
    try:
        assert isinstance(parse_input(text), dict)
    except HttptaskError as exc:
        assert exc.message.startswith("--input ")
