"""`httptask plan`: what a run would send, by task and item, redacted, with totals per currency, the
requests that are not idempotent and the tasks that cannot be planned; every invalid item is listed, and
nothing is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from faults import fault_server
from httptask.catalog import Catalog
from httptask.plan import plan_workflow
from httptask.secrets import SecretStore
from httptask.workflow import parse_workflow_text

ROOT = Path(__file__).resolve().parents[1]
CANARY = "sk_live_PLANCANARY_7731"

STRIPE_REFUNDS = """\
name: stripe-refunds
inputs:
  refunds: {type: array}
tasks:
  - id: report
    operation: stripe.report_payment_record_refund
    forEach: "{{ input.refunds }}"
    credentials: STRIPE_SECRET_KEY
    request:
      path: {id: "{{ item.record }}"}
      body:
        outcome: refunded
        amount: {value: "{{ item.cents }}", currency: "{{ item.currency }}"}
        refunded: {refunded_at: 1763800000}
        processor_details: {type: custom, custom: {refund_reference: "{{ item.ref }}"}}
  - id: record
    operation: chargebee.record_refund
    forEach: "{{ input.refunds }}"
    credentials: STRIPE_SECRET_KEY
    server: {url: "https://acme.chargebee.com/api/v1"}
    request:
      path: {invoice-id: "{{ item.record }}"}
      body:
        memo: "{{ item.ref }}"
        transaction: {amount: "{{ item.cents }}", payment_method: check, date: 1}
  - id: after
    operation: zoho-billing.refund_payment
    needs: [report]
    credentials: STRIPE_SECRET_KEY
    request:
      path: {payment_id: "{{ tasks.report[0].response.body.id }}"}
      headers: {X-com-zoho-subscriptions-organizationid: "1"}
      body: {amount: 1}
"""


def _plan(tmp_path: Path, refunds: list[dict[str, Any]], *args: str) -> subprocess.CompletedProcess[str]:
    workflow = tmp_path / "refunds.yaml"
    workflow.write_text(STRIPE_REFUNDS)
    env = {**os.environ, "HTTPTASK_SECRET_STRIPE_SECRET_KEY": CANARY}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "httptask",
            "plan",
            str(workflow),
            "--input",
            json.dumps({"refunds": refunds}),
            *args,
        ],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )


REFUNDS = [
    {"record": "pr_1", "cents": 1000, "currency": "usd", "ref": "A-1"},
    {"record": "pr_2", "cents": 250, "currency": "EUR", "ref": "A-2"},
    {"record": "pr_3", "cents": 5, "currency": "usd", "ref": "A-3"},
]


def test_a_plan_lists_each_request_by_task_with_totals_per_currency(tmp_path: Path) -> None:
    done = _plan(tmp_path, REFUNDS, "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    report, record, after = plan["tasks"]
    assert [r["request"]["url"] for r in report["requests"]] == [
        f"https://api.stripe.com/v1/payment_records/pr_{n}/report_refund" for n in (1, 2, 3)
    ]
    assert {r["request"]["idempotency_key"] for r in report["requests"]} == {"<derived at run time>"}
    assert [r["idempotent"] for r in record["requests"]] == [False, False, False]
    assert (after["plannable"], after["depends_on"], after["requests"]) == (False, ["report"], [])
    assert (plan["requests"], plan["not_idempotent"]) == (6, 3)
    assert plan["totals"] == [
        {"currency": "eur", "unit": "minor", "value": "250"},
        {"currency": "usd", "unit": "minor", "value": "1005"},
        {"currency": None, "unit": "minor", "value": "1255"},
    ]
    assert plan["invalid"] == []
    assert CANARY not in done.stdout + done.stderr
    assert report["requests"][0]["request"]["headers"]["authorization"] == "***"


def test_the_text_plan_flags_what_is_not_idempotent_and_what_cannot_be_planned(tmp_path: Path) -> None:
    done = _plan(tmp_path, REFUNDS[:1])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "plan of stripe-refunds: 2 requests, 1 not idempotent; nothing was sent"
    assert "  [0] POST https://acme.chargebee.com/api/v1/invoices/pr_1/record_refund  NOT IDEMPOTENT" in lines
    assert "task after: not planned, it reads the responses of report" in lines
    assert "total: 1000 (minor units) usd" in lines
    assert "total: 1000 (minor units) in each resource's currency" in lines


def test_every_invalid_item_is_listed_not_only_the_first(tmp_path: Path) -> None:
    refunds = [
        *REFUNDS,
        {"record": "pr_4", "cents": "ten", "currency": "usd", "ref": "A-4"},
        {"record": "pr_5"},
    ]
    done = _plan(tmp_path, refunds, "--json")
    assert done.returncode == 3
    invalid = json.loads(done.stdout)["invalid"]
    assert sorted({(i["task"], i["item"]) for i in invalid}) == [
        ("record", 3),
        ("record", 4),
        ("report", 3),
        ("report", 4),
    ]
    text = _plan(tmp_path, refunds)
    assert text.returncode == 3
    assert "invalid: task report, item 3: $.body.amount.value: " in text.stderr
    assert text.stderr.rstrip().endswith("a run would send nothing.")


def test_a_plan_sends_nothing() -> None:
    text = STRIPE_REFUNDS.replace("https://acme.chargebee.com/api/v1", "{{ input.url }}").replace(
        "  refunds: {type: array}", "  refunds: {type: array}\n  url: {type: string}"
    )
    workflow = parse_workflow_text(text, "refunds.yaml")
    with fault_server() as server:
        plan = plan_workflow(
            workflow,
            {"refunds": REFUNDS, "url": server.url},
            catalog=Catalog.default(),
            secrets=SecretStore(environ={"HTTPTASK_SECRET_STRIPE_SECRET_KEY": CANARY}),
        )
        assert plan.tasks[1].requests[0].request["url"] == f"{server.url}/invoices/pr_1/record_refund"
        assert server.arrivals() == {}
