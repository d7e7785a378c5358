"""Response checks in `httptask run` on the local engine, as a user runs it (subprocess): a response that
breaks its operation's spec is journaled with its issues and JSON paths, redacted; under `--strict-responses`
or a task's `strictResponses: true` it fails its task as an answer, and a resume does not send it again."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from servers import RecordingServer

HTTPTASK = str(Path(sys.executable).with_name("httptask"))
SECRET = "tok_OKAPI_93c1_never_journal_me"
# Two mismatches, and a field that echoes the credential back as the value a message quotes.
ODD_REFUND = json.dumps({"code": f"Zoho-oauthtoken {SECRET}", "refund": {"refund_id": 5}}).encode()
FITTING_REFUND = json.dumps({"code": 0, "message": "ok", "refund": {"refund_id": "r1"}}).encode()
JSON = {"Content-Type": "application/json"}


def workflow(server_url: str, *, strict: bool = False) -> str:
    return (
        "name: refunds\n"
        "inputs: {payments: {type: array}}\n"
        "tasks:\n"
        "  - id: refund\n"
        "    operation: zoho-billing.refund_payment\n"
        "    forEach: '{{ input.payments }}'\n"
        "    credentials: zoho_token\n"
        f"    server: {{url: '{server_url}'}}\n"
        "    retry: {maxAttempts: 3}\n"
        + ("    strictResponses: true\n" if strict else "")
        + "    request:\n"
        "      path: {payment_id: '{{ item }}'}\n"
        "      headers: {X-com-zoho-subscriptions-organizationid: '10234695'}\n"
        "      body: {amount: 5, description: refund}\n"
    )


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


def run(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET")}
    env.update({"HTTPTASK_SECRET_ZOHO_TOKEN": SECRET, "HTTPTASK_JOURNAL": str(journal)})
    done = subprocess.run([HTTPTASK, *args], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    return done


def journaled_steps(journal: Path, run_id: str) -> list[dict[str, Any]]:
    done = run(journal, "runs", "show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    steps: list[dict[str, Any]] = json.loads(done.stdout)["steps"]
    return [step for step in steps if step["item"] >= 0]


def assert_secret_not_in(journal: Path) -> None:
    with sqlite3.connect(journal) as db:
        dumped = "\n".join(db.iterdump())
    assert "refund_id" in dumped  # the responses are there,
    assert SECRET not in dumped  # the secret they echo is not


def test_a_response_that_breaks_the_spec_is_journaled_with_its_issues(
    server: RecordingServer, tmp_path: Path, journal: Path
) -> None:
    file = tmp_path / "refunds.yaml"
    file.write_text(workflow(server.url), encoding="utf-8")
    server.answer(201, ODD_REFUND, JSON)
    server.answer(201, FITTING_REFUND, JSON)
    done = run(journal, "run", str(file), "--input", '{"payments": ["p1", "p2"]}', "--concurrency", "1",
               "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    [task] = result["tasks"]
    assert (task["responses_off_spec"], task["first_off_spec"]["item"]) == (1, 0)
    assert [i["path"] for i in task["first_off_spec"]["issues"]] == ["$.body.code", "$.body.refund.refund_id"]
    odd, fitting = journaled_steps(journal, result["run_id"])
    assert odd["state"] == "succeeded"
    assert [(i["path"], i["message"]) for i in odd["response"]["issues"]] == [
        ("$.body.code", "must be of type integer, not string '***'"),
        ("$.body.refund.refund_id", "must be of type string, not integer 5"),
    ]
    assert "issues" not in fitting["response"]
    assert len(server.requests) == 2
    assert_secret_not_in(journal)


@pytest.mark.parametrize("how", ["--strict-responses", "strictResponses: true"])
def test_strict_responses_fail_the_task_and_a_resume_does_not_send_it_again(
    server: RecordingServer, tmp_path: Path, journal: Path, how: str
) -> None:
    file = tmp_path / "refunds.yaml"
    file.write_text(workflow(server.url, strict=how != "--strict-responses"), encoding="utf-8")
    flag = [how] if how == "--strict-responses" else []
    server.answer(201, ODD_REFUND, JSON)
    done = run(journal, "run", str(file), "--input", '{"payments": ["p1"]}', "--json", *flag)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "failed"
    [error] = result["errors"]
    assert error["message"] == (
        "task refund (zoho-billing.refund_payment) answered 201, but the response does not fit the spec "
        "(2 problems); strict responses make that a failure:\n"
        "  $.body.code: must be of type integer, not string '***'\n"
        "  $.body.refund.refund_id: must be of type string, not integer 5"
    )
    # Three attempts were allowed: a failed check is no retry.
    assert len(server.requests) == 1
    [step] = journaled_steps(journal, result["run_id"])
    assert (step["state"], step["http_status"], step["outcome"]) == ("failed", 201, "answered")
    # The refund was answered 201 and is not idempotent: a resume leaves it to a decision, never resends it.
    resumed = run(journal, "run", "--resume", result["run_id"], "--json")
    assert json.loads(resumed.stdout)["status"] == "failed"
    assert len(server.requests) == 1
    assert_secret_not_in(journal)


def test_strict_responses_cannot_be_changed_on_a_resume(
    server: RecordingServer, tmp_path: Path, journal: Path
) -> None:
    done = run(journal, "run", "--resume", "20250101-000000-abcdef", "--strict-responses")
    assert done.returncode == 2
    assert done.stderr == (
        "error: --sandbox and --strict-responses cannot be changed on --resume: a run resumes as it "
        "started.\n"
    )


def test_run_warns_of_the_first_response_that_breaks_the_spec_and_counts_the_others(
    server: RecordingServer, tmp_path: Path, journal: Path
) -> None:
    file = tmp_path / "refunds.yaml"
    file.write_text(workflow(server.url), encoding="utf-8")
    for body in (ODD_REFUND, ODD_REFUND, FITTING_REFUND):
        server.answer(201, body, JSON)
    done = run(journal, "run", str(file), "--input", '{"payments": ["p1", "p2", "p3"]}', "--concurrency", "1")
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.split()[1]
    assert done.stderr.splitlines()[1:] == [
        "warning: the response does not fit the spec of task refund, item 0 (2 problems):",
        "  $.body.code: must be of type integer, not string '***'",
        "  $.body.refund.refund_id: must be of type string, not integer 5",
        f"  ... and 1 more response of task refund: 'httptask runs show {run_id} --json' lists them all.",
    ]
