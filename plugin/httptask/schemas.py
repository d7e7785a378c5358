"""The JSON Schemas of one OpenAPI document: normalised once, references kept, shown as bounded views.

Only schema positions are schemas (a component schema, a parameter's, header's or media type's `schema`, and
the subschemas inside them). `example`, `examples`, `default`, `const`, `enum` and `x-*` values are data
wherever they appear: a `$ref` inside them is never followed. Each schema reached from an operation is
normalised to JSON Schema 2020-12 once, with its `$ref`s made absolute (`urn:httptask:N:/components/...`), so
that validation resolves them lazily against `resources()` and follows a recursive schema all the way down.
Pages, forms and samples get `view()` instead: references expanded breadth first to a bounded size, memoized,
and one that is recursive (or past the bound) shown once as a marker, `{"description": "(recursive: Name)",
"x-unexpanded": "Name"}` with the schema's type where it has one.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from .errors import SpecError

__all__ = ["Schemas", "escape", "local_pointer", "lookup", "normalise_schema"]

JSON = dict[str, Any]

# Keywords whose value is one schema, a list of schemas, or a map of names to schemas; all others are data.
_ONE = frozenset({
    "additionalProperties", "items", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema", "additionalItems",
})
_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SUBSCHEMAS = _ONE | _LIST | _MAP
# What a validation keyword's value must be for jsonschema to use it. A value of another kind (a vendor's
# `required: true` on a property, `minimum: "0"`, a pattern Python cannot compile, `type: file`) is left out
# of the normalised schema rather than stopping validation; `specs check` reports it.
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _compiles(pattern: Any) -> bool:
    try:
        re.compile(pattern)
    except (re.error, TypeError, RecursionError):  # RecursionError: groups nested hundreds deep
        return False
    return True


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


_SHAPES: dict[str, Callable[[Any], bool]] = {
    "type": lambda v: v in _TYPES if isinstance(v, str) else isinstance(v, list) and set(v) <= _TYPES,
    "required": _names,
    "enum": lambda v: isinstance(v, list),
    "format": lambda v: isinstance(v, str),
    "pattern": _compiles,
    "minimum": _number,
    "maximum": _number,
    # A boolean is OpenAPI 3.0's form, rewritten below.
    "exclusiveMinimum": lambda v: _number(v) or isinstance(v, bool),
    "exclusiveMaximum": lambda v: _number(v) or isinstance(v, bool),
    "multipleOf": lambda v: _number(v) and v > 0,
    "uniqueItems": lambda v: isinstance(v, bool),
    "dependentRequired": lambda v: isinstance(v, dict) and all(_names(names) for names in v.values()),
    **dict.fromkeys(
        ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains",
         "maxContains"),
        _count,
    ),
}
# Keywords that apply a subschema to the same instance: a cycle through them alone would never end.
_IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"})

# Validation checks one value against each schema its in-place keywords apply (allOf, anyOf...), and against
# what those apply in turn: parts that each name the next schema twice double that at each level (2^40 checks
# of one value for a 4 kB document). Past this many, the references that add more are cut, like a cycle.
_APPLIED = 1000

# A view expands references breadth first while it shows fewer fields than this (each expansion counts one
# more); the references of required fields are expanded further, since a task has to fill them, up to a depth
# and a larger budget: required `allOf` parts that each name the next schema twice would double at each level.
_VIEW_BUDGET = 1000
_REQUIRED_BUDGET = 10 * _VIEW_BUDGET
_REQUIRED_DEPTH = 32

_URNS = itertools.count(1)


def normalise_schema(schema: Any) -> Any:
    """Rewrite OpenAPI 3.0 quirks into JSON Schema 2020-12 in a schema and its subschemas; a new object.

    `nullable: true` becomes a "null" type, boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers,
    and `example` becomes `examples`. Data keywords (`enum`, `default`, `examples`, `x-*`...) stay as written.
    """
    return _normalise(schema, "", lambda ref, pointer: ref)


def _normalise(node: Any, pointer: str, on_ref: Callable[[str, str], str]) -> Any:
    if not isinstance(node, dict):
        return node
    result: JSON = {}
    for key, value in node.items():
        here = f"{pointer}/{escape(key)}"
        if key == "$ref":
            if isinstance(value, str):
                result[key] = on_ref(value, pointer)
        elif key in _LIST and isinstance(value, list):
            # `items` as a list is the tuple form of older drafts: 2020-12 calls it `prefixItems`.
            name = "prefixItems" if key == "items" else key
            result[name] = [_normalise(item, f"{here}/{i}", on_ref) for i, item in _schemas_in(value)]
        elif key in _ONE and isinstance(value, dict | bool):
            result[key] = _normalise(value, here, on_ref)
        elif key in _MAP and isinstance(value, dict):
            result[key] = {
                name: _normalise(sub, f"{here}/{escape(name)}", on_ref)
                for name, sub in value.items()
                if isinstance(sub, dict | bool) and (key != "patternProperties" or _compiles(name))
            }
        elif key in _SUBSCHEMAS or (key in _SHAPES and not _SHAPES[key](value)):
            continue  # malformed (see _SHAPES): left out
        else:
            result[key] = value
    if result.pop("nullable", False) is True:
        kind = result.get("type")
        if isinstance(kind, str):
            result["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            result["type"] = [*kind, "null"]
        elif isinstance(result.get("enum"), list) and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(result.get(bound), bool) and result.pop(bound) and limit in result:
            result[bound] = result.pop(limit)
    if "example" in result and "examples" not in result:
        result["examples"] = [result.pop("example")]
    return result


def _schemas_in(items: list[Any]) -> list[tuple[int, Any]]:
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict | bool)]


def escape(token: str) -> str:
    """A key as one token of a JSON pointer: `/` and `~` escaped."""
    return token.replace("~", "~0").replace("/", "~1")


def _tokens(pointer: str) -> list[str]:
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]


def _find(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (`/components/schemas/Pet`, percent-decoded); LookupError if none."""
    node = document
    for token in _tokens(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise LookupError(pointer)
    return node


def local_pointer(ref: str, *, source: str, at: str) -> str:
    """The JSON pointer of a `$ref` (`#/components/schemas/Pet` gives `/components/schemas/Pet`); `SpecError`
    for one that points outside the document or is not a pointer (`at` is where the `$ref` is written)."""
    if not ref.startswith("#"):
        raise SpecError(
            f"the reference '{ref}' points outside this document; bundle it into one file first.",
            file=source,
            pointer=at,
        )
    target = unquote(ref[1:])
    if target and not target.startswith("/"):
        raise SpecError(
            f"the reference '{ref}' is not a JSON pointer such as '#/components/schemas/Name'.",
            file=source,
            pointer=at,
        )
    return target


def lookup(document: Any, ref: str, *, source: str, at: str) -> Any:
    """What a local `$ref` names in `document`; `SpecError` for one that points elsewhere or to nothing."""
    try:
        return _find(document, local_pointer(ref, source=source, at=at))
    except LookupError:
        raise SpecError(f"the reference '{ref}' points to nothing.", file=source, pointer=at) from None


class Schemas:
    """The schemas of one document reached from its operations, normalised and resolvable by URI."""

    def __init__(self, document: JSON, source: str) -> None:
        self.source = source
        self._document = document
        self._urn = f"urn:httptask:{next(_URNS)}:"
        self._targets: dict[str, Any] = {}  # absolute URI -> the normalised schema it names
        self._names: dict[str, str] = {}  # absolute URI -> the name a marker shows (`Category`)
        self._pending: list[str] = []
        # absolute URI -> the URIs its schema refers to, as written (before any cycle is cut)
        self._refers: dict[str, set[str]] = {}
        self._noted: set[str] | None = None
        self._linked: dict[int, tuple[Any, Any]] = {}  # id of a schema as written -> (it, normalised)
        self._views: dict[Any, tuple[Any, Any]] = {}
        self._cycles_cut = True

    def schema(self, raw: Any, pointer: str) -> Any:
        """The schema `raw` (found at `pointer`) normalised, with every schema it refers to checked and
        normalised once; a schema shared by several operations (a parameter component's) is normalised once.

        Raises `SpecError` for a reference that points to nothing or outside the document.
        """
        known = self._linked.get(id(raw))
        if known is not None and known[0] is raw:
            return known[1]
        if not isinstance(raw, dict | bool):
            found = json.dumps(raw, ensure_ascii=False, default=str)
            raise SpecError(
                f"a schema must be a mapping (or true or false), found {found[:60]}; write it as a schema, "
                "e.g. {type: string}.",
                file=self.source,
                pointer=pointer,
            )
        node = _normalise(raw, pointer, self._absolute)
        self._linked[id(raw)] = (raw, node)
        while self._pending:
            uri = self._pending.pop()
            self._noted = self._refers[uri] = set()
            try:
                self._targets[uri] = _normalise(
                    _find(self._document, self._pointer(uri)), self._pointer(uri), self._absolute
                )
            finally:
                self._noted = None
            self._cycles_cut = False
        return node

    def reached(self, schemas: Iterable[Any]) -> set[str]:
        """The absolute URIs of every schema of the document that `schemas` (normalised by `schema()`) refer
        to, directly or through others: what a document holding only them needs (see `pointer`)."""
        reached = {uri for schema in schemas for uri in _refs_in(schema, self._urn)}
        pending = list(reached)
        while pending:
            new = self._refers.get(pending.pop(), set()) - reached
            reached |= new
            pending.extend(new)
        return reached

    def pointer(self, uri: str) -> str:
        """The JSON pointer in the document of the schema an absolute URI names."""
        return self._pointer(uri)

    def close(self) -> None:
        """Say that every operation's schemas are in: cycles are cut now, before any thread reads them."""
        self._cut_cycles()

    def resources(self) -> Mapping[str, Any]:
        """Every schema a `$ref` names, by its absolute URI; in-place cycles are cut (see `_cut_cycles`)."""
        self._cut_cycles()
        return self._targets

    def view(self, schema: Any) -> Any:
        """`schema` for pages, forms and samples: references expanded breadth first to a bounded size, one
        that is recursive here or past the bound shown as a marker (see above). Memoized; do not mutate."""
        self._cut_cycles()
        key: Any = schema.get("$ref") if isinstance(schema, dict) and len(schema) == 1 else id(schema)
        found = self._views.get(key)
        if found is not None and (found[0] is schema or not isinstance(key, int)):
            return found[1]
        result = _View(self).build(schema)
        self._views[key] = (schema, result)
        return result

    def unwrapped(self, schema: Any) -> Any:
        """`schema`, or what it names when it is only a `$ref` (a chain followed to its end): the same schema,
        which validation then checks without looking anything up."""
        self._cut_cycles()
        seen: set[str] = set()
        while isinstance(schema, dict) and len(schema) == 1 and isinstance(schema.get("$ref"), str):
            target = self._targets.get(schema["$ref"])
            if target is None or schema["$ref"] in seen:
                break
            seen.add(schema["$ref"])
            schema = target
        return schema

    def target(self, uri: str) -> Any:
        """The normalised schema that an absolute `$ref` of this document names, or None."""
        return self._targets.get(uri)

    def name(self, uri: str) -> str:
        """What a view calls the schema at `uri`: the last token of its pointer (`Category`)."""
        return self._names[uri]

    def _absolute(self, ref: str, pointer: str) -> str:
        """The absolute URI of a `$ref` written at `pointer`; its target is queued to be normalised."""
        target = local_pointer(ref, source=self.source, at=pointer)
        uri = self._urn + quote(target, safe="/~!$&'()*+,;=:@")
        if uri not in self._names:
            found = lookup(self._document, ref, source=self.source, at=pointer)
            if not isinstance(found, dict | bool):
                raise SpecError(
                    f"the reference '{ref}' points to {type(found).__name__} data, not a schema.",
                    file=self.source,
                    pointer=pointer,
                )
            self._names[uri] = (_tokens(target) or ["(document)"])[-1]
            self._pending.append(uri)
        if self._noted is not None:
            self._noted.add(uri)
        return uri

    def _pointer(self, uri: str) -> str:
        return unquote(uri[len(self._urn) :])

    def _cut_cycles(self) -> None:
        """Replace each `$ref` that closes a cycle through in-place keywords (`A: {allOf: [B]}`, `B: {oneOf:
        [A]}`) with an open schema, since validating it would never end; cycles through `properties` stay."""
        if not self._cycles_cut:
            self._cut_each_cycle()
            self._cycles_cut = True

    def _cut_each_cycle(self) -> None:
        # Depth first from the schemas in the order the operations met them: a cycle is cut where it closes
        # back on the schema an operation entered it by (an operation loaded alone, from its excerpt, is cut
        # from its own entry).
        edges = {uri: list(_in_place_refs(target)) for uri, target in self._targets.items()}
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for start in edges:
            if start in state:
                continue
            state[start] = 1
            stack = [(start, iter(edges[start]))]
            while stack:
                uri, children = stack[-1]
                for holder, ref in children:
                    if state.get(ref) == 1:
                        del holder["$ref"]
                        holder["description"] = f"(recursive: {self._names[ref]})"
                    elif ref not in state:
                        state[ref] = 1
                        stack.append((ref, iter(edges.get(ref, ()))))
                        break
                else:
                    state[uri] = 2
                    stack.pop()
        self._cut_multiplying()

    def _cut_multiplying(self) -> None:
        """Cut each in-place `$ref` that would make one value checked against more than `_APPLIED` schemas
        (counted through the references it applies, in the order `_cut_each_cycle` met them)."""
        edges = {uri: _in_place_refs(target) for uri, target in self._targets.items()}
        applied: dict[str, int] = {}
        for start in edges:
            if start in applied:
                continue
            path, stack = {start}, [start]
            while stack:
                uri = stack[-1]
                refs = edges[uri]
                later = next((r for _, r in refs if r in edges and r not in applied and r not in path), None)
                if later is not None:  # what it applies is counted first
                    path.add(later)
                    stack.append(later)
                    continue
                stack.pop()
                path.discard(uri)
                total = 1
                for holder, ref in edges[uri]:
                    more = applied.get(ref, 1)
                    if total + more > _APPLIED:
                        del holder["$ref"]
                        holder["description"] = f"(not expanded: {self._names[ref]})"
                    else:
                        total += more
                applied[uri] = total


def _refs_in(node: Any, urn: str) -> list[str]:
    """The absolute `$ref`s of this document in a normalised schema (a `$ref` in data stays as written)."""
    found: list[str] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith(urn):
                found.append(ref)
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return found


def _in_place_refs(node: Any) -> list[tuple[JSON, str]]:
    """The (holder, URI) of each `$ref` that `node` applies to its own instance."""
    found: list[tuple[JSON, str]] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if not isinstance(current, dict):
            continue
        if isinstance(current.get("$ref"), str):
            found.append((current, current["$ref"]))
        # In the schema's own order (reversed, as the stack pops): the same document cuts the same references.
        for key, value in reversed(current.items()):
            if key not in _IN_PLACE:
                continue
            if isinstance(value, list):
                pending.extend(reversed(value))
            elif key == "dependentSchemas" and isinstance(value, dict):
                pending.extend(reversed(value.values()))
            else:
                pending.append(value)
    return found


class _View:
    """One view, built breadth first: a reference is first copied as its sibling keys and queued; queued
    references are expanded in the order met, level by level, while the budget lasts."""

    def __init__(self, schemas: Schemas) -> None:
        self.schemas = schemas
        self.spent = 0
        # (the copy to fill in, the URI it refers to, the URIs expanded on its path, required all the way)
        self.queue: deque[tuple[JSON, str, frozenset[str], bool]] = deque()

    def build(self, schema: Any) -> Any:
        root = self.copy(schema, frozenset(), required=True)
        while self.queue:
            holder, uri, stack, required = self.queue.popleft()
            self.expand(holder, uri, stack, required=required)
        return root

    def expand(self, holder: JSON, uri: str, stack: frozenset[str], *, required: bool) -> None:
        target = self.schemas.target(uri)
        if uri in stack:
            holder.update(_marker("recursive", self.schemas.name(uri), target))
            return
        budget = _REQUIRED_BUDGET if required else _VIEW_BUDGET
        if len(stack) >= _REQUIRED_DEPTH or self.spent >= budget:
            holder.update(_marker("not expanded", self.schemas.name(uri), target))
            return
        self.spent += 1
        if isinstance(target, dict):
            # Sibling keys (a vendor's description, an inline copy) override the target, as they are meant to.
            siblings = dict(holder)
            holder.clear()
            self.copy(target, stack | {uri}, required=required, into=holder)
            holder.update(siblings)

    def copy(self, node: Any, stack: frozenset[str], *, required: bool, into: JSON | None = None) -> Any:
        """`node` with its subschemas copied (into `into` when given); a `$ref` leaves its sibling keys in the
        copy, which is queued to be filled in with the target."""
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        linked = isinstance(ref, str) and self.schemas.target(ref) is not None
        copied = {} if into is None else into
        for key, value in node.items():
            if key != "$ref" or not linked:
                copied[key] = self.keyword(key, value, node, stack, required)
        if linked:
            self.queue.append((copied, str(ref), stack, required))
        return copied

    def keyword(self, key: str, value: Any, node: JSON, stack: frozenset[str], required: bool) -> Any:
        if key == "properties" and isinstance(value, dict):
            self.spent += len(value)
            names = node.get("required")
            needed = set(names) if required and isinstance(names, list) else set()
            return {name: self.copy(sub, stack, required=name in needed) for name, sub in value.items()}
        if key in _MAP and isinstance(value, dict):
            return {name: self.copy(sub, stack, required=False) for name, sub in value.items()}
        if key in _LIST and isinstance(value, list):
            return [self.copy(item, stack, required=required and key == "allOf") for item in value]
        if key in _ONE:
            return self.copy(value, stack, required=False)
        return value


def _marker(reason: str, name: str, target: Any) -> JSON:
    """What a view shows instead of a schema it does not expand: its name, and its type where it has one."""
    marker: JSON = {"description": f"({reason}: {name})", "x-unexpanded": name}
    if isinstance(target, dict) and isinstance(target.get("type"), str | list):
        marker["type"] = target["type"]
    return marker
