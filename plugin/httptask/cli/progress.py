"""The live progress of `httptask run` on a terminal: a bar per `forEach` task with its items done, failed,
in flight and the rate (and the state of each other task), redrawn by rich's own timer.

The engine keeps a forEach task's counts itself (`TaskResult.tally`, `in_flight`); `Board.on_task` only
registers a task, and everything shown is read from those counters when rich redraws, four times a second,
so a run of 100,000 items does no console work per item.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engines.protocol import TaskResult

__all__ = ["Board", "live_board"]

# Every label a forEach item ends with (`StepResult.label`); read one by one, since the engine's thread may
# add a label to the tally while the board's thread reads it.
_LABELS = ("succeeded", "failed", "unknown", "resolved by hand", "resolved by reconciliation")


class Board:
    """The live results of the tasks, registered by the engine's `on_task`; `rows` reads their counters."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[TaskResult, float]] = {}

    def on_task(self, result: TaskResult) -> None:
        """The engine's `TaskUpdate`: the first call registers the task; the engine keeps its counts."""
        if result.task_id not in self._tasks:
            self._tasks[result.task_id] = (result, time.monotonic())

    def rows(self) -> list[dict[str, Any]]:
        """One row per task that has started; a forEach task's with its items: done, failed, unknown, in
        flight, and the rate while it runs."""
        now = time.monotonic()
        rows: list[dict[str, Any]] = []
        for task_id, (result, started) in list(self._tasks.items()):
            if not result.for_each:
                rows.append({"task": task_id, "state": result.state})
                continue
            tally = result.tally
            done = sum(tally.get(label, 0) for label in _LABELS)
            running = result.state == "running"
            rows.append(
                {
                    "task": task_id,
                    "total": len(result.items),
                    "done": done,
                    "failed": tally.get("failed", 0),
                    "unknown": tally.get("unknown", 0),
                    "in_flight": result.in_flight,
                    "rate": done / max(now - started, 1e-3) if running else None,
                    "state": result.state,
                }
            )
        return rows


@contextlib.contextmanager
def live_board(*, enabled: bool) -> Iterator[Board | None]:
    """A board drawn on the terminal while the block runs, and gone after it (the report follows); None when
    not `enabled` (piped, or --json), so that nothing extra is printed."""
    if not enabled:
        yield None
        return
    from rich.live import Live

    board = Board()
    with Live(get_renderable=lambda: _drawn(board), refresh_per_second=4, transient=True):
        yield board


def _drawn(board: Board) -> Any:
    """The board as rich draws it: a line per forEach task, from the counters as they are now."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    for row in board.rows():
        if "total" not in row:  # a task without forEach: one request, no bar
            grid.add_row(row["task"], "", row["state"])
            continue
        parts = [f"{row['done']:,}/{row['total']:,} done", f"{row['failed']:,} failed"]
        if row["unknown"]:
            parts.append(f"{row['unknown']:,} unknown")
        parts.append(f"{row['in_flight']:,} in flight")
        if row["rate"] is not None:
            parts.append(f"{row['rate']:,.1f}/s")
        bar = ProgressBar(total=max(row["total"], 1), completed=row["done"], width=30)
        grid.add_row(row["task"], bar, " · ".join(parts))
    return grid
