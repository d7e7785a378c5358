"""What a run would send, worked out before it sends anything: every task whose values depend only on the
workflow's inputs (and `item`) is rendered and validated for every item; a task that reads earlier responses
cannot be planned and says which. A run checks its plan first and sends nothing if an item is invalid.

An operation may mark where its request carries money with `x-amount`:

    x-amount: {amount: $.body.amount.value, currency: $.body.amount.currency, unit: minor}

`amount` and `currency` are paths in the request's values (path, query, headers, body); without `currency`
the amount is in the currency of the resource it applies to (an invoice's, a credit note's). `unit` is
`minor` (cents) or `major`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .catalog import Catalog
from .drafts import Drafts
from .errors import HttptaskError, Issue, RequestInvalid, TaskError
from .execute import Prepared, TaskPlan
from .items import direct_items
from .secrets import SecretStore
from .tasks import Task
from .templating import base_context, references, render_value
from .workflow import Workflow, topological_order

__all__ = ["RUN_TIME_KEY", "Plan", "PlanInvalid", "PlannedRequest", "PlannedTask", "plan_workflow"]

# What a planned request shows for a key the run derives from its run id, not yet known.
RUN_TIME_KEY = "<derived at run time>"


@dataclass(frozen=True)
class PlannedRequest:
    """One request a run would send, redacted; `amount` as (currency or None, unit, value) where marked."""

    item: int | None
    request: dict[str, Any]
    idempotent: bool
    amount: tuple[str | None, str, Decimal] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"item": self.item, "request": self.request, "idempotent": self.idempotent}
        if self.amount is not None:
            currency, unit, value = self.amount
            data["amount"] = {"currency": currency, "unit": unit, "value": str(value)}
        return data


@dataclass(frozen=True)
class PlannedTask:
    """A task's planned requests and invalid items, or why it cannot be planned (`depends_on`)."""

    task_id: str
    operation: str | None
    requests: list[PlannedRequest] = field(default_factory=list)
    problems: list[tuple[int | None, list[Issue]]] = field(default_factory=list)
    depends_on: tuple[str, ...] = ()

    @property
    def plannable(self) -> bool:
        return not self.depends_on

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "operation": self.operation,
            "plannable": self.plannable,
            "depends_on": list(self.depends_on),
            "requests": [r.to_dict() for r in self.requests],
            "invalid": [
                {"item": item, "issues": [i.to_dict() for i in issues]} for item, issues in self.problems
            ],
        }


@dataclass(frozen=True)
class Plan:
    workflow: str
    tasks: list[PlannedTask]

    @property
    def problems(self) -> list[tuple[str, int | None, Issue]]:
        return [
            (t.task_id, item, issue) for t in self.tasks for item, issues in t.problems for issue in issues
        ]

    def totals(self) -> dict[tuple[str | None, str], Decimal]:
        """The planned amounts summed per (currency, unit); None is the currency of each resource."""
        sums: dict[tuple[str | None, str], Decimal] = {}
        for task in self.tasks:
            for request in task.requests:
                if request.amount is not None:
                    currency, unit, value = request.amount
                    sums[(currency, unit)] = sums.get((currency, unit), Decimal(0)) + value
        return sums

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "tasks": [t.to_dict() for t in self.tasks],
            "requests": sum(len(t.requests) for t in self.tasks),
            "not_idempotent": sum(not r.idempotent for t in self.tasks for r in t.requests),
            "totals": [
                {"currency": currency, "unit": unit, "value": str(value)}
                for (currency, unit), value in sorted(self.totals().items(), key=_by_currency)
            ],
            "invalid": [
                {"task": task_id, "item": item, **issue.to_dict()} for task_id, item, issue in self.problems
            ],
        }


def _by_currency(total: tuple[tuple[str | None, str], Decimal]) -> tuple[bool, str, str]:
    """Named currencies first, alphabetically; then amounts in each resource's own currency."""
    (currency, unit), _ = total
    return currency is None, currency or "", unit


class PlanInvalid(TaskError):
    """Items that would not be sent as written; the run sends nothing."""

    def __init__(self, plan: Plan) -> None:
        problems = plan.problems
        lines = "\n".join(
            f"  task {task_id}{'' if item is None else f', item {item}'}: {issue}"
            for task_id, item, issue in problems
        )
        count = len({(task_id, item) for task_id, item, _ in problems})
        super().__init__(
            f"{count} request{'s' if count != 1 else ''} of the workflow {plan.workflow!r} would not be "
            f"valid, so nothing was sent:\n{lines}",
            issues=[issue for _, _, issue in problems],
        )
        self.plan = plan


def plan_workflow(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    catalog: Catalog,
    secrets: SecretStore,
    sandbox_url: str | None = None,
    keep_requests: bool = True,
    drafts: Drafts | None = None,
) -> Plan:
    """Every request the run would send where that is known before it starts (inputs checked already).
    Without `keep_requests` only the problems are kept, so a check of a large fan-out holds no request; with
    `drafts` too, it keeps what it made of a forEach's items there for the run (as far as they fit)."""
    order = topological_order(workflow)
    tasks = [t for t in (workflow.task(str(i)) for i in order) if t is not None] or list(workflow.tasks)
    planned = []
    for task in tasks:
        depends = _responses_read(task)
        if depends:
            planned.append(PlannedTask(task.id, task.operation, depends_on=depends))
        else:
            planned.append(_plan_task(task, inputs, catalog, secrets, sandbox_url, keep_requests, drafts))
    return Plan(workflow.name, planned)


def _responses_read(task: Task) -> tuple[str, ...]:
    """The tasks whose responses `task`'s templates read."""
    sources = [task.for_each] if task.for_each else []
    sources += [source for value in task.templates.values() for source in _strings(value)]
    read = [
        path[1] for source in sources for path in references(source) if path[0] == "tasks" and len(path) > 1
    ]
    return tuple(dict.fromkeys(str(name) for name in read))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _plan_task(
    task: Task,
    inputs: Mapping[str, Any],
    catalog: Catalog,
    secrets: SecretStore,
    sandbox_url: str | None,
    keep_requests: bool,
    drafts: Drafts | None = None,
) -> PlannedTask:
    items: Iterable[tuple[int | None, Any]] = [(None, None)]
    direct = direct_items(task.for_each, inputs) if task.for_each is not None else None
    if direct is not None:  # an items file read as the plan goes, or the input's list: never a copy
        items = enumerate(direct)
    elif task.for_each is not None:
        try:
            values = render_value(
                task.for_each,
                base_context(inputs=inputs, secrets=secrets),
                task_id=task.id,
                field_path="forEach",
            )
        except HttptaskError as exc:
            return PlannedTask(task.id, task.operation, problems=[(None, _issues(exc, "$.forEach", secrets))])
        if not isinstance(values, list):
            shown = secrets.redactor.redact(_short(values))
            issue = Issue("$.forEach", f"gives {type(values).__name__}, not a list: {shown}")
            return PlannedTask(task.id, task.operation, problems=[(None, [issue])])
        items = enumerate(values)
    requests, problems = [], []
    plan = TaskPlan(
        task,
        inputs=inputs,
        catalog=catalog,
        secrets=secrets,
        sandbox_url=sandbox_url,
        varying=("item",) if task.for_each is not None else (),
    )
    key = _run_time_key(task, catalog)
    # The input's own list is what the run acts on: what is made of its items here is kept for the run.
    drafting = drafts is not None and not keep_requests and isinstance(direct, list) and plan.draftable
    if drafting:
        assert drafts is not None and isinstance(direct, list)
        drafts.begin(task.id, plan, direct)
    for index, item in items:
        names = {"item": item} if task.for_each is not None else None
        try:
            if drafting:
                assert drafts is not None
                drafting = drafts.keep(task.id, plan.draft(names))
                continue
            if not keep_requests:
                plan.check(names)  # every problem `prepare` finds, without the request it would make
                continue
            prepared = plan.prepare(names, idempotency_key=key)
        except HttptaskError as exc:
            problems.append((index, _issues(exc, "$", secrets)))
            continue
        requests.append(
            PlannedRequest(index, prepared.redacted_request(), prepared.idempotent, _amount(prepared))
        )
    return PlannedTask(task.id, task.operation, requests, problems)


def _run_time_key(task: Task, catalog: Catalog) -> str | None:
    """The placeholder for a key the run derives, where the operation takes a key the task does not give."""
    if task.operation is None or task.idempotency_key:
        return None
    return RUN_TIME_KEY if catalog.operation(task.operation).idempotency_header else None


def _issues(exc: HttptaskError, root: str, secrets: SecretStore) -> list[Issue]:
    """The problems, redacted: a value that breaks a schema may hold a secret rendered into it."""
    redact = secrets.redactor
    if isinstance(exc, RequestInvalid | TaskError) and exc.issues:
        return [
            dataclasses.replace(i, message=redact.redact(i.message), actual=redact.redact_value(i.actual))
            for i in exc.issues
        ]
    return [Issue(root, redact.redact(str(exc)))]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _amount(prepared: Prepared) -> tuple[str | None, str, Decimal] | None:
    op, values = prepared.operation, prepared.values
    if op is None or values is None or not op.amount:
        return None
    data = values.to_dict()
    raw = _at(data, str(op.amount.get("amount", "")))
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    currency = _at(data, str(op.amount["currency"])) if op.amount.get("currency") else None
    return (str(currency).lower() if currency else None, str(op.amount.get("unit", "major")), value)


def _at(data: Any, path: str) -> Any:
    for name in path.removeprefix("$.").split("."):
        if not isinstance(data, Mapping) or name not in data:
            return None
        data = data[name]
    return data
