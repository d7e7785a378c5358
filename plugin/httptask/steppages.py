"""What a resumed run finds in the journal, step by step, read a page of items at a time: a run of a million
items resumes without a dict of a million steps.

A forEach takes up its items in order and looks each one up before it sends it, so one page per task is
kept, and the next page is read when its first item is looked up.
"""

from __future__ import annotations

from .journal import Journal, StepRecord

__all__ = ["JournaledSteps"]


class JournaledSteps:
    """The run's steps past 'scheduled' by (task, item), as `Resumption.previous`; the task rows are left
    out. A step missing here was never taken up (or only scheduled)."""

    PAGE = 1000

    def __init__(self, journal: Journal, run_id: str) -> None:
        self._journal, self._run_id = journal, run_id
        self._pages: dict[str, tuple[int, dict[int, StepRecord]]] = {}

    def get(self, key: tuple[str, int]) -> StepRecord | None:
        task, item = key
        if item < 0:
            return None
        first = item - item % self.PAGE
        page = self._pages.get(task)
        if page is None or page[0] != first:
            steps = self._journal.steps(
                self._run_id, task=task, items=range(first, first + self.PAGE), started=True
            )
            page = self._pages[task] = (first, {step.item: step for step in steps})
        return page[1].get(item)
