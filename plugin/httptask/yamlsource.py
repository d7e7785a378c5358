"""The one YAML reader of httptask (JSON is YAML too): task and workflow files, specs and the secrets file.

Both entry points share one resolver in which a date stays the string that was written (`2024-01-31`), as
JSON bodies and JSON Schema's `format: date` expect. `parse_source` keeps the line of every value, so
errors can say `file:line`; `parse_document` is the fast path for large documents (libyaml when PyYAML has
it, JSON through `json`) and keeps no lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SourceError, UsageError, child_path

__all__ = ["Source", "dump_yaml", "load_source", "parse_document", "parse_source"]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _LineLoader(yaml.SafeLoader):
    """Safe YAML in pure Python: its nodes carry the marks that give each value its line."""


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML through libyaml where PyYAML was built with it, else the same pure-Python loader."""


_IMPLICIT_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.yaml_implicit_resolvers = _FastLoader.yaml_implicit_resolvers = _IMPLICIT_RESOLVERS


def _timestamp_as_text(loader: Any, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


# An explicit `!!timestamp` stays text too, so no date object ever reaches a JSON body.
_LineLoader.add_constructor(_TIMESTAMP, _timestamp_as_text)
_FastLoader.add_constructor(_TIMESTAMP, _timestamp_as_text)


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


def load_source(path: Path) -> Source:
    """Read and parse a task, workflow or input file, keeping lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"No such file: '{path}'.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read '{path}': {exc.strerror}.") from exc
    except UnicodeDecodeError:
        raise UsageError(f"'{path}' is not UTF-8 text; save it as UTF-8 and try again.") from None
    return parse_source(text, str(path))


def parse_source(text: str, file: str) -> Source:
    """Parse YAML keeping the line of every value; a syntax error is a `SourceError` with line and column."""
    loader = None
    try:
        # The reader checks characters as the loader is made: a control character fails here.
        loader = _LineLoader(text)
        node = loader.get_single_node()
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
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(exc.msg, file=file, line=exc.lineno, column=exc.colno, syntax="JSON") from None
    try:
        return yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, file) from None


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
