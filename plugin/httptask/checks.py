"""Check a workflow without sending anything: operations, templates, references, `needs` and literal values.

Every problem is an `Issue` with the JSON path and line of the field it is about, so `httptask validate`
and the editor can point at it.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .catalog import Catalog
from .errors import (
    CredentialsError,
    Issue,
    SourceError,
    TaskError,
    TemplateError,
    UnknownOperation,
    UsageError,
    child_path,
)
from .tasks import SECRET_PARTS, Task
from .templating import NOT_CONSTANT, check_template, constant, expression_path, is_template, references
from .workflow import Workflow, parse_workflow, topological_order
from .yamlsource import Source, parse_source

if TYPE_CHECKING:
    from .spec import Operation

__all__ = ["check_source", "check_workflow", "check_workflow_text", "syntax_issue", "template_leaves"]

_RESPONSE_PARTS = ("status", "headers", "body")
# Where validation puts each part of a request, and where the task holds it.
_LOCATIONS = {
    "$.server": "server",
    "$.path": "request.path",
    "$.query": "request.query",
    "$.headers": "request.headers",
    "$.body": "request.body",
}


def check_source(source: Source, catalog: Catalog) -> tuple[Workflow | None, list[Issue]]:
    """What `httptask validate` and the editor's validate check: the parsed workflow (None when it does not
    fit the workflow schema) and every problem with it, as issues with lines; an empty list means valid."""
    try:
        workflow = parse_workflow(source)
    except TaskError as exc:
        return None, exc.issues
    return workflow, check_workflow(workflow, catalog)


def check_workflow_text(text: str, catalog: Catalog, file: str = "<editor>") -> list[Issue]:
    """Every problem with workflow YAML text, syntax errors included, as issues with lines."""
    try:
        source = parse_source(text, file)
    except UsageError as exc:
        return [syntax_issue(exc)]
    return check_source(source, catalog)[1]


def syntax_issue(error: UsageError) -> Issue:
    """A YAML syntax or read error as an issue at `$`, with the line the parser stopped at."""
    if isinstance(error, SourceError) and error.line is not None:
        return Issue("$", error.detail, line=error.line)
    return Issue("$", error.message)


def check_workflow(workflow: Workflow, catalog: Catalog) -> list[Issue]:
    """Every problem with a parsed workflow, in file order; an empty list means it is valid."""
    order = topological_order(workflow)
    issues = [item for item in order if isinstance(item, Issue)]
    ancestors = _ancestors(workflow)
    for index, task in enumerate(workflow.tasks):
        root = f"$.tasks[{index}]"
        issues += _task_issues(workflow, catalog, task, root, ancestors[task.id])
    every_task = {task.id for task in workflow.tasks}
    for name, value in workflow.outputs.items():
        for path, source in template_leaves(value, child_path("$.outputs", name)):
            issues += _template_issues(workflow, source, path, None, every_task, allow_item=False)
    for name, spec in workflow.inputs.items():
        if "default" in spec:
            issues += _default_issues(name, spec)
    located = [
        Issue(i.path, i.message, i.expected, i.actual, i.line or workflow.line(i.path)) for i in issues
    ]
    return sorted(located, key=lambda issue: (issue.line or 0, issue.path))


def template_leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(JSON path, source) of every template string inside `value`, walking dicts and lists."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_leaves(item, child_path(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_leaves(item, child_path(path, index))


def _task_parts(task: Task, root: str) -> Iterator[tuple[str, Any, bool]]:
    """(JSON path, value, whether it may hold a secret) of each templated part of a task, as the task file
    spells it."""
    for part, value in task.templates.items():
        yield f"{root}.{part}", value, part in SECRET_PARTS


class _Ancestors(Container[str]):
    """The tasks one task needs, directly or via others, as a bit set over the workflow's task order: a chain
    of thousands of tasks costs a few machine words per task, not a set of thousands."""

    def __init__(self, mask: int, index: Mapping[str, int]) -> None:
        self._mask = mask
        self._index = index

    def __contains__(self, task_id: object) -> bool:
        position = self._index.get(task_id) if isinstance(task_id, str) else None
        return position is not None and bool(self._mask >> position & 1)


def _ancestors(workflow: Workflow) -> dict[str, _Ancestors]:
    """Every task each task needs, directly or via others; cycles and unknown ids are reported elsewhere (a
    need that closes a cycle is left out)."""
    index = {task.id: i for i, task in enumerate(workflow.tasks)}
    needs = {task.id: [need for need in task.needs if need in index] for task in workflow.tasks}
    masks: dict[str, int] = {}
    for start in needs:
        if start in masks:
            continue
        # Depth-first, without recursion: a task's mask is made once every need's mask is known.
        active = {start}
        stack = [(start, iter(needs[start]))]
        while stack:
            task_id, pending = stack[-1]
            need = next(pending, None)
            if need is None:
                stack.pop()
                active.discard(task_id)
                masks[task_id] = 0
                for done in needs[task_id]:
                    if done in masks:
                        masks[task_id] |= 1 << index[done] | masks[done]
            elif need not in masks and need not in active:
                active.add(need)
                stack.append((need, iter(needs[need])))
    return {task_id: _Ancestors(mask, index) for task_id, mask in masks.items()}


def _task_issues(
    workflow: Workflow, catalog: Catalog, task: Task, root: str, ancestors: Container[str]
) -> list[Issue]:
    issues: list[Issue] = []
    for part, value, secrets_allowed in _task_parts(task, root):
        for path, source in template_leaves(value, part):
            issues += _template_issues(
                workflow,
                source,
                path,
                task,
                ancestors,
                allow_item=task.for_each is not None,
                secrets_allowed=secrets_allowed,
            )
    if task.for_each is not None:
        path = f"{root}.forEach"
        found = _template_issues(workflow, task.for_each, path, task, ancestors, allow_item=False)
        issues += found or _for_each_issues(workflow, task.for_each, path)
    if task.operation is not None:
        try:
            op = catalog.operation(task.operation)
        except UnknownOperation as exc:
            hint = f" Did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
            issues.append(
                Issue(
                    f"{root}.operation",
                    f"names no operation in the catalog: {task.operation!r}.{hint} "
                    "Run 'httptask catalog search WORDS' to find one.",
                    actual=task.operation,
                )
            )
            return issues
        issues += _literal_issues(op, task, root)
        issues += _credential_issues(op, task, root)
    return issues


def _template_issues(
    workflow: Workflow,
    source: str,
    path: str,
    task: Task | None,
    allowed_tasks: Container[str],
    *,
    allow_item: bool,
    secrets_allowed: bool = False,
) -> list[Issue]:
    task_id = task.id if task is not None else "outputs"
    try:
        check_template(source, task_id=task_id, field_path=path, secrets_allowed=secrets_allowed)
    except TemplateError as exc:
        return [Issue(path, exc.problem, actual=source)]
    issues = []
    for ref in references(source):
        problem = _reference_problem(workflow, ref, task, allowed_tasks, allow_item)
        if problem is not None:
            issues.append(Issue(path, problem, actual=source))
    return issues


def _for_each_issues(workflow: Workflow, source: str, path: str) -> list[Issue]:
    """A forEach that cannot give a list: plain text, a constant that is not a list, or an input declared
    as something else."""
    example = "e.g. '{{ input.refunds }}'"
    if not is_template(source):
        return [Issue(path, f"must be a template giving a list, {example}", actual=source)]
    value = constant(source)
    if value is not NOT_CONSTANT and not isinstance(value, list | tuple):
        return [Issue(path, f"gives {type(value).__name__}, not a list; forEach needs a list, {example}",
                      actual=source)]
    ref = expression_path(source)
    if ref is not None and len(ref) == 2 and ref[0] == "input":
        declared = workflow.inputs.get(str(ref[1]), {}).get("type")
        types = declared if isinstance(declared, list) else [declared]
        if declared is not None and "array" not in types:
            return [Issue(path, f"reads input.{ref[1]}, which is declared as {declared}, not a list (array); "
                          "forEach needs a list", actual=source)]
    return []


def _reference_problem(
    workflow: Workflow,
    ref: tuple[str | int, ...],
    task: Task | None,
    allowed_tasks: Container[str],
    allow_item: bool,
) -> str | None:
    name = ref[0]
    if name == "input":
        if len(ref) > 1 and ref[1] not in workflow.inputs:
            known = ", ".join(sorted(workflow.inputs)) or "none"
            return (f"reads input.{ref[1]}, which is not an input of this workflow (its inputs: {known}); "
                    "declare it under inputs")
        return None
    if name == "item":
        if allow_item:
            return None
        return ("reads item, which only a task with forEach has; "
                "add forEach to the task or read input or tasks instead")
    if name == "tasks":
        if len(ref) < 2:
            return "reads tasks as a whole; name a task, e.g. tasks.ID.response.body"
        other = str(ref[1])
        referenced = workflow.task(other)
        if referenced is None:
            known = ", ".join(t.id for t in workflow.tasks)
            return f"reads tasks.{other}, which is not a task of this workflow (its tasks: {known})"
        if other not in allowed_tasks:
            this = task.id if task is not None else "this task"
            return f"reads tasks.{other}, which may not have run yet; add {other!r} to the needs of {this}"
        if len(ref) >= 3 and isinstance(ref[2], int) and referenced.for_each is not None:
            # A forEach task's result is a list of {item, response}: one of them is read by its number.
            if len(ref) >= 4 and ref[3] == "item":
                return None
            ref = (*ref[:2], *ref[3:])
        if len(ref) >= 3 and ref[2] != "response":
            return (f"reads tasks.{other}.{ref[2]}; a task's result is tasks.{other}.response.status, "
                    ".headers or .body")
        if len(ref) >= 4 and ref[3] not in _RESPONSE_PARTS:
            return (
                f"reads tasks.{other}.response.{ref[3]}; a response has status, headers and body, "
                f"e.g. tasks.{other}.response.body.{ref[3]}"
            )
        return None
    return (
        f"reads {name!r}, which templates do not know; use input, tasks, item (in a forEach task), "
        "now(), uuid() or secret('NAME')"
    )


def _default_issues(name: str, spec: dict[str, Any]) -> list[Issue]:
    from .validation import validate_instance

    root = child_path(child_path("$.inputs", name), "default")
    return [
        Issue(i.path, f"the default {i.message}", i.expected, i.actual)
        for i in validate_instance(spec["default"], spec, root=root)
    ]


_DROPPED = object()


def _literal(value: Any, path: str, templated: set[str]) -> Any:
    """`value` without its templated leaves (a list holding one is dropped whole), recording their paths."""
    if isinstance(value, str) and is_template(value):
        templated.add(path)
        return _DROPPED
    if isinstance(value, dict):
        kept = {key: _literal(item, child_path(path, str(key)), templated) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not _DROPPED}
    if isinstance(value, list) and any(True for _ in template_leaves(value, path)):
        templated.add(path)
        return _DROPPED
    return value


def _literal_issues(op: Operation, task: Task, root: str) -> list[Issue]:
    """Check the task's literal values by the request rules and the spec; a templated value is unknown until
    run time."""
    from .requests import build_values, choose_server, header_issues, path_issues, server_variables
    from .validation import validate_values

    templated: set[str] = set()
    literal_server = _literal(dict(task.server), "$.server", templated)
    chosen, issues = choose_server(op, literal_server)
    literal_headers = _literal({k.lower(): v for k, v in task.headers.items()}, "$.headers", templated)
    body = _literal(task.body, "$.body", templated) if task.has_body else None
    has_body = task.has_body and body is not _DROPPED
    values = build_values(
        op,
        server={k: str(v) for k, v in server_variables(literal_server).items()},
        path=_literal(task.path, "$.path", templated),
        query=_literal(task.query, "$.query", templated),
        headers=literal_headers,
        body=body if has_body else None,
        has_body=has_body,
    )
    issues += path_issues(values.path) + header_issues(values.headers) + validate_values(op, values, chosen)
    return [
        Issue(_task_path(issue.path, task, root), issue.message, issue.expected, issue.actual)
        for issue in issues
        if not any(issue.path == t or issue.path.startswith((t + ".", t + "[")) for t in templated)
    ]


def _task_path(path: str, task: Task, root: str) -> str:
    """A request path (`$.headers.content-type`) as the task's field path, in the task's own spelling."""
    for prefix, part in _LOCATIONS.items():
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            rest = path[len(prefix) :]
            if prefix == "$.headers" and rest:
                spelled = {name.lower(): name for name in task.headers}
                name = rest[1:] if rest.startswith(".") else rest.strip("[]'\"")
                return child_path(f"{root}.{part}", spelled.get(name, name))
            return f"{root}.{part}{rest}"
    return root + path[1:]


def _credential_issues(op: Operation, task: Task, root: str) -> list[Issue]:
    from .auth import auth_parts

    if task.credentials is None:
        return []
    try:
        # A placeholder stands in for each secret: only the credentials' shape is checked here.
        auth_parts(op, task.credentials, lambda name: name, task_id=task.id)
    except CredentialsError as exc:
        return [Issue(f"{root}.credentials", exc.problem)]
    return []
