"""Realistic sample values for JSON Schemas and sample responses for operations: pure functions, no I/O.

The sandbox answers with these, and they prefer what the spec's authors wrote (examples, defaults, enums)
over anything made up.
"""

from __future__ import annotations

from typing import Any

from .spec import MediaType, Operation

__all__ = ["sample_response", "sample_value"]

# Below this depth objects get only their required properties, and at the hard limit nothing at all:
# a schema that nests itself (directly or through a resolved reference) still yields a finite value.
_FULL_DEPTH = 6
_MAX_DEPTH = 12

_STRING_FORMATS = {
    "date": "2024-01-31",
    "date-time": "2024-01-31T12:00:00Z",
    "time": "12:00:00",
    "email": "jane.doe@example.com",
    "uuid": "3f9c2a71-5b0e-4d8a-9e61-2c7d4b8f1a05",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "currency": "usd",
    "unix-time": "1706702400",
    "byte": "ZXhhbXBsZQ==",
}
_UNIX_TIME = 1706702400  # 2024-01-31T12:00:00Z, the same instant as the date-time sample


def sample_value(schema: Any) -> Any:
    """A realistic value for `schema`: its first example, else its default, else its first enum value,
    else one built from its type and format (objects with their properties, arrays with one item)."""
    return _sample(schema, 0, frozenset())


def sample_response(op: Operation) -> tuple[int, str, Any]:
    """Status, content type and body of the first 2xx response of `op`; no content gives ('', None).

    A media type's own `example` wins over a value sampled from its schema. An operation that declares no
    2xx response answers 200 with no content.
    """
    for response in op.responses:
        status = _success_status(response.status)
        if status is None:
            continue
        media = _preferred(response.media_types)
        if status == 204 or media is None:
            return status, "", None
        body = media.example if media.example is not None else sample_value(media.schema)
        return status, media.content_type, body
    return 200, "", None


def _success_status(status: str) -> int | None:
    if status.upper() == "2XX":
        return 200
    if status.isdigit() and 200 <= int(status) < 300:
        return int(status)
    return None


def _preferred(media_types: tuple[MediaType, ...]) -> MediaType | None:
    """JSON when the response offers it, since that is what clients of these APIs read; else the first."""
    for media in media_types:
        kind = media.content_type.split(";")[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            return media
    return media_types[0] if media_types else None


def _sample(schema: Any, depth: int, stack: frozenset[int]) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH or id(schema) in stack:
        return None
    stack = stack | {id(schema)}
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            rest = {k: v for k, v in schema.items() if k != key}
            return _sample(_merge([rest, options[0]]), depth, stack)
    parts = schema.get("allOf")
    if isinstance(parts, list) and parts:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return _sample(_merge([rest, *parts]), depth, stack)
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, depth, stack)
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [_sample(schema.get("items") or {}, depth + 1, stack) for _ in range(count)]
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "boolean":
        return False
    return None


def _kind(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        # A nullable field is better shown with a value than as null.
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _merge(schemas: list[Any]) -> dict[str, Any]:
    """allOf as one schema: properties merged, required lists joined, other keywords from the last part."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in schemas:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("allOf"), list):
            part = _merge([{k: v for k, v in part.items() if k != "allOf"}, *part["allOf"]])
        properties.update(part.get("properties") or {})
        required.extend(name for name in part.get("required") or [] if name not in required)
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _object(schema: dict[str, Any], depth: int, stack: frozenset[int]) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    names = list(properties) if depth < _FULL_DEPTH else [n for n in properties if n in required]
    value = {name: _sample(properties[name], depth + 1, stack) for name in names}
    # A required name without a schema of its own still has to be there for the value to validate.
    for name in schema.get("required") or []:
        if name not in value:
            extra = schema.get("additionalProperties")
            value[name] = _sample(extra if isinstance(extra, dict) else {"type": "string"}, depth + 1, stack)
    return value


def _string(schema: dict[str, Any]) -> str:
    text = _STRING_FORMATS.get(str(schema.get("format", "")), "example")
    minimum = schema.get("minLength")
    maximum = schema.get("maxLength")
    if isinstance(minimum, int) and len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    if isinstance(maximum, int) and len(text) > maximum:
        text = text[:maximum]
    return text


def _integer(schema: dict[str, Any]) -> int:
    if schema.get("format") == "unix-time":
        value = _UNIX_TIME
    elif isinstance(schema.get("minimum"), int | float):
        value = int(-(-schema["minimum"] // 1))  # the smallest integer at or above the minimum
    elif isinstance(schema.get("exclusiveMinimum"), int | float):
        value = int(schema["exclusiveMinimum"] // 1) + 1
    else:
        value = 1
    maximum = schema.get("maximum")
    if isinstance(maximum, int | float) and value > maximum:
        value = int(maximum // 1)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0 and value % step:
        value += step - value % step
    return value


def _number(schema: dict[str, Any]) -> float:
    if isinstance(schema.get("minimum"), int | float):
        value = float(schema["minimum"])
    elif isinstance(schema.get("exclusiveMinimum"), int | float):
        value = float(schema["exclusiveMinimum"]) + 1.0
    else:
        value = 10.0
    maximum = schema.get("maximum")
    if isinstance(maximum, int | float) and value > maximum:
        value = float(maximum)
    return value
