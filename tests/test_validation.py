"""Validation as data: every error at once, each with its JSON path, expected and actual value."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from httptask.errors import Issue
from httptask.validation import validate_instance

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email", "day", "code"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "day": {"type": "string", "format": "date"},
        "code": {"type": "string", "minLength": 3, "maxLength": 5},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "at": {"type": "integer", "format": "unix-time"},
    },
}


def test_every_problem_is_reported_at_once_with_path_expected_and_actual() -> None:
    issues = validate_instance(
        {"email": "jane@", "day": "2024-02-30", "code": "ab", "count": 11, "at": -1, "extra": 1}, SCHEMA
    )
    assert [i.to_dict() for i in issues] == [
        {
            "path": "$.at",
            "message": "must be a valid unix-time, not -1",
            "expected": "unix-time",
            "actual": -1,
        },
        {"path": "$.code", "message": "must have at least 3 characters, not 2", "expected": 3, "actual": 2},
        {"path": "$.count", "message": "must be at most 10, not 11", "expected": 10, "actual": 11},
        {
            "path": "$.day",
            "message": "must be a valid date, not '2024-02-30'",
            "expected": "date",
            "actual": "2024-02-30",
        },
        {
            "path": "$.email",
            "message": "must be a valid email, not 'jane@'",
            "expected": "email",
            "actual": "jane@",
        },
        {
            "path": "$.extra",
            "message": "is not a field of this object (allowed: at, code, count, day, email)",
            "actual": "extra",
        },
    ]


def test_missing_required_fields_are_each_named() -> None:
    issues = validate_instance({}, SCHEMA, root="$.body")
    assert [str(i) for i in issues] == [
        "$.body.code: is required but missing",
        "$.body.day: is required but missing",
        "$.body.email: is required but missing",
    ]


def test_each_missing_property_is_named_from_the_schema_not_from_the_message() -> None:
    schema = {
        "type": "object",
        "properties": {"inner": {"type": "object", "required": ["x", "y"]}},
        "required": ["a", "b", "c", "inner"],
        "allOf": [{"required": ["c", "d"]}],
    }
    issues = validate_instance({"b": 1, "inner": {"y": 2}}, schema)
    assert [(i.path, i.message) for i in issues] == [
        ("$.a", "is required but missing"),
        ("$.c", "is required but missing"),
        ("$.c", "is required but missing"),
        ("$.d", "is required but missing"),
        ("$.inner.x", "is required but missing"),
    ]


def test_a_huge_value_or_thousands_of_choices_are_shortened_in_the_message_and_kept_whole_as_data() -> None:
    """A server variable with 3,000 allowed values made a 66 kB error; a 1 MB string would be quoted whole."""
    choices = [str(n) for n in range(3000)]
    schema = {
        "properties": {"region": {"enum": choices}, "memo": {"type": "string", "pattern": "^[a-z]*$"}},
    }
    memo = "X" * 1_000_000
    pattern, region = validate_instance({"region": "x", "memo": memo}, schema)  # in path order
    listed = ", ".join(repr(c) for c in choices[:20])
    assert region.message == f"must be one of {listed}... (3,000 in all), not 'x'"
    assert region.expected == choices
    # The bad value is named by its size, never cut: a cut could leave part of a secret the redactor misses.
    assert pattern.message == "must match the pattern ^[a-z]*$, not a text of 1,000,000 characters"
    assert pattern.actual == memo


# A pattern Python's `re` backtracks on for longer than the universe lasts, given 60 `a`s and a `!`.
BACKTRACKING = "^(a|aa)+$"
STOPPED = (
    f"cannot be checked against the pattern {BACKTRACKING} within 0.25 s: the pattern backtracks without "
    "end on this value; simplify the pattern in the spec"
)


def test_a_pattern_that_backtracks_without_end_is_stopped_and_named() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": BACKTRACKING}}}
    value = "a" * 60 + "!"
    assert [i.to_dict() for i in validate_instance({"name": value}, schema)] == [
        {"path": "$.name", "message": STOPPED, "expected": BACKTRACKING, "actual": value}
    ]
    assert validate_instance({"name": "aaa"}, schema) == []
    [mismatch] = validate_instance({"name": "ab"}, schema)
    assert mismatch.message == "must match the pattern ^(a|aa)+$, not 'ab'"


def test_a_property_name_checked_against_a_backtracking_pattern_is_stopped() -> None:
    key = "a" * 60 + "!"
    # jsonschema-rs matches property names in linear time: a key that matches no pattern is valid at once.
    loose = {"type": "object", "patternProperties": {BACKTRACKING: {"type": "integer"}}}
    assert validate_instance({key: 1}, loose) == []
    # Refused by jsonschema-rs, so jsonschema says why, with the pattern stopped instead of backtracking.
    closed = {"type": "object", "patternProperties": {BACKTRACKING: {}}, "additionalProperties": False}
    assert [i.to_dict() for i in validate_instance({key: 1}, closed)] == [
        {"path": "$", "message": f"has a property name that {STOPPED}"}
    ]
    strict = {"type": "object", "patternProperties": {"^x-": {}}, "additionalProperties": False}
    assert validate_instance({"x-a": 1}, strict) == []
    assert [i.path for i in validate_instance({"y": 1}, strict)] == ["$.y"]


def _validated_catalog(tmp_path: Path) -> list[weakref.ref[object]]:
    """A catalog of the bundled specs, loaded as a fresh document is, with a request and a response of one
    operation validated (their validators kept); weak references to what they were compiled for."""
    from browser_setup import bundled_catalog
    from httptask.messages import RequestValues
    from httptask.validation import _VALIDATORS, validate_body, validate_values

    op = bundled_catalog(tmp_path).operation("chargebee.record_refund")
    validate_values(op, RequestValues(path={"invoice-id": "inv_1"}, body={"memo": "m"}))
    # Its responses read directly: `responses` keeps the last thousand operations it checked answers of.
    [media] = next(response for response in op.responses if response.status == "200").media_types
    validate_body(media, {"invoice": {}})
    assert _VALIDATORS.compiled.get(op) is not None and _VALIDATORS.bodies.get(media) is not None
    return [weakref.ref(op), weakref.ref(media)]


def test_a_document_loaded_again_replaces_its_validators_instead_of_keeping_the_old_ones(
    tmp_path: Path,
) -> None:
    from httptask.validation import _VALIDATORS

    for number in range(3):
        refs = _validated_catalog(tmp_path / str(number))
        gc.collect()
        # The old document's operation and its response are gone, and no validator is left for them.
        assert [ref() for ref in refs] == [None, None]
        for cache in (_VALIDATORS.compiled, _VALIDATORS.bodies):
            assert [entry for entry in cache._entries.values() if entry[0]() is None] == []


def test_validators_kept_alive_by_their_operations_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from browser_setup import bundled_catalog
    from httptask.messages import RequestValues
    from httptask.validation import _VALIDATORS, validate_values

    monkeypatch.setattr("httptask.validation._KEPT", 3)
    catalog = bundled_catalog(tmp_path)
    ops = [catalog.operation(op_id) for op_id in catalog.ids()[:5]]
    for op in ops:
        validate_values(op, RequestValues())
    assert len(_VALIDATORS.compiled) == 3
    assert validate_values(ops[0], RequestValues()) == validate_values(ops[0], RequestValues())


def test_an_infinity_is_no_multiple_of_anything_and_breaks_nothing() -> None:
    # JSON has none, but YAML's `.inf` reads as one; jsonschema's own check raised OverflowError on it.
    schema = {"properties": {"amount": {"multipleOf": 0.01}}}
    assert validate_instance({"amount": float("inf")}, schema) == [
        Issue("$.amount", "inf is not a multiple of 0.01", expected=0.01, actual=float("inf"))
    ]


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (1e10, "int32", "10000000000.0"),
        (2.0**31, "int32", "2147483648.0"),
        (1e300, "int64", "1e+300"),
        (2.0**63, "int64", "9.223372036854776e+18"),
    ],
)
def test_an_integral_float_out_of_its_format_s_range_is_an_issue(value: float, fmt: str, shown: str) -> None:
    """JSON Schema counts 1e300 as an integer, so only the format's range stops it being sent as one."""
    issues = validate_instance({"n": value}, {"properties": {"n": {"type": "integer", "format": fmt}}})
    assert [str(issue) for issue in issues] == [f"$.n: must be a valid {fmt}, not {shown}"]


@pytest.mark.parametrize(("value", "fmt"), [(100.0, "int32"), (-(2.0**31), "int32"), (-(2.0**63), "int64")])
def test_an_integral_float_within_its_format_s_range_is_valid(value: float, fmt: str) -> None:
    assert validate_instance({"n": value}, {"properties": {"n": {"type": "integer", "format": fmt}}}) == []
