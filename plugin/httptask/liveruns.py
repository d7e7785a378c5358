"""Runs started from the editor: each on its own thread and event loop, its task states kept, on the
editor's loop, as a list of events that any number of followers read from the start, as server-sent events or
as a snapshot.

A run renders templates that read earlier answers as it reaches them, each for up to its time limit: on the
editor's own loop, a run of such items stopped the editor answering anyone for as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from . import eventloop
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
        self.runner: _Runner | None = None

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
        """Run `drive` (given the run's `on_task`) on a thread of its own; `cleanup` runs there at its end."""
        self.check_room()
        live = LiveRun(run_id, workflow)
        live.runner = _Runner(live, drive, cleanup)
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
        runners = [run.runner for run in self._runs.values() if run.runner is not None]
        for runner in runners:
            runner.cancel()
        for runner in runners:
            await asyncio.to_thread(runner.join)
        await asyncio.sleep(0)  # the editor's loop takes in what the runs' threads handed it last


class _Runner:
    """One run's thread and event loop. What the run reports goes to the editor's loop, which alone touches
    its `LiveRun`; the run inherits the caller's context (its limits)."""

    def __init__(self, live: LiveRun, drive: Drive, cleanup: Callable[[], None]) -> None:
        self._live = live
        self._drive = drive
        self._cleanup = cleanup
        self._editor = asyncio.get_running_loop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[RunResult] | None = None
        self._cancelled = False
        self._ready = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._main,), name=f"httptask-run-{live.run_id}", daemon=True
        )
        self._thread.start()

    def _main(self) -> None:
        result: RunResult | None = None
        error: str | None = None
        try:
            result = eventloop.run(self._outcome())
        except asyncio.CancelledError:
            resume = f"httptask runs resume {self._live.run_id}"
            error = f"the editor stopped before the run ended; resume it with '{resume}'"
        except Exception as exc:  # an engine failure ends this run, never the editor
            error = f"the run stopped: {type(exc).__name__}: {exc}"
        finally:
            self._ready.set()
            self._cleanup()
        with contextlib.suppress(RuntimeError):  # the editor's loop closed first
            self._editor.call_soon_threadsafe(self._live.finish, result, error)

    async def _outcome(self) -> RunResult:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        if self._cancelled:
            raise asyncio.CancelledError
        return await self._drive(self._report)

    def _report(self, result: TaskResult) -> None:
        with contextlib.suppress(RuntimeError):
            self._editor.call_soon_threadsafe(self._live.on_task, result)

    def cancel(self) -> None:
        self._cancelled = True
        self._ready.wait()
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                self._loop.call_soon_threadsafe(self._task.cancel)

    def join(self) -> None:
        self._thread.join()
