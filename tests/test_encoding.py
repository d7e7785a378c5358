"""Tests for httptask.encoding: exact wire bytes for the seed APIs, and round trips."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httptask.encoding import (
    FORM_STYLES,
    decode_body,
    decode_form,
    encode_body,
    encode_form,
    encode_json,
)
from httptask.errors import UsageError

FORM = "application/x-www-form-urlencoded"

STRIPE_REPORT_REFUND = {
    "refunded": {"refunded_at": 1700000000},
    "amount": {"value": 1250, "currency": "usd"},
    "expand": ["payment_record", "latest_payment_attempt_record"],
    "processor_details": {"type": "custom", "custom": {"refund_reference": "re 42&co=1"}},
    "outcome": "refunded",
    "metadata": {"order_id": "6735", "reason": None},
}

CHARGEBEE_RECORD_REFUND = {
    "transaction": {
        "amount": 1000,
        "payment_method": "bank_transfer",
        "date": 1700000000,
        "reference_number": "chq 0042",
    },
    "memo": "Refund for order #6735",
}


def test_stripe_seed_body_in_brackets_style() -> None:
    headers, data = encode_form(STRIPE_REPORT_REFUND, "brackets")
    assert headers == {"Content-Type": FORM}
    assert data == (
        b"refunded[refunded_at]=1700000000"
        b"&amount[value]=1250&amount[currency]=usd"
        b"&expand[]=payment_record&expand[]=latest_payment_attempt_record"
        b"&processor_details[type]=custom"
        b"&processor_details[custom][refund_reference]=re+42%26co%3D1"
        b"&outcome=refunded"
        b"&metadata[order_id]=6735&metadata[reason]="
    )


def test_chargebee_seed_body_in_index_last_style() -> None:
    _, data = encode_form(CHARGEBEE_RECORD_REFUND, "index-last")
    assert data == (
        b"transaction[amount]=1000&transaction[payment_method]=bank_transfer"
        b"&transaction[date]=1700000000&transaction[reference_number]=chq+0042"
        b"&memo=Refund+for+order+%236735"
    )


def test_array_of_objects_in_brackets_style() -> None:
    body = {"items": [{"price": "price_1", "quantity": 1}, {"price": "price_2", "quantity": 2}]}
    _, data = encode_form(body, "brackets")
    assert data == (
        b"items[0][price]=price_1&items[0][quantity]=1&items[1][price]=price_2&items[1][quantity]=2"
    )


def test_arrays_in_index_last_style() -> None:
    body = {
        "line_items": [{"amount": 100, "description": "setup fee"}, {"amount": 250, "description": "x"}],
        "coupon_ids": ["SPRING", "LOYAL"],
    }
    _, data = encode_form(body, "index-last")
    assert data == (
        b"line_items[amount][0]=100&line_items[description][0]=setup+fee"
        b"&line_items[amount][1]=250&line_items[description][1]=x"
        b"&coupon_ids[0]=SPRING&coupon_ids[1]=LOYAL"
    )
    assert decode_form(data, "index-last") == {
        "line_items": [{"amount": "100", "description": "setup fee"}, {"amount": "250", "description": "x"}],
        "coupon_ids": ["SPRING", "LOYAL"],
    }


def test_deeper_nesting_continues_the_brackets() -> None:
    body = {"a": {"b": [{"c": {"d": True}}, {"c": {"d": False}}]}, "tags": [["x", "y"], ["z"]]}
    _, data = encode_form(body)
    assert data == b"a[b][0][c][d]=true&a[b][1][c][d]=false&tags[0][]=x&tags[0][]=y&tags[1][]=z"
    assert decode_form(data) == {
        "a": {"b": [{"c": {"d": "true"}}, {"c": {"d": "false"}}]},
        "tags": [["x", "y"], ["z"]],
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (None, ""),
        (-7, "-7"),
        (12.5, "12.5"),
        (1e-05, "0.00001"),
        (1.5e-7, "0.00000015"),
        (1e16, "10000000000000000"),
        (0.1, "0.1"),
        ("a b+c/é", "a+b%2Bc%2F%C3%A9"),
    ],
)
def test_scalars(value: Any, text: str) -> None:
    assert encode_form({"v": value})[1] == f"v={text}".encode()


def test_empty_containers_are_sent_as_empty_values() -> None:
    assert encode_form({"metadata": {}, "expand": []})[1] == b"metadata=&expand="


def test_decode_accepts_escaped_brackets_and_plus() -> None:
    data = b"refunded%5Brefunded_at%5D=1700000000&expand%5B%5D=a&expand%5B%5D=b+c&memo"
    assert decode_form(data) == {
        "refunded": {"refunded_at": "1700000000"},
        "expand": ["a", "b c"],
        "memo": "",
    }


def test_decode_keeps_order_and_sorts_indexes() -> None:
    assert decode_form("b=1&items[1][x]=2&items[0][x]=1&a=3") == {
        "b": "1",
        "items": [{"x": "1"}, {"x": "2"}],
        "a": "3",
    }


def test_decode_keeps_sparse_indexes_as_keys() -> None:
    assert decode_form("a[0]=x&a[2]=y&b[01]=z") == {"a": {"0": "x", "2": "y"}, "b": {"01": "z"}}


@pytest.mark.parametrize("key", ["a[b", "a]b", "a[b]c", "[a]", "a[[b]]"])
def test_malformed_key(key: str) -> None:
    with pytest.raises(UsageError) as caught:
        decode_form(f"{key}=1")
    assert str(caught.value) == (
        f"The form key {key!r} is malformed: it needs a name followed by balanced brackets, "
        "such as 'name[field]' or 'name[]'."
    )


def test_clashing_keys() -> None:
    with pytest.raises(UsageError) as caught:
        decode_form("a=1&a[b]=2")
    assert str(caught.value) == (
        "The form key 'a[b]' clashes with an earlier key for the same field; send each field once, "
        "as either a value, an object or a list."
    )


def test_empty_brackets_before_the_end() -> None:
    with pytest.raises(UsageError) as caught:
        decode_form("items[][price]=1")
    assert str(caught.value) == (
        "The form key 'items[][price]' has '[]' before its end; "
        "write an index instead, such as 'items[0][price]'."
    )


def test_unknown_form_style() -> None:
    with pytest.raises(UsageError) as caught:
        encode_form({"a": 1}, "php")
    assert str(caught.value) == "Unknown form style 'php'; use one of: brackets, index-last."
    with pytest.raises(UsageError):
        decode_form("a=1", "php")


def test_index_last_refuses_a_list_inside_an_object() -> None:
    with pytest.raises(UsageError) as caught:
        encode_form({"transaction": {"ids": [1, 2]}}, "index-last")
    assert str(caught.value) == (
        "The form field 'transaction.ids' is a list inside an object, which the index-last form style "
        "cannot express; move the list to the top level of the body or use the brackets style."
    )


def test_field_name_with_brackets_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        encode_form({"metadata": {"a[b]": "x"}})
    assert str(caught.value) == (
        "The form field name 'a[b]' under 'metadata' cannot be written in a form body, which reserves "
        "brackets for nesting; give the field a non-empty name without brackets."
    )


def test_unsupported_form_value() -> None:
    with pytest.raises(UsageError) as caught:
        encode_form({"amount": {"value": b"12"}})
    assert str(caught.value) == (
        "The form field 'amount.value' holds b'12' of type bytes, which a form body cannot carry; "
        "pass a string, number, boolean or null."
    )


def test_non_finite_float() -> None:
    with pytest.raises(UsageError) as caught:
        encode_form({"items": [{"x": float("nan")}]})
    assert str(caught.value) == "The form field 'items[0].x' is nan, which an API cannot read as a number."


def test_encode_json_is_compact_utf8() -> None:
    headers, data = encode_json({"RefundAmount": 12.5, "Description": "Återbetalning", "Settled": True})
    assert headers == {"Content-Type": "application/json"}
    assert data == '{"RefundAmount":12.5,"Description":"Återbetalning","Settled":true}'.encode()


def test_encode_json_refuses_nan() -> None:
    with pytest.raises(UsageError) as caught:
        encode_json({"a": float("inf")})
    assert str(caught.value) == (
        "The body cannot be written as JSON (Out of range float values are not JSON compliant); "
        "use only strings, numbers, booleans, null, lists and objects."
    )


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("application/json", {"a": 1}, b'{"a":1}'),
        ("application/vnd.api+json; charset=utf-8", [1], b"[1]"),
        ("application/x-www-form-urlencoded", {"a": [1]}, b"a[]=1"),
        ("application/x-www-form-urlencoded", "a=1&b=2", b"a=1&b=2"),
        ("text/plain", "héllo", "héllo".encode()),
        ("application/xml", "<a/>", b"<a/>"),
        ("application/octet-stream", b"\x00\x01", b"\x00\x01"),
    ],
)
def test_encode_body_dispatch(content_type: str, body: Any, data: bytes) -> None:
    assert encode_body(body, content_type) == ({"Content-Type": content_type}, data)


def test_encode_body_uses_the_form_style() -> None:
    assert encode_body({"a": [1]}, FORM, form_style="index-last")[1] == b"a[0]=1"


def test_encode_body_without_a_body() -> None:
    assert encode_body(None, "application/json") == ({}, b"")


def test_encode_body_unknown_structured_body() -> None:
    with pytest.raises(UsageError) as caught:
        encode_body({"a": 1}, "application/xml")
    assert str(caught.value) == (
        "A dict body cannot be sent as 'application/xml'; pass it as text or bytes, "
        "or use application/json or application/x-www-form-urlencoded."
    )


@pytest.mark.parametrize(
    ("content_type", "data", "body"),
    [
        ("application/json; charset=utf-8", b'{"id":"re_1"}', {"id": "re_1"}),
        ("application/problem+json", b"", None),
        (FORM, b"a[b]=1", {"a": {"b": "1"}}),
        ("text/plain; charset=latin-1", "é".encode("latin-1"), "é"),
        ("image/png", b"\x89PNG", b"\x89PNG"),
    ],
)
def test_decode_body(content_type: str, data: bytes, body: Any) -> None:
    assert decode_body(data, content_type) == body


def test_decode_body_bad_json() -> None:
    with pytest.raises(UsageError) as caught:
        decode_body(b"{oops", "application/json")
    assert str(caught.value) == (
        "The body is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)) although its content type is 'application/json'."
    )


# Round trips. Keys that look like list indexes are left out: the wire cannot tell {"0": x} from [x].
_INDEX = re.compile(r"0|[1-9][0-9]*")
keys = st.text(st.characters(codec="utf-8", exclude_characters="[]"), min_size=1, max_size=8).filter(
    lambda key: not _INDEX.fullmatch(key)
) | st.sampled_from(["a b", "x&y=z", "ünï", "+%"])
leaves = st.text(st.characters(codec="utf-8")) | st.integers() | st.booleans()


def objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.dictionaries(keys, children, min_size=1, max_size=4)


any_nesting = st.recursive(
    leaves, lambda children: objects(children) | st.lists(children, min_size=1, max_size=4), max_leaves=20
)
# The index-last style holds lists only under top-level fields, as Chargebee's API does.
no_lists = st.recursive(leaves, objects, max_leaves=10)
top_level_lists = st.recursive(
    no_lists, lambda children: st.lists(children, min_size=1, max_size=3), max_leaves=12
)


def stringify(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: stringify(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stringify(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@settings(max_examples=150)
@given(objects(any_nesting))
def test_brackets_round_trip(body: dict[str, Any]) -> None:
    assert decode_form(encode_form(body, "brackets")[1], "brackets") == stringify(body)


@settings(max_examples=150)
@given(objects(top_level_lists))
def test_index_last_round_trip(body: dict[str, Any]) -> None:
    assert decode_form(encode_form(body, "index-last")[1], "index-last") == stringify(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trip(body: Any) -> None:
    headers, data = encode_json(body)
    assert decode_body(data, headers["Content-Type"]) == body


def test_form_styles() -> None:
    assert FORM_STYLES == ("brackets", "index-last")
