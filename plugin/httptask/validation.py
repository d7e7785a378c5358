"""Validate a request against its operation: one JSON Schema per operation, compiled once; errors as data.

The schema covers the whole request (`server`, `path`, `query`, `headers`, `body`), so every error carries a
JSON path such as `$.body.transaction.amount` that an editor can point at. It is compiled against a
`referencing` registry of the document's schemas, so `$ref`s are resolved lazily and a recursive schema is
validated all the way down. A request or a response body that is valid, the usual case, is checked by
jsonschema-rs (against the same schemas); only an invalid one goes through jsonschema, whose errors carry the
paths and values reported. The only jsonschema, jsonschema-rs and referencing imports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, UnknownType, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from .errors import Issue, SpecError, child_path
from .limits import LimitExceeded, search
from .messages import RequestValues
from .schemas import Schemas
from .spec import MediaType, Operation, Parameter, Server

__all__ = [
    "QUOTE_CHARS",
    "coerce_to_schema",
    "operation_schema",
    "valid_request",
    "validate_body",
    "validate_instance",
    "validate_values",
    "within_float",
]

_FORMATS = FormatChecker()
_Check = Callable[[object], bool]
# jsonschema ships no type hints: its decorator is given one here.
_checks: Callable[..., Callable[[_Check], _Check]] = _FORMATS.checks


@_checks("unix-time")
def _is_unix_time(value: object) -> bool:
    return not isinstance(value, int | float) or (value >= 0 and not isinstance(value, bool))


@_checks("int32")
def _is_int32(value: object) -> bool:
    return _within(value, 2**31)


@_checks("int64")
def _is_int64(value: object) -> bool:
    return _within(value, 2**63)


def _within(value: object, bound: int) -> bool:
    """Whether a number lies in [-bound, bound): a float too, since JSON Schema counts 1e300 as an integer."""
    return not isinstance(value, int | float) or -bound <= value < bound


@_checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and dt.date.fromisoformat(value)
    )


@_checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return False
    dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@_checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        if not search(pattern, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")
    except LimitExceeded as exc:
        yield ValidationError(str(exc), validator="patternTime")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        key for key in instance if key not in known and not any(search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(map(repr, extras))})")


_MULTIPLE_OF = Draft202012Validator.VALIDATORS["multipleOf"]


def _multiple_of(validator: Any, divisor: Any, instance: Any, schema: Any) -> Iterable[ValidationError]:
    # JSON has no infinity, but YAML's `.inf` and Python's `Infinity` read as one, which jsonschema's own
    # check cannot divide (it raises): it is no multiple of anything.
    if isinstance(instance, float) and not math.isfinite(instance):
        yield ValidationError(f"{instance!r} is not a multiple of {divisor!r}")
        return
    yield from _MULTIPLE_OF(validator, divisor, instance, schema)


# Draft 2020-12 with every regular expression of a schema matched by `limits.search`, which stops a pattern
# that backtracks without end (Python's `re`, which jsonschema uses, cannot be stopped), and a `multipleOf`
# that takes an infinity.
_Validator: Any = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "multipleOf": _multiple_of,
    },
)


def operation_schema(op: Operation, server: Server | None = None) -> dict[str, Any]:
    """One JSON Schema for the whole request of `op`, with header names in lower case, its references
    expanded to a bounded depth: what a form is built from."""
    return _request_schema(op, server, lambda part: part.schema)


def _request_schema(
    op: Operation, server: Server | None, schema_of: Callable[[Parameter | MediaType], Any]
) -> dict[str, Any]:
    server = server or (op.servers[0] if op.servers else None)
    properties: dict[str, Any] = {}
    if server is not None and server.variables:
        properties["server"] = {
            "type": "object",
            "properties": {
                v.name: {"type": "string", **({"enum": list(v.enum)} if v.enum else {})}
                for v in server.variables
            },
        }
    for location, key in (("path", "path"), ("query", "query"), ("header", "headers")):
        params = op.parameters_in(location)
        if not params:
            continue
        name: Callable[[str], str] = str.lower if location == "header" else str
        properties[key] = {
            "type": "object",
            "properties": {name(p.name): schema_of(p) for p in params},
            "required": [name(p.name) for p in params if p.required],
        }
    if op.request_body is not None:
        properties["body"] = schema_of(op.request_body.default)
    required = ["body"] if op.request_body is not None and op.request_body.required else []
    return {"type": "object", "properties": properties, "required": required}


class _Format:
    """The `format` keyword for jsonschema-rs, checked by the same functions jsonschema uses, so the two agree
    on every format (and on non-strings, which jsonschema-rs's own formats never look at)."""

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self._format = value

    def validate(self, instance: Any) -> None:
        if not _FORMATS.conforms(instance, self._format):
            raise ValueError(f"is not a valid {self._format}")


class _Pattern:
    """The `pattern` keyword for jsonschema-rs with `limits.search`, read as jsonschema reads it."""

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self._regex = re.compile(value)

    def validate(self, instance: Any) -> None:
        if not isinstance(instance, str):
            return
        try:
            matched = search(self._regex.pattern, instance)
        except LimitExceeded:
            matched = False  # jsonschema, asked next, says that the pattern was stopped
        if not matched:
            raise ValueError(f"does not match {self._regex.pattern!r}")


# jsonschema-rs compiles what a schema refers to eagerly: on a document whose schemas refer to each other in
# cycles it grew past 20 GB. It is only given schemas that expand to a bounded tree.
_FAST_NODES = 20_000


def _fast_validator(schema: Any, resources: Mapping[str, Any] | None = None) -> Any:
    """A jsonschema-rs validator for `schema` (its `$ref`s read from `resources`, never fetched), or None
    where it cannot take it (a cycle of references, or more than _FAST_NODES once expanded): jsonschema then
    checks alone."""
    known = resources or {}
    if not _bounded(schema, known):
        return None
    try:
        return jsonschema_rs.Draft202012Validator(
            schema,
            keywords={"format": _Format, "pattern": _Pattern},
            validate_formats=False,
            retriever=lambda uri: known[uri],
        )
    except (ValueError, KeyError, re.error, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError):
        return None


def _surely_valid(fast: Any, instance: Any, *, numbers_exact: bool = False) -> bool:
    """Whether jsonschema-rs (`fast`, None where it could not take the schema) finds `instance` valid; False
    where it cannot tell (it refuses a string with a lone surrogate, which JSON's `\\ud800` gives, and
    compares a number past ±2**53 as a float, unless the caller knows there is none: `numbers_exact`), so
    that jsonschema decides."""
    if fast is None or not (numbers_exact or within_float(instance)):
        return False
    try:
        return bool(fast.is_valid(instance))
    except ValueError:
        return False


# Past it a float cannot hold every integer: jsonschema-rs finds 1e30 equal to 10**30 and within `maximum:
# 10**30`, where jsonschema, comparing Python's numbers, is exact.
_FLOAT_EXACT = 2**53


def within_float(instance: Any) -> bool:
    """Whether every number in `instance` lies strictly within ±2**53, where a float is exact."""
    stack = [instance]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif (kind is int or kind is float) and not -_FLOAT_EXACT < item < _FLOAT_EXACT:
            return False
    return True


def _bounded(schema: Any, resources: Mapping[str, Any]) -> bool:
    """Whether `schema`, with every `$ref` into `resources` expanded, is a tree of at most _FAST_NODES nodes.
    A reference inside one resource (`#...`) counts as a cycle: it is how a recursive schema is written."""
    too_many = _FAST_NODES + 1  # sizes saturate here, and a cycle has this size
    sizes: dict[str, int] = {}
    expanding: set[str] = set()

    def size(value: Any) -> int:
        total = 1
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str):
                total += resource_size(ref.partition("#")[0])
            children: Iterable[Any] = (item for key, item in value.items() if key != "$ref")
        else:
            children = value if isinstance(value, list) else ()
        for child in children:
            if total > _FAST_NODES:
                break
            total += size(child)
        return min(total, too_many)

    def resource_size(uri: str) -> int:
        if not uri or uri in expanding:
            return too_many
        if uri not in sizes:
            expanding.add(uri)
            sizes[uri] = size(resources.get(uri))
            expanding.discard(uri)
        return sizes[uri]

    try:
        return size(schema) <= _FAST_NODES
    except RecursionError:
        return False


# At most this many operations' validators are kept, and as many response bodies': a long-running editor
# meets many documents, and a document loaded again brings new operations whose validators are compiled anew.
_KEPT = 256


class _ByIdentity:
    """Values by the identity of the live object (and the second one, or None) they were made for, at most
    `_KEPT`, the oldest dropped first. An entry holds its objects weakly and goes when one of them is
    collected: a document loaded again replaces its old validators rather than keeping them alive beside the
    new ones."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], tuple[Callable[[], object], Callable[[], object], Any]] = {}
        self._lock = threading.Lock()

    def get(self, first: object, second: object = None) -> Any:
        """The value made for exactly these objects; None when there is none."""
        found = self._entries.get((id(first), id(second)))
        if found is None or found[0]() is not first or found[1]() is not second:
            return None
        return found[2]

    def put(self, value: Any, first: object, second: object = None) -> None:
        key = (id(first), id(second))

        def forget(dead: object) -> None:
            entry = self._entries.get(key)
            # The key of a collected object may have been taken since by an object born at its address.
            if entry is not None and (entry[0] is dead or entry[1] is dead):
                self._entries.pop(key, None)

        refs = [_NONE if obj is None else weakref.ref(obj, forget) for obj in (first, second)]
        with self._lock:
            while len(self._entries) >= _KEPT:
                # A collection may drop entries meanwhile (see `forget`), even during this iteration.
                with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = (refs[0], refs[1], value)

    def __len__(self) -> int:
        return len(self._entries)


def _NONE() -> None:
    return None


class _Validators:
    """Compiled validators by operation; an operation's schema is compiled the first time it is used, against
    a registry of its document's schemas made once per document."""

    def __init__(self) -> None:
        self.compiled = _ByIdentity()
        self.bodies = _ByIdentity()
        self._registries: weakref.WeakKeyDictionary[Schemas, Registry[Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, op: Operation, server: Server | None) -> tuple[Any, Any]:
        """jsonschema's validator for `op`, and jsonschema-rs's (None where it cannot take the schema)."""
        found: tuple[Any, Any] | None = self.compiled.get(op, server)
        if found is None:
            schemas = op.schemas
            if schemas is None:
                schema = _request_schema(op, server, lambda part: part.linked_schema)
            else:
                schema = _request_schema(op, server, lambda part: schemas.unwrapped(part.linked_schema))
            found = self._both(schema, schemas)
            self.compiled.put(found, op, server)
        return found

    def body(self, media: MediaType) -> tuple[Any, Any]:
        """The validators of one media type's schema (a response body's), compiled the first time: as `get`,
        jsonschema's and jsonschema-rs's."""
        found: tuple[Any, Any] | None = self.bodies.get(media)
        if found is None:
            schemas = media.schemas
            schema = schemas.unwrapped(media.linked_schema) if schemas is not None else media.linked_schema
            found = self._both(schema, schemas)
            self.bodies.put(found, media)
        return found

    def _both(self, schema: Any, schemas: Schemas | None) -> tuple[Any, Any]:
        """jsonschema's validator of `schema`, its `$ref`s read from a registry of `schemas`, and
        jsonschema-rs's (None where it cannot take it)."""
        registry = self._registry(schemas) if schemas is not None else Registry()
        validator = _Validator(schema, registry=registry, format_checker=_FORMATS)
        fast = _fast_validator(schema, schemas.resources() if schemas is not None else None)
        return validator, fast

    def _registry(self, schemas: Schemas) -> Registry[Any]:
        with self._lock:
            registry = self._registries.get(schemas)
            if registry is None:
                # Retrieved on demand rather than registered up front: jsonschema combines the registry with
                # its own for every validator it makes, which would copy every registered resource each time.
                resources = schemas.resources()
                made: dict[str, Resource[Any]] = {}
                registry = Registry(retrieve=lambda uri: _resource(resources, made, uri))  # type: ignore[call-arg]
                self._registries[schemas] = registry
            return registry


def _resource(resources: Mapping[str, Any], made: dict[str, Resource[Any]], uri: str) -> Resource[Any]:
    if uri not in made:
        if uri not in resources:
            raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
        made[uri] = DRAFT202012.create_resource(resources[uri])
    return made[uri]


_VALIDATORS = _Validators()


def validate_values(op: Operation, values: RequestValues, server: Server | None = None) -> list[Issue]:
    """Every problem with the request at once, each with its JSON path, expected and actual value."""
    instance = values.to_dict()
    if not values.has_body:
        instance.pop("body", None)
    validator, fast = _VALIDATORS.get(op, server)
    try:
        if _surely_valid(fast, instance):
            return []
        return _issues(validator.iter_errors(instance))
    except RecursionError:
        # Only a value nested thousands of levels deep gets here: schema cycles that never nest are cut.
        return [Issue("$", "is nested too deeply to validate; send a shallower value")]
    except LimitExceeded as exc:
        # A property name checked against `patternProperties`: the pattern is named, the key is not known.
        return [Issue("$", f"has a property name that {exc}")]
    except (SchemaError, UnknownType, Unresolvable) as exc:
        # Malformed keywords are left out when the document loads; this is the boundary for anything else.
        source = op.schemas.source if op.schemas is not None else op.api
        raise SpecError(
            f"the schema of {op.id} cannot be used to validate ({exc}); "
            f"'httptask specs check {source}' shows what is wrong with it.",
            file=source,
        ) from exc


def valid_request(op: Operation, server: Server | None = None) -> Callable[[Any], bool] | None:
    """A quick check of a whole request (`RequestValues.to_dict()`) against `op`'s schema: True only where
    `validate_values` finds no problem, for an instance whose numbers all lie within ±2**53 (`within_float`;
    past it jsonschema-rs is not exact); it may raise on what it cannot read. None where only jsonschema can
    check the schema."""
    fast = _VALIDATORS.get(op, server)[1]
    return None if fast is None else fast.is_valid


def validate_body(
    media: MediaType, body: Any, *, root: str = "$.body", limit: int = 20, numbers_exact: bool = False
) -> list[Issue]:
    """The first `limit` problems of a body (a response's) against its media type's schema, with JSON paths
    under `root`; a last issue says when there are more. A schema that cannot be used is a `SpecError`.
    `numbers_exact`: the caller knows that every number in `body` lies within ±2**53 (from the text it was
    read from: `jsontext.loads_within_float`), which spares a walk of it."""
    try:
        validator, fast = _VALIDATORS.body(media)
        if _surely_valid(fast, body, numbers_exact=numbers_exact):
            return []
        errors = list(itertools.islice(validator.iter_errors(body), limit + 1))
    except RecursionError:
        return [Issue(root, "is nested too deeply to check")]
    except (SchemaError, UnknownType, Unresolvable) as exc:
        source = media.schemas.source if media.schemas is not None else "the spec"
        raise SpecError(f"the schema of {media.content_type} cannot be used to validate ({exc}).",
                        file=source) from exc
    issues = _issues(errors[:limit], root=root)
    if len(errors) > limit:
        issues.append(Issue(root, f"has more problems than the {limit} shown"))
    return issues


def validate_instance(instance: Any, schema: dict[str, Any], *, root: str = "$") -> list[Issue]:
    """Validate any value against a schema (workflow inputs, task files); errors as issues under `root`."""
    fast = _fast_validator(schema)
    if _surely_valid(fast, instance):
        return []
    validator = _Validator(schema, format_checker=_FORMATS)
    try:
        return _issues(validator.iter_errors(instance), root=root)
    except LimitExceeded as exc:
        return [Issue(root, f"has a property name that {exc}")]


def _issues(errors: Iterable[ValidationError], root: str = "$") -> list[Issue]:
    issues = []
    # `required` gives one error per missing property, in the order the schema lists them: the n-th error of
    # one object against one schema is its n-th missing property.
    seen: dict[tuple[Any, ...], int] = {}
    for error in errors:
        if error.validator == "required":
            place = (*error.absolute_path, id(error.schema))
            nth = seen[place] = seen.get(place, -1) + 1
            issues.append(_missing(error, nth, root))
        else:
            issues.append(_issue(error, root))
    return sorted(issues, key=lambda issue: issue.path)


def _missing(error: ValidationError, nth: int, root: str) -> Issue:
    present = error.instance if isinstance(error.instance, dict) else {}
    absent = [name for name in error.validator_value if name not in present]
    name = absent[nth] if nth < len(absent) else str(error.validator_value)
    return Issue(_path([*error.absolute_path, name], root), "is required but missing", expected="a value")


def _path(parts: Iterable[Any], root: str) -> str:
    text = root
    for part in parts:
        text = child_path(text, part if isinstance(part, int) else str(part))
    return text


# A message quotes the valid values from the spec, but 3,000 choices would bury the point.
_SHOWN_CHARACTERS = 200
_SHOWN_CHOICES = 20


def _shown(value: Any) -> str:
    """A value from the spec, cut short: a spec holds no secret (the bad value is `_quoted`)."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[: _SHOWN_CHARACTERS - 30]}... ({len(text):,} characters)"


def _choices(expected: Any) -> str:
    choices = list(expected) if isinstance(expected, list) else [expected]
    listed = ", ".join(_shown(v) for v in choices[:_SHOWN_CHOICES])
    return listed if len(choices) <= _SHOWN_CHOICES else f"{listed}... ({len(choices):,} in all)"


def _issue(error: ValidationError, root: str) -> Issue:
    parts = list(error.absolute_path)
    kind = error.validator
    value = error.instance
    expected: Any = error.validator_value
    if kind == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extras = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        name = extras[0] if extras else "?"
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return Issue(_path([*parts, name], root), f"is not a field of this object{hint}", actual=name)
    shown = _quoted(value)
    messages = {
        "enum": lambda: f"must be one of {_choices(expected)}, not {shown}",
        "const": lambda: f"must be {_shown(expected)}, not {shown}",
        "type": lambda: f"must be of type {_type_text(expected)}, not {_typed(value, shown)}",
        "format": lambda: f"must be a valid {expected}, not {shown}",
        "minimum": lambda: f"must be at least {expected}, not {shown}",
        "maximum": lambda: f"must be at most {expected}, not {shown}",
        "exclusiveMinimum": lambda: f"must be greater than {expected}, not {shown}",
        "exclusiveMaximum": lambda: f"must be less than {expected}, not {shown}",
        "minLength": lambda: f"must have at least {expected} characters, not {len(value)}",
        "maxLength": lambda: f"must have at most {expected} characters, not {len(value)}",
        "pattern": lambda: f"must match the pattern {expected}, not {shown}",
        "minItems": lambda: f"must have at least {expected} items, not {len(value)}",
        "maxItems": lambda: f"must have at most {expected} items, not {len(value)}",
    }
    if kind in messages:
        message = messages[kind]()
    elif _quotable(value):
        message = error.message
    else:  # jsonschema's own message starts with the whole value
        message = f"{shown} does not fit the schema's {kind!r} keyword"
    if kind in ("minLength", "maxLength", "minItems", "maxItems"):
        value = len(value)
    return Issue(_path(parts, root), message, expected=expected, actual=value)


# The longest bad value a message quotes. A longer one is named by its kind and size, never cut: a response's
# may be most of 10 MB, and a cut could leave part of a secret that the redactor would not know.
QUOTE_CHARS = _SHOWN_CHARACTERS


def _quotable(value: Any) -> bool:
    return not isinstance(value, (dict, list)) and (not isinstance(value, str) or len(value) <= QUOTE_CHARS)


def _quoted(value: Any) -> str:
    """`value` as a message quotes it: whole when it is short, else its kind and size."""
    if _quotable(value):
        return repr(value)
    size = len(value)
    if isinstance(value, dict):
        return f"an object of {size:,} field{'s' * (size != 1)}"
    if isinstance(value, list):
        return f"an array of {size:,} item{'s' * (size != 1)}"
    return f"a text of {size:,} characters"


def _typed(value: Any, shown: str) -> str:
    return f"{_type_name(value)} {shown}" if _quotable(value) else shown


def _type_text(expected: Any) -> str:
    return " or ".join(expected) if isinstance(expected, list) else str(expected)


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def coerce_to_schema(value: Any, schema: dict[str, Any]) -> Any:
    """Turn strings from a form, query or header into the types the schema asks for, where they parse.

    What does not parse is left as it is, so validation reports it with the value the sender wrote.
    """
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        fallback = extra if isinstance(extra, dict) else {}
        return {key: coerce_to_schema(item, properties.get(key) or fallback) for key, item in value.items()}
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce_to_schema(item, items if isinstance(items, dict) else {}) for item in value]
    if not isinstance(value, str):
        return value
    if "array" in kinds:
        return [coerce_to_schema(value, schema.get("items") or {})]
    if "object" in kinds and value == "":
        return {}  # an empty form value unsets a whole object (Stripe's `metadata=`)
    if "integer" in kinds and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if "number" in kinds and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        number = float(value)
        written_whole = "." not in value and "e" not in value.lower()
        return int(number) if number.is_integer() and written_whole else number
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    if "null" in kinds and value == "":
        return None
    return value

