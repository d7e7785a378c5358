"""Every example workflow validates, and runs on the local engine against the sandbox with its "
"sample inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SECRETS = {
    "GEINS_API_KEY": "geins-key-example-1",
    "GEINS_BASIC": "geins-user:geins-pass-2",
    "CHARGEBEE_API_KEY": "cb-key-example-3",
    "STRIPE_SECRET_KEY": "sk_test_example_4",
    "ZOHO_OAUTH_TOKEN": "zoho-token-example-5",
}
EXPECTED_OUTPUTS = {
    "geins-refund-then-chargebee": {
        "geins_refund": "3f9c2a71-5b0e-4d8a-9e61-2c7d4b8f1a05",
        "invoice_status": "paid",
    },
    "stripe-report-refund": {"payment_record": "pr_5RV7bLSu4AzMD4oJ", "refunded": 1000},
    "zoho-refund-and-fetch": {"refund_id": "90300000081385", "status": "success", "fetched": 200},
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_validates(path: Path) -> None:
    result = run_cli("validate", str(path), "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, {"valid": True, "errors": []})


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_example_runs_against_the_sandbox(name: str, tmp_path: Path) -> None:
    env = {f"HTTPTASK_SECRET_{key}": value for key, value in SECRETS.items()}
    env["HTTPTASK_JOURNAL"] = str(tmp_path / "journal.sqlite")
    result = run_cli(
        "run",
        str(EXAMPLES / f"{name}.yaml"),
        "--sandbox",
        "--json",
        "--input",
        f"@{EXAMPLES / 'inputs' / f'{name}.json'}",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert all(task["state"] == "succeeded" and 200 <= task["http_status"] < 300 for task in report["tasks"])
    assert report["outputs"] == EXPECTED_OUTPUTS[name]
    for secret in SECRETS.values():
        assert secret not in result.stdout and secret not in result.stderr
