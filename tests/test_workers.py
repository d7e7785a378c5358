"""`httptask run --workers N`: a forEach shared out over N processes that write one journal, against a real
loopback server that counts what it acted on per invoice. Each item is sent once; a worker, the starter that
forks them, or the run's own process killed with SIGKILL mid-run leaves no process behind, and a resume acts
on each refund once. A worker is handed the run's secrets in memory, never in its environment or command
line."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from faults import FaultServer, always, fault_server
from httptask.journal import WRITER_VAR
from test_fault_matrix import (
    ITEMS,
    Case,
    check_journal_against_server,
    decide_and_finish,
    plain_resume,
    resume_acts_once,
)
from test_journal_writer import _child_running, _children, _ended, under_way


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        running.reset(always("answer"))
        yield running


def _start(case: Case, *extra: str) -> subprocess.Popen[str]:
    inputs = json.dumps({"invoices": case.invoices, "api_url": case.server.url})
    return subprocess.Popen(
        [sys.executable, "-m", "httptask", "run", str(case.workflow), "--input", inputs, "--concurrency", "8",
         "--json", *extra],
        env=case.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _two_workers_under_way(
    case: Case, *, writer_process: bool = False
) -> AbstractContextManager[subprocess.Popen[str]]:
    """The run of `case` with `--workers 2`, once its server has acted on a quarter of the items; with
    `writer_process`, each process's journal writer is a process too (so none may be left after a kill)."""
    if writer_process:
        case.env[WRITER_VAR] = "process"
    return under_way(case.server, lambda: _start(case, "--workers", "2"))


def _starter_of(pid: int) -> int:
    """The process that forks the workers of the run in process `pid`."""
    return _child_running(pid, "httptask.shard_starter")


def _workers_of(pid: int, count: int) -> list[int]:
    """The worker processes of the run in process `pid`, once all `count` run."""
    starter = _starter_of(pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _children(starter)
        if len(found) == count:
            return found
        time.sleep(0.01)
    raise AssertionError("the workers did not start")


def _family(pids: list[int]) -> list[int]:
    """These processes and all their descendants."""
    found, stack = [], list(pids)
    while stack:
        pid = stack.pop()
        found.append(pid)
        if not _ended(pid):
            stack += _children(pid)
    return found


def test_two_workers_send_each_item_exactly_once(server: FaultServer, tmp_path: Path) -> None:
    case = Case(tmp_path, server, "keyless")
    run = _start(case, "--workers", "2")
    starter = _starter_of(run.pid)
    workers = _workers_of(run.pid, 2)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["tasks"][0]["items"] == {"succeeded": ITEMS}
    assert server.acted() == {case.path(index): 1 for index in range(ITEMS)}
    assert all(_ended(pid) for pid in [starter, *workers])
    steps = case.steps()
    assert {state for state, _, _ in steps.values()} == {"succeeded"} and len(steps) == ITEMS


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
def test_a_worker_killed_mid_run_leaves_its_items_to_a_resume_that_acts_once(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    case = Case(tmp_path, server, kind)
    with _two_workers_under_way(case) as run:
        victim = _workers_of(run.pid, 2)[1]
        doomed = _family([victim])
        os.kill(victim, signal.SIGKILL)
        out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    case.steps()
    errors = [e["message"] for e in json.loads(out)["errors"] if e["item"] is None]
    assert errors == [
        f"worker 2 of 2 (pid {victim}) was killed by signal 9 before it finished its items; 'httptask run "
        f"--resume {case.run_id}' finishes them"
    ]
    assert all(_ended(pid) for pid in doomed), "the killed worker's journal writer outlived it"
    before = resume_acts_once(case)
    # Worker 1 had finished its items (the even ones); the killed worker's were left where they were.
    assert all(before[index][0] == "succeeded" for index in range(0, ITEMS, 2))


def test_the_run_killed_mid_run_takes_its_workers_and_writers_with_it_and_a_resume_acts_once(
    server: FaultServer, tmp_path: Path
) -> None:
    case = Case(tmp_path, server, "keyless")
    with _two_workers_under_way(case, writer_process=True) as run:
        workers = _workers_of(run.pid, 2)
        family = _family([run.pid])
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while not all(_ended(pid) for pid in family):
            assert time.monotonic() < deadline, f"left behind: {[p for p in family if not _ended(p)]}"
            time.sleep(0.01)
    assert len(family) >= 1 + 2 * 2  # the run, its writer, and each worker with its own writer
    assert set(workers) <= set(family)
    time.sleep(0.1)  # what was on the wire reaches the server's log
    before = check_journal_against_server(case)
    resumed = case.httptask("run", "--resume", case.run_id, "--workers", "2", "--json")
    assert resumed.returncode in (0, 1), resumed.stderr
    waiting = {i for i, (state, outcome, _) in before.items() if state == "sent" or outcome == "unknown"}
    assert {e["item"] for e in json.loads(resumed.stdout)["errors"]} == waiting
    plain_resume(case, case.steps())
    decide_and_finish(case)


@pytest.mark.parametrize("given", ["0", "-2", "two", "65", "1.5"])
def test_a_bad_number_of_workers_is_one_sentence(tmp_path: Path, given: str) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: w\ntasks: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "httptask", "run", str(workflow), "--workers", given],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --workers is {given!r}; give a whole number of processes from 1 to 64 (this machine has "
        f"{os.cpu_count()} cores)."
    ]


def test_the_starter_killed_mid_run_takes_its_workers_with_it_and_a_resume_acts_once(
    server: FaultServer, tmp_path: Path
) -> None:
    case = Case(tmp_path, server, "keyed")
    with _two_workers_under_way(case, writer_process=True) as run:
        starter = _starter_of(run.pid)
        workers = _workers_of(run.pid, 2)
        doomed = _family([starter])
        os.kill(starter, signal.SIGKILL)
        out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    assert len(doomed) == 1 + 2 * 2  # the starter, and each worker with its writer
    assert all(_ended(pid) for pid in doomed), "a worker or its journal writer outlived the starter"
    case.steps()
    (error,) = [e["message"] for e in json.loads(out)["errors"] if e["item"] is None]
    said = (
        r"worker (\d) of 2 \(pid (\d+)\) ended with the process that started it before it finished its "
        rf"items; 'httptask run --resume {case.run_id}' finishes them"
    )
    found = re.fullmatch(f"{said}; {said}", error)
    assert found, error
    assert (found[1], found[3]) == ("1", "2")
    assert {int(found[2]), int(found[4])} == set(workers)
    resume_acts_once(case)


def test_a_worker_is_handed_the_secrets_in_memory_not_in_its_environment_or_command_line(
    server: FaultServer, tmp_path: Path
) -> None:
    canary = "canary_sk_9f3e1d77b2"
    case = Case(tmp_path, server, "keyless")
    case.env["HTTPTASK_SECRET_CHARGEBEE_API_KEY"] = canary
    with _two_workers_under_way(case) as run:
        family = _family([_starter_of(run.pid)])
        seen = {pid: Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
                for pid in family}  # fmt: skip
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert len(family) >= 3  # the starter and its two workers
    assert [pid for pid, text in seen.items() if canary.encode() in text] == []
    used = {base64.b64decode((r.header("authorization") or "- -").split()[1]) for r in server.received}
    assert used == {f"{canary}:".encode()}, "each worker authenticated with the secret it was handed"
    assert canary not in out + err


# First on a run's PYTHONPATH: each worker fails with an unexpected error that quotes the secret it holds.
FAILING_WORKER = """\
import httptask.shard_worker as worker
async def _work(shard, fd, made, results):
    raise RuntimeError("unexpected, with " + made.secrets.get("CHARGEBEE_API_KEY"))
worker._work = _work
"""


def test_a_workers_unexpected_traceback_reaches_the_terminal_redacted(
    server: FaultServer, tmp_path: Path
) -> None:
    canary = "canary_sk_7c2a90e4d1"
    case = Case(tmp_path, server, "keyless")
    case.env["HTTPTASK_SECRET_CHARGEBEE_API_KEY"] = canary
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FAILING_WORKER, encoding="utf-8")
    case.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), case.env.get("PYTHONPATH")]))
    run = _start(case, "--workers", "2")
    out, err = run.communicate(timeout=120)
    assert canary not in out + err
    # Both workers' tracebacks are shown, through the run's redactor.
    assert err.count("RuntimeError: unexpected, with ***\n") == 2, err
    assert server.acted() == {}


def test_a_run_stopped_by_its_checks_leaves_no_starter_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httptask.catalog import Catalog
    from httptask.errors import WorkflowInvalid
    from httptask.journal import Journal
    from httptask.runs import start_run
    from httptask.secrets import SecretStore
    from httptask.shards import Starter

    spawned: list[int] = []
    spawn = Starter.spawn

    def spy(self: Starter) -> None:
        spawn(self)
        spawned.append(self._process.pid)  # type: ignore[union-attr]

    monkeypatch.setattr(Starter, "spawn", spy)
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: w\ntasks: []\n")
    with pytest.raises(WorkflowInvalid):
        start_run(
            workflow, inputs={}, catalog=Catalog.default(), secrets=SecretStore.of({}),
            journal=Journal(tmp_path / "j.sqlite3"), workers=2,
        )  # fmt: skip
    assert len(spawned) == 1  # spawned before the checks, so that it imports meanwhile
    assert not Path(f"/proc/{spawned[0]}").exists(), "the starter was left running (or unreaped)"


def test_one_starter_serves_each_foreach_of_a_run_in_turn(server: FaultServer, tmp_path: Path) -> None:
    case = Case(tmp_path, server, "keyless")
    case.workflow.write_text(
        case.workflow.read_text()
        + """\
  - id: again
    needs: [refund]
    operation: chargebee.record_refund
    forEach: "{{ input.invoices | map('replace', 'inv_', 'more_') | list }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "{{ item }}"}
      body: {memo: again, transaction: {amount: 100, payment_method: check, date: 1700000000}}
"""
    )
    run = _start(case, "--workers", "2")
    starter = _starter_of(run.pid)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    tasks = json.loads(out)["tasks"]
    assert [(t["task"], t["items"]) for t in tasks] == [
        ("refund", {"succeeded": ITEMS}),
        ("again", {"succeeded": ITEMS}),
    ]
    paths = [case.path(index) for index in range(ITEMS)]
    assert server.acted() == {path: 1 for path in paths + [p.replace("inv_", "more_") for p in paths]}
    assert _ended(starter)


def test_each_item_goes_to_exactly_one_worker_and_no_worker_goes_without() -> None:
    from httptask.shards import shard_items

    assert shard_items(["a", "b", "c", "d", "e"], 2) == [[(0, "a"), (2, "c"), (4, "e")], [(1, "b"), (3, "d")]]
    assert shard_items(["a", "b"], 64) == [[(0, "a")], [(1, "b")]]


def test_a_starter_killed_before_its_first_foreach_is_replaced_and_the_run_finishes(
    server: FaultServer, tmp_path: Path
) -> None:
    case = Case(tmp_path, server, "keyless")
    first = """\
  - id: first
    operation: chargebee.record_refund
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: first}
      body: {memo: first, transaction: {amount: 100, payment_method: check, date: 1700000000}}
  - id: refund
    needs: [first]
"""
    case.workflow.write_text(case.workflow.read_text().replace("  - id: refund\n", first))
    server.delay_seconds = 1.0  # the task before the forEach waits on the server meanwhile
    try:
        run = _start(case, "--workers", "2")
        killed = _starter_of(run.pid)
        os.kill(killed, signal.SIGKILL)
    finally:
        server.delay_seconds = 0.0
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert [(t["task"], t["state"]) for t in json.loads(out)["tasks"]] == [
        ("first", "succeeded"),
        ("refund", "succeeded"),
    ]
    assert server.acted() == {"/invoices/first/record_refund": 1, **{case.path(i): 1 for i in range(ITEMS)}}
    assert _ended(killed)


TWO_TASKS = """\
name: refund-then-note
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: &operation chargebee.record_refund
    forEach: &invoices "{{ input.invoices }}"
    server: &server {url: "{{ input.api_url }}"}
    credentials: &key CHARGEBEE_API_KEY
    retry: &once {maxAttempts: 1}
    request:
      path: {invoice-id: "{{ item }}"}
      body: {memo: first, transaction: {amount: 100, payment_method: check, date: 1700000000}}
  - {id: note, needs: [refund], operation: *operation, forEach: *invoices, server: *server, credentials: *key,
     retry: *once, request: {path: {invoice-id: "{{ item }}-note"}, body: {
       memo: "{{ tasks.refund | length }}-{{ tasks.refund | map(attribute='response.status') | max }}",
       transaction: {amount: 1, payment_method: check, date: 1700000000}}}}
"""
# `httptask` with the size of what the run pickles to each worker written to $SHARD_SIZES.
MEASURED = """\
import os, pickle, sys
import httptask.shards as shards
real = shards.run_shards
async def measured(started, on_step, starter):
    with open(os.environ["SHARD_SIZES"], "a") as log:
        log.write(" ".join(str(len(pickle.dumps(shard))) for shard in started) + "\\n")
    return await real(started, on_step, starter)
shards.run_shards = measured
from httptask.cli import main
sys.argv = ["httptask", *sys.argv[1:]]
main()
"""


def test_a_worker_reads_an_earlier_forEachs_results_from_the_journal(
    server: FaultServer, tmp_path: Path
) -> None:
    # Each refund is answered with 64 KB: a copy of the first task's results (every response) was held by the
    # run and pickled to each worker of the second task, 2.6 MB each here, gigabytes for a million items.
    server.reset(always("oversize"))
    case = Case(tmp_path, server, "keyless")
    case.workflow.write_text(TWO_TASKS)
    sizes = tmp_path / "sizes"
    case.env["SHARD_SIZES"] = str(sizes)
    inputs = json.dumps({"invoices": case.invoices, "api_url": server.url})
    run = subprocess.Popen(
        [sys.executable, "-c", MEASURED, "run", str(case.workflow), "--input", inputs, "--workers", "2",
         "--json"],
        env=case.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert [task["items"] for task in json.loads(out)["tasks"]] == [{"succeeded": ITEMS}] * 2
    first, second = (list(map(int, line.split())) for line in sizes.read_text().splitlines())
    assert max(second) < 2 * max(first) < 200_000, (first, second)
    notes = [r for r in server.received if r.path.endswith("-note/record_refund")]
    assert len(notes) == ITEMS and all(b"memo=40-200" in r.body for r in notes), notes[0].body


def test_workers_hand_back_large_answers_off_their_spec(server: FaultServer, tmp_path: Path) -> None:
    # Each refund is answered with 64 KB that breaks the spec, kept with its step: a frame of a few steps is
    # more than the socket holds. A worker wrote part of it, lost the rest, and the run died with a traceback.
    server.oversize_bytes = 64 * 1024
    server.reset(always("oversize"))
    case = Case(tmp_path, server, "keyless")
    case.workflow.write_text(TWO_TASKS.split("  - {id: note")[0])  # no cap on the answer's size
    run = _start(case, "--workers", "2")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert json.loads(out)["tasks"][0]["items"] == {"succeeded": ITEMS}
    assert "Traceback" not in err
    assert server.acted() == {case.path(index): 1 for index in range(ITEMS)}
