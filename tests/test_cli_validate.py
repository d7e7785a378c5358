"""`httptask validate` through the real entry point: line format, --json, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WORKFLOW = """\
name: cb
inputs:
  invoice: {type: string}
tasks:
  - id: record
    operation: chargebee.record_refund
    request:
      path: {invoice-id: "{{ input.invoice }}"}
      body:
        memo: Refund
        transaction: {payment_method: cashh, date: "{{ now('unix') }}", amount: "{{ input.amont }}"}
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args], capture_output=True, text=True, timeout=60
    )


def test_problems_print_one_line_each_and_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    result = run_cli("validate", str(path))
    assert result.returncode == 3
    assert result.stdout.splitlines() == [
        f"{path}:11: $.tasks[0].request.body.transaction.amount: reads input.amont, which is not an "
        "input of this "
        "workflow (its inputs: invoice); declare it under inputs",
        f"{path}:11: $.tasks[0].request.body.transaction.payment_method: must be one of 'cash', 'check', "
        "'chargeback', 'bank_transfer', 'other', not 'cashh'",
    ]
    assert result.stderr == f"{path}: the workflow is not valid (2 problems).\n"


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    result = run_cli("validate", str(path), "--json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["errors"][1] == {
        "path": "$.tasks[0].request.body.transaction.payment_method",
        "message": "must be one of 'cash', 'check', 'chargeback', 'bank_transfer', 'other', not 'cashh'",
        "expected": ["cash", "check", "chargeback", "bank_transfer", "other"],
        "actual": "cashh",
        "line": 11,
    }


def test_a_valid_workflow_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        WORKFLOW.replace("cashh", "cash").replace("input.amont", "input.invoice"), encoding="utf-8"
    )
    assert run_cli("validate", str(path)).stdout == f"{path}: valid (1 task).\n"
    result = run_cli("validate", str(path), "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, {"valid": True, "errors": []})


def test_yaml_syntax_errors_and_missing_files_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [x\n", encoding="utf-8")
    result = run_cli("validate", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {path}:2:1: invalid YAML: expected ',' or ']', but got '<stream end>'. "
        "Fix the syntax and try again.\n"
    )
    result = run_cli("validate", str(path), "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "valid": False,
        "errors": [
            {
                "path": "$",
                "message": "invalid YAML: expected ',' or ']', but got '<stream end>'. Fix the syntax and "
                "try again.",
                "line": 2,
            }
        ],
    }
    missing = tmp_path / "nope.yaml"
    result = run_cli("validate", str(missing))
    assert (result.returncode, result.stderr) == (2, f"error: No such file: '{missing}'.\n")


def test_schema_errors_exit_3_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("name: w\ntasks:\n  - id: a\n    operation: stripe.x\n    retries: 3\n", encoding="utf-8")
    result = run_cli("validate", str(path))
    assert result.returncode == 3
    assert result.stdout.splitlines()[0].startswith(
        f"{path}:5: $.tasks[0].retries: is not a field of this object"
    )
    assert "Traceback" not in result.stderr
