"""A run's timeline per task, from its journaled steps: when the task's first request went out and its first
item ended, the p50 and p99 latency of its items (from sent to outcome, retries included), its retries, and
when its last item ended. Times are seconds from the run's start; only numbers, never a value of a request."""

from __future__ import annotations

import math
from array import array
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
    """One entry per task that has items (in the order the steps come), skipping the task rows. The steps
    are read once, as they come: a run of a million items keeps its latencies (8 bytes each), not its
    steps."""
    by_task: dict[str, _Tally] = {}
    for step in steps:
        if step.item >= 0:
            by_task.setdefault(step.task, _Tally()).add(step)
    return [tally.timeline(task, started_at) for task, tally in by_task.items()]


class _Tally:
    """What a task's timeline needs, gathered step by step."""

    def __init__(self) -> None:
        self.items = self.ended = self.retries = 0
        self.first_sent: float | None = None
        self.first_ended: float | None = None
        self.last_ended: float | None = None
        self.latencies = array("d")

    def add(self, step: StepRecord) -> None:
        self.items += 1
        self.retries += max(step.attempts - 1, 0)
        if step.sent_at is not None:
            self.first_sent = min(self.first_sent or step.sent_at, step.sent_at)
        if step.state not in _ENDED or step.updated_at is None:
            return
        self.ended += 1
        ended = step.updated_at
        self.first_ended = min(self.first_ended or ended, ended)
        self.last_ended = max(self.last_ended or ended, ended)
        if step.sent_at is not None and step.decision is None:
            self.latencies.append((ended - step.sent_at) * 1000)

    def timeline(self, task: str, started_at: float) -> TaskTimeline:
        latencies = sorted(self.latencies)

        def since(at: float | None) -> float | None:
            return None if at is None else at - started_at

        return TaskTimeline(
            task=task,
            items=self.items,
            ended=self.ended,
            first_sent=since(self.first_sent),
            first_ended=since(self.first_ended),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            retries=self.retries,
            last_ended=since(self.last_ended),
        )


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending list: a value that occurred, never an interpolation."""
    if not ordered:
        return None
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]
