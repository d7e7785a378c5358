"""jsontext: JSON read fast gives exactly what the standard library gives, values and errors alike, from text
and from bytes: integers beyond 64 bits stay integers (orjson alone reads them as floats), NaN, lone
surrogates, byte order marks and UTF-16 go the standard library's way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httptask import jsontext


def _outcome(data: str | bytes, loads: Any) -> tuple[str, str]:
    """What reading `data` gives, compared exactly: the value's repr with every type in it, or the error."""
    try:
        value = loads(data)
    except RecursionError:
        return "error", "RecursionError"
    except ValueError as exc:
        return "error", type(exc).__name__ + ": " + str(exc)
    return "value", _typed(value)


def _typed(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_typed(k)}: {_typed(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_typed(item) for item in value) + "]"
    if isinstance(value, float) and math.isnan(value):
        return "float nan"
    return f"{type(value).__name__} {value!r}"


def _same_as_json(data: str | bytes) -> None:
    assert _outcome(data, jsontext.loads) == _outcome(data, json.loads)


CASES = [
    b'{"amount": 123456789012345678901234567890}',  # orjson alone: 1.2345678901234568e+29
    b"-9223372036854775809",
    b"18446744073709551616",
    b"9223372036854775807",
    b"1234567890123456789",
    b'{"a": 1, "b": 2, "a": 3}',
    b"1E400",
    b"NaN",
    b"[-Infinity]",
    b'"\\ud800"',
    b'"\\udfff\\ud800"',
    b'{"\\ud800": 1}',
    b'"\xed\xa0\x80"',  # an encoded surrogate, which json's reading of bytes lets pass
    b'\xef\xbb\xbf{"id": "re_1"}',
    '{"id": "re_1"}'.encode("utf-16"),
    '{"id": "re_1"}'.encode("utf-32"),
    b'{"id": "re_\xff"}',
    b"[" * 5000 + b"]" * 5000,
    b"[" * 300 + b"]" * 300,
    b"",
    b" ",
    b"01",
    b"[1,]",
    b'{"a":1}x',
    b'"\t"',
    b"-0",
    b"-0.0",
    b"5e-324",
    b'{"refund": {"amount": 100, "currency": "EUR", "lines": [1.5, true, null]}}',
]


@pytest.mark.parametrize("data", CASES)
def test_these_texts_and_bytes_read_as_the_standard_library_reads_them(data: bytes) -> None:
    _same_as_json(data)
    try:
        text = data.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError:
        return
    _same_as_json(text)
    _same_as_json("\ufeff" + text)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(st.characters(codec=None), max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES, st.booleans())
def test_any_value_as_json_writes_it_reads_back_the_same(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    _same_as_json(text)
    _same_as_json(text.encode("utf-8", errors="surrogatepass"))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_read_alike_whether_json_or_not(data: bytes) -> None:
    _same_as_json(data)


def _numbers(value: Any) -> Iterator[int | float]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def _read_with_floats_noted(data: bytes) -> None:
    """`loads_within_float` reads `data` as `json` does, and says its numbers lie within ±2**53 only when
    every one it read does."""
    _same_as_json(data)
    assert _outcome(data, lambda raw: jsontext.loads_within_float(raw)[0]) == _outcome(data, json.loads)
    try:
        value, within = jsontext.loads_within_float(data)
    except (ValueError, RecursionError):
        return
    if within:
        assert all(-(2**53) < number < 2**53 for number in _numbers(value)), value


@pytest.mark.parametrize(
    "data",
    [
        *CASES,
        b"9007199254740992",
        b"-9007199254740993",
        b"900719925474099.5",
        b"999999999999999",
        b"[1e3, 1.5E+300, 2e-1]",
        b'{"total": 1e30}',
        b'{"n": 123456789012345.6789}',
        '{"n": 12345678901234567890}'.encode("utf-16"),
        '{"n": 1e300}'.encode("utf-32-le"),
        b'{"note": "9007199254740993", "e": "0e0"}',
        b"[NaN, Infinity, -Infinity]",
    ],
)
def test_numbers_are_within_float_only_when_every_number_read_is(data: bytes) -> None:
    _read_with_floats_noted(data)


def test_the_numbers_of_a_usual_answer_are_within_float() -> None:
    answer = b'{"invoice": {"id": "inv_1", "total": 12345, "rate": 0.125, "at": 1764547200}, "x": [-1, 2.5]}'
    assert jsontext.loads_within_float(answer)[1]
    assert not jsontext.loads_within_float(b'{"total": 1E30}')[1]
    assert not jsontext.loads_within_float(b'{"total": 1234567890123456}')[1]


@settings(max_examples=400, deadline=None)
@given(_VALUES, st.booleans())
def test_numbers_are_within_float_only_when_every_number_written_is(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    _read_with_floats_noted(text.encode("utf-8", errors="surrogatepass"))
