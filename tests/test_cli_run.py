"""`httptask run` and `httptask runs` as a user runs them: output, --json, exit codes, the journal views."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
INPUTS = json.dumps({"invoices": [{"id": "inv_1", "amount": 100}, {"id": "inv_2", "amount": 250}]})


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HTTPTASK_JOURNAL": str(tmp_path / "journal.sqlite3"),
        "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_cli_key",
    }


def httptask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args], env=env, text=True, capture_output=True, timeout=60
    )


def test_run_prints_a_summary_and_the_outputs_and_runs_show_reads_the_journal(env: dict[str, str]) -> None:
    done = httptask(env, "run", str(EXAMPLE), "--sandbox", "--input", INPUTS)
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.removeprefix("run ").strip()
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"run {run_id}: succeeded", "task    status       HTTP    time"]
    assert lines[2].startswith("refund  2 succeeded  200 ×2  ")  # noqa: RUF001
    assert json.loads("\n".join(lines[4:])) == {"refunded": 2, "statuses": [200, 200]}
    assert lines[3] == "outputs:"

    listed = httptask(env, "runs", "list")
    assert listed.stdout.splitlines()[0].split() == ["run", "workflow", "status", "started", "steps"]
    assert listed.stdout.splitlines()[1].split()[:3] == [run_id, "refund-invoices", "succeeded"]
    shown = httptask(env, "runs", "show", run_id, "--json")
    data = json.loads(shown.stdout)
    assert (data["status"], data["inputs"]["invoices"][1]["id"]) == ("succeeded", "inv_2")
    assert [(s["item"], s["state"]) for s in data["steps"]] == [
        (-1, "succeeded"),
        (0, "succeeded"),
        (1, "succeeded"),
    ]
    assert "test_cli_key" not in shown.stdout


def test_run_json_prints_the_run_as_data(env: dict[str, str]) -> None:
    done = httptask(env, "run", str(EXAMPLE), "--sandbox", "--input", INPUTS, "--json")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert sorted(data) == ["errors", "outputs", "run_id", "status", "tasks"]
    assert (data["status"], data["errors"], data["outputs"]["refunded"]) == ("succeeded", [], 2)
    assert data["tasks"][0]["items"] == {"succeeded": 2}
    assert done.stderr == ""


def test_inputs_that_do_not_fit_exit_3_and_send_nothing(env: dict[str, str]) -> None:
    done = httptask(env, "run", str(EXAMPLE), "--sandbox", "--input", '{"invoices": []}')
    assert done.returncode == 3
    assert done.stderr == (
        "error: The inputs do not fit the workflow 'refund-invoices' (1 problem); nothing was "
        "sent:\n  $.input.invoices: must have at least 1 items, not 0\n"
    )
    as_json = httptask(env, "run", str(EXAMPLE), "--input", '{"invoices": []}', "--json")
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["errors"] == [
        {
            "path": "$.input.invoices",
            "message": "must have at least 1 items, not 0",
            "expected": 1,
            "actual": 0,
        }
    ]


def test_usage_mistakes_exit_2(env: dict[str, str]) -> None:
    done = httptask(env, "run", str(EXAMPLE), "--mark-done", "refund")
    assert (done.returncode, done.stderr) == (
        2,
        "error: --mark-done, --resend, --reconcile and --note only apply to --resume RUN_ID.\n",
    )
    missing = httptask(
        {**env, "HTTPTASK_SECRET_CHARGEBEE_API_KEY": ""}, "run", str(EXAMPLE), "--input", INPUTS
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: No secret named 'CHARGEBEE_API_KEY'")
    unknown = httptask(env, "run", "--resume", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: No run 'nope' in the journal")


def test_a_failed_task_exits_1_and_reports_the_failure(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workflow = tmp_path / "down.yaml"
    workflow.write_text(
        f"name: down\ntasks:\n  - id: ping\n    httpRequest: {{url: 'http://127.0.0.1:{port}/'}}\n"
        "    retry: {maxAttempts: 1}\n  - id: after\n    needs: [ping]\n"
        f"    httpRequest: {{url: 'http://127.0.0.1:{port}/'}}\n"
    )
    done = httptask(env, "run", str(workflow))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].endswith(": failed")
    assert f"error: task ping: Could not connect to http://127.0.0.1:{port}: " in done.stderr
    assert "skipped: task after: not run: it needs ping (failed)\n" in done.stderr


def test_resume_refuses_a_workflow_file_that_changed(env: dict[str, str], tmp_path: Path) -> None:
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(EXAMPLE.read_text())
    done = httptask(env, "run", str(workflow), "--sandbox", "--input", INPUTS, "--json")
    run_id = json.loads(done.stdout)["run_id"]
    workflow.write_text(EXAMPLE.read_text() + "\n# edited\n")
    refused = httptask(env, "run", str(workflow), "--resume", run_id)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: '{workflow}' has changed since run {run_id} started; a resume runs the "
        "workflow as it was then (stored in the journal): leave out the file to use the "
        "stored text, or start a new run.\n"
    )
    again = httptask(env, "run", "--resume", run_id, "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["outputs"]["refunded"] == 2
