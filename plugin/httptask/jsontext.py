"""JSON text read fast with exactly the values the standard library reads: orjson where it gives the same,
`json` where it does not or cannot (integers beyond 64 bits, which orjson reads as floats; NaN and Infinity;
lone surrogates; a byte order mark; UTF-16 and UTF-32 bytes).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads", "orjson_exact"]

# An integer beyond 64 bits has at least 19 digits in a row (so may a string or a float that orjson reads
# well, which then goes to `json` for nothing worse than the time it takes). Every digit made a 0, such a run
# is a run of 0s: found in C, several times faster than a regular expression finds the digits.
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def orjson_exact(raw: bytes) -> bool:
    """Whether orjson, where it reads `raw` at all, reads it to the values `json` reads: no integer in it can
    be past 64 bits."""
    return _RUN not in raw.translate(_ZEROS)


def loads(data: str | bytes) -> Any:
    """`json.loads(data)`, raising what it raises (`ValueError`, `RecursionError`)."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    if orjson_exact(raw):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # `json` reads some texts orjson refuses, and says why in its own words
    return json.loads(data)
