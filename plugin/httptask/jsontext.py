"""JSON text read fast with exactly the values the standard library reads: orjson where it gives the same,
`json` where it does not or cannot (integers beyond 64 bits, which orjson reads as floats; NaN and Infinity;
lone surrogates; a byte order mark; UTF-16 and UTF-32 bytes).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads", "loads_within_float", "orjson_exact"]

# An integer beyond 64 bits has at least 19 digits in a row (so may a string or a float that orjson reads
# well, which then goes to `json` for nothing worse than the time it takes). Every digit made a 0, such a run
# is a run of 0s: found in C, several times faster than a regular expression finds the digits.
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def orjson_exact(raw: bytes) -> bool:
    """Whether orjson, where it reads `raw` at all, reads it to the values `json` reads: no integer in it can
    be past 64 bits."""
    return _RUN not in raw.translate(_ZEROS)


# A number of at most 15 digits before any exponent lies within ±10**15, inside ±2**53 where a float is exact.
_SIXTEEN = b"0" * 16


def loads(data: str | bytes) -> Any:
    """`json.loads(data)`, raising what it raises (`ValueError`, `RecursionError`)."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    if orjson_exact(raw):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # `json` reads some texts orjson refuses, and says why in its own words
    return json.loads(data)


def loads_within_float(raw: bytes) -> tuple[Any, bool]:
    """`loads(raw)`, and whether every number read surely lies strictly within ±2**53, where a float is exact
    (jsonschema-rs compares numbers as floats): only where orjson read it (so no NaN, Infinity, UTF-16 or
    UTF-32) and it has no run of 16 digits and no exponent; a string holding such digits makes it False too.
    One pass of `raw` serves both."""
    zeros = raw.translate(_ZEROS)
    if _RUN not in zeros:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # as in `loads`
        else:
            return value, not (_SIXTEEN in zeros or b"0e" in zeros or b"0E" in zeros)
    return json.loads(raw), False
