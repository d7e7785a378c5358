"""The request rules on their own: server choice and `{name}` filling, path and header refusals, query lists,
which requests are idempotent, idempotency keys, and raw `httpRequest` tasks. Pure functions, no I/O."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httptask.errors import Issue
from httptask.requests import (
    RawRequest,
    build_raw_request,
    build_request,
    build_values,
    choose_server,
    derive_key,
    expand_path,
    fill_template,
    header_issues,
    idempotency_header,
    is_idempotent,
    new_key,
    path_issues,
    query_items,
    resolve_server,
    sandbox_base_url,
    step_seed,
)
from httptask.spec import MediaType, Operation, Parameter, RequestBody, Server, ServerVariable

SITE = Server(
    url="https://{site}.example.com/api/{version}",
    variables=(ServerVariable("site", "acme"), ServerVariable("version", "v1", enum=("v1", "v2"))),
)
SECOND = Server(url="https://eu.example.com/")


def _operation(**changes: Any) -> Operation:
    fields: dict[str, Any] = {
        "api": "shop",
        "operation_id": "refund",
        "method": "POST",
        "path": "/orders/{id}/refunds",
        "servers": (SITE, SECOND),
        "parameters": (
            Parameter("id", "path", True, {"type": "string"}),
            Parameter("X-Api-Version", "header", False, {"type": "string", "default": "2024-01"}),
        ),
        "request_body": RequestBody(True, (MediaType("application/json", {"type": "object"}),)),
        "idempotency_header": "Idem-Key",
    }
    return Operation(**{**fields, **changes})


@pytest.mark.parametrize(
    ("task_server", "chosen", "issues"),
    [
        ({}, SITE, []),
        ({"index": 1}, SECOND, []),
        ({"index": 2}, SITE, [("$.server.index", "must be between 0 and 1", 2)]),
        ({"index": -1}, SITE, [("$.server.index", "must be between 0 and 1", -1)]),
        ({"index": True}, SITE, [("$.server.index", "must be between 0 and 1", True)]),
        ({"index": "1"}, SITE, [("$.server.index", "must be between 0 and 1", "1")]),
    ],
)
def test_the_index_chooses_the_server(task_server: dict[str, Any], chosen: Server, issues: list[Any]) -> None:
    server, found = choose_server(_operation(), task_server)
    assert server == chosen
    assert [(i.path, i.message, i.actual) for i in found] == issues


def test_server_variables_take_the_task_value_else_the_default() -> None:
    choice = resolve_server(_operation(), {"site": "globex"})
    assert (choice.base_url, choice.variables, choice.issues) == (
        "https://globex.example.com/api/v1",
        {"site": "globex", "version": "v1"},
        [],
    )


@pytest.mark.parametrize(
    ("task_server", "path", "message"),
    [
        ({"region": "eu"}, "$.server.region", "is not a variable of the server https://{site}.example.com/api/"
         "{version} (its variables: site, version)"),
        ({"site": "evil.com/x?"}, "$.server.site",
         "must not contain '/', '?', '#' or '@', not 'evil.com/x?'"),
        ({"site": "a@b"}, "$.server.site", "must not contain '/', '?', '#' or '@', not 'a@b'"),
    ],
)  # fmt: skip
def test_server_values_that_would_change_the_host_or_are_unknown_are_issues(
    task_server: dict[str, str], path: str, message: str
) -> None:
    assert [(i.path, i.message) for i in resolve_server(_operation(), task_server).issues] == [
        (path, message)
    ]


def test_the_same_server_values_give_the_choice_made_once_and_equal_values_of_other_types_do_not() -> None:
    op = _operation()
    first = resolve_server(op, {"site": "globex"})
    assert resolve_server(op, {"site": "globex"}) is first
    assert resolve_server(op, {"site": "globex"}, sandbox_url="http://127.0.0.1:8787") is not first
    sites = [1, True, 1.0, "1", 0.0, -0.0, 1, ["a"]]
    texts = ["1", "True", "1.0", "1", "0.0", "-0.0", "1", "['a']"]
    assert [resolve_server(op, {"site": site}).base_url for site in sites] == [
        f"https://{text}.example.com/api/v1" for text in texts
    ]
    assert [i.path for i in resolve_server(op, {"site": "x", "region": "eu"}).issues] == ["$.server.region"]
    assert resolve_server(op, {"site": "x"}).issues == []


def test_the_sandbox_wins_over_url_and_url_over_the_servers() -> None:
    op = _operation()
    assert resolve_server(op, {"url": "http://127.0.0.1:9/base/"}).base_url == "http://127.0.0.1:9/base"
    sandboxed = resolve_server(op, {"url": "http://127.0.0.1:9/"}, sandbox_url="http://127.0.0.1:8787/")
    assert (
        sandboxed.base_url
        == "http://127.0.0.1:8787/shop/api/v1"
        == sandbox_base_url(op, "http://127.0.0.1:8787")
    )


def test_an_operation_without_servers_needs_a_url() -> None:
    choice = resolve_server(_operation(servers=()), {})
    assert (choice.base_url, choice.server) == ("", None)
    assert choice.issues == [
        Issue(
            "$.server",
            "has no URL: the operation lists no server; set server.url in the task",
            expected="a URL",
        )
    ]
    assert resolve_server(_operation(servers=()), {"url": "https://x.example/"}).issues == []


def test_fill_template_keeps_names_without_a_value() -> None:
    assert fill_template("https://{a}.x/{b}", {"a": "one"}) == "https://one.x/{b}"


@pytest.mark.parametrize(
    ("value", "segment"),
    [("a/b", "a%2Fb"), ("o r", "o%20r"), (".", "%2E"), ("..", "%2E%2E"), ("x..y", "x..y"), (12, "12"),
     (True, "true")],
)  # fmt: skip
def test_a_path_value_is_always_one_segment(value: Any, segment: str) -> None:
    assert expand_path("/orders/{id}/refunds", {"id": value}) == f"/orders/{segment}/refunds"


def test_every_name_of_a_path_is_filled_where_it_has_a_value_and_kept_where_not() -> None:
    values = {"x": "1/2", "y": 3}
    assert expand_path("/a/{x}{y}/{x}/{missing}/", values) == "/a/1%2F23/1%2F2/{missing}/"
    assert expand_path("{x}", values) == "1%2F2"
    assert expand_path("/plain", values) == "/plain"


@pytest.mark.parametrize("value", [".", "..", "", "...", None])
def test_a_path_value_that_navigates_or_is_empty_is_refused(value: Any) -> None:
    text = "" if value is None else value
    assert path_issues({"id": value}) == [
        Issue(
            "$.path.id",
            f"must not be empty, '.' or '..', not {text!r}: it would change the request's path",
            actual=text,
        )
    ]
    assert path_issues({"id": "a.b"}) == []


def test_header_names_and_line_breaks_are_checked() -> None:
    issues = header_issues({"x-ok": "1", "bad name": "v", "x-split": "a\r\nx-evil: 1", "x-nul": "a\0"})
    assert [(i.path, i.message) for i in issues] == [
        ("$.headers['bad name']", "is not a valid header name"),
        ("$.headers.x-split", "must not contain a line break (CR or LF) or NUL"),
        ("$.headers.x-nul", "must not contain a line break (CR or LF) or NUL"),
    ]


def test_a_list_query_value_repeats_its_name() -> None:
    assert list(query_items({"id": [1, 2], "q": "a b"})) == [("id", 1), ("id", 2), ("q", "a b")]
    op = _operation(method="GET", request_body=None, path="/orders")
    values = build_values(op, server={}, path={}, query={"id": [1, 2], "paid": True}, headers={})
    request = build_request(op, values, base_url="https://x.example/", content=b"", extra_query={"k": "v w"})
    assert request.url == "https://x.example/orders?id=1&id=2&paid=true&k=v+w"


def test_values_get_the_specs_header_defaults_and_the_body_content_type() -> None:
    values = build_values(
        _operation(), server={}, path={"id": "o1"}, query={}, headers={}, body={}, has_body=True
    )
    assert values.headers == {"x-api-version": "2024-01", "content-type": "application/json"}
    given = build_values(_operation(), server={}, path={}, query={}, headers={"X-API-VERSION": "2025-06"})
    assert given.headers == {"x-api-version": "2025-06"}


@pytest.mark.parametrize(
    ("method", "key_header", "idempotent"),
    [("GET", None, True), ("head", None, True), ("OPTIONS", None, True), ("PUT", None, True),
     ("DELETE", None, True), ("POST", None, False), ("PATCH", None, False), ("POST", "Idem-Key", True)],
)  # fmt: skip
def test_which_requests_are_idempotent(method: str, key_header: str | None, idempotent: bool) -> None:
    assert is_idempotent(method, key_header) is idempotent


def test_which_header_carries_the_key_and_how_keys_are_derived() -> None:
    assert idempotency_header(_operation()) == "Idem-Key"
    assert idempotency_header(_operation(idempotency_header=None)) is None
    assert idempotency_header(None) == "Idempotency-Key"
    seed = step_seed("run-1", "refund", 3)
    assert derive_key(seed) == derive_key("run-1/refund/3")
    keys = {
        derive_key(step_seed(run, task, item))
        for run in ("r1", "r2")
        for task in ("a", "b")
        for item in (0, 1)
    }
    assert len(keys) == 8
    assert new_key() != new_key()


@settings(max_examples=300, deadline=None)
@given(seed=st.text())
def test_a_derived_key_is_uuid5_of_its_seed_so_journaled_keys_stay_the_same(seed: str) -> None:
    # Runs journaled before derive_key was written out by hand resume with the keys they were sent with.
    namespace = uuid.UUID("6f1c1d52-8f0a-4d4e-9a57-1f3c2b8e7a10")
    try:
        expected = str(uuid.uuid5(namespace, seed))
    except UnicodeEncodeError:  # a lone surrogate: no key either way
        with pytest.raises(UnicodeEncodeError):
            derive_key(seed)
        return
    assert derive_key(seed) == expected


def test_a_raw_request_gets_its_defaults_its_key_and_an_encoded_body() -> None:
    raw = RawRequest.of({"url": "http://127.0.0.1:9/r", "method": "post", "body": {"on": "2024-01-31"}})
    request, issues = build_raw_request(raw, idempotency_key="k-1")
    assert issues == []
    assert (request.method, request.url) == ("POST", "http://127.0.0.1:9/r")
    assert request.header("Idempotency-Key") == "k-1"
    assert request.header("content-type") == "application/json"
    assert json.loads(request.content) == {"on": "2024-01-31"}
    bare, _ = build_raw_request(RawRequest.of({"url": "http://127.0.0.1:9/"}), idempotency_key=None)
    assert (bare.method, bare.headers, bare.content) == ("GET", (), b"")


def test_a_raw_request_with_a_line_break_in_a_header_is_refused() -> None:
    raw = RawRequest.of({"url": "http://127.0.0.1:9/", "headers": {"X-A": "1\r\nX-B: 2"}})
    _, issues = build_raw_request(raw, idempotency_key=None)
    assert [(i.path, i.message) for i in issues] == [
        ("$.headers.x-a", "must not contain a line break (CR or LF) or NUL")
    ]
