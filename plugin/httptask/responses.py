"""Check a response against its operation: the response the spec documents for its status, its content type,
and its body against that media type's schema. A mismatch is a list of issues with JSON paths (`$.status`,
`$.headers.content-type`, `$.body.refund.amount`), reported as a warning.

The check comes after the answer and never raises: a refund that was answered stays answered whatever the
check finds, so that no caller can turn a sent request into a retry or an error of unknown outcome. Only
under strict responses does a mismatch fail the task, and then as an answer (`ResponseInvalid`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import Issue
from .messages import HttpResponse
from .spec import MediaType, Operation, Response
from .validation import validate_body

__all__ = ["check_response", "documented_response", "is_json_media"]

T = TypeVar("T")

_RANGE = re.compile(r"[1-5]XX", re.IGNORECASE)
# Statuses whose answer has no body by definition, whatever the spec documents for them.
_NO_BODY = frozenset({204, 205, 304})


def check_response(op: Operation, response: HttpResponse) -> list[Issue]:
    """Every way `response` breaks what `op` documents, as issues; empty when it fits or the spec says
    nothing. Never raises: a check that cannot be made is itself an issue."""
    try:
        return _check(op, response)
    except Exception as exc:  # any failure of the check itself must leave the answer as it is
        return [Issue("$", f"could not be checked against the spec: {exc}")]


def documented_response(op: Operation, status: int) -> Response | None:
    """The response `op` documents for `status`: the status itself, else its range (`2XX`), else
    `default`; None when the operation documents none of them."""
    by_status = _by_status(op)
    code = str(status)
    return by_status.get(code) or by_status.get(f"{code[0]}XX") or by_status.get("DEFAULT")


def _by_status(op: Operation) -> dict[str, Response]:
    return _made_once(op, lambda: {response.status.upper(): response for response in op.responses})


# What is made of an operation or one of its responses for every answer of a run, made once: an operation's
# responses by status, a response's media types by content type. An entry holds its object, so the object's
# id is not reused while the entry lives.
_MADE: dict[int, tuple[object, Any]] = {}
_MADE_KEPT = 1024


def _made_once(source: object, make: Callable[[], T]) -> T:
    found = _MADE.get(id(source))
    if found is None or found[0] is not source:
        if len(_MADE) >= _MADE_KEPT:  # a long-lived editor may load many catalogs
            _MADE.clear()
        found = _MADE[id(source)] = (source, make())
    made: T = found[1]
    return made


def is_json_media(content_type: str) -> bool:
    """`application/json`, or a structured `+json` type such as `application/problem+json`."""
    kind = _bare(content_type)
    return kind == "application/json" or kind.endswith("+json")


def _check(op: Operation, response: HttpResponse) -> list[Issue]:
    if not op.responses:
        return []
    kind = response.content_type
    documented, media = _looked_up(op, response.status, kind)
    if documented is None:
        listed = ", ".join(r.status for r in op.responses)
        return [
            Issue(
                "$.status",
                f"{response.status} is not a status {op.id} documents (it documents {listed})",
                expected=[r.status for r in op.responses],
                actual=response.status,
            )
        ]
    if not documented.media_types or response.status in _NO_BODY or op.method == "HEAD":
        return []  # the spec says nothing of a body here, or there is none to check
    # A content type names a media type only when the header is there (`kind` is empty when it is not).
    if media is None or not response.content or (not kind and not response.header("content-type")):
        return _unexpected(op, documented, response, kind)
    if kind != "application/json" and not kind.endswith("+json"):
        return []  # only JSON bodies are read against a JSON Schema
    try:
        body = response.json()
    except ValueError as exc:
        return [Issue("$.body", f"is not valid JSON ({exc}), though it is sent as {kind}")]
    except RecursionError:
        return [Issue("$.body", "is nested too deeply to check")]
    return validate_body(media, body, numbers_exact=response.numbers_within_float)


# The response and media type documented for each (operation, status, content type) an answer came with: a
# run's answers share a few. An entry holds its operation, so its id is not reused while the entry lives.
_LOOKED_UP: dict[tuple[int, int, str], tuple[Operation, Response | None, MediaType | None]] = {}


def _looked_up(op: Operation, status: int, kind: str) -> tuple[Response | None, MediaType | None]:
    """What `op` documents for an answer of `status` with the content type `kind`: its response (see
    `documented_response`) and that response's media type for `kind`, None where it documents none."""
    key = (id(op), status, kind)
    found = _LOOKED_UP.get(key)
    if found is None or found[0] is not op:
        documented = documented_response(op, status)
        media = _media_type(documented, kind) if documented is not None else None
        if len(_LOOKED_UP) >= _MADE_KEPT:  # statuses and content types come from servers: bounded
            _LOOKED_UP.clear()
        found = _LOOKED_UP[key] = (op, documented, media)
    return found[1], found[2]


def _unexpected(op: Operation, documented: Response, response: HttpResponse, kind: str) -> list[Issue]:
    """Why `response` has no body of a media type `documented` documents: none, no content type, another."""
    documents = ", ".join(m.content_type for m in documented.media_types)
    where = f"the {documented.status} response of {op.id}"
    if not response.content:
        return [Issue("$.body", f"is empty, but {where} documents a body ({documents})", expected=documents)]
    if not response.header("content-type"):
        message = f"is missing; {where} documents {documents}"
        return [Issue("$.headers.content-type", message, expected=documents)]
    message = f"is {kind}, which {where} does not document (it documents {documents})"
    return [Issue("$.headers.content-type", message, expected=documents, actual=kind)]


def _media_type(documented: Response, kind: str) -> MediaType | None:
    """The media type of `documented` that describes `kind` (a bare content type): the most specific key wins
    (`text/plain`, then `text/*`, then `*/*`), as OpenAPI says."""
    by_key = _made_once(documented, lambda: {_bare(m.content_type): m for m in documented.media_types})
    return by_key.get(kind) or by_key.get(kind.split("/")[0] + "/*") or by_key.get("*/*")


def _bare(content_type: str) -> str:
    """A content type without its parameters, in lower case: `application/json`."""
    return content_type.split(";")[0].strip().lower()

