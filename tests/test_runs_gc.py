"""runs: the collector is tuned for the length of runs in a process and left as it was after the last one,
however many run at once on threads."""

from __future__ import annotations

import contextlib
import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from httptask import runs
from httptask.catalog import Catalog
from httptask.errors import UsageError
from httptask.journal import Journal
from httptask.runs import _LEAN_GC
from httptask.secrets import SecretStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "refund-invoices.yaml"


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


def test_a_run_is_checked_with_the_collector_tuned_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, tuple[int, int, int]]] = []

    def planned(*args: Any, **kwargs: Any) -> Any:
        seen.append((gc.get_freeze_count(), gc.get_threshold()))
        raise UsageError("stop before anything is sent")

    monkeypatch.setattr(runs, "plan_workflow", planned)
    with contextlib.closing(Journal(tmp_path / "journal.sqlite3")) as journal, pytest.raises(UsageError):
        runs.start_run(
            EXAMPLE,
            inputs={"invoices": [{"id": "inv_1", "amount": 1}]},
            catalog=Catalog.default(),
            secrets=SecretStore(environ={"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "k"}),
            journal=journal,
            sandbox=True,
        )
    # What start-up made is out of the collector's sight while every item is checked.
    assert seen and seen[0][0] > 0 and seen[0][1] != before
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
