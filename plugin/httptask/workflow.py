"""YAML workflows: the model, loading with line numbers, and the order tasks may run in.

A workflow has `name`, `inputs` (each a JSON Schema), `tasks` (task definitions plus `needs` and `forEach`)
and `outputs` (templates over `input` and `tasks.ID.response`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Issue, TaskError, WorkflowInvalid
from .tasks import Task, parse_task, schema
from .yamlsource import Source, load_source, parse_source

__all__ = ["Workflow", "load_workflow", "parse_workflow", "topological_order"]


@dataclass(frozen=True)
class Workflow:
    name: str
    tasks: tuple[Task, ...]
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: Source | None = None

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def inputs_schema(self) -> dict[str, Any]:
        """One JSON Schema for the inputs object: every input without a default is required."""
        return {
            "type": "object",
            "properties": self.inputs,
            "required": [name for name, s in self.inputs.items() if "default" not in s],
        }

    def with_defaults(self, given: dict[str, Any]) -> dict[str, Any]:
        values = {name: s["default"] for name, s in self.inputs.items() if "default" in s}
        values.update(given)
        return values

    def line(self, path: str) -> int | None:
        return self.source.line(path) if self.source is not None else None


def parse_workflow(source: Source) -> Workflow:
    """Check the document against the workflow schema and build the model; problems carry file and line."""
    from .validation import validate_instance

    data = source.data
    issues = validate_instance(data, _document_schema())
    tasks: list[Task] = []
    raw_tasks = data.get("tasks") if isinstance(data, dict) else None
    for index, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        # Each task is checked on its own so its issues carry its path (`$.tasks[1].retry`).
        try:
            tasks.append(parse_task(raw, source=source, root=f"$.tasks[{index}]"))
        except TaskError as exc:
            issues.extend(exc.issues)
    if not issues:
        seen: dict[str, int] = {}
        for index, task in enumerate(tasks):
            if task.id in seen:
                repeated = f"repeats the task id {task.id!r} of tasks[{seen[task.id]}]"
                issues.append(Issue(f"$.tasks[{index}].id", repeated, actual=task.id))
            seen.setdefault(task.id, index)
    if issues:
        issues = [
            Issue(i.path, i.message, i.expected, i.actual, i.line or source.line(i.path)) for i in issues
        ]
        raise WorkflowInvalid(source.file, issues)
    return Workflow(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        inputs=dict(data.get("inputs") or {}),
        tasks=tuple(tasks),
        outputs=dict(data.get("outputs") or {}),
        source=source,
    )


def _document_schema() -> dict[str, Any]:
    """The workflow schema with its tasks taken as plain objects: its `$ref` to the task schema is for
    editors, and resolving it here would need a registry; `parse_task` checks each task instead."""
    document = schema("workflow")
    properties = dict(document["properties"])
    properties["tasks"] = {**properties["tasks"], "items": {"type": "object"}}
    return {**document, "properties": properties}


def load_workflow(path: Path) -> Workflow:
    return parse_workflow(load_source(path))


def parse_workflow_text(text: str, file: str = "<workflow>") -> Workflow:
    return parse_workflow(parse_source(text, file))


def topological_order(workflow: Workflow) -> list[str] | list[Issue]:
    """Task ids in an order that respects `needs`, or the issues (unknown task, cycle) that prevent one."""
    issues = []
    index = {task.id: i for i, task in enumerate(workflow.tasks)}
    for i, task in enumerate(workflow.tasks):
        for j, need in enumerate(task.needs):
            if need not in index:
                path = f"$.tasks[{i}].needs[{j}]"
                issues.append(Issue(path, f"names no task of this workflow: {need!r}", actual=need,
                                    line=workflow.line(path)))
    if issues:
        return issues
    order: list[str] = []
    state: dict[str, str] = {}
    for task in workflow.tasks:
        if task.id in state:
            continue
        # A depth-first walk with its own stack: a chain of thousands of `needs` is no recursion.
        state[task.id] = "visiting"
        trail = [task.id]
        pending = [iter(task.needs)]
        while pending:
            needed = next(pending[-1], None)
            if needed is None:
                pending.pop()
                done = trail.pop()
                state[done] = "done"
                order.append(done)
            elif state.get(needed) == "visiting":
                cycle = [*trail[trail.index(needed) :], needed]
                path = f"$.tasks[{index[needed]}].needs"
                issues.append(Issue(path, f"forms a cycle: {' -> '.join(cycle)}", line=workflow.line(path)))
            elif needed not in state:
                state[needed] = "visiting"
                trail.append(needed)
                pending.append(iter(workflow.tasks[index[needed]].needs))
    return issues if issues else order
