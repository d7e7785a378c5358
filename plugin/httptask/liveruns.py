"""Runs started from the editor: each on the editor's event loop, its task states kept as a list of events
that any number of followers read from the start, as server-sent events or as a snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .engines.protocol import RunResult, TaskResult, TaskUpdate
from .errors import UsageError
from .workflow import Workflow

__all__ = ["LiveRun", "LiveRuns"]

# Item updates of one task within this many seconds become one event: a fan-out of thousands of items would
# otherwise send thousands of events, each counting every item. A change of state is sent at once.
_COALESCE_SECONDS = 0.05


class LiveRun:
    """One run's events: `task` (a task's state, as `runs show --json` gives it) and, last, `run`."""

    def __init__(self, run_id: str, workflow: Workflow) -> None:
        self.run_id = run_id
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.tasks: dict[str, dict[str, Any]] = {
            task.id: {"task": task.id, "state": "scheduled", "for_each": task.for_each is not None}
            for task in workflow.tasks
        }
        self.result: dict[str, Any] | None = None
        self._changed = asyncio.Condition()
        self._dirty: dict[str, TaskResult] = {}
        self._flush: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def on_task(self, result: TaskResult) -> None:
        """The engine's `TaskUpdate`: a task's state changed."""
        self._dirty[result.task_id] = result
        if result.state != self.tasks[result.task_id]["state"]:
            self._publish_dirty()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(_COALESCE_SECONDS, self._publish_dirty)

    def _publish_dirty(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        dirty, self._dirty = self._dirty, {}
        for result in dirty.values():
            data = result.to_dict()
            self.tasks[result.task_id] = data
            self._append("task", data)

    def finish(self, result: RunResult | None, error: str | None = None) -> None:
        self._publish_dirty()
        if result is not None:
            self.result = result.to_dict()
        else:
            self.result = {
                "run_id": self.run_id,
                "status": "failed",
                "tasks": list(self.tasks.values()),
                "outputs": None,
                "errors": [{"task": None, "item": None, "message": error}],
            }
        self._append("run", self.result)

    def _append(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def snapshot(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result
        return {
            "run_id": self.run_id,
            "status": "running",
            "tasks": list(self.tasks.values()),
            "outputs": None,
            "errors": [],
        }

    def _has_event(self, index: int) -> bool:
        return index < len(self.events)

    async def follow(self) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
        """Every event from the first, waiting for new ones until the `run` event."""
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._has_event, index))
            while index < len(self.events):
                kind, data = self.events[index]
                yield index, kind, data
                index += 1
                if kind == "run":
                    return


Drive = Callable[[TaskUpdate], Awaitable[RunResult]]


class LiveRuns:
    """The editor's runs: at most `limit` in progress at once; the last `keep` stay for their followers."""

    def __init__(self, *, limit: int = 2, keep: int = 20) -> None:
        self._limit = limit
        self._keep = keep
        self._runs: OrderedDict[str, LiveRun] = OrderedDict()

    def check_room(self) -> None:
        """`UsageError` when `limit` runs are in progress."""
        running = sum(not run.done for run in self._runs.values())
        if running >= self._limit:
            raise UsageError(
                f"{running} runs started from this editor are still in progress; wait for one to end, "
                "then run again."
            )

    def start(self, run_id: str, workflow: Workflow, drive: Drive, cleanup: Callable[[], None]) -> LiveRun:
        """Run `drive` (given the run's `on_task`) in the background; `cleanup` runs when it ends."""
        self.check_room()
        live = LiveRun(run_id, workflow)

        async def main() -> None:
            try:
                live.finish(await drive(live.on_task))
            except asyncio.CancelledError:
                live.finish(
                    None,
                    "the editor stopped before the run ended; resume it with 'httptask runs "
                    f"resume {run_id}'",
                )
                raise
            except Exception as exc:  # an engine failure ends this run, never the editor
                live.finish(None, f"the run stopped: {type(exc).__name__}: {exc}")
            finally:
                cleanup()

        live.task = asyncio.get_running_loop().create_task(main())
        self._runs[run_id] = live
        while len(self._runs) > self._keep:
            oldest = next((key for key, run in self._runs.items() if run.done), None)
            if oldest is None:
                break
            del self._runs[oldest]
        return live

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    async def stop(self) -> None:
        """Cancel the runs in progress and wait for them: the journal keeps them for a resume."""
        tasks = [run.task for run in self._runs.values() if run.task is not None and not run.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
