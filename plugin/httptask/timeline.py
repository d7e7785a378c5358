"""A run's timeline per task, from its journaled steps: when the task's first request went out and its first
item ended, the p50 and p99 latency of its items (from sent to outcome, retries included), its retries, and
when its last item ended. Times are seconds from the run's start; only numbers, never a value of a request."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .journal import StepRecord

__all__ = ["TaskTimeline", "timeline"]

# States in which a step's outcome is recorded: its `updated_at` is when the outcome came.
_ENDED = frozenset({"succeeded", "failed", "resolved"})


@dataclass(frozen=True)
class TaskTimeline:
    task: str
    items: int
    ended: int
    first_sent: float | None
    first_ended: float | None
    p50_ms: float | None
    p99_ms: float | None
    retries: int
    last_ended: float | None


def timeline(steps: Iterable[StepRecord], started_at: float) -> list[TaskTimeline]:
    """One entry per task that has items (in the order the steps come), skipping the task rows."""
    by_task: dict[str, list[StepRecord]] = {}
    for step in steps:
        if step.item >= 0:
            by_task.setdefault(step.task, []).append(step)
    return [_task(task, task_steps, started_at) for task, task_steps in by_task.items()]


def _task(task: str, steps: list[StepRecord], started_at: float) -> TaskTimeline:
    sent = [step.sent_at for step in steps if step.sent_at is not None]
    ended = [step for step in steps if step.state in _ENDED and step.updated_at is not None]
    ends = [step.updated_at for step in ended if step.updated_at is not None]
    latencies = sorted(
        (step.updated_at - step.sent_at) * 1000
        for step in ended
        if step.sent_at is not None and step.updated_at is not None and step.decision is None
    )
    return TaskTimeline(
        task=task,
        items=len(steps),
        ended=len(ended),
        first_sent=min(sent) - started_at if sent else None,
        first_ended=min(ends) - started_at if ends else None,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        retries=sum(max(step.attempts - 1, 0) for step in steps),
        last_ended=max(ends) - started_at if ends else None,
    )


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending list: a value that occurred, never an interpolation."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]
