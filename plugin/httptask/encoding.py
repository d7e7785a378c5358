"""Pure encoders and decoders for request bodies: the one place where a body becomes bytes.

JSON is compact UTF-8. Form bodies nest with brackets in one of two styles: ``brackets`` (Stripe) and
``index-last`` (Chargebee). Brackets in form keys are written unescaped, as both APIs document them; the
decoder also accepts them percent-encoded (``%5B``/``%5D``), as ``urllib.parse.urlencode`` writes them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from httptask.errors import UsageError

__all__ = [
    "FORM_STYLES",
    "decode_body",
    "decode_form",
    "encode_body",
    "encode_form",
    "encode_json",
    "form_field",
    "is_form",
]

FORM_STYLES = ("brackets", "index-last")

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"

# Only canonical decimal numbers are list indexes, so a key such as "01" stays a field name.
_INDEX = re.compile(r"0|[1-9][0-9]*")
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def encode_json(body: Any) -> tuple[dict[str, str], bytes]:
    """Encode ``body`` as compact UTF-8 JSON, with its content-type header."""
    try:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"The body cannot be written as JSON ({exc}); use only strings, numbers, booleans, null, "
            "lists and objects."
        ) from exc
    return {"Content-Type": JSON_TYPE}, data


def encode_form(body: Mapping[str, Any], style: str = "brackets") -> tuple[dict[str, str], bytes]:
    """Encode a mapping as ``application/x-www-form-urlencoded``, nesting in the given style.

    ``None`` and empty objects or lists are sent as an empty value, which Stripe reads as "unset".
    """
    _check_style(style)
    if not isinstance(body, Mapping):
        raise UsageError(
            f"A form body must be an object of field names and values, not {type(body).__name__} "
            f"{_short(body)}."
        )
    data = "&".join([form_field(key, value, style) for key, value in body.items()])
    return {"Content-Type": FORM_TYPE}, data.encode("ascii")


def form_field(key: Any, value: Any, style: str = "brackets") -> str:
    """One field of a form body as `encode_form` writes it, in one of `FORM_STYLES`: `key=value`, or as many
    pairs as a nested value needs. A body is its fields joined by `&` (each field gives at least one pair)."""
    name = _field_name(key, "")
    kind = type(value)
    if kind is str or kind is int:  # the usual field, one pair in either style, written at once
        return f"{_escape(name)}={_escape(value if kind is str else str(value))}"
    pairs: list[tuple[str, str]] = []
    if style == "brackets":
        _flatten_brackets(_escape(name), name, value, pairs)
    else:
        _flatten_index_last(_escape(name), "", name, value, pairs)
    return "&".join([f"{written}={_escape(text)}" for written, text in pairs])


def is_form(content_type: str) -> bool:
    """Whether `encode_body` writes a mapping as a form for `content_type`."""
    return _media_type(content_type) == FORM_TYPE


def decode_form(data: bytes | str, style: str = "brackets") -> dict[str, Any]:
    """Read a form body back into nested dicts and lists of strings: the inverse of `encode_form`.

    Keys ending in ``[]`` append to a list; an object whose keys are exactly ``0`` to ``n-1`` becomes a
    list in index order (so a mapping with those keys reads back as a list: the wire cannot tell them apart).
    """
    _check_style(style)
    text = _text(data)
    root: dict[str, Any] = {}
    for piece in text.split("&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = _unquote(raw_key)
        segments = _split_key(key)
        if style == "index-last":
            segments = _index_last_path(segments)
        _insert(root, segments, _unquote(raw_value), key)
    return {name: _listify(value) for name, value in root.items()}


def encode_body(
    body: Any, content_type: str, *, form_style: str = "brackets"
) -> tuple[dict[str, str], bytes]:
    """Encode ``body`` for ``content_type``; bytes are sent as they are and ``None`` means no body."""
    if body is None:
        return {}, b""
    headers = {"Content-Type": content_type}
    media = _media_type(content_type)
    if isinstance(body, bytes):
        return headers, body
    if _is_json(media):
        return headers, encode_json(body)[1]
    if media == FORM_TYPE:
        if isinstance(body, str):
            return headers, body.encode("utf-8")
        return headers, encode_form(body, form_style)[1]
    if isinstance(body, str):
        return headers, body.encode("utf-8")
    raise UsageError(
        f"A {type(body).__name__} body cannot be sent as {content_type!r}; pass it as text or bytes, "
        f"or use {JSON_TYPE} or {FORM_TYPE}."
    )


def decode_body(data: bytes, content_type: str, *, form_style: str = "brackets") -> Any:
    """Decode a body by its content type: JSON and forms to data, ``text/*`` to str, the rest as bytes."""
    media = _media_type(content_type)
    if _is_json(media):
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise UsageError(
                f"The body is not valid JSON ({exc}) although its content type is {content_type!r}."
            ) from exc
    if media == FORM_TYPE:
        return decode_form(data, form_style)
    if media.startswith("text/"):
        return data.decode(_charset(content_type), errors="replace")
    return data


def _check_style(style: str) -> None:
    if style not in FORM_STYLES:
        raise UsageError(f"Unknown form style {style!r}; use one of: {', '.join(FORM_STYLES)}.")


def _flatten_brackets(key: str, where: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    """The fields of `value` at the form key `key` (`line_items[0][price]`); `where` names it in errors."""
    if type(value) in _SCALARS:  # the usual field, told apart without the slower abstract checks
        pairs.append((key, _scalar(value, where)))
    elif (type(value) is dict or isinstance(value, Mapping)) and value:
        for child, item in value.items():
            name = _field_name(child, where)
            _flatten_brackets(f"{key}[{_escape(name)}]", f"{where}.{name}", item, pairs)
    elif isinstance(value, list | tuple) and value:
        if all(_is_scalar(item) for item in value):
            pairs.extend((f"{key}[]", _scalar(item, f"{where}[{i}]")) for i, item in enumerate(value))
        else:
            for i, item in enumerate(value):
                _flatten_brackets(f"{key}[{i}]", f"{where}[{i}]", item, pairs)
    else:
        pairs.append((key, _scalar(value, where)))


def _flatten_index_last(
    names: str, indexes: str, where: str, value: Any, pairs: list[tuple[str, str]]
) -> None:
    """As `_flatten_brackets`, with the list indexes (`[0]`) after the field names: `names` + `indexes`."""
    if type(value) in _SCALARS:
        pairs.append((names + indexes, _scalar(value, where)))
    elif (type(value) is dict or isinstance(value, Mapping)) and value:
        for child, item in value.items():
            name = _field_name(child, where)
            _flatten_index_last(f"{names}[{_escape(name)}]", indexes, f"{where}.{name}", item, pairs)
    elif isinstance(value, list | tuple) and value:
        # Indexes all go last, so only a top-level field's lists can be told apart when read back.
        if names.endswith("]"):
            raise UsageError(
                f"The form field {where!r} is a list inside an object, which the index-last form style "
                "cannot express; move the list to the top level of the body or use the brackets style."
            )
        for i, item in enumerate(value):
            _flatten_index_last(names, f"{indexes}[{i}]", f"{where}[{i}]", item, pairs)
    else:
        pairs.append((names + indexes, _scalar(value, where)))


def _field_name(key: Any, where: str) -> str:
    if type(key) is str and key and "[" not in key and "]" not in key:
        return key  # the usual name, told apart at once
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise UsageError(
            f"The form field name {key!r} under {where or 'the body'!r} is not a string; "
            "form field names must be text."
        )
    name = str(key)
    if not name or "[" in name or "]" in name:
        raise UsageError(
            f"The form field name {name!r} under {where or 'the body'!r} cannot be written in a form body, "
            "which reserves brackets for nesting; give the field a non-empty name without brackets."
        )
    return name


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _scalar(value: Any, where: str) -> str:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if value is None or (isinstance(value, Mapping | list | tuple) and not value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"The form field {where!r} is {value!r}, which an API cannot read as a number.")
        return _decimal(value)
    if isinstance(value, str):
        return value
    raise UsageError(
        f"The form field {where!r} holds {_short(value)} of type {type(value).__name__}, which a form "
        "body cannot carry; pass a string, number, boolean or null."
    )


def _decimal(value: float) -> str:
    # repr is the shortest form that reads back the same; APIs want plain decimals, not 1e-05.
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


def _escape(text: str) -> str:
    """A form field's name or value percent-encoded; short ones are remembered, as the items of a fan-out
    repeat most of them."""
    return _escape_short(text) if len(text) <= 256 else quote_plus(text, safe="")


@functools.lru_cache(maxsize=4096)
def _escape_short(text: str) -> str:
    return quote_plus(text, safe="")


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"The form body is not UTF-8 text (bad byte at offset {exc.start}).") from exc


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise UsageError(f"The form text {text!r} does not percent-decode to UTF-8.") from exc


def _split_key(key: str) -> list[str]:
    match = _KEY.fullmatch(key)
    if match is None:
        raise UsageError(
            f"The form key {key!r} is malformed: it needs a name followed by balanced brackets, "
            "such as 'name[field]' or 'name[]'."
        )
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _index_last_path(segments: list[str]) -> list[str]:
    # line_items[amount][0] is line_items[0][amount]: trailing indexes belong to the top-level name.
    end = len(segments)
    while end > 1 and _INDEX.fullmatch(segments[end - 1]):
        end -= 1
    return [segments[0], *segments[end:], *segments[1:end]]


def _insert(root: dict[str, Any], segments: list[str], value: str, key: str) -> None:
    appends = segments[-1] == ""
    path = segments[:-1] if appends else segments
    if "" in path:
        raise UsageError(
            f"The form key {key!r} has '[]' before its end; "
            "write an index instead, such as 'items[0][price]'."
        )
    node = root
    for segment in path[:-1]:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise _clash(key)
        node = child
    last = path[-1]
    existing = node.get(last)
    if appends and existing is None:
        node[last] = [value]
    elif appends and isinstance(existing, list):
        existing.append(value)
    elif existing is None:
        node[last] = value
    else:
        raise _clash(key)


def _clash(key: str) -> UsageError:
    return UsageError(
        f"The form key {key!r} clashes with an earlier key for the same field; send each field once, "
        "as either a value, an object or a list."
    )


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if all(_INDEX.fullmatch(key) for key in items) and {int(key) for key in items} == set(range(len(items))):
        return [items[str(i)] for i in range(len(items))]
    return items


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == JSON_TYPE or media.endswith("+json")


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
