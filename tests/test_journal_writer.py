"""The journal's writer process (HTTPTASK_JOURNAL_WRITER=process): it commits what the run hands it, ends
with its parent (even one killed with SIGKILL, or inside a group commit), and when it is itself killed the run
sends nothing it cannot journal; both writers (process and thread) commit the same records and keep the same
rules."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from faults import FaultServer, always, fault_server
from httptask.errors import KeyReused, RunTakenOver, UsageError
from httptask.journal import WRITER_VAR, Journal
from test_fault_matrix import (
    CRASH,
    ITEMS,
    Case,
    resume_acts_once,
)

RUN = "20240101-000000-abcdef"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _child_running(pid: int, module: str) -> int:
    """The child of process `pid` that runs `module` (a journal writer, a workers' starter), once it runs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in _children(pid):
            if module.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        time.sleep(0.01)
    raise AssertionError(f"no process running {module} started")


def _writer_of(pid: int) -> int:
    """The journal writer process of the run in process `pid`, once it runs."""
    return _child_running(pid, "httptask.journal_commit")


def _ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # reparented to an init that does not reap: it has ended all the same


def _on_a_writer_process(server: FaultServer, tmp_path: Path, kind: str) -> Case:
    """A fault-matrix case whose runs journal through a writer process, against a server that answers."""
    case = Case(tmp_path, server, kind)
    case.env[WRITER_VAR] = "process"
    server.reset(always("answer"))
    return case


@contextmanager
def under_way(
    server: FaultServer, start: Callable[[], subprocess.Popen[str]]
) -> Iterator[subprocess.Popen[str]]:
    """A run started with the server slowed down, once the server has acted on a quarter of its items."""
    server.delay_seconds = 0.05
    try:
        run = start()
        deadline = time.monotonic() + 60
        while sum(server.acted().values()) < ITEMS // 4:
            assert time.monotonic() < deadline, "the run did not get under way"
            time.sleep(0.01)
        yield run
    finally:
        server.delay_seconds = 0.0


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
def test_a_run_killed_with_sigkill_leaves_no_writer_behind_and_a_resume_acts_once(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    case = _on_a_writer_process(server, tmp_path, kind)
    with under_way(server, case.start) as run:
        writer = _writer_of(run.pid)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while not _ended(writer):
            assert time.monotonic() < deadline, f"the writer {writer} outlived its parent"
            time.sleep(0.01)
    assert run.returncode == -signal.SIGKILL
    time.sleep(0.1)  # what was on the wire reaches the server's log
    resume_acts_once(case)


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
def test_a_writer_killed_mid_run_stops_the_run_in_a_sentence_and_a_resume_acts_once(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    case = _on_a_writer_process(server, tmp_path, kind)
    with under_way(server, case.start) as run:
        os.kill(_writer_of(run.pid), signal.SIGKILL)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 2, err
    journal = str(case.journal)
    assert err.strip().splitlines()[-1] == (
        f"error: The journal {journal!r} could not be written (its writer process was killed by signal 9); "
        "nothing more is sent, and what was sent is journaled: resume the run ('httptask runs list' shows "
        "it)."
    )
    assert "Traceback" not in err
    assert len(resume_acts_once(case)) == len(case.invoices)


@pytest.mark.parametrize("writer", ["process", "thread"])
@pytest.mark.parametrize("kind", ["keyed", "keyless"])
def test_a_run_killed_inside_a_group_commit_of_its_writer_resumes_acting_once(
    server: FaultServer, tmp_path: Path, kind: str, writer: str
) -> None:
    case = _on_a_writer_process(server, tmp_path, kind)
    case.env[WRITER_VAR] = writer
    # Early in the run: the thread counts each batch of statements, and a run of 40 items may make few.
    run = case.start(CRASH, "during-group-commit", "5")
    run.communicate(timeout=120)
    assert run.returncode == -signal.SIGKILL
    time.sleep(0.1)  # what was on the wire reaches the server's log
    resume_acts_once(case)


def test_an_unknown_writer_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WRITER_VAR, "fork")
    with pytest.raises(UsageError) as refused:
        Journal(tmp_path / "j.sqlite3")
    assert str(refused.value) == (
        "HTTPTASK_JOURNAL_WRITER is 'fork'; give 'thread' or 'process' (where the journal commits)."
    )


# -- both writers --------------------------------------------------------------------------------------------


def _create(journal: Journal) -> None:
    journal.create_run(
        RUN, workflow="w", file="w.yaml", workflow_text="", inputs={}, inputs_redacted=False, options={}
    )


def _request(body: str) -> dict[str, str]:
    return {"method": "POST", "url": "https://api.test/invoices/inv_1/refund", "body": body}


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_both_writers_commit_in_groups_refuse_a_reused_key_and_stop_once_taken_over(
    tmp_path: Path, writer: str
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path, writer=writer)
    _create(journal)

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        journal.queue(Journal.schedule(RUN, "t", range(100)))
        await asyncio.gather(
            *(
                journal.begin_send(RUN, "t", n, idempotent=True, key=f"k{n}", request=_request("a"))
                for n in range(100)
            )
        )
        assert 0 < journal.commits < 100
        with pytest.raises(KeyReused):
            await journal.begin_send(RUN, "t", 1, idempotent=True, key="k0", request=_request("b"))
        other = Journal(path)
        other.claim_run(RUN)  # the lease lapsed, say: another process takes the run over
        other.close()
        with pytest.raises(RunTakenOver):
            await journal.durable([Journal.finished(RUN, "t", 0, "succeeded", attempts=1)])
        with pytest.raises(RunTakenOver):  # and every later write is refused at once
            await journal.flush()
        with pytest.raises(RunTakenOver):
            journal.stop()

    asyncio.run(main())
    reader = Journal(path)
    assert {step.item: step.state for step in reader.steps(RUN)} == {n: "sent" for n in range(100)}
    reader.close()


def test_a_run_stopped_by_its_checks_leaves_no_writer_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run starts its writer process before its checks; one the checks stop ends it, journal open or not."""
    from httptask import journal_writer
    from httptask.catalog import Catalog
    from httptask.errors import WorkflowInvalid
    from httptask.runs import start_run
    from httptask.secrets import SecretStore

    spawned: list[journal_writer.Spawned] = []
    spawn = journal_writer.Spawned.__init__

    def spy(self: journal_writer.Spawned, path: Path) -> None:
        spawn(self, path)
        spawned.append(self)

    monkeypatch.setattr(journal_writer.Spawned, "__init__", spy)
    monkeypatch.delenv(WRITER_VAR, raising=False)  # the default writer: a process
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: w\ntasks: []\n")
    journal = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(WorkflowInvalid):
        start_run(workflow, inputs={}, catalog=Catalog.default(), secrets=SecretStore.of({}), journal=journal)
    assert len(spawned) == 1
    assert spawned[0].process.poll() is not None and spawned[0].socket.fileno() == -1
    journal.close()
