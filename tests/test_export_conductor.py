"""Conductor export: golden definitions for the examples, expressions, refusals word for word, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from httptask.catalog import Catalog
from httptask.export import export_workflow
from httptask.workflow import load_workflow, parse_workflow_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def export(text: str, catalog: Catalog) -> tuple[dict[str, Any], list[tuple[int | None, str, str]]]:
    workflow = parse_workflow_text(textwrap.dedent(text), "w.yaml")
    definition, issues = export_workflow(workflow, catalog, "conductor")
    return definition, [(i.line, i.path, i.message) for i in issues]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("name", ["stripe-report-refund", "zoho-refund-and-fetch"])
def test_examples_export_to_their_golden_definitions(name: str, catalog: Catalog) -> None:
    definition, issues = export_workflow(load_workflow(EXAMPLES / f"{name}.yaml"), catalog, "conductor")
    assert issues == []
    assert definition == json.loads((EXAMPLES / "conductor" / f"{name}.json").read_text(encoding="utf-8"))


def test_references_secrets_and_order(catalog: Catalog) -> None:
    definition, issues = export(
        """\
    name: chain
    inputs:
      org: {type: string}
      note: {type: string}
    tasks:
      - id: second
        needs: [first]
        httpRequest:
          url: "https://example.com/items/{{ tasks.first.response.body.items[0]['the id'] }}?s={{ tasks.first.response.status }}"
          method: PUT
          headers: {Authorization: "Bearer {{ secret('API_TOKEN') }}", X-Note: "cost ${5} {{ input.note }}"}
          body: {org: "{{ input.org }}", whole: "{{ input }}", n: 3}
      - id: first
        httpRequest: {url: "https://example.com/first"}
        retry: {maxAttempts: 5, intervalSeconds: 2.5, backoffRate: 1}
    outputs:
      status: "{{ tasks.second.response.status }}"
    """,  # noqa: E501 (a template URL longer than a line)
        catalog,
    )
    assert issues == []
    assert [t["taskReferenceName"] for t in definition["tasks"]] == ["first", "second"]
    first, second = definition["tasks"]
    assert first["retryCount"] == 4
    assert {k: first["taskDefinition"][k] for k in ("retryCount", "retryLogic", "retryDelaySeconds")} == {
        "retryCount": 4,
        "retryLogic": "FIXED",
        "retryDelaySeconds": 3,
    }
    assert first["inputParameters"]["http_request"] == {
        "uri": "https://example.com/first",
        "method": "GET",
        "headers": {},
        "accept": "application/json",
        "connectionTimeOut": 5000,
        "readTimeOut": 10000,
    }
    assert second["inputParameters"]["http_request"] == {
        "uri": "https://example.com/items/${first.output.response.body.items[0]['the id']}"
        "?s=${first.output.response.statusCode}",
        "method": "PUT",
        "headers": {
            "Authorization": "Bearer ${workflow.secrets.API_TOKEN}",
            "X-Note": "cost $${5} ${workflow.input.note}",
        },
        "body": {"org": "${workflow.input.org}", "whole": "${workflow.input}", "n": 3},
        "contentType": "application/json",
        "accept": "application/json",
        "connectionTimeOut": 5000,
        "readTimeOut": 10000,
    }
    assert second["retryCount"] == 2  # a PUT may be repeated
    assert definition["outputParameters"] == {"status": "${second.output.response.statusCode}"}


def test_literal_path_values_are_encoded_and_form_bodies_keep_the_api_bracket_style(catalog: Catalog) -> None:
    definition, issues = export(
        """\
    name: cb
    inputs:
      amount: {type: integer}
    tasks:
      - id: refund
        operation: chargebee.refund_invoice
        idempotencyKey: "{{ input.amount }}-refund"
        server: {site: acme}
        request:
          path: {invoice-id: "INV/1 2"}
          headers: {Authorization: "Basic {{ secret('CB_BASIC') }}"}
          body:
            refund_amount: "{{ input.amount }}"
            comment: "a&b=c ${x}"
            credit_note: {reason_code: order_change}
    """,
        catalog,
    )
    assert issues == []
    request = definition["tasks"][0]["inputParameters"]["http_request"]
    assert request["uri"] == "https://acme.chargebee.com/api/v2/invoices/INV%2F1%202/refund"
    assert request["headers"] == {
        "Authorization": "Basic ${workflow.secrets.CB_BASIC}",
        "chargebee-idempotency-key": "${workflow.input.amount}-refund",
    }
    assert request["body"] == (
        "refund_amount=${workflow.input.amount}&comment=a%26b%3Dc+%24%7Bx%7D"
        "&credit_note[reason_code]=order_change"
    )
    assert request["contentType"] == "application/x-www-form-urlencoded"
    assert definition["tasks"][0]["retryCount"] == 2  # the idempotency key makes a retry a replay


def test_a_non_idempotent_refund_is_never_retried_by_conductor(catalog: Catalog) -> None:
    definition, issues = export(
        """\
    name: z
    tasks:
      - id: refund
        operation: zoho-billing.refund_credit_note
        credentials: ZOHO
        retry: {maxAttempts: 5}
        request:
          path: {creditnote_id: "1"}
          headers: {X-com-zoho-subscriptions-organizationid: "2"}
          body: {amount: 1}
    """,
        catalog,
    )
    assert issues == []
    task = definition["tasks"][0]
    assert task["retryCount"] == 0 and task["taskDefinition"]["retryCount"] == 0
    assert (
        task["inputParameters"]["http_request"]["headers"]["authorization"]
        == "Zoho-oauthtoken ${workflow.secrets.ZOHO}"
    )


def test_what_conductor_cannot_express_is_reported_word_for_word(catalog: Catalog) -> None:
    _, issues = export(
        """\
    name: bad
    inputs:
      ids: {type: array}
      amount: {type: number}
    tasks:
      - id: each
        forEach: "{{ input.ids }}"
        httpRequest: {url: "https://example.com/{{ item }}"}
      - id: math
        httpRequest:
          url: "https://example.com/{{ uuid() }}"
          body: {cents: "{{ input.amount * 100 }}", at: "{{ now() }}"}
        retry: {backoffRate: 1.5}
      - id: cb
        operation: chargebee.record_refund
        credentials: CB_KEY
        request:
          path: {invoice-id: "{{ tasks.math.response.headers.location }}"}
          body:
            memo: "Refund {{ input.amount }}"
            transaction: {payment_method: cash, date: "{{ now('unix') }}"}
        needs: [math]
    """,
        catalog,
    )
    cannot = (
        "cannot be written as a Conductor expression: Conductor only substitutes references such as "
        "${workflow.input.x}, so filters, arithmetic, conditions and functions like now() and uuid() have no "
        "equivalent; compute the value in an earlier task or pass it as an input"
    )
    assert issues == [
        (
            7,
            "$.tasks[0].forEach",
            "task each: forEach needs a Conductor FORK_JOIN_DYNAMIC with one branch per item, which "
            "this export does "
            "not write; run the workflow with the local engine, or give the items as separate tasks",
        ),
        (
            8,
            "$.tasks[0].httpRequest.url",
            "task each: '{{ item }}' cannot be written as a Conductor reference; read input.NAME, "
            "tasks.ID.response.status or tasks.ID.response.body",
        ),
        (
            11,
            "$.tasks[1].httpRequest.url",
            f"task math: the template 'https://example.com/{{{{ uuid() }}}}' {cannot}",
        ),
        (12, "$.tasks[1].httpRequest.body.at", f"task math: the template '{{{{ now() }}}}' {cannot}"),
        (
            12,
            "$.tasks[1].httpRequest.body.cents",
            f"task math: the template '{{{{ input.amount * 100 }}}}' {cannot}",
        ),
        (
            13,
            "$.tasks[1].retry.backoffRate",
            "task math: backoffRate 1.5 cannot be expressed in Conductor, which retries after a fixed delay "
            "(backoffRate 1) or a doubling one (backoffRate 2); use 1 or 2",
        ),
        (
            16,
            "$.tasks[2].credentials",
            "task cb: chargebee.record_refund signs in with HTTP basic (BasicAuth), which needs the "
            "secret "
            "base64-encoded, and Conductor cannot encode; store the encoded 'user:password' in a "
            "secret and set "
            "request.headers.Authorization to \"Basic {{ secret('NAME') }}\" instead",
        ),
        (
            18,
            ""
            "$.tasks[2].request.path.invoice-id",
            "task cb: '{{ tasks.math.response.headers.location }}' reads a response header, which "
            "Conductor's HTTP "
            "task reports in another shape (a list of values per header); pass the value in the "
            "response body or "
            "as an input instead",
        ),
        (
            20,
            "$.tasks[2].request.body.memo",
            "task cb: a form value must be a literal or a single reference such as {{ input.x }}, "
            "because Conductor "
            "sends a form body as written; 'Refund {{ input.amount }}' mixes text and references",
        ),
        (
            21,
            "$.tasks[2].request.body.transaction.date",
            f"task cb: the template \"{{{{ now('unix') }}}}\" {cannot}",
        ),
    ]


def test_the_cli_writes_nothing_when_the_export_is_not_faithful(tmp_path: Path) -> None:
    out = tmp_path / "geins.json"
    result = run_cli(
        "export", str(EXAMPLES / "geins-refund-then-chargebee.yaml"), "--to", "conductor", "-o", str(out)
    )
    assert result.returncode == 3
    assert not out.exists()
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        f"{EXAMPLES / 'geins-refund-then-chargebee.yaml'}:15: $.tasks[0].credentials: "
        "task geins_refund: geins.create_order_refund signs in with HTTP basic (basicAuth)"
    )
    assert lines[-1] == (
        f"{EXAMPLES / 'geins-refund-then-chargebee.yaml'}: not exported to conductor "
        "(5 problems); nothing was written."
    )
    assert "Traceback" not in result.stderr


def test_the_cli_refuses_an_invalid_workflow_before_exporting(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("name: w\ntasks:\n  - id: a\n    operation: stripe.nope\n", encoding="utf-8")
    result = run_cli("export", str(path), "--to", "conductor")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.splitlines()[0].startswith(
        f"{path}:4: $.tasks[0].operation: names no operation in the catalog: 'stripe.nope'."
    )


def test_secrets_never_reach_the_export(tmp_path: Path) -> None:
    secret = "sk_live_do_not_leak_4242"
    out = tmp_path / "stripe.json"
    result = run_cli(
        "export",
        str(EXAMPLES / "stripe-report-refund.yaml"),
        "--to",
        "conductor",
        "-o",
        str(out),
        env={"HTTPTASK_SECRET_STRIPE_SECRET_KEY": secret},
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "${workflow.secrets.STRIPE_SECRET_KEY}" in text
    assert secret not in text and secret not in result.stdout and secret not in result.stderr
    assert json.loads(text) == json.loads((EXAMPLES / "conductor" / "stripe-report-refund.json").read_text())


@pytest.mark.parametrize("value", [".", "..", ""])
def test_a_dot_or_empty_path_value_is_refused_as_test_request_refuses_it(
    value: str, catalog: Catalog
) -> None:
    text = f"""\
    name: dots
    tasks:
      - id: refund
        operation: chargebee.refund_invoice
        request:
          path: {{invoice-id: "{value}"}}
    """
    definition, issues = export(text, catalog)
    assert issues == [
        (
            6,
            "$.tasks[0].request.path.invoice-id",
            f"task refund: must not be empty, '.' or '..', not {value!r}: it would change the request's path",
        )
    ]
    # The literal segment is still percent-encoded whole, so no definition would navigate out of the path.
    uri = definition["tasks"][0]["inputParameters"]["http_request"]["uri"]
    assert "/invoices/" + value.replace(".", "%2E") + "/refund" in uri


def test_a_server_index_out_of_range_is_an_issue_not_a_crash(catalog: Catalog) -> None:
    _, issues = export(
        """\
    name: servers
    tasks:
      - id: refund
        operation: chargebee.refund_invoice
        server: {index: 7}
        request:
          path: {invoice-id: inv_1}
    """,
        catalog,
    )
    assert issues == [(5, "$.tasks[0].server.index", "task refund: must be between 0 and 0")]
