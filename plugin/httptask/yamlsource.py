"""Read YAML or JSON definitions keeping the line of every value, so errors can say `file:line`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError, child_path

__all__ = ["Source", "load_source", "parse_source"]


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
    """Parse YAML (JSON is YAML too); a syntax error names the file, line and column."""
    loader = None
    try:
        # The reader checks characters as the loader is made: a control character fails here.
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file
        raise UsageError(f"{where}: invalid YAML: {exc.problem}. Fix the syntax and try again.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{file}: invalid YAML: {exc}.") from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "$", lines)
    return Source(data=data, file=file, lines=lines)


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
