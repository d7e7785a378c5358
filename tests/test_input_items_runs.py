"""`httptask run --input-items NAME=FILE`: a forEach over items read lazily from a JSON Lines file, end to end
against a refund server on 127.0.0.1 with a real SQLite journal. A run killed with SIGKILL and resumed sends
nothing twice; a resume refuses a file that changed; a bad line or a missing file is one sentence naming the
file and line, and nothing is sent."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from crashpoints import killed_run
from faults import fault_server

ITEMS = 30
WORKFLOW = """\
name: refund-file
inputs:
  refunds:
    type: array
    minItems: 1
    items:
      type: object
      required: [invoice]
      properties: {invoice: {type: string, minLength: 1}}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.record_refund
    forEach: "{{ input.refunds }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    retry: {maxAttempts: 1}
    request:
      path: {invoice-id: "{{ item.invoice }}"}
      body: {memo: filed, transaction: {amount: 100, payment_method: check, date: 1700000000}}
outputs:
  refunded: "{{ tasks.refund | length }}"
  statuses: "{{ tasks.refund | rejectattr('response', 'none') | map(attribute='response.status') | list }}"
  first: "{{ input.refunds[0].invoice }}"
"""


def _setup(tmp_path: Path, items: int = ITEMS) -> tuple[Path, Path, dict[str, str]]:
    workflow = tmp_path / "refund-file.yaml"
    workflow.write_text(WORKFLOW)
    refunds = tmp_path / "refunds.jsonl"
    refunds.write_text("".join(json.dumps({"invoice": f"inv_{n:03d}"}) + "\n" for n in range(items)))
    env = {
        **os.environ,
        "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_items_key",
    }
    return workflow, refunds, env


def _httptask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _resume_deciding(
    env: dict[str, str], run_id: str, acted: Counter[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Resume, deciding about each request of unknown outcome as a person would, from the server's own
    records: received (--mark-done), or not (--resend)."""
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        waiting = [item for (item,) in connection.execute(
            "SELECT item FROM steps WHERE run_id = ? AND state = 'sent'", (run_id,)
        )]  # fmt: skip
    received = [i for i in waiting if f"/invoices/inv_{i:03d}/record_refund" in acted]
    decisions = [f"--mark-done=refund[{i}]" for i in received]
    decisions += [f"--resend=refund[{i}]" for i in waiting if i not in received]
    return _httptask(env, "run", "--resume", run_id, *decisions, *args)


def _killed(
    env: dict[str, str], url: str, point: str, n: int, workflow: Path, refunds: Path, *args: str
) -> str:
    """The id of a run of `workflow` over `refunds` killed with SIGKILL at `point` of its `n`th request."""
    api = json.dumps({"api_url": url})
    items = f"refunds={refunds}"
    return killed_run(env, point, n, "run", str(workflow), "--input", api, "--input-items", items, *args)


def _paths(count: int) -> set[str]:
    return {f"/invoices/inv_{n:03d}/record_refund" for n in range(count)}


def test_a_run_reads_its_items_from_a_json_lines_file(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path)
    with fault_server() as server:
        api = json.dumps({"api_url": server.url})
        done = _httptask(env, "run", str(workflow), "--input", api, "--input-items", f"refunds={refunds}",
                         "--json")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        acted = server.acted()
    assert set(acted) == _paths(ITEMS) and set(acted.values()) == {1}
    result = json.loads(done.stdout)
    assert result["outputs"] == {"refunded": ITEMS, "statuses": [200] * ITEMS, "first": "inv_000"}
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        (inputs,) = connection.execute("SELECT inputs FROM runs").fetchone()
    stored = json.loads(inputs)["refunds"]["$items"]
    assert (stored["file"], stored["count"]) == (str(refunds.resolve()), ITEMS)
    assert len(stored["sha256"]) == 64
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        # Each step's row (request and response) fits in its page: none spills into an overflow page.
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (spilled,) = connection.execute(
            "SELECT count(*) FROM dbstat WHERE name = 'steps' AND pagetype = 'overflow'"
        ).fetchone()
    assert (page_size, spilled) == (16384, 0)


def test_a_killed_run_resumed_sends_nothing_twice(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path)
    with fault_server() as server:
        run_id = _killed(env, server.url, "after-sent-before-write", 12, workflow, refunds, "--concurrency=4")
        before = server.acted()
        assert 0 < sum(before.values()) < ITEMS and set(before.values()) == {1}

        # The requests in flight at the kill were journaled as sent with no answer: each waits for a decision.
        resumed = _httptask(env, "run", "--resume", run_id)
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
            waiting = [item for (item,) in connection.execute(
                "SELECT item FROM steps WHERE run_id = ? AND state = 'sent'", (run_id,)
            )]  # fmt: skip
        assert 1 <= len(waiting) <= 4
        assert f"{len(waiting)} request" in resumed.stderr
        after = server.acted()
        assert set(after.values()) == {1} and len(after) >= ITEMS - len(waiting)

        final = _resume_deciding(env, run_id, after, "--json")
        assert final.returncode == 0, final.stdout + final.stderr
        acted = server.acted()
    assert set(acted) == _paths(ITEMS) and set(acted.values()) == {1}
    assert json.loads(final.stdout)["outputs"]["refunded"] == ITEMS


@pytest.mark.parametrize("change", ["edited", "moved-and-edited"])
def test_a_resume_refuses_an_items_file_that_changed(tmp_path: Path, change: str) -> None:
    workflow, refunds, env = _setup(tmp_path)
    with fault_server() as server:
        run_id = _killed(env, server.url, "before-sent-commit", 8, workflow, refunds, "--concurrency=1")
        before = server.acted()
        lines = refunds.read_text().splitlines(keepends=True)
        lines[2], lines[3] = lines[3], lines[2]  # the same items, two of them swapped
        extra: list[str] = []
        if change == "moved-and-edited":
            moved = tmp_path / "moved.jsonl"
            moved.write_text("".join(lines))
            extra = ["--input-items", f"refunds={moved}"]
            refunds.unlink()
            changed = moved.resolve()
        else:
            refunds.write_text("".join(lines))
            changed = refunds.resolve()
        resumed = _httptask(env, "run", "--resume", run_id, *extra)
        assert resumed.returncode == 2, resumed.stdout + resumed.stderr
        assert resumed.stderr == (
            f"error: The items file '{changed}' has changed since the run started; a resume must read the "
            "same items (restore the file, or start a new run).\n"
        )
        assert server.acted() == before


def test_a_resume_reads_a_moved_file_that_holds_the_same_items(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path)
    with fault_server() as server:
        run_id = _killed(env, server.url, "before-sent-commit", 8, workflow, refunds, "--concurrency=1")
        moved = refunds.rename(tmp_path / "moved.jsonl")
        missing = _httptask(env, "run", "--resume", run_id)
        assert missing.returncode == 2
        assert missing.stderr == (
            f"error: Cannot read the items file '{refunds.resolve()}' (No such file or directory).\n"
        )
        resumed = _resume_deciding(env, run_id, server.acted(), "--input-items", f"refunds={moved}")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        acted = server.acted()
    assert set(acted) == _paths(ITEMS) and set(acted.values()) == {1}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"invoice": "inv_1"}', "", '{"invoice": "inv_2",'],
         "error: {file}:3: not a JSON value (Expecting property name enclosed in double quotes at column "
         "21); each line of an items file holds one "
         'JSON value, such as {{"id": "inv_1", "amount": 100}}.\n'),
        (['{"invoice": "inv_1"}', '{"invoice": 7}', "{}"],
         "error: The items in '{file}' do not fit the input 'refunds'; nothing was sent:\n"
         "  {file}:2: $.input.refunds[1].invoice: must be of type string, not integer 7\n"
         "  {file}:3: $.input.refunds[2].invoice: is required but missing\n"),
        ([], "error: The items file '{file}' holds 0 items; the input 'refunds' takes at least 1; nothing "
             "was sent.\n"),
    ],
    ids=["not-json", "not-fitting", "too-few"],
)  # fmt: skip
def test_a_bad_items_file_is_one_sentence_and_nothing_is_sent(
    tmp_path: Path, lines: list[str], expected: str
) -> None:
    workflow, refunds, env = _setup(tmp_path)
    refunds.write_text("\n".join(lines) + "\n")
    with fault_server() as server:
        api = json.dumps({"api_url": server.url})
        done = _httptask(env, "run", str(workflow), "--input", api, "--input-items", f"refunds={refunds}")
        assert server.arrivals() == {}
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == expected.format(file=refunds)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input-items", "refunds={missing}"],
         "Cannot read the items file '{missing}' (No such file or directory)."),
        (["--input-items", "refunds"],
         "--input-items 'refunds': give NAME=FILE, such as invoices=invoices.jsonl (one JSON value a line)."),
        (["--input-items", "invoices={file}"],
         "--input-items invoices={file}: the workflow has no input 'invoices' (its inputs: refunds, "
         "api_url)."),
        (["--input-items", "api_url={file}"],
         "--input-items api_url=FILE: the input 'api_url' is not a list (its type is string); an items file "
         "gives the items of a list."),
        (["--input-items", "refunds={file}", "--engine", "temporal"],
         "--input-items runs on the local engine only; on Temporal, give the items with --input."),
    ],
    ids=["missing", "no-name", "unknown-input", "not-a-list", "temporal"],
)  # fmt: skip
def test_a_bad_input_items_option_is_one_sentence(tmp_path: Path, args: list[str], expected: str) -> None:
    workflow, refunds, env = _setup(tmp_path)
    missing = tmp_path / "none.jsonl"
    argv = [a.format(file=refunds, missing=missing) for a in args]
    done = _httptask(env, "run", str(workflow), "--input", '{"api_url": "http://127.0.0.1:9"}', *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == f"error: {expected.format(file=refunds, missing=missing)}\n"


def test_plan_reads_the_items_file(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path, items=3)
    done = _httptask(env, "plan", str(workflow), "--input", '{"api_url": "http://127.0.0.1:9"}',
                     "--input-items", f"refunds={refunds}", "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout)
    urls = [r["request"]["url"] for r in plan["tasks"][0]["requests"]]
    assert urls == [f"http://127.0.0.1:9/invoices/inv_{n:03d}/record_refund" for n in range(3)]


def test_runs_show_pages_through_a_large_run(tmp_path: Path) -> None:
    workflow, refunds, env = _setup(tmp_path, items=250)
    with fault_server() as server:
        api = json.dumps({"api_url": server.url})
        done = _httptask(env, "run", str(workflow), "--input", api, "--input-items", f"refunds={refunds}",
                         "--json", "--concurrency", "8")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    # 251 steps: the task's own row, then its 250 items.
    first = _httptask(env, "runs", "show", run_id)
    assert first.returncode == 0, first.stderr
    assert "steps 1-100 of 251 (page 1 of 3; --page 2 for the next, --all for every one)" in first.stdout
    rows = [line.split() for line in first.stdout.splitlines() if line.startswith("refund ")]
    assert [row[1] for row in rows] == ["succeeded"] + [str(n) for n in range(99)]

    last = _httptask(env, "runs", "show", run_id, "--page", "3")
    assert "steps 201-251 of 251 (page 3 of 3; --all for every one)" in last.stdout
    items = [line.split()[1] for line in last.stdout.splitlines() if line.startswith("refund ")]
    assert items == [str(n) for n in range(199, 250)]

    every = _httptask(env, "runs", "show", run_id, "--all")
    assert "steps 1-" not in every.stdout
    assert len([line for line in every.stdout.splitlines() if line.startswith("refund ")]) == 251

    page = json.loads(_httptask(env, "runs", "show", run_id, "--json", "--limit", "40", "--page", "2").stdout)
    assert (page["steps_total"], page["page"], page["pages"], page["limit"]) == (251, 2, 7, 40)
    assert [s["item"] for s in page["steps"]] == list(range(39, 79))
    whole = json.loads(_httptask(env, "runs", "show", run_id, "--json", "--all").stdout)
    assert [s["item"] for s in whole["steps"]] == [-1, *range(250)]
    assert whole["steps"][1]["response"]["status"] == 200 and whole["outputs"]["refunded"] == 250

    beyond = _httptask(env, "runs", "show", run_id, "--page", "4")
    assert beyond.returncode == 2
    assert beyond.stderr == f"error: Run {run_id} has 251 steps, 3 pages of 100; give --page 1 to 3.\n"


def test_a_run_killed_while_scheduling_its_items_resumes(tmp_path: Path) -> None:
    """Rows are scheduled 10,000 to a commit before the first send: killed between two of those commits,
    the run sent nothing, and its resume sends every item once (not refused for a count that differs)."""
    items = 10_050
    workflow, refunds, env = _setup(tmp_path, items=items)
    with fault_server() as server:
        run_id = _killed(env, server.url, "during-group-commit", 2, workflow, refunds)
        assert server.arrivals() == {}
        with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
            (scheduled,) = connection.execute("SELECT count(*) FROM steps WHERE item >= 0").fetchone()
        assert scheduled == 9_999
        resumed = _httptask(env, "run", "--resume", run_id, "--concurrency", "32", "--json")
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr
        acted = server.acted()
    assert len(acted) == items and set(acted.values()) == {1}
