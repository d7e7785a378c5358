"""Decisions about requests of unknown outcome, item by item: which requests wait for one, and what a person
named with `--mark-done TASK[ITEM,...]` or `--resend TASK[ITEM,...]`.

A request waits for a decision when it is not idempotent (or was sent under an idempotency key older than an
API keeps one) and the server may have acted on it without an answer being journaled (see
`StepRecord.outcome_unknown`). Nothing else sends it again: not a retry, not a plain resume, not a second
resume. Every decision is journaled with who made it, when, and the evidence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import UsageError
from .journal import Decision, StepRecord, decider
from .workflow import Workflow

__all__ = [
    "KEY_KEPT_SECONDS",
    "MARK_DONE",
    "RESEND",
    "Selector",
    "awaiting",
    "decisions_for",
    "key_lapsed",
    "needs_decision",
    "parse_selector",
]

MARK_DONE = "mark-done"
RESEND = "resend"
RECONCILED_DONE = "reconciled-done"
RECONCILED_ABSENT = "reconciled-absent"
# The decisions that resolve a request without sending it again, and those that send it once more.
RESOLVING = frozenset({MARK_DONE, RECONCILED_DONE})
SENDING = frozenset({RESEND, RECONCILED_ABSENT})

# How long an API keeps an idempotency key and answers a repeat with the first result: 24 hours at Stripe and
# at most others. A key older than that no longer protects a request sent again.
KEY_KEPT_SECONDS = 24 * 3600
_MAX_ITEMS = 1_000_000  # a range is expanded: one that big is a typo, not a run
_SELECTOR = re.compile(r"(?P<task>[^\[\]]+)(\[(?P<items>[^\[\]]*)\])?")
_RANGE = re.compile(r"(\d+)(?:-(\d+))?", re.ASCII)  # a full-width digit is not an item number


@dataclass(frozen=True)
class Selector:
    """`TASK` or `TASK[3,7,10-12]`: `items` None means the task's one request (a task without forEach)."""

    task: str
    items: frozenset[int] | None
    text: str


def parse_selector(text: str, option: str) -> Selector:
    """`refund[3,7,10-12]` as a Selector; UsageError that quotes `text` when it is not one."""
    found = _SELECTOR.fullmatch(text.strip())
    if found is None:
        raise UsageError(f"{option} {text!r}: give TASK, or TASK[ITEMS] such as refund[3,7,10-12].")
    if found.group("items") is None:
        return Selector(found.group("task"), None, text)
    items: set[int] = set()
    for part in found.group("items").split(","):
        number = _RANGE.fullmatch(part.strip())
        if number is None:
            raise UsageError(
                f"{option} {text!r}: {part.strip()!r} is not an item number or range; items are numbered "
                "from 0, as 'httptask runs show' lists them, e.g. refund[3,7,10-12]."
            )
        first, last = int(number.group(1)), int(number.group(2) or number.group(1))
        if last < first:
            raise UsageError(
                f"{option} {text!r}: the range {part.strip()} runs backwards; write {last}-{first}."
            )
        if last - first >= _MAX_ITEMS or len(items) >= _MAX_ITEMS:
            raise UsageError(
                f"{option} {text!r} names more than {_MAX_ITEMS:,} items; name the items that wait for a "
                "decision, as 'httptask runs show RUN_ID' lists them."
            )
        items.update(range(first, last + 1))
    return Selector(found.group("task"), frozenset(items), text)


def awaiting(steps: Iterable[StepRecord]) -> list[StepRecord]:
    """The requests that wait for a decision, in task and item order."""
    now = time.time()
    return [s for s in steps if s.item >= 0 and needs_decision(s, now)]


def needs_decision(step: StepRecord, now: float) -> bool:
    """Whether a request of unknown outcome is sent again only on a decision: it has no idempotency key, or
    its key is older than an API keeps one, so that the API would act on it as a new request."""
    if not step.outcome_unknown:
        return False
    return not step.idempotent or key_lapsed(step, now)


def key_lapsed(step: StepRecord, now: float) -> bool:
    """Whether `step` went out under an idempotency key that the API has forgotten by `now`."""
    sent = step.sent_at
    return step.idempotency_key is not None and sent is not None and now - sent > KEY_KEPT_SECONDS


def decisions_for(
    workflow: Workflow,
    steps: Iterable[StepRecord],
    *,
    mark_done: Iterable[str] = (),
    resend: Iterable[str] = (),
    evidence: str | None = None,
) -> dict[tuple[str, int], Decision]:
    """The decisions named on the command line, each checked against the journal: it must name a request
    that waits for one, and no request may be both marked done and sent again."""
    waiting = {(s.task, s.item): s for s in awaiting(steps)}
    decided: dict[tuple[str, int], Decision] = {}
    now, who = time.time(), decider()
    for action, option, texts in ((MARK_DONE, "--mark-done", mark_done), (RESEND, "--resend", resend)):
        for text in texts:
            for key in _named(workflow, parse_selector(text, option), waiting, option):
                other = decided.get(key)
                if other is not None and other.action != action:
                    raise UsageError(
                        f"Item {key[1]} of task {key[0]} is named by both --mark-done and --resend; "
                        "decide once: done (it was received) or resend (it was not)."
                    )
                decided[key] = Decision(key[0], key[1], action, who, now, evidence)
    return decided


def _named(
    workflow: Workflow, selector: Selector, waiting: Mapping[tuple[str, int], StepRecord], option: str
) -> list[tuple[str, int]]:
    task = workflow.task(selector.task)
    if task is None:
        tasks = ", ".join(t.id for t in workflow.tasks)
        raise UsageError(
            f"{option} {selector.text!r}: the workflow has no task {selector.task!r} (its tasks: {tasks})."
        )
    pending = sorted(item for (task_id, item) in waiting if task_id == task.id)
    if selector.items is None:
        if task.for_each is not None:
            listed = ", ".join(map(str, pending)) or "none"
            example = f"{option} '{task.id}[{pending[0] if pending else 0}]'"
            raise UsageError(
                f"{option} {selector.text!r}: task {task.id} sends one request per item; name the items, "
                f"e.g. {example} (waiting for a decision: {listed})."
            )
        items = [0]
    else:
        items = sorted(selector.items)
    wrong = [item for item in items if (task.id, item) not in waiting][:10]  # the first ten say enough
    if wrong:
        listed = ", ".join(map(str, pending)) or "none"
        verb = "is" if len(wrong) == 1 else "are"
        raise UsageError(
            f"{option} {selector.text!r}: {_items(wrong)} of task {task.id} {verb} not waiting for a "
            f"decision (those that are: {listed}); 'httptask runs show RUN_ID' lists them."
        )
    return [(task.id, item) for item in items]


def _items(items: list[int]) -> str:
    return ("item " if len(items) == 1 else "items ") + ", ".join(map(str, items))
