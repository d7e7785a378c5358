"""Task skeletons: for every bundled operation the YAML loads back with parse_task and, filled with sample
inputs, passes validation against the spec; task_definition fills an editor's values; `task new` prints
them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from httptask.catalog import Catalog
from httptask.errors import UsageError
from httptask.execute import prepare
from httptask.secrets import SecretStore
from httptask.skeleton import sample_input, skeleton, skeleton_yaml, task_definition
from httptask.tasks import parse_task
from httptask.yamlsource import parse_source

OPERATIONS = [entry.id for entry in Catalog.default().entries]
SECRETS = {
    "HTTPTASK_SECRET_" + name: "s3cr3t"
    for name in (
        "CHARGEBEE_API_KEY",
        "STRIPE_API_KEY",
        "ZOHO_BILLING_API_KEY",
        "GEINS_API_KEY",
        "GEINS_BASIC_AUTH",
    )
}


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_skeleton_loads_back_and_validates_with_sample_inputs(operation_id: str) -> None:
    op = Catalog.default().operation(operation_id)
    text = skeleton_yaml(op)
    source = parse_source(text, "skeleton.yaml")
    assert source.data == skeleton(op)
    task = parse_task(source.data, source=source)
    secrets = SecretStore(environ=SECRETS)
    prepared = prepare(task, inputs=sample_input(op), catalog=Catalog.default(), secrets=secrets)
    assert prepared.request.method == op.method


def test_the_chargebee_skeleton_has_server_defaults_placeholders_and_header_defaults() -> None:
    data = skeleton(Catalog.default().operation("chargebee.record_refund"))
    assert data["server"] == {
        "protocol": "https",
        "site": "demo",
        "environment": "chargebee.com",
        "port": "443",
    }
    assert data["credentials"] == "CHARGEBEE_API_KEY"
    assert data["request"] == {
        "path": {"invoice-id": "{{ input.invoice_id }}"},
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "body": {"memo": "{{ input.memo }}"},
    }
    assert (data["connectionTimeoutSeconds"], data["readTimeoutSeconds"]) == (5, 10)


def test_required_nested_body_fields_are_nested() -> None:
    data = skeleton(Catalog.default().operation("stripe.report_payment_record_refund"))
    assert data["request"]["body"] == {
        "refunded": {"refunded_at": "{{ input.refunded_at }}"},
        "processor_details": {"type": "{{ input.type }}"},
        "outcome": "{{ input.outcome }}",
    }


def test_geins_credentials_are_a_map_per_scheme() -> None:
    data = skeleton(Catalog.default().operation("geins.create_order_refund"))
    assert data["credentials"] == {"apiKey": "GEINS_API_KEY", "basicAuth": "GEINS_BASIC_AUTH"}
    assert data["request"]["path"] == {"orderId": "{{ input.order_id }}"}


def test_the_yaml_lists_optional_fields_and_their_valid_values_as_comments() -> None:
    text = skeleton_yaml(Catalog.default().operation("chargebee.record_refund"))
    assert "# server.index chooses the server (0: Live site (API v1), 1: Test site (API v1))" in text
    assert '    #   chargebee-event-webhook: string, one of "all-disabled"\n' in text
    assert (
        '    #     transaction.payment_method: string, one of "cash", "check", "chargeback", '
        '"bank_transfer", "other"\n'
    ) in text
    keyed = skeleton_yaml(Catalog.default().operation("stripe.report_payment_record_refund"))
    assert "# Idempotency-Key: generated once per run when idempotencyKey is not set" in keyed


def test_task_definition_fills_values_by_reference_names() -> None:
    op = Catalog.default().operation("chargebee.record_refund")
    data = task_definition(
        op,
        {
            "site": "acme",
            "invoice-id": "inv_1",
            "transaction.amount": 1000,
            "transaction.payment_method": "cash",
            "memo": "{{ input.reason }}",
            "chargebee-event-email": "all-disabled",
        },
    )
    assert data["server"]["site"] == "acme"
    assert data["request"]["path"] == {"invoice-id": "inv_1"}
    assert data["request"]["headers"] == {
        "Content-Type": "application/x-www-form-urlencoded",
        "chargebee-event-email": "all-disabled",
    }
    assert data["request"]["body"] == {
        "memo": "{{ input.reason }}",
        "transaction": {"amount": 1000, "payment_method": "cash"},
    }
    parse_task(data)


def test_task_definition_takes_scalar_lists_by_their_bracket_name() -> None:
    op = Catalog.default().operation("stripe.report_payment_record_refund")
    data = task_definition(op, {"expand[]": ["customer"], "id": "pr_1"})
    assert data["request"]["body"]["expand"] == ["customer"]
    assert data["request"]["path"] == {"id": "pr_1"}


def test_task_definition_refuses_an_unknown_name() -> None:
    op = Catalog.default().operation("zoho-billing.refund_payment")
    with pytest.raises(UsageError) as caught:
        task_definition(op, {"amount": 1, "amuont": 2})
    assert str(caught.value) == (
        "zoho-billing.refund_payment has no field 'amuont'; use a server variable, "
        "parameter or dotted body field name: X-com-zoho-subscriptions-organizationid, "
        "amount, description, payment_id."
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("httptask")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_task_new_prints_yaml_and_json() -> None:
    op = Catalog.default().operation("zoho-billing.refund_payment")
    as_yaml = _cli("task", "new", "zoho-billing.refund_payment")
    assert (as_yaml.returncode, as_yaml.stdout) == (0, skeleton_yaml(op))
    # The first line points editors (yaml-language-server) at the schema this installation ships.
    first, _, _ = as_yaml.stdout.partition("\n")
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    schema = Path(first.removeprefix(prefix))
    assert schema.name == "task.schema.json"
    assert json.loads(schema.read_text(encoding="utf-8"))["properties"]["operation"]
    assert yaml.safe_load(as_yaml.stdout) == skeleton(op)
    as_json = _cli("task", "new", "zoho-billing.refund_payment", "--format", "json")
    assert json.loads(as_json.stdout) == skeleton(op)


def test_task_new_with_an_unknown_id_suggests_and_exits_2() -> None:
    done = _cli("task", "new", "stripe.report_refund")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: No operation 'stripe.report_refund' in the catalog. Did you mean ")


def test_the_skeleton_of_an_operation_with_nothing_required_passes_the_task_schema(tmp_path: Path) -> None:
    """'request:' with nothing under it is null, which the task schema refuses: `task new` wrote a task
    that its own test-request refused."""
    spec = tmp_path / "optional.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /notes:\n    post:\n"
        "      operationId: add_note\n      responses: {'200': {description: ok}}\n      requestBody:\n"
        "        content: {application/json: {schema: {properties: {text: {type: string}}}}}\n",
        encoding="utf-8",
    )
    op = Catalog([("optional", spec, False)]).operation("optional.add_note")
    source = parse_source(skeleton_yaml(op), "skeleton.yaml")
    assert source.data["request"] == {}
    assert parse_task(source.data, source=source).id == "add_note"
