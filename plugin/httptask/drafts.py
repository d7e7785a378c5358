"""The requests a run's pre-send check made of its forEach items, kept for the run to send, so that no item
is rendered, validated and encoded twice; within a memory budget, past which the run makes them again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .execute import Draft, Prepared, TaskPlan

__all__ = ["Drafts"]

# What the drafts of one run may hold, counted as their URLs, bodies and about as much again per request for
# the objects around them: a list of 60,000 refunds, not a million (each is made again as it is sent).
_BUDGET_BYTES = 16 * 2**20
_OVERHEAD = 200


class _TaskDrafts:
    def __init__(self, plan: TaskPlan, items: Sequence[Any]) -> None:
        self.plan, self.items = plan, items
        self.drafts: list[Draft | None] = []


class Drafts:
    """Drafts by task: each task's plan, the items it was checked with (the input's own list), and the first
    drafts of them, in item order, that fit in the budget."""

    def __init__(self, budget: int = _BUDGET_BYTES) -> None:
        self._left = budget
        self._tasks: dict[str, _TaskDrafts] = {}

    def begin(self, task_id: str, plan: TaskPlan, items: Sequence[Any]) -> None:
        """Keep the drafts of `task_id`'s `items`, made by `plan`, from item 0 on."""
        self._tasks[task_id] = _TaskDrafts(plan, items)

    def keep(self, task_id: str, draft: Draft) -> bool:
        """Keep the draft of the task's next item; False when it does not fit (nor will any after it)."""
        kept = self._tasks[task_id].drafts
        previous = kept[-1] if kept else None
        size = len(draft.url) + len(draft.content) + _OVERHEAD
        if previous is not None and previous.headers is draft.headers:
            pass  # one tuple for every draft already (`item_drafts`)
        elif previous is not None and previous.headers == draft.headers:
            draft = draft._replace(headers=previous.headers)
        else:
            size += sum(len(name) + len(value) + _OVERHEAD for name, value in draft.headers)
        if size > self._left:
            self._left = 0
            return False
        self._left -= size
        kept.append(draft)
        return True

    def bind(self, task_id: str, items: Sequence[Any]) -> bool:
        """Whether the run acts on the very items the task's drafts were made of; its drafts are dropped when
        it does not."""
        found = self._tasks.get(task_id)
        if found is not None and found.items is not items:
            del self._tasks[task_id]
            found = None
        return found is not None

    def take(self, task_id: str, index: int, key_seed: str) -> Prepared | None:
        """Item `index`'s request with the key `key_seed` derives, once; None when no draft of it is kept."""
        found = self._tasks.get(task_id)
        if found is None or index >= len(found.drafts):
            return None
        draft = found.drafts[index]
        if draft is None:
            return None
        found.drafts[index] = None
        return found.plan.finish(draft, key_seed)

    def drop(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
