"""Edits the editor makes to workflow text: a task from the task builder inserted under `tasks:`, with the
inputs it reads declared under `inputs:`; every other line is kept as it was, comments included."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .samples import sample_value
from .tasks import schema_modeline
from .templating import is_template, references
from .workflow import Workflow
from .yamlsource import dump_yaml, parse_source

__all__ = ["Inserted", "input_names", "insert_task", "sample_inputs"]

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(.*)$")
# The keywords of a field's schema worth carrying into a workflow input: what checks a value, not prose.
_INPUT_KEYWORDS = (
    "type",
    "format",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "minItems",
    "maxItems",
    "examples",
)


@dataclass(frozen=True)
class Inserted:
    """Workflow text with a task inserted, the id the task got, and the inputs that were declared for it."""

    text: str
    task_id: str
    declared: tuple[str, ...]


def input_names(task: Mapping[str, Any]) -> list[str]:
    """The `input.NAME` names the templates of `task` read, in order of first use."""
    names: list[str] = []
    for source in _templates(task):
        for path in references(source):
            if len(path) >= 2 and path[0] == "input" and isinstance(path[1], str) and path[1] not in names:
                names.append(path[1])
    return names


def _templates(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if is_template(value) else []
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _templates(item)]
    if isinstance(value, list):
        return [t for item in value for t in _templates(item)]
    return []


def sample_inputs(workflow: Workflow) -> dict[str, Any]:
    """A sample value for every input the workflow requires (those with a default are left to it)."""
    return {name: sample_value(schema) for name, schema in workflow.inputs.items() if "default" not in schema}


def insert_task(text: str, task: Mapping[str, Any], input_schemas: Mapping[str, Any]) -> Inserted:
    """`text` with `task` appended to its `tasks:` list under an id no other task has, and an input declared
    for every `input.NAME` the task reads that the workflow lacks (schema from `input_schemas`, else any).

    Empty text becomes a new workflow. Text that does not parse, or a `tasks:` or `inputs:` written in flow
    style with content (`tasks: [...]`), raises `UsageError` saying what to do: the edit is line-based so
    that comments and layout survive.
    """
    if not text.strip():
        text = f"{schema_modeline('workflow')}\nname: my-workflow\ntasks: []\n"
    data = _parsed(text)
    tasks = data.get("tasks")
    existing = {t.get("id") for t in tasks if isinstance(t, dict)} if isinstance(tasks, list) else set()
    task_id = _unique(str(task.get("id") or "task"), existing)
    declared = data.get("inputs")
    missing = [name for name in input_names(task) if not isinstance(declared, dict) or name not in declared]
    lines = text.splitlines()
    lines = _append_to_block(lines, "tasks", _task_lines({**task, "id": task_id}), item=True)
    if missing:
        entries = [f"{name}: {_flow(_input_schema(input_schemas.get(name)))}" for name in missing]
        lines = _append_to_block(lines, "inputs", entries, item=False, before="tasks")
    result = "\n".join(lines) + "\n"
    _parsed(result)
    return Inserted(result, task_id, tuple(missing))


def _parsed(text: str) -> dict[str, Any]:
    source = parse_source(text, "the workflow")
    if not isinstance(source.data, dict):
        raise UsageError("The workflow is not a mapping of name, inputs, tasks and outputs; fix it first.")
    return source.data


def _unique(base: str, taken: set[Any]) -> str:
    if base not in taken:
        return base
    number = 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def _input_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        return {}
    return {key: schema[key] for key in _INPUT_KEYWORDS if key in schema}


def _flow(value: Any) -> str:
    """`value` on one line; JSON is YAML's flow style."""
    return json.dumps(value, ensure_ascii=False)


def _task_lines(task: Mapping[str, Any]) -> list[str]:
    return dump_yaml([dict(task)]).splitlines()


def _append_to_block(
    lines: list[str], key: str, entries: list[str], *, item: bool, before: str = ""
) -> list[str]:
    """`entries` (written for indent 0) added at the end of the top-level `key:` block, indented like its
    children; a block that is absent is added before the top-level `before:` key, or at the end."""
    start = _top_key_line(lines, key)
    if start is None:
        at = _top_key_line(lines, before) if before else None
        block = [f"{key}:", *("  " + e for e in entries)]
        return lines + block if at is None else [*lines[:at], *block, *lines[at:]]
    inline = _TOP_KEY.match(lines[start])
    assert inline is not None
    value = inline.group(2).split("#", 1)[0].strip()
    if value in ("[]", "{}"):
        lines = [*lines[:start], f"{key}:", *lines[start + 1 :]]
    elif value:
        raise UsageError(
            f"line {start + 1}: '{key}:' is written in flow style, on one line; write it as a block "
            "(one entry per line) so the editor can add to it."
        )
    end = start + 1
    last = start
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if not line[0].isspace() and not (item and line.startswith("-")):
                break
            last = end
        end += 1
    indent = _child_indent(lines[start + 1 : last + 1], item)
    return [*lines[: last + 1], *(indent + e for e in entries), *lines[last + 1 :]]


def _top_key_line(lines: list[str], key: str) -> int | None:
    for number, line in enumerate(lines):
        match = _TOP_KEY.match(line)
        if match is not None and match.group(1) == key:
            return number
    return None


def _child_indent(children: list[str], item: bool) -> str:
    for line in children:
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#") and (stripped.startswith("-") or not item):
            return line[: len(line) - len(stripped)]
    return "  "
