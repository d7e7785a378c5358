"""The reference data of one operation, as `catalog show --format json` and the editor give it.

Body fields are flattened the way the seed pages show them: nesting with dots (`transaction.amount`),
arrays with `[]` (`expand[]`, `line_items[].amount`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .spec import MediaType, Operation, Parameter, Server

__all__ = ["Field", "body_fields", "merge_all_of", "reference", "schema_type"]

_LIMITS = ("format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
           "pattern", "minItems", "maxItems")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    description: str = ""
    enum: tuple[Any, ...] = ()
    default: Any = None
    limits: tuple[tuple[str, Any], ...] = ()
    depth: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "enum": list(self.enum) or None,
            "default": self.default,
            "description": self.description,
            **dict(self.limits),
        }


def schema_type(schema: dict[str, Any]) -> str:
    """A display type: `string`, `integer`, `object`, `array`, `string | null`..."""
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind:
        return str(kind)
    if "properties" in schema:
        return "object"
    for combiner in ("oneOf", "anyOf"):
        if combiner in schema:
            return " | ".join(schema_type(option) for option in schema[combiner])
    return "any"


def body_fields(schema: dict[str, Any]) -> list[Field]:
    """Every field of a body schema, depth first, with dotted names and `[]` for arrays."""
    fields: list[Field] = []
    _walk(schema, "", 0, fields)
    return fields


def _walk(schema: dict[str, Any], prefix: str, depth: int, out: list[Field]) -> None:
    required = set(schema.get("required") or ())
    for name, child in (schema.get("properties") or {}).items():
        if not isinstance(child, dict):
            continue
        child = merge_all_of(child)
        is_array = schema_type(child) == "array"
        display = f"{prefix}{name}[]" if is_array and _is_scalar_array(child) else f"{prefix}{name}"
        description = str(child.get("description", "")).strip()
        items = child.get("items")
        if is_array and isinstance(items, dict) and "x-unexpanded" in items:
            # A list of a recursive schema says so where the list is shown.
            description = f"{description} {items.get('description', '')}".strip()
        out.append(
            Field(
                name=display,
                type=schema_type(child),
                required=name in required,
                description=description,
                enum=_enum_of(child),
                default=child.get("default"),
                limits=tuple((key, child[key]) for key in _LIMITS if key in child),
                depth=depth,
            )
        )
        if "properties" in child:
            _walk(child, f"{display}.", depth + 1, out)
        elif is_array and isinstance(child.get("items"), dict) and "properties" in child["items"]:
            _walk(merge_all_of(child["items"]), f"{display}[].", depth + 1, out)


def _is_scalar_array(schema: dict[str, Any]) -> bool:
    items = schema.get("items")
    return not (isinstance(items, dict) and ("properties" in items or "x-unexpanded" in items))


def _enum_of(schema: dict[str, Any]) -> tuple[Any, ...]:
    if "enum" in schema:
        return tuple(schema["enum"])
    items = schema.get("items")
    if schema_type(schema) == "array" and isinstance(items, dict) and "enum" in items:
        return tuple(items["enum"])
    return ()


def merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `allOf` parts merged in: properties and required lists joined, other keywords kept
    from the schema first, then from the parts in order. A new object; `schema` is left as it is."""
    if not isinstance(schema.get("allOf"), list):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties = dict(merged.get("properties") or {})
    required = list(merged.get("required") or [])
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        part = merge_all_of(part)
        properties.update(part.get("properties") or {})
        required.extend(part.get("required") or [])
        for key, value in part.items():
            if key not in ("properties", "required"):
                merged.setdefault(key, value)
    merged["properties"] = properties
    merged["required"] = required
    return merged


def _server(server: Server) -> dict[str, Any]:
    return {
        "url": server.url,
        "description": server.description,
        "variables": [
            {"name": v.name, "default": v.default, "enum": list(v.enum) or None, "description": v.description}
            for v in server.variables
        ],
    }


def _parameter(param: Parameter) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.location,
        "required": param.required,
        "schema": param.schema,
        "description": param.description.strip(),
        "type": schema_type(param.schema),
        "enum": list(param.schema.get("enum") or ()) or None,
        "default": param.schema.get("default"),
    }


def _media_example(media: MediaType) -> Any:
    if media.example is not None:
        return media.example
    examples = media.schema.get("examples")
    return examples[0] if isinstance(examples, list) and examples else None


def reference(op: Operation) -> dict[str, Any]:
    """Everything a reference page or a form needs about one operation, as JSON-ready data."""
    body = None
    if op.request_body is not None:
        media = op.request_body.default
        body = {
            "content_type": media.content_type,
            "content_types": [m.content_type for m in op.request_body.media_types],
            "required": op.request_body.required,
            "form_style": media.form_style if "form" in media.content_type else None,
            "description": op.request_body.description,
            "schema": media.schema,
            "fields": [f.to_dict() for f in body_fields(merge_all_of(media.schema))],
        }
    return {
        "id": op.id,
        "api": op.api,
        "api_name": op.api_name,
        "operation_id": op.operation_id,
        "method": op.method,
        "path": op.path,
        "summary": op.summary,
        "description": op.description.strip(),
        "tags": list(op.tags),
        "deprecated": op.deprecated,
        "servers": [_server(s) for s in op.servers],
        "parameters": [_parameter(p) for p in op.parameters],
        "body": body,
        "responses": [
            {
                "status": r.status,
                "description": r.description,
                "content_type": r.media_types[0].content_type if r.media_types else None,
                "example": _media_example(r.media_types[0]) if r.media_types else None,
            }
            for r in op.responses
        ],
        "auth": [
            [
                {"name": s.name, "type": s.type, "scheme": s.scheme or None, "in": s.location or None,
                 "parameter": s.parameter_name or None, "prefix": s.prefix or None,
                 "description": s.description}
                for s in option
            ]
            for option in op.security
        ],
        "idempotency": {"header": op.idempotency_header} if op.idempotency_header else None,
        "seed_notes": list(op.seed_notes),
    }
