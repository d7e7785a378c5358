"""A response as the editor shows it: whole when its body is small, else the start of its text, redacted.

A page cannot usefully show 10 MB, and every character the editor answers passes its redactor once more on
the event loop: what it shows of one answer is capped, so that cost stays small whatever a server sends.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .execute import response_record
from .messages import HttpResponse
from .redaction import Redactor

__all__ = ["SHOWN_CHARS", "shown_response"]

SHOWN_CHARS = 1024 * 1024
# A character is at most four bytes of UTF-8.
_BYTES_PER_CHAR = 4


def shown_response(response: HttpResponse, redactor: Redactor, *, whole: bool = True) -> dict[str, Any]:
    """`execute.response_record` of `response` when its body has at most `SHOWN_CHARS` bytes and `whole`;
    otherwise the same record with the first `SHOWN_CHARS` characters of its text as the body, and
    `body_bytes` and `body_truncated` saying how much there was. Costs `SHOWN_CHARS`, not the body's size."""
    size = len(response.content)
    if whole and size <= SHOWN_CHARS:
        return response_record(response, redactor)
    # The start is redacted as part of the text that follows it, so a secret cut at its end is masked whole.
    wanted = SHOWN_CHARS + redactor.longest
    window = response.content[: wanted * _BYTES_PER_CHAR].decode("utf-8", errors="replace")
    text = window[:wanted]
    start, rest = redactor.redact_prefix(text, SHOWN_CHARS)
    record = response_record(dataclasses.replace(response, content=b""), redactor)
    record["body"] = start
    record["body_bytes"] = size
    record["body_truncated"] = bool(rest) or len(window) > len(text) or size > wanted * _BYTES_PER_CHAR
    return record
