"""The one YAML reader of httptask (JSON is YAML too): task and workflow files, specs and the secrets file.

Both entry points share one resolver in which a date stays the string that was written (`2024-01-31`), as
JSON bodies and JSON Schema's `format: date` expect, and a mapping's key is the text that was written
(`200:` is "200", `~:` is "~"), as OpenAPI reads YAML keys. `parse_source` keeps the line of every value, so
errors can say `file:line`; `parse_document` is the fast path for large documents (libyaml when PyYAML has
it, JSON through `json`) and keeps no lines.

Both refuse what YAML allows but a definition never needs, before anything walks the data: a key given twice
in one mapping (naming both lines), more than `MAX_ALIASES` aliases or aliases that expand past
`MAX_EXPANSION` extra values (an alias bomb), nesting deeper than `limits.MAX_DEPTH`, and integers too long
to read.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SourceError, UsageError, child_path
from .limits import MAX_DEPTH, MAX_FILE_BYTES, LimitExceeded, check_depth, read_capped

__all__ = [
    "MAX_ALIASES",
    "MAX_EXPANSION",
    "MAX_VALUES",
    "Source",
    "dump_yaml",
    "load_source",
    "parse_document",
    "parse_source",
    "read_text",
]

MAX_ALIASES = 100
MAX_EXPANSION = 100_000
# The line-keeping loader holds about 1 kB per value: 250,000 values stay near 250 MB and a few seconds.
MAX_VALUES = 250_000

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BRACKET = re.compile(r"[\[\]{}]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"


class _LineLoader(yaml.SafeLoader):
    """Safe YAML in pure Python: its nodes carry the marks that give each value its line. Its composer
    recurses, so it stops at the depth limit itself, before Python's own limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._values += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, _too_deep(), mark)
            if self._values > MAX_VALUES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                problem = f"holds more than {MAX_VALUES:,} values; write a file this large as JSON"
                raise yaml.composer.ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML through libyaml where PyYAML was built with it, else the same pure-Python loader."""


_IMPLICIT_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.yaml_implicit_resolvers = _FastLoader.yaml_implicit_resolvers = _IMPLICIT_RESOLVERS


def _timestamp_as_text(loader: Any, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


def _number(kind: str, read: Callable[[Any, Any], Any]) -> Callable[[Any, yaml.Node], Any]:
    """A constructor for `kind` numbers whose failure is a located error, not Python's ValueError."""

    def construct(loader: Any, node: yaml.Node) -> Any:
        try:
            return read(loader, node)
        except ValueError:
            text = str(node.value)
            problem = (
                "an integer of more than 4,300 digits; quote it if it is text"
                if kind == "integer" and text.lstrip("+-").isdigit()
                else f"{text!r} is not {'an' if kind == 'integer' else 'a'} {kind}; remove its !! tag or "
                f"write a {kind}"
            )
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    return construct


def _mapping_with_text_keys(loader: Any, node: yaml.MappingNode) -> Iterator[dict[str, Any]]:
    """A mapping whose every key is the text written in the file, as OpenAPI reads YAML keys and JSON has
    them: `200:` is "200", `~:` and `null:` are "~" and "null", `on:` is "on"; never a number, None or a
    boolean, which JSON Schema, JSON and JSON paths cannot take as a key. The duplicate-key check and the
    line of each path read keys the same way. Given before it is filled, as PyYAML's own, so that an alias
    inside it can refer to it."""
    mapping: dict[str, Any] = {}
    yield mapping
    loader.flatten_mapping(node)  # merges `<<: *base` in
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problem = "a key must be text, not a list or a mapping; quote it"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        mapping[str(key_node.value)] = loader.construct_object(value_node)


# An explicit `!!timestamp` stays text too, so no date object ever reaches a JSON body.
_LineLoader.add_constructor(_TIMESTAMP, _timestamp_as_text)
_FastLoader.add_constructor(_TIMESTAMP, _timestamp_as_text)
for _loader in (_LineLoader, _FastLoader):
    _loader.add_constructor(_INT, _number("integer", yaml.SafeLoader.construct_yaml_int))
    _loader.add_constructor(_FLOAT, _number("number", yaml.SafeLoader.construct_yaml_float))
    _loader.add_constructor(_MAP, _mapping_with_text_keys)


@dataclass(frozen=True)
class Source:
    """A parsed document and the 1-based line of each JSON path in it (`$.tasks[0].request.body.memo`)."""

    data: Any
    file: str
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return self.lines.get("$")


def read_text(path: Path) -> str:
    """A user's task, workflow or input file as text, up to the cap; any failure is one sentence."""
    try:
        return read_capped(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise UsageError(f"No such file: '{path}'.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read '{path}': {exc.strerror}.") from exc
    except UnicodeDecodeError:
        raise UsageError(f"'{path}' is not UTF-8 text; save it as UTF-8 and try again.") from None
    except LimitExceeded as exc:
        raise UsageError(f"'{path}' {exc}.") from None


def load_source(path: Path, *, as_json: bool = False) -> Source:
    """Read and parse a task, workflow or input file, keeping lines (none with `as_json`)."""
    text = read_text(path)
    if as_json:  # read at C speed, without lines: a large list of items is usually JSON
        return Source(data=parse_json(text, str(path)), file=str(path), lines={})
    return parse_source(text, str(path))


def parse_source(text: str, file: str) -> Source:
    """Parse YAML keeping the line of every value; a syntax error is a `SourceError` with line and column."""
    loader = None
    try:
        # The reader checks characters as the loader is made: a control character fails here.
        _check_flow_depth(text, file)
        loader = _LineLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "$", lines)
    return Source(data=data, file=file, lines=lines)


def parse_document(text: str, file: str, *, is_json: bool = False) -> Any:
    """Parse a whole document fast, without lines: JSON with `json` when `is_json`, else YAML with libyaml
    when available; a syntax error is a `SourceError` with line and column."""
    if is_json:
        return parse_json(text, file)
    loader = None
    try:
        loader = _FastLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, file)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_json(text: str, file: str) -> Any:
    """Parse JSON text; a syntax error, nesting past the limit or an integer too long to read is a
    `SourceError`."""
    try:
        # A byte order mark, as Windows editors write, says nothing JSON needs.
        data = json.loads(text.removeprefix("\ufeff"), parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise SourceError(exc.msg, file=file, line=exc.lineno, column=exc.colno, syntax="JSON") from None
    except RecursionError:
        raise SourceError(_too_deep(), file=file, syntax="JSON") from None
    except _NotJson as exc:
        raise SourceError(str(exc), file=file, syntax="JSON") from None
    except ValueError:
        raise SourceError(
            "an integer of more than 4,300 digits; quote it if it is text", file=file, syntax="JSON"
        ) from None
    try:
        check_depth(data, "the document")
    except LimitExceeded:
        raise SourceError(_too_deep(), file=file, syntax="JSON") from None
    return data


def dump_yaml(data: Any) -> str:
    """`data` as block YAML in its own key order, non-ASCII text kept readable."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _syntax_error(exc: yaml.YAMLError, text: str, file: str) -> SourceError:
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader refuses a character before any mark exists; its position gives the line and column.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        return SourceError(
            f"unacceptable character #x{character:04x}: {exc.reason}", file=file, line=line, column=column
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or str(exc)
        if mark is not None:
            return SourceError(problem, file=file, line=mark.line + 1, column=mark.column + 1)
        return SourceError(problem, file=file)
    return SourceError(str(exc), file=file)


class _NotJson(ValueError):
    """NaN or Infinity, which Python's reader takes but JSON does not have and no body can carry."""


def _not_json(constant: str) -> Any:
    raise _NotJson(f"{constant} is not a JSON number")


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep; flatten it"


def _check_nodes(root: yaml.Node, file: str) -> None:
    """Refuse a duplicate key, an alias that refers to its own ancestor, aliases past the limits, or nesting
    past the limit: a depth-first walk of the node graph without recursion, which visits a node once and
    adds up what each alias expands to."""
    finished: dict[int, tuple[int, int]] = {}  # node id: (values it expands to, levels of nesting)
    active = {id(root)}
    aliases = 0
    stack: list[tuple[yaml.Node, Iterator[yaml.Node], list[int]]] = [(root, _children(root, file), [1, 0])]
    while stack:
        node, children, total = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            active.discard(id(node))
            finished[id(node)] = (total[0], total[1] + 1)
            if total[0] > len(finished) + MAX_EXPANSION:
                raise _node_error(node, file, _expands())
            if stack:
                _add(stack[-1][2], finished[id(node)])
            continue
        if id(child) in active:
            raise _node_error(
                child, file, "an alias refers to a value that contains it; write the values out"
            )
        if id(child) in finished:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _node_error(child, file, _expands())
            _add(total, finished[id(child)])
            continue
        if len(stack) >= MAX_DEPTH:
            raise _node_error(child, file, _too_deep())
        active.add(id(child))
        stack.append((child, _children(child, file), [1, 0]))


def _check_flow_depth(text: str, file: str) -> None:
    """Refuse `[[[[...` or `{{{{...` nested past the limit before the pure-Python scanner reads it: it looks
    ahead over every open bracket, for a time that grows with the square of their number."""
    depth = 0
    brackets = _NOT_BRACKET.sub("", text)
    for index, char in enumerate(brackets):
        depth = depth + 1 if char in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            # Where the bracket is in the text, for the error: the index-th bracket character.
            position = [m.start() for m in itertools.islice(_BRACKET.finditer(text), index + 1)][-1]
            line = text.count("\n", 0, position) + 1
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            raise SourceError(_too_deep(), file=file, line=line, column=column)


def _children(node: yaml.Node, file: str) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        _check_keys(node, file)
        return (child for pair in node.value for child in pair)
    if isinstance(node, yaml.SequenceNode):
        return iter(node.value)
    return iter(())


def _add(total: list[int], child: tuple[int, int]) -> None:
    total[0] += child[0]
    total[1] = max(total[1], child[1])


def _expands() -> str:
    return (
        f"uses aliases (*name) more than {MAX_ALIASES} times, or they expand past {MAX_EXPANSION:,} values; "
        "write the values out"
    )


def _check_keys(mapping: yaml.MappingNode, file: str) -> None:
    first: dict[str, yaml.Node] = {}
    for key, _value in mapping.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        if key.value in first:
            line = first[key.value].start_mark.line + 1
            raise _node_error(
                key,
                file,
                f"the key {key.value!r} is given twice in one mapping, at lines {line} and "
                f"{key.start_mark.line + 1}; keep one",
            )
        first[key.value] = key


def _node_error(node: yaml.Node, file: str, problem: str) -> SourceError:
    mark = node.start_mark
    return SourceError(problem, file=file, line=mark.line + 1, column=mark.column + 1)


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = child_path(path, str(key_node.value))
            _record_lines(value_node, child, lines)
            # A key's own line beats its value's: for a block value that is the line after.
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, f"{path}[{index}]", lines)
