"""A forEach task's drafts made by filling in only what each item gives. Where a task reads its items whole
and by plain keys (`{{ item.id }}`) into fields of its path, query or body, everything else (server,
credentials, headers, the other fields, their checks and encodings) is made once; each item's request is then
its values read, checked whole by jsonschema-rs, and the URL and body written. Whatever it is not sure of
gives None, and `TaskPlan.draft` makes that item the general way, which gives the same request or the error
to report (tests/test_item_drafts.py holds the two equal)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .encoding import encode_body, form_field, is_form
from .messages import RequestValues
from .requests import expand_path, path_issues, query_text
from .validation import within_float

__all__ = ["Draft", "ItemDrafter", "ItemField", "body_writer"]


class Draft(NamedTuple):
    """One request as a run's pre-send check made it (`TaskPlan.draft`), for the run to send without making
    it again: its idempotency key, when the run derives it, goes into `headers` at `key_at` (-1: `key` is the
    request's own, or it takes none). A tuple: one is made for every item, at half a dataclass's cost."""

    url: str
    headers: tuple[tuple[str, str], ...]
    content: bytes
    key: str | None
    key_at: int


class ItemField(NamedTuple):
    """A field whose value is read from the item at `keys` (`("id",)` for `{{ item.id }}`)."""

    keys: tuple[Any, ...]


Fields = tuple[tuple[Any, Any], ...]
"""A part's fields in the template's order: each with its value, or the `ItemField` it reads."""

# An item's field that is not there, or not a plain value: the general path renders it (and may refuse it).
_UNSURE: Any = object()
# Values a template gives back as they are: anything else is copied out of its view, or refused.
_PLAIN = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float})


class ItemDrafter:
    """The requests of one task whose only varying values are `ItemField`s of its path, query or body
    (`body_fields` None: the body does not vary, and is `body`, written as `content`; else `write` writes
    it); the rest as the general path made it once: the `server` variables and `headers` as validated, and
    `wire_headers` without the key the run derives (at `key_at`; -1: the operation takes none)."""

    def __init__(
        self,
        *,
        path_template: str,
        base_url: str,
        server: dict[str, str],
        headers: dict[str, str],
        path: Fields,
        query: Fields,
        auth_query: Mapping[str, str],
        has_body: bool,
        body: Any,
        content: bytes,
        body_fields: Fields | None,
        write: Callable[[dict[Any, Any]], bytes],
        valid: Callable[[Any], bool],
        wire_headers: tuple[tuple[str, str], ...],
        key_at: int,
    ) -> None:
        self._path_template, self._base_url = path_template, base_url.rstrip("/")
        self._server, self._headers = server, headers
        self._path, self._query, self._auth_query = path, query, auth_query
        self._has_body, self._body, self._content = has_body, body, content
        self._body_fields, self._write, self._valid = body_fields, write, valid
        self._wire_headers, self._key_at = wire_headers, key_at
        self._path_reads = tuple(name for name, value in path if type(value) is ItemField)
        # A path or query that does not vary is made once, and written once.
        self._fixed_path, self._fixed_query = dict(path), dict(query)
        self._query_text = None if _reads(query) else query_text(self._fixed_query, auth_query)

    def draft(self, item: Any) -> Draft | None:
        """`item`'s request, or None where the general path must make it."""
        numbers: list[Any] = []
        path = _filled(self._path, item, numbers) if self._path_reads else self._fixed_path
        query = self._fixed_query if self._query_text is not None else _filled(self._query, item, numbers)
        body = self._body if self._body_fields is None else _filled(self._body_fields, item, numbers)
        if path is None or query is None or body is None or (numbers and not within_float(numbers)):
            return None
        if self._path_reads and path_issues({name: path[name] for name in self._path_reads}):
            return None
        instance = {"server": self._server, "path": path, "query": query, "headers": self._headers}
        if self._has_body:
            instance["body"] = body
        try:
            if not self._valid(instance):
                return None
            url = self._base_url + expand_path(self._path_template, path)
            url += self._query_text if self._query_text is not None else query_text(query, self._auth_query)
            content = self._content if self._body_fields is None else self._write(body)
        except Exception:  # the general path says what is wrong, in its own words
            return None
        return Draft(url, self._wire_headers, content, None, self._key_at)


    def values(self, item: Any) -> RequestValues:
        """The values of the request `draft` made of `item`, each part a new dict as `build_values` gives."""
        path, query = _filled(self._path, item, []), _filled(self._query, item, [])
        body = self._body if self._body_fields is None else _filled(self._body_fields, item, [])
        assert path is not None and query is not None and body is not None
        return RequestValues(
            server=dict(self._server),
            path=path,
            query=query,
            headers=dict(self._headers),
            body=body,
            has_body=self._has_body,
        )


def _reads(fields: Fields) -> bool:
    return any(type(value) is ItemField for _, value in fields)


def _filled(fields: Fields, item: Any, numbers: list[Any]) -> dict[Any, Any] | None:
    """The fields with the item's values read into them (the numbers read also into `numbers`), or None
    where one is not a plain value found in dicts all the way down, as `{{ item.id }}` finds it."""
    filled = {}
    for name, value in fields:
        if type(value) is ItemField:
            value = _read(item, value.keys)
            if value is _UNSURE:
                return None
            if type(value) in _NUMBERS:
                numbers.append(value)
        filled[name] = value
    return filled


def _read(item: Any, keys: tuple[Any, ...]) -> Any:
    value = item
    for key in keys:
        if type(value) is not dict:
            return _UNSURE
        value = value.get(key, _UNSURE)
    return value if type(value) in _PLAIN else _UNSURE


def body_writer(content_type: str, form_style: str, fields: Fields) -> Callable[[dict[Any, Any]], bytes]:
    """How a body of `fields` is written, as `encode_body` writes it; a form's fields that do not vary are
    written here, once (`encode_form` writes a form field by field)."""
    if not is_form(content_type):
        return lambda body: encode_body(body, content_type, form_style=form_style)[1]
    written = [
        (name, None if type(value) is ItemField else form_field(name, value, form_style))
        for name, value in fields
    ]

    def write(body: dict[Any, Any]) -> bytes:
        texts = [form_field(name, body[name], form_style) if text is None else text for name, text in written]
        return "&".join(texts).encode("ascii")

    return write
