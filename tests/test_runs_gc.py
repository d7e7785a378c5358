"""runs: the collector is tuned for the length of runs in a process and left as it was after the last one,
however many run at once on threads."""

from __future__ import annotations

import gc
import threading

from httptask.runs import _LEAN_GC


def test_the_collector_is_restored_after_the_last_of_two_overlapping_runs() -> None:
    before = gc.get_threshold()
    first_in, first_out, second_in, second_out = (threading.Event() for _ in range(4))

    def run(started: threading.Event, finish: threading.Event) -> None:
        with _LEAN_GC.during_run():
            started.set()
            finish.wait(10)

    first = threading.Thread(target=run, args=(first_in, first_out))
    second = threading.Thread(target=run, args=(second_in, second_out))
    first.start()
    assert first_in.wait(10)
    second.start()
    assert second_in.wait(10)
    tuned = gc.get_threshold()
    first_out.set()
    first.join(10)
    assert gc.get_threshold() == tuned != before  # the second run is still going
    assert gc.get_freeze_count() > 0
    second_out.set()
    second.join(10)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
