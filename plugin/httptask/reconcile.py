"""Settling a request of unknown outcome by asking the server: the `x-reconcile` extension of an operation
names a read operation of the same document, and where in its answer the request shows once it was acted on.

    x-reconcile:
      operation: retrieve_invoice                    # an operationId of the same document; a GET
      request:                                       # the read's path, query and header values
        path: {invoice-id: "{{ sent.path['invoice-id'] }}"}
      items: $.invoice.linked_transactions[*]        # where the candidates are; [*] takes every element
      match:                                         # a candidate is the request when every field is equal
        txn_type: refund
        txn_amount: "{{ sent.body.transaction.amount }}"
        txn_date: "{{ sent.body.transaction.date }}"

Templates see `sent`: the unknown request's values (`path`, `query`, `headers`, `body`), as validated before
it was sent. The answer decides: a candidate that matches means it was received; a well-formed answer with no
match means it was not; anything else (an error status, an answer of another shape, a value to match that
the request did not carry) decides nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import HttptaskError, Issue, TemplateError
from .execute import Prepared, send_prepared
from .messages import HttpResponse, RequestValues
from .spec import Operation
from .tasks import Task
from .templating import base_context, render_value
from .transport import Sender

__all__ = [
    "Reconcile",
    "Verdict",
    "check_reconcile",
    "iter_reads",
    "judge",
    "match_values",
    "placed",
    "read_task",
    "reconcile_of",
    "sent_context",
    "settle",
]

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)(\[\*\])?")
_PARTS = ("path", "query", "headers")


@dataclass(frozen=True)
class Reconcile:
    """An operation's `x-reconcile`: the read to send and how to find the request in its answer."""

    operation: str  # the read's catalog id
    request: dict[str, dict[str, Any]]
    items: tuple[tuple[str, bool], ...]  # (field, every element of a list) from `$.a.b[*]`
    match: dict[str, Any]
    items_text: str


@dataclass(frozen=True)
class Verdict:
    """`received`: True (found), False (a well-formed answer without it) or None (undecided: `reason` says
    why); `evidence` is what the decision rests on, as journaled."""

    received: bool | None
    reason: str
    evidence: dict[str, Any]


def reconcile_of(op: Operation) -> Reconcile | None:
    """The operation's `x-reconcile`, or None; `ValueError` with every problem when it is malformed."""
    raw = op.reconcile
    if raw is None:
        return None
    issues = check_reconcile(op)
    if issues:
        raise ValueError("; ".join(str(issue) for issue in issues))
    return Reconcile(
        operation=f"{op.api}.{raw['operation']}",
        request={part: dict(raw.get("request", {}).get(part) or {}) for part in _PARTS},
        items=tuple(_steps(str(raw["items"]))),
        match=dict(raw["match"]),
        items_text=str(raw["items"]),
    )


def check_reconcile(op: Operation, read: Operation | None = None) -> list[Issue]:
    """What is wrong with `op`'s `x-reconcile` (empty when it is usable); `read` is the operation it names,
    when the caller has looked it up, to check that it reads."""
    raw = op.reconcile
    root = "$.x-reconcile"
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [Issue(root, "must be a mapping with operation, items and match", actual=raw)]
    issues = []
    if not isinstance(raw.get("operation"), str) or not raw["operation"]:
        issues.append(Issue(f"{root}.operation", "must name an operationId of the same document"))
    elif read is not None and read.method != "GET":
        issues.append(
            Issue(f"{root}.operation", f"names {read.id}, a {read.method}: a reconciling read is a GET")
        )
    request = raw.get("request", {})
    if not isinstance(request, dict) or any(part not in _PARTS for part in request):
        issues.append(Issue(f"{root}.request", "may only hold path, query and headers", actual=request))
    items = raw.get("items")
    if not isinstance(items, str) or not items.startswith("$.") or not _steps(items):
        issues.append(Issue(f"{root}.items", "must be a path such as $.list[*].refund", actual=items))
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        issues.append(Issue(f"{root}.match", "must map one or more fields of a candidate to their values"))
    return issues


def _steps(path: str) -> list[tuple[str, bool]]:
    steps = []
    for part in path.removeprefix("$.").split("."):
        found = _STEP.fullmatch(part)
        if found is None:
            return []
        steps.append((found.group(1), bool(found.group(2))))
    return steps


def _sent(values: RequestValues) -> dict[str, Any]:
    return {"path": values.path, "query": values.query, "headers": values.headers, "body": values.body}


def read_task(rec: Reconcile, task: Task) -> Task:
    """The read for one request of `task`: the task's server and credentials, the read's operation, and its
    values as templates that see `sent` (pass it with `extra` when preparing)."""
    return dataclasses.replace(
        task,
        id=f"{task.id}.reconcile",
        operation=rec.operation,
        path=rec.request["path"],
        query=rec.request["query"],
        headers=rec.request["headers"],
        body=None,
        has_body=False,
        idempotency_key=None,
        http_request=None,
        for_each=None,
        needs=(),
    )


def sent_context(values: RequestValues) -> dict[str, Any]:
    """The `extra` names a read's templates see."""
    return {"sent": _sent(values)}


def match_values(rec: Reconcile, values: RequestValues, *, task_id: str) -> dict[str, Any]:
    """The field values a candidate must have to be the request sent with `values`."""
    context = base_context(inputs={}, extra=sent_context(values))
    return {
        field: render_value(template, context, task_id=task_id, field_path=f"x-reconcile.match.{field}")
        for field, template in rec.match.items()
    }


def judge(rec: Reconcile, values: RequestValues, answer: HttpResponse, *, task_id: str) -> Verdict:
    """Whether the request sent with `values` shows in `answer`, the read's response."""
    evidence: dict[str, Any] = {"read": rec.operation, "url": answer.url, "status": answer.status}
    try:
        wanted = match_values(rec, values, task_id=task_id)
    except TemplateError as exc:
        return Verdict(None, f"the request carries no value to match on ({exc.problem})", evidence)
    missing = sorted(field for field, value in wanted.items() if value is None or value == "")
    if missing:
        return Verdict(None, f"the request carries no value for {', '.join(missing)} to match on", evidence)
    evidence["match"] = wanted
    if not answer.ok:
        return Verdict(None, f"the read answered {answer.status}", evidence)
    body = answer.body()
    candidates = _candidates(body, rec.items)
    if candidates is None:
        return Verdict(None, f"the answer has no {rec.items_text}", evidence)
    found = [c for c in candidates if all(_equal(_field(c, k), v) for k, v in wanted.items())]
    evidence["candidates"] = len(candidates)
    evidence["matches"] = len(found)
    if found:
        evidence["found"] = found[0]
        return Verdict(True, f"found in {rec.items_text}", evidence)
    return Verdict(False, f"not among the {len(candidates)} in {rec.items_text}", evidence)


async def settle(
    rec: Reconcile,
    task: Task,
    values: RequestValues,
    *,
    prepare_read: Callable[[Task, Mapping[str, Any]], Prepared],
    sender: Sender,
) -> Verdict:
    """Send the read for the request of `task` sent with `values`, and judge its answer. `prepare_read`
    prepares a task as the engine prepares the refund's own (inputs, item, earlier responses), with extra
    names for the templates."""
    read = read_task(rec, task)
    try:
        prepared = prepare_read(read, sent_context(values))
        answer, _ = await send_prepared(prepared, sender)
    except HttptaskError as exc:
        return Verdict(None, f"the read could not be made: {exc}", {"read": rec.operation})
    return judge(rec, values, answer, task_id=task.id)


def _candidates(body: Any, steps: tuple[tuple[str, bool], ...]) -> list[Any] | None:
    """The values at `steps`, or None when the answer does not have that shape. A missing last field is an
    empty list: APIs leave out empty lists."""
    nodes = [body]
    for index, (name, every) in enumerate(steps):
        last = index == len(steps) - 1
        children: list[Any] = []
        for node in nodes:
            if not isinstance(node, Mapping) or (name not in node and not last):
                return None
            child = node.get(name, [] if every else None)
            if every:
                if not isinstance(child, list):
                    return None
                children.extend(child)
            elif child is not None:
                children.append(child)
        nodes = children
    return nodes


def _field(candidate: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        if not isinstance(candidate, Mapping):
            return None
        candidate = candidate.get(name)
    return candidate


def _equal(found: Any, wanted: Any) -> bool:
    """Equal as the server means it: 20, 20.0 and "20.0" are one amount, "R-7" one reference."""
    if isinstance(found, bool) or isinstance(wanted, bool):
        return found is wanted
    if found is None or wanted is None:
        return False
    if isinstance(found, int | float) or isinstance(wanted, int | float):
        try:
            return Decimal(str(found)) == Decimal(str(wanted))
        except InvalidOperation:
            return False
    return str(found) == str(wanted)


def placed(rec: Reconcile, sample: Any, candidates: list[dict[str, Any]]) -> Any:
    """`sample` with the list at `rec.items` holding exactly `candidates` (each laid over the sample's first
    element): how the sandbox answers a read after the writes it received."""
    return _place(sample, list(rec.items), candidates)


def _place(node: Any, steps: list[tuple[str, bool]], candidates: list[dict[str, Any]]) -> Any:
    name, every = steps[0]
    node = dict(node) if isinstance(node, Mapping) else {}
    child = node.get(name)
    if len(steps) == 1:
        if every:
            template = child[0] if isinstance(child, list) and child and isinstance(child[0], Mapping) else {}
            node[name] = [_overlay(template, c) for c in candidates]
        else:
            node[name] = (
                _overlay(child if isinstance(child, Mapping) else {}, candidates[0]) if candidates else None
            )
        return node
    if every:
        first = child[0] if isinstance(child, list) and child else {}
        node[name] = [_place(first, steps[1:], candidates)]
    else:
        node[name] = _place(child, steps[1:], candidates)
    return node


def _overlay(template: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(template)
    for dotted, value in candidate.items():
        target = merged
        *parents, last = dotted.split(".")
        for name in parents:
            target = target.setdefault(name, {})
        target[last] = value
    return merged


def iter_reads(rec: Reconcile, values: RequestValues, *, task_id: str) -> Iterator[tuple[str, str, Any]]:
    """(part, name, value) of the read sent for the request with `values`, as the sandbox files it."""
    context = base_context(inputs={}, extra=sent_context(values))
    for part in _PARTS:
        for name, template in rec.request[part].items():
            yield (
                part,
                name.lower() if part == "headers" else name,
                render_value(
                    template, context, task_id=task_id, field_path=f"x-reconcile.request.{part}.{name}"
                ),
            )
