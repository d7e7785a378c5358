"""jsonschema-rs says 'valid' on the fast path and jsonschema says what is wrong: the two must agree on every
value, or an invalid request would be sent (or a valid one refused). Checked for every bundled operation
with values derived from its own sample, and for every format and a set of patterns with generated strings."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httptask.catalog import Catalog
from httptask.samples import sample_value
from httptask.spec import MediaType
from httptask.validation import (
    _FORMATS,
    _VALIDATORS,
    _fast_validator,
    _Validator,
    operation_schema,
    validate_instance,
)

OPERATIONS = [entry.id for entry in Catalog.default().entries]
RESPONSE_MEDIA = {
    f"{op_id} {response.status} {media.content_type}": media
    for op_id in OPERATIONS
    for response in Catalog.default().operation(op_id).responses
    for media in response.media_types
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    # JSON has no infinity: jsonschema-rs refuses one that jsonschema accepts, and validation then asks
    # jsonschema, whose word is final (test_an_infinity_is_judged_by_jsonschema).
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _agree(schema: dict[str, Any], instance: Any) -> None:
    fast = _fast_validator(schema)
    assert fast is not None, "jsonschema-rs could not compile the schema"
    # The slow path as validation uses it: jsonschema, its patterns matched by limits.search (the `regex`
    # module, which reads \x1c-\x1f as non-space where `re` does not) as jsonschema-rs's are.
    slow = _Validator(schema, format_checker=_FORMATS)
    errors = [error.message for error in slow.iter_errors(instance)]
    assert fast.is_valid(instance) == (not errors), (instance, errors)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for key, item in value.items() for p in _leaves(item, (*path, key))]
    if isinstance(value, list) and value:
        return [p for index, item in enumerate(value) for p in _leaves(item, (*path, index))]
    return [path]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copied


@pytest.mark.parametrize("operation_id", OPERATIONS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_both_validators_agree_on_each_operation_s_requests(operation_id: str, data: st.DataObject) -> None:
    schema = operation_schema(Catalog.default().operation(operation_id))
    sample = sample_value(schema)
    _agree(schema, sample)
    leaves = _leaves(sample)
    path = data.draw(st.sampled_from(leaves))
    _agree(schema, _replace(sample, path, data.draw(JSON)))


@pytest.mark.parametrize("where", sorted(RESPONSE_MEDIA))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_both_validators_agree_on_each_documented_response_body(where: str, data: st.DataObject) -> None:
    # A response body is checked by jsonschema-rs first too, against its document's schemas as resources.
    media: MediaType = RESPONSE_MEDIA[where]
    slow, fast = _VALIDATORS.body(media)
    assert fast is not None, "jsonschema-rs could not compile the schema"
    sample = sample_value(media.schemas.view(media.linked_schema) if media.schemas else media.linked_schema)
    for body in (sample, _replace(sample, data.draw(st.sampled_from(_leaves(sample))), data.draw(JSON))):
        errors = [error.message for error in slow.iter_errors(body)]
        assert fast.is_valid(body) == (not errors), (body, errors)


FORMATS = sorted({*_FORMATS.checkers, "uri", "hostname", "duration", "json-pointer", "unknown-format"})
FORMAT_VALUES = (
    JSON
    | st.sampled_from(
        [
            "2024-02-30", "2024-01-31", "2024-01-31T12:00:00Z", "2024-01-31T12:00:00+25:00",
            "2024-01-31 12:00:00Z", "a@b.co", "a@b", "@b.co", "192.0.2.1", "256.1.1.1", "::1", "12:00:00Z",
            "3f9c2a71-5b0e-4d8a-9e61-2c7d4b8f1a05",
            "[a-", "^x$", -1, 0, 2**31, 2**31 - 1, -(2**31) - 1, 2**63, True, 1.5, "1706702400",
        ]
    )
    | st.from_regex(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?", fullmatch=True)
)  # fmt: skip


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=60, deadline=None)
@given(value=FORMAT_VALUES)
def test_both_validators_agree_on_every_format(name: str, value: Any) -> None:
    _agree({"format": name}, value)
    _agree({"type": "object", "properties": {"v": {"format": name}}}, {"v": value})


PATTERNS = [
    r"^[a-z]+$",  # Python's `$` also matches before a final newline
    r"^\d{3}$",  # Python's `\d` matches any Unicode digit
    r"\w+@\w+",
    r"^[A-Z]{3}$",
    r"^(?!test_)[a-z_]+$",
    r"^\S+$",
    r"^[^\s@]+@[^\s@]+\.[^\s@]+$",
    r"^[^\W\d_]+$",  # letters only
    r"",
    r"é",
]
PATTERN_VALUES = st.text(max_size=12) | st.sampled_from(
    ["abc\n", "١٢٣", "123", "ABC", "test_x", "x y", "éé", "a@b.c"]
)


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=80, deadline=None)
@given(value=PATTERN_VALUES | JSON)
def test_both_validators_agree_on_patterns(pattern: str, value: Any) -> None:
    _agree({"pattern": pattern}, value)
    _agree({"type": "array", "items": {"type": "string", "pattern": pattern}}, [value])


NODE = {"type": "object", "properties": {"next": {"$ref": "urn:t:/node"}, "n": {"type": "integer"}}}
CYCLE = {"urn:t:/node": NODE}
WIDE = {"urn:t:/leaf": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(100)}}}
WIDE["urn:t:/wide"] = {"type": "object", "properties": {f"q{i}": {"$ref": "urn:t:/leaf"} for i in range(100)}}


@pytest.mark.parametrize(
    ("schema", "resources", "fast"),
    [
        ({"$ref": "urn:t:/node"}, CYCLE, False),
        ({"properties": {"a": {"$ref": "#/properties/b"}, "b": {"type": "string"}}}, {}, False),
        ({"$ref": "urn:t:/leaf"}, WIDE, True),
        ({"$ref": "urn:t:/wide"}, WIDE, False),  # 100 references to 201 nodes each: past the bound
    ],
)
def test_only_schemas_that_expand_to_a_bounded_tree_go_to_jsonschema_rs(
    schema: dict[str, Any], resources: dict[str, Any], fast: bool
) -> None:
    # jsonschema-rs expands references eagerly: a synthetic document's cycles made it grow past 20 GB.
    assert (_fast_validator(schema, resources) is not None) is fast


# Numbers where a float stops being exact, as integers and as floats, and far beyond, on both sides.
EDGES = [
    n
    for magnitude in (2**53, 2**63, 2**64, 10**30)
    for whole in (magnitude - 1, magnitude, magnitude + 1, -magnitude - 1, -magnitude)
    for n in (whole, float(whole))
] + [0, 1, 7]
NUMBERS = st.sampled_from(EDGES) | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
NUMERIC_KEYWORDS = ["maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf", "const"]


def _exactly_valid(schema: dict[str, Any], instance: Any) -> bool:
    return not list(_Validator(schema, format_checker=_FORMATS).iter_errors(instance))


@pytest.mark.parametrize("keyword", [*NUMERIC_KEYWORDS, "enum", "uniqueItems"])
def test_numbers_past_a_floats_exact_range_are_compared_exactly(keyword: str) -> None:
    # jsonschema-rs compares them as floats (1e30 == 10**30): its 'valid' must never stand where jsonschema
    # finds a number out of bounds. Every bound against every number, top-level and nested in a body.
    disagree = []
    for bound in EDGES:
        if keyword == "multipleOf" and bound <= 0:
            continue
        schema: dict[str, Any] = {"enum": [bound]} if keyword == "enum" else {keyword: bound}
        if keyword == "uniqueItems":
            schema = {"uniqueItems": True}
        for number in EDGES:
            instance = [bound, number] if keyword == "uniqueItems" else number
            for where, nested in (("top", schema), ("body", {"properties": {"amount": schema}})):
                value = instance if where == "top" else {"amount": instance}
                if (validate_instance(value, nested) == []) != _exactly_valid(nested, value):
                    disagree.append((where, schema, value))
    assert disagree == []


@settings(max_examples=300, deadline=None)
@given(
    keyword=st.sampled_from(NUMERIC_KEYWORDS),
    bound=NUMBERS.filter(math.isfinite),
    number=NUMBERS,
)
def test_the_quick_path_agrees_with_jsonschema_on_any_number(keyword: str, bound: Any, number: Any) -> None:
    if keyword == "multipleOf" and not bound > 0:
        return
    schema = {"type": "object", "properties": {"refund": {"properties": {"amount": {keyword: bound}}}}}
    instance = {"refund": {"amount": number, "memo": "x"}}
    assert (validate_instance(instance, schema) == []) == _exactly_valid(schema, instance)


def test_an_infinity_is_judged_by_jsonschema() -> None:
    """jsonschema-rs says an infinity is no number; its fast path only says valid, so jsonschema decides."""
    schema = {"type": "object", "properties": {"amount": {"type": "number", "format": "double"}}}
    fast = _fast_validator(schema)
    assert fast is not None and not fast.is_valid({"amount": math.inf})
    assert validate_instance({"amount": math.inf}, schema) == []
    assert [issue.path for issue in validate_instance({"amount": "x"}, schema)] == ["$.amount"]
