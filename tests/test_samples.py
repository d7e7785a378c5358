"""samples: values for small schemas, and for every bundled operation a response and a body that validate."""

from __future__ import annotations

from typing import Any

import pytest

from httptask.catalog import Catalog, spec_files
from httptask.resources import bundled_dir
from httptask.samples import sample_response, sample_value
from httptask.spec import MediaType, Operation, Response
from httptask.validation import validate_instance

BUNDLED = Catalog([(api, path, True) for api, path in spec_files(bundled_dir("specs"))])


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "examples": ["first", "second"], "default": "d"}, "first"),
        ({"type": "string", "default": "d", "enum": ["a", "d"]}, "d"),
        ({"type": "string", "enum": ["cash", "check"]}, "cash"),
        ({"const": 7}, 7),
        ({"type": "string", "format": "date"}, "2024-01-31"),
        ({"type": "string", "format": "date-time"}, "2024-01-31T12:00:00Z"),
        ({"type": "string", "format": "email"}, "jane.doe@example.com"),
        ({"type": "string", "format": "uuid"}, "3f9c2a71-5b0e-4d8a-9e61-2c7d4b8f1a05"),
        ({"type": "integer", "format": "unix-time"}, 1706702400),
        ({"type": "string"}, "example"),
        ({"type": "string", "maxLength": 3}, "exa"),
        ({"type": "string", "minLength": 10}, "examplexxx"),
        ({"type": "integer"}, 1),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "minimum": 0.5}, 1),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "integer", "maximum": -3}, -3),
        ({"type": "number", "minimum": 2.5}, 2.5),
        ({"type": "boolean"}, False),
        ({"type": ["string", "null"], "format": "uuid"}, "3f9c2a71-5b0e-4d8a-9e61-2c7d4b8f1a05"),
        ({"type": "null"}, None),
        ({"type": "array", "items": {"type": "integer", "minimum": 3}}, [3]),
        ({"type": "array", "items": {"type": "string"}, "minItems": 2}, ["example", "example"]),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 1),
        ({"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}, "2024-01-31"),
        ({}, None),
    ],
)
def test_sample_value_of_small_schemas(schema: dict[str, Any], expected: Any) -> None:
    assert sample_value(schema) == expected


def test_objects_get_every_property_recursively() -> None:
    schema = {
        "type": "object",
        "properties": {
            "memo": {"type": "string"},
            "transaction": {
                "type": "object",
                "properties": {"amount": {"type": "integer", "minimum": 0}, "method": {"enum": ["check"]}},
            },
        },
    }
    assert sample_value(schema) == {"memo": "example", "transaction": {"amount": 0, "method": "check"}}


def test_all_of_merges_properties_and_required() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            {"properties": {"count": {"type": "integer"}}, "required": ["count"]},
        ]
    }
    assert sample_value(schema) == {"id": "example", "count": 1}


def test_a_required_name_without_a_property_schema_is_still_present() -> None:
    assert sample_value({"type": "object", "required": ["id"]}) == {"id": "example"}


def test_a_schema_that_contains_itself_gives_a_finite_value() -> None:
    node: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}},
                            "required": ["name"]}
    node["properties"]["child"] = node
    assert sample_value(node) == {"name": "example", "child": None}


def test_deep_nesting_stops_at_the_depth_limit() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"next": schema}, "required": ["next"]}
    value = sample_value(schema)
    depth = 0
    while isinstance(value, dict):
        value = value["next"]
        depth += 1
    assert 5 < depth < 40


def _operation(*responses: Response) -> Operation:
    return Operation(api="demo", operation_id="do", method="POST", path="/x", responses=responses)


def test_sample_response_prefers_the_media_type_example() -> None:
    media = MediaType("application/json", {"type": "object", "properties": {"id": {"type": "string"}}},
                      example={"id": "abc"})
    op = _operation(Response("400", "bad"), Response("201", "made", (media,)))
    assert sample_response(op) == (201, "application/json", {"id": "abc"})


def test_sample_response_samples_the_schema_without_an_example() -> None:
    media = MediaType("application/json", {"type": "object", "properties": {"id": {"type": "string"}}})
    assert sample_response(_operation(Response("200", "ok", (media,)))) == (200, "application/json",
                                                                            {"id": "example"})


def test_sample_response_prefers_json_among_media_types() -> None:
    text = MediaType("text/plain", {"type": "string"}, example="ok")
    data = MediaType("application/json", {"type": "object"}, example={"ok": True})
    assert sample_response(_operation(Response("200", "ok", (text, data)))) == (200, "application/json",
                                                                               {"ok": True})


@pytest.mark.parametrize(
    ("responses", "expected"),
    [
        ((Response("204", "gone"),), (204, "", None)),
        ((Response("200", "ok"),), (200, "", None)),
        ((Response("2XX", "ok", (MediaType("application/json", {}, example=[1]),)),),
         (200, "application/json", [1])),
        ((Response("default", "error", (MediaType("application/json", {}, example={"e": 1}),)),),
         (200, "", None)),
    ],
)
def test_sample_response_without_content_or_without_2xx(
    responses: tuple[Response, ...], expected: tuple[int, str, Any]
) -> None:
    assert sample_response(_operation(*responses)) == expected


@pytest.mark.parametrize("operation_id", BUNDLED.ids())
def test_every_bundled_operation_has_a_sample_response_that_matches_its_schema(operation_id: str) -> None:
    op = BUNDLED.operation(operation_id)
    status, content_type, body = sample_response(op)
    response = next(r for r in op.responses if r.status == str(status))
    media = next(m for m in response.media_types if m.content_type == content_type)
    assert body == media.example
    assert validate_instance(body, media.schema) == []
    assert validate_instance(sample_value(media.schema), media.schema) == []


@pytest.mark.parametrize("operation_id", [i for i in BUNDLED.ids() if BUNDLED.operation(i).request_body])
def test_every_bundled_request_body_schema_has_a_valid_sample(operation_id: str) -> None:
    schema = BUNDLED.operation(operation_id).request_body.default.schema  # type: ignore[union-attr]
    assert validate_instance(sample_value(schema), schema) == []
