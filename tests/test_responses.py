"""responses: a response against the response its operation documents for the status (exact, range,
`default`), its content type (most specific key first) and its body's schema, in OpenAPI 3.0 and 3.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from httptask.errors import Issue
from httptask.messages import HttpResponse
from httptask.responses import check_response
from httptask.spec import Operation, parse_spec

REFUND_30 = """
openapi: 3.0.3
info: {title: Refunds, version: "1"}
paths:
  /refunds:
    post:
      operationId: create
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Refund"}
        4XX:
          description: a client error
          content:
            application/problem+json:
              schema:
                type: object
                required: [title]
                properties: {title: {type: string}}
        default:
          description: anything else
          content:
            text/*:
              schema: {type: string}
    head:
      operationId: probe
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
  /refunds/{id}:
    delete:
      operationId: remove
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        "204": {description: gone}
        "200": {description: gone, content: {"*/*": {schema: {type: object, required: [id]}}}}
components:
  schemas:
    Refund:
      type: object
      required: [id, amount, status]
      properties:
        id: {type: string}
        amount: {type: integer, minimum: 0, exclusiveMinimum: true}
        status: {type: string, enum: [pending, done]}
        note: {type: string, nullable: true}
        lines:
          type: array
          items: {$ref: "#/components/schemas/Line"}
    Line:
      type: object
      required: [amount]
      properties:
        amount: {type: integer}
        children: {type: array, items: {$ref: "#/components/schemas/Line"}}
"""

REFUND_31 = """
openapi: 3.1.0
info: {title: Refunds, version: "1"}
paths:
  /refunds:
    get:
      operationId: list
      responses:
        2XX:
          description: the refunds
          content:
            application/json:
              schema:
                type: object
                properties:
                  note: {type: [string, "null"]}
                  total: {type: integer, exclusiveMinimum: 0}
                  kind: {const: list}
"""


def operation(document: str, operation_id: str) -> Operation:
    spec = parse_spec(yaml.safe_load(document), api="refunds", source="refunds.yaml")
    found = spec.operation(operation_id)
    assert found is not None
    return found


def answer(status: int, body: Any = None, content_type: str | None = "application/json") -> HttpResponse:
    content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    headers = (("Content-Type", content_type),) if content_type else ()
    return HttpResponse(status, headers, content, 1.0)


CREATE = operation(REFUND_30, "create")
REFUND = {"id": "re_1", "amount": 500, "status": "done"}


def paths(issues: list[Issue]) -> list[tuple[str, str]]:
    return [(issue.path, issue.message) for issue in issues]


def test_a_response_that_fits_has_no_issues() -> None:
    assert check_response(CREATE, answer(201, REFUND)) == []


def test_each_problem_of_the_body_has_its_json_path() -> None:
    body = {"id": 7, "amount": 0, "status": "lost", "lines": [{"amount": 1}, {"amount": "2"}]}
    assert paths(check_response(CREATE, answer(201, body))) == [
        ("$.body.amount", "must be greater than 0, not 0"),
        ("$.body.id", "must be of type string, not integer 7"),
        ("$.body.lines[1].amount", "must be of type integer, not string '2'"),
        ("$.body.status", "must be one of 'pending', 'done', not 'lost'"),
    ]


def test_a_missing_field_is_named() -> None:
    issues = check_response(CREATE, answer(201, {"id": "re_1"}))
    assert paths(issues) == [
        ("$.body.amount", "is required but missing"),
        ("$.body.status", "is required but missing"),
    ]


def test_a_recursive_schema_is_checked_all_the_way_down() -> None:
    deep: dict[str, Any] = {"amount": 1}
    for _ in range(30):
        deep = {"amount": 1, "children": [deep]}
    deep["children"][0]["children"][0]["amount"] = "x"
    issues = check_response(CREATE, answer(201, {**REFUND, "lines": [deep]}))
    assert paths(issues) == [
        ("$.body.lines[0].children[0].children[0].amount", "must be of type integer, not string 'x'")
    ]


def test_openapi_30_nullable_and_boolean_exclusive_minimum() -> None:
    assert check_response(CREATE, answer(201, {**REFUND, "note": None})) == []
    assert paths(check_response(CREATE, answer(201, {**REFUND, "note": 5}))) == [
        ("$.body.note", "must be of type string or null, not integer 5")
    ]


def test_openapi_31_type_lists_numeric_exclusive_minimum_and_const() -> None:
    listing = operation(REFUND_31, "list")
    assert check_response(listing, answer(200, {"note": None, "total": 1})) == []
    assert paths(check_response(listing, answer(206, {"total": 0, "kind": "one"}))) == [
        ("$.body.kind", "must be 'list', not 'one'"),
        ("$.body.total", "must be greater than 0, not 0"),
    ]


def test_a_status_range_and_default_are_used_when_the_status_is_not_listed() -> None:
    problem = answer(409, {"detail": "twice"}, "application/problem+json")
    assert paths(check_response(CREATE, problem)) == [("$.body.title", "is required but missing")]
    assert check_response(CREATE, answer(503, b"busy", "text/plain; charset=utf-8")) == []


def test_an_undocumented_status_is_an_issue() -> None:
    listing = operation(REFUND_31, "list")
    issues = check_response(listing, answer(500, {"x": 1}))
    assert issues == [
        Issue(
            "$.status",
            "500 is not a status refunds.list documents (it documents 2XX)",
            expected=["2XX"],
            actual=500,
        )
    ]


def test_an_undocumented_content_type_is_an_issue() -> None:
    issues = check_response(CREATE, answer(201, b"<html></html>", "text/html"))
    assert paths(issues) == [
        (
            "$.headers.content-type",
            "is text/html, which the 201 response of refunds.create does not document "
            "(it documents application/json)",
        )
    ]


def test_content_type_parameters_and_wildcards() -> None:
    with_charset = answer(201, REFUND, "application/json; charset=utf-8")
    assert check_response(CREATE, with_charset) == []
    remove = operation(REFUND_30, "remove")
    assert paths(check_response(remove, answer(200, {}, "application/vnd.x+json"))) == [
        ("$.body.id", "is required but missing")
    ]


def test_a_body_without_content_type_or_an_empty_one_is_an_issue() -> None:
    assert paths(check_response(CREATE, answer(201, REFUND, None))) == [
        (
            "$.headers.content-type",
            "is missing; the 201 response of refunds.create documents application/json",
        )
    ]
    assert paths(check_response(CREATE, answer(201, None))) == [
        ("$.body", "is empty, but the 201 response of refunds.create documents a body (application/json)")
    ]


def test_json_that_does_not_parse_is_an_issue() -> None:
    [issue] = check_response(CREATE, answer(201, b'{"id": '))
    assert issue.path == "$.body"
    assert issue.message.startswith("is not valid JSON (Expecting value: line 1 column 8 (char 7))")


def test_no_body_is_checked_where_none_is_documented_or_possible() -> None:
    remove = operation(REFUND_30, "remove")
    assert check_response(remove, answer(204, None, None)) == []
    probe = operation(REFUND_30, "probe")
    assert check_response(probe, answer(200, None)) == []
    no_responses = parse_spec(
        {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/": {"get": {}}}},
        api="bare",
        source="bare.yaml",
    ).operations[0]
    assert check_response(no_responses, answer(200, b"anything", "text/plain")) == []


def test_a_body_with_thousands_of_problems_reports_the_first_twenty() -> None:
    lines = [{"amount": str(i)} for i in range(5000)]
    issues = check_response(CREATE, answer(201, {**REFUND, "lines": lines}))
    assert len(issues) == 21
    assert issues[-1] == Issue("$.body", "has more problems than the 20 shown")


def test_a_check_that_fails_is_an_issue_never_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(media: Any, body: Any, **options: Any) -> list[Issue]:
        raise RuntimeError("the validator broke")

    monkeypatch.setattr("httptask.responses.validate_body", broken)
    assert check_response(CREATE, answer(201, REFUND)) == [
        Issue("$", "could not be checked against the spec: the validator broke")
    ]


SECRET = "sk_live_PANGOLIN_5f0e_do_not_print"


def records(body: bytes | dict[str, Any]) -> list[dict[str, Any]]:
    """The issues of a 201 with `body`, as journaled and reported, with SECRET known to the redactor."""
    from httptask.execute import issue_records
    from httptask.redaction import Redactor

    redactor = Redactor()
    redactor.add(SECRET)
    return issue_records(check_response(CREATE, answer(201, body)), redactor)


def test_a_long_value_is_named_by_its_size_never_quoted_in_part() -> None:
    # A secret that a cut at 200 characters would split is never shown in part: the value is not quoted.
    long_id = "x" * 190 + SECRET
    [issue] = records({**REFUND, "lines": long_id})
    assert issue == {"path": "$.body.lines", "message": "must be of type array, not a text of 224 characters",
                     "expected": "array"}
    huge = records({**REFUND, "amount": "9" * 9_000_000})
    assert huge == [{"path": "$.body.amount", "message": "must be of type integer, not a text of 9,000,000 "
                     "characters", "expected": "integer"}]


def test_a_short_value_with_a_secret_is_quoted_redacted() -> None:
    [issue] = records({**REFUND, "status": f"echo {SECRET}"})
    assert issue["message"] == "must be one of 'pending', 'done', not 'echo ***'"
    assert issue["actual"] == "echo ***"


@pytest.mark.parametrize("depth", [500, 100_000])
def test_a_response_nested_hundreds_deep_is_an_issue_not_a_crash(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    at_root = records(nested)
    assert at_root == [{"path": "$.body", "message": "must be of type object, not an array of 1 item",
                        "expected": "object"}] if depth == 500 else [
        {"path": "$.body", "message": "is nested too deeply to check"}
    ]
    inside = records(b'{"id": "re_1", "amount": 1, "status": "done", "lines": ' + nested + b"}")
    assert len(inside) == 1 and inside[0]["path"].startswith("$.body")


def test_what_an_operation_documents_is_looked_up_once_per_status_and_content_type_and_kept_apart() -> None:
    # The lookup is kept per operation, status and content type: each keeps its own answer, in any order,
    # and an operation parsed again with another schema is not answered from the first one's lookup.
    stricter = REFUND_30.replace("required: [id, amount, status]", "required: [id, amount, status, note]")
    strict, remove = operation(stricter, "create"), operation(REFUND_30, "remove")
    for _ in range(3):
        assert check_response(CREATE, answer(201, REFUND)) == []
        [issue] = check_response(strict, answer(201, REFUND))
        assert (issue.path, issue.message) == ("$.body.note", "is required but missing")
        [(path, _)] = paths(check_response(CREATE, answer(201, REFUND, "text/html")))
        assert path == "$.headers.content-type"
        assert paths(check_response(CREATE, answer(404, {"title": 1}, "application/problem+json"))) == [
            ("$.body.title", "must be of type string, not integer 1")
        ]
        assert paths(check_response(remove, answer(200, {}, "application/vnd.x+json"))) == [
            ("$.body.id", "is required but missing")
        ]


def test_answers_with_more_content_types_than_are_kept_are_each_checked() -> None:
    for n in range(1500):
        [(path, _)] = paths(check_response(CREATE, answer(201, REFUND, f"application/x{n}+json")))
        assert path == "$.headers.content-type"
    assert check_response(CREATE, answer(201, REFUND)) == []


BOUNDED = """
openapi: 3.1.0
info: {title: Totals, version: "1"}
paths:
  /totals:
    get:
      operationId: total
      responses:
        "200":
          description: the total
          content:
            application/json:
              schema:
                type: object
                properties: {total: {type: number, maximum: 1000000000000000000000000000000}}
"""


@pytest.mark.parametrize(
    "content", [b'{"total": 1e30}', b'{"total": 1000000000000000000000000000001}', b'{"total": 1.0E+30}']
)
def test_a_number_past_the_exact_floats_is_checked_exactly(content: bytes) -> None:
    # A float cannot tell these from 10**30: the body is checked by jsonschema, which compares them exactly.
    [issue] = check_response(operation(BOUNDED, "total"), answer(200, content))
    assert issue.path == "$.body.total"
    assert issue.message.startswith("must be at most 1000000000000000000000000000000, not 1")


def test_a_number_within_the_exact_floats_is_checked_as_ever() -> None:
    total = operation(BOUNDED, "total")
    assert check_response(total, answer(200, b'{"total": 123456789012345}')) == []
    assert check_response(total, answer(200, b'{"total": 1000000000000000000000000000000}')) == []
