"""The fault-injection matrix: a 40-refund fan-out of `httptask run`, as a real process, against a loopback
server that misbehaves on purpose (every fault of tests/faults.py) or a process killed with SIGKILL at five
points, for a refund with an idempotency key (chargebee.refund_invoice) and one without (record_refund).

Each case checks, in this order:
1. the journal after the first run agrees with what the server saw (not sent means nothing arrived, succeeded
   means acted on once, and whatever the server acted on is journaled as succeeded or of unknown outcome);
2. a plain `--resume` sends every request it safely can and nothing of unknown outcome that is not idempotent;
3. after per-item decisions (`--mark-done`/`--resend` for exactly the items `runs show` lists, decided from
   what the server acted on), every refund was acted on exactly once: 0 refunds received twice without the
   same key, 0 items with two keys, 0 items lost without a journaled decision.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from faults import FaultServer, Received, always, fault_server, first_then_answer

ROOT = Path(__file__).resolve().parents[1]
CRASH = str(ROOT / "tests" / "crashpoints.py")
ITEMS = 40
KEY_HEADER = "chargebee-idempotency-key"

WORKFLOW = """\
name: matrix
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.%(operation)s
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    readTimeoutSeconds: 1
    connectionTimeoutSeconds: 1
    maxResponseBytes: 2048
    retry: {maxAttempts: 3, intervalSeconds: 0.05, maxIntervalSeconds: 0.1}
    request:
      path: {invoice-id: "{{ item }}"}
      body: %(body)s
"""
BODIES = {
    "refund_invoice": '{refund_amount: 100, comment: "matrix"}',
    "record_refund": "{memo: matrix, transaction: {amount: 100, payment_method: check, date: 1700000000}}",
}
OPERATIONS = {"keyed": "refund_invoice", "keyless": "record_refund"}
FAULTS = ("refuse", "reset-before-body", "reset-after-body", "stall", "500", "502", "503", "429", "truncated",
          "non-json", "oversize")  # fmt: skip
KILLS = ("before-sent-commit", "after-sent-before-write", "mid-write", "after-answer-before-finished",
         "during-group-commit")  # fmt: skip
# The Nth request (or group commit) at which the process dies: well inside the fan-out, with others in flight.
KILL_AT = 13


class Case:
    """One run of the matrix: its files, its journal, its server, and the httptask processes it starts."""

    def __init__(self, tmp_path: Path, server: FaultServer, kind: str) -> None:
        self.server = server
        self.kind = kind
        self.operation = OPERATIONS[kind]
        self.workflow = tmp_path / "matrix.yaml"
        self.workflow.write_text(WORKFLOW % {"operation": self.operation, "body": BODIES[self.operation]})
        self.journal = tmp_path / "journal.sqlite3"
        self.env = {
            **os.environ,
            "HTTPTASK_JOURNAL": str(self.journal),
            "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_matrix_key",
        }
        self.invoices = [f"inv_{n:02d}" for n in range(ITEMS)]
        self.run_id = ""

    def path(self, index: int) -> str:
        action = "refund" if self.operation == "refund_invoice" else "record_refund"
        return f"/invoices/{self.invoices[index]}/{action}"

    def start(self, *prefix: str) -> subprocess.Popen[str]:
        inputs = json.dumps({"invoices": self.invoices, "api_url": self.server.url})
        args = ["run", str(self.workflow), "--input", inputs, "--concurrency", "8", "--json"]
        return subprocess.Popen(
            [sys.executable, *prefix, *(["-m", "httptask"] if not prefix else []), *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def httptask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "httptask", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=120,
        )

    def steps(self) -> dict[int, tuple[str, str | None, str | None]]:
        """item -> (state, outcome, idempotency key) as journaled."""
        with sqlite3.connect(self.journal) as connection:
            (self.run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
            rows = connection.execute(
                "SELECT item, state, outcome, idempotency_key FROM steps WHERE item >= 0"
            ).fetchall()
        return {item: (state, outcome, key) for item, state, outcome, key in rows}

    def decisions(self) -> list[tuple[int, str]]:
        with sqlite3.connect(self.journal) as connection:
            return connection.execute("SELECT item, action FROM decisions ORDER BY item").fetchall()


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        running.stall_seconds = 2.5
        running.oversize_bytes = 4096
        yield running


def _may_have_acted(state: str, outcome: str | None) -> bool:
    return state == "sent" or outcome == "unknown" or (state == "failed" and outcome == "answered")


def check_journal_against_server(case: Case) -> dict[int, tuple[str, str | None, str | None]]:
    """Step 1: the journal never says less than what the server saw."""
    steps = case.steps()
    acted, arrived = case.server.acted(), case.server.arrivals()
    for index in range(ITEMS):
        state, outcome, _ = steps.get(index, ("unscheduled", None, None))
        where = f"item {index} journaled {state}/{outcome}"
        if outcome == "not_sent":
            assert arrived[case.path(index)] == 0, f"{where}, but the server saw {arrived[case.path(index)]}"
        if state == "succeeded":
            assert acted[case.path(index)] == 1, (
                f"{where}, but the server acted {acted[case.path(index)]} times"
            )
        if acted[case.path(index)]:
            assert state == "succeeded" or _may_have_acted(state, outcome), (
                f"{where}, yet the server acted on it"
            )
    return steps


def plain_resume(case: Case, before: dict[int, tuple[str, str | None, str | None]]) -> None:
    """Step 2: a plain resume never sends a request of unknown outcome that is not idempotent."""
    arrived = case.server.arrivals()
    waiting = {i for i, (state, outcome, _) in before.items() if _may_have_acted(state, outcome)}
    done = case.httptask("run", "--resume", case.run_id, "--json")
    assert done.returncode in (0, 1), done.stderr
    after = case.server.arrivals()
    if case.kind == "keyless":
        resent = sorted(i for i in waiting if after[case.path(i)] != arrived[case.path(i)])
        assert resent == [], f"a plain resume sent items {resent} again"
        assert {e["item"] for e in json.loads(done.stdout)["errors"]} >= waiting
    else:
        for _ in range(2):  # a timeout on this busy machine leaves an item to the next plain resume
            if done.returncode == 0:
                break
            done = case.httptask("run", "--resume", case.run_id, "--json")
        assert done.returncode == 0, done.stdout


def resume_acts_once(case: Case) -> dict[int, tuple[str, str | None, str | None]]:
    """Steps 1 to 3 after a run was stopped: the journal against the server, a plain resume, decisions; every
    item acted on once. Gives what the journal said before the resume."""
    before = check_journal_against_server(case)
    plain_resume(case, before)
    decide_and_finish(case)
    return before


def decide_and_finish(case: Case) -> None:
    """Step 3: decide each waiting item from what the server did, then check every refund was done once.
    A resent refund that times out again on this busy machine waits again, so decisions take a few rounds."""
    decided: list[tuple[int, str]] = []
    for _ in range(3):
        shown = json.loads(case.httptask("runs", "show", case.run_id, "--json").stdout)
        waiting = [w["item"] for w in shown["waiting"]]
        if not waiting:
            break
        acted = case.server.acted()
        received = [i for i in waiting if acted[case.path(i)]]
        lost = [i for i in waiting if not acted[case.path(i)]]
        decided += [(i, "mark-done") for i in received] + [(i, "resend") for i in lost]
        args = ["run", "--resume", case.run_id, "--json"]
        args += ["--mark-done", f"refund[{','.join(map(str, received))}]"] if received else []
        args += ["--resend", f"refund[{','.join(map(str, lost))}]"] if lost else []
        done = case.httptask(*args)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert sorted(case.decisions()) == sorted(decided)
    else:
        pytest.fail("requests still wait for a decision after three rounds")
    final = case.steps()
    acted = case.server.acted()
    twice = {p: n for p, n in acted.items() if n > 1}
    assert twice == {}, f"refunds acted on twice: {twice}"
    keys = {p: {k for k in ks if k is not None} for p, ks in case.server.keys_by_path().items()}
    assert {p: ks for p, ks in keys.items() if len(ks) > 1} == {}, "items sent with two keys"
    if case.kind == "keyed":
        journaled = {case.path(i): key for i, (_, _, key) in final.items()}
        assert all(keys[p] <= {journaled[p]} for p in keys), (
            "a key on the wire that the journal does not hold"
        )
    assert all(acted[case.path(i)] == 1 for i in range(ITEMS)), "a refund never done"
    assert {state for state, _, _ in final.values()} <= {"succeeded", "resolved"}


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_of_the_server(server: FaultServer, tmp_path: Path, kind: str, fault: str) -> None:
    case = Case(tmp_path, server, kind)
    server.reset(first_then_answer(fault) if fault != "refuse" else always("answer"))
    with server.refusing() if fault == "refuse" else nullcontext():
        first = case.start()
        _, err = first.communicate(timeout=120)
    assert first.returncode in (0, 1), err
    before = check_journal_against_server(case)
    if fault == "refuse":
        assert {o for _, o, _ in before.values()} == {"not_sent"}
    server.schedule = always("answer")  # it keeps what it acted on; from now on it behaves
    plain_resume(case, before)
    decide_and_finish(case)


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
@pytest.mark.parametrize("point", KILLS)
def test_kill_9_at_every_point(server: FaultServer, tmp_path: Path, kind: str, point: str) -> None:
    case = Case(tmp_path, server, kind)
    server.reset(always("answer"))
    if point == "mid-write":
        holder: list[subprocess.Popen[str]] = []

        def kill(received: Received) -> None:
            holder[0].send_signal(signal.SIGKILL)

        server.schedule = lambda path, arrived: "hold" if path == case.path(KILL_AT) else "answer"
        server.on_hold = kill
        process = case.start()
        holder.append(process)
    else:
        process = case.start(CRASH, point, str(KILL_AT))
    try:
        process.communicate(timeout=120)
    finally:
        server.on_hold = None
    assert process.returncode == -signal.SIGKILL
    time.sleep(0.1)  # what was on the wire reaches the server's log
    server.schedule = always("answer")
    resume_acts_once(case)


# Each resume imports httptask, says it is ready, and waits for the other: however slow an import is on a
# busy machine, both claim the run within milliseconds of each other.
AT_ONCE = """
import os, sys, time
from httptask.cli import main
barrier, me = sys.argv[1], sys.argv[2]
open(os.path.join(barrier, me), "w").close()
deadline = time.monotonic() + 60
while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
    time.sleep(0.001)
sys.argv = ["httptask", *sys.argv[3:]]
main()
"""


@pytest.mark.parametrize("kind", ["keyed", "keyless"])
def test_two_resumes_at_once_never_both_send(server: FaultServer, tmp_path: Path, kind: str) -> None:
    case = Case(tmp_path, server, kind)
    server.reset(always("answer"))
    killed = case.start(CRASH, "after-sent-before-write", "3")
    killed.communicate(timeout=120)
    case.steps()
    # Answers wait at a gate until one resume has exited: the other is surely still sending, however slowly
    # a loaded machine starts either process.
    server.gate = threading.Event()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    try:
        resumes = [
            subprocess.Popen(
                [sys.executable, "-c", AT_ONCE, str(barrier), str(n), "run", "--resume", case.run_id,
                 "--json"],
                env=case.env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for n in range(2)
        ]
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in resumes) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.gate.set()
        results = [(p.communicate(timeout=120), p.returncode) for p in resumes]
    finally:
        server.gate.set()
        server.gate = None
    refused = [err for (_, err), code in results if code == 2]
    finished = [code for _, code in results if code != 2]
    assert len(refused) == 1 and finished[0] in (0, 1), results
    assert f"error: Run {case.run_id} is being resumed by process " in refused[0]
    assert server.acted() == {p: 1 for p in server.acted()}
    decide_and_finish(case)


def test_the_matrix_covers_the_issue(server: FaultServer) -> None:
    """The fault list of tests/faults.py and the kill points of tests/crashpoints.py are all exercised."""
    from crashpoints import POINTS
    from faults import FAULTS as SERVER_FAULTS

    assert set(FAULTS) - {"refuse"} == set(SERVER_FAULTS) - {"answer", "hold"}
    assert set(KILLS) == {*POINTS, "mid-write"}
