"""The records passed between request building, validation, sending and reporting.

`RequestValues` is the request as the spec sees it (before encoding), `HttpRequest` the bytes on the wire,
`HttpResponse` what came back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload
from urllib.parse import urlsplit

from . import jsontext
from .limits import MAX_DEPTH, LimitExceeded, check_depth

__all__ = ["HttpRequest", "HttpResponse", "RequestValues", "printable"]

T = TypeVar("T")


# Control characters a terminal acts on (escape sequences, a carriage return, a bell), but tab and newline.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` from a server with its control characters written as escapes (`\\x1b`): an answer must not
    move the cursor, rewrite the lines printed before it (a warning), retitle the window or set the
    clipboard of the terminal it is shown on."""
    return _CONTROLS.sub(lambda found: repr(found.group())[1:-1], text)


class _once(Generic[T]):
    """A value computed on its first read and kept on the instance, as `functools.cached_property` keeps it,
    without the lock that one takes on each first read on Python 3.11: an engine reads a few of them once per
    answer. Two threads reading one at once may both compute it; it is a pure function of the instance."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> _once[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object, owner: type | None = None) -> T | _once[T]:
        if instance is None:
            return self
        # Not a data descriptor: once the value is in the instance's `__dict__`, reads find it there.
        value = instance.__dict__[self._name] = self._compute(instance)
        return value


@dataclass(frozen=True)
class RequestValues:
    """Every value of a request, by where the spec puts it; header names are lower case."""

    server: dict[str, str] = field(default_factory=dict)
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"server": self.server, "path": self.path, "query": self.query,
                                "headers": self.headers}
        if self.has_body:
            data["body"] = self.body
        return data


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes = b""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes
    elapsed_ms: float
    url: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:  # read for every answer: a loop costs less than a generator
            if key.lower() == lowered:
                return value
        return None

    @_once
    def content_type(self) -> str:
        """The media type without its parameters, in lower case (`application/json`); empty when none."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @_once
    def text(self) -> str:
        """The content as UTF-8 text, bytes that are not UTF-8 replaced (not lost)."""
        return self.content.decode("utf-8", errors="replace")

    def body(self) -> Any:
        """JSON bodies parsed; anything else as text (bytes that are not UTF-8 are replaced, not lost), and so
        is JSON nested deeper than `limits.MAX_DEPTH`, which every step after this would walk recursively."""
        kind = self.content_type
        if kind != "application/json" and not kind.endswith("+json"):
            return self.text
        parsed, error, _ = self._parsed
        text = self.text
        # The bytes as `json` parsed them are this text when they are plain UTF-8: nothing replaced, no byte
        # order mark, no NUL that makes json read UTF-16 or UTF-32. Then one parse serves both.
        plain = (
            error is None
            and "\ufffd" not in text
            and not self.content.startswith(b"\xef\xbb\xbf")
            and b"\0" not in self.content[:4]
        )
        try:
            if not plain:
                parsed = json.loads(text) if text.strip() else None
            # Only a text with that many brackets can nest that deep: most bodies are not walked.
            if text.count("[") + text.count("{") > MAX_DEPTH:
                check_depth(parsed, "The response body")
        except (ValueError, RecursionError, LimitExceeded):
            return text
        return parsed

    def json(self) -> Any:
        """The content parsed as JSON (as `json.loads` reads bytes), parsed once however often it is asked
        for; `ValueError` or `RecursionError` when it is not JSON or nested too deeply for the parser."""
        parsed, error, _ = self._parsed
        if error is not None:
            raise error
        return parsed

    @property
    def numbers_within_float(self) -> bool:
        """Whether every number of `json()` surely lies within ±2**53 (`jsontext.loads_within_float`)."""
        return self._parsed[2]

    @_once
    def _parsed(self) -> tuple[Any, ValueError | RecursionError | None, bool]:
        try:
            value, exact = jsontext.loads_within_float(self.content)
        except (ValueError, RecursionError) as exc:
            return None, exc, False
        return value, None, exact
