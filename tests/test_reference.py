"""reference.py and the reference templates: the seed pages' sections, for every bundled operation."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from httptask.catalog import Catalog, spec_files
from httptask.pages import render_page
from httptask.reference import body_fields, reference, schema_type
from httptask.resources import bundled_dir
from httptask.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLED = [
    op.id for api, path in spec_files(bundled_dir("specs")) for op in load_spec(path, api=api).operations
]


def ref_of(operation_id: str) -> dict[str, Any]:
    return reference(Catalog.default().operation(operation_id))


def pages(ref: dict[str, Any]) -> tuple[str, str]:
    return render_page("reference.md.j2", ref=ref), render_page("reference-page.html.j2", ref=ref)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_seed_endpoint_is_bundled() -> None:
    assert {
        "chargebee.record_refund",
        "chargebee.refund_invoice",
        "stripe.report_payment_record_refund",
        "geins.create_order_refund",
        "zoho-billing.refund_credit_note",
        "zoho-billing.refund_payment",
        "zoho-billing.get_credit_note_refund",
    } <= set(BUNDLED)


@pytest.mark.parametrize("operation_id", BUNDLED)
def test_markdown_page_has_the_seed_sections(operation_id: str) -> None:
    ref = ref_of(operation_id)
    md, _ = pages(ref)
    assert md.startswith(f"# {ref['summary']}\n")
    assert f"`{ref['method']} {ref['path']}`" in md
    assert f"catalog id `{operation_id}`" in md
    if ref["description"]:
        assert ref["description"].splitlines()[0] in md
    assert "\n## Servers\n" in md
    assert ref["servers"], "every bundled operation names its servers"
    for server in ref["servers"]:
        assert f"- `{server['url']}`" in md
        for variable in server["variables"]:
            assert f"`{variable['name']}`: default `{variable['default']}`" in md
    for location, title in (
        ("path", "Path parameters"),
        ("query", "Query parameters"),
        ("header", "Request headers"),
    ):
        params = [p for p in ref["parameters"] if p["in"] == location]
        assert (f"\n## {title}\n" in md) == bool(params)
        section = md.split(f"\n## {title}\n", 1)[-1].split("\n## ", 1)[0]
        for param in params:
            row = next(line for line in section.splitlines() if line.startswith(f"| {param['name']} |"))
            assert f"| {'Yes' if param['required'] else 'No'} |" in row
            for value in param["enum"] or ():
                assert f"`{value}`" in row
    assert ("\n## Request body fields\n" in md) == (ref["body"] is not None)
    if ref["body"]:
        assert f"Content type: `{ref['body']['content_type']}`" in md
        section = md.split("\n## Request body fields\n", 1)[1].split("\n## ", 1)[0]
        rows = [
            line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Name ")
        ]
        assert [row.split(" | ")[0][2:] for row in rows] == [f["name"] for f in ref["body"]["fields"]]
        for row, field in zip(rows, ref["body"]["fields"], strict=True):
            assert f"| {field['type']} | {'Yes' if field['required'] else 'No'} |" in row
            if field["enum"]:
                assert "Valid values: " + ", ".join(f"`{v}`" for v in field["enum"]) in row
    assert "\n## Responses\n" in md
    for response in ref["responses"]:
        assert f"\n### {response['status']}" in md


@pytest.mark.parametrize("operation_id", BUNDLED)
def test_html_page_has_the_seed_sections(operation_id: str) -> None:
    ref = ref_of(operation_id)
    _, page = pages(ref)
    assert page.startswith("<!doctype html>")
    assert f'<article class="reference" data-operation="{operation_id}">' in page
    assert f'<span class="method method-{ref["method"].lower()}">{ref["method"]}</span>' in page
    assert f"<code>{html.escape(ref['path'])}</code>" in page
    assert "<h2>Servers</h2>" in page
    for server in ref["servers"]:
        assert f"<li><code>{html.escape(server['url'])}</code>" in page
    for location, title in (
        ("path", "Path parameters"),
        ("query", "Query parameters"),
        ("header", "Request headers"),
    ):
        params = [p for p in ref["parameters"] if p["in"] == location]
        assert (f"<h2>{title}</h2>" in page) == bool(params)
        for param in params:
            assert f"<tr><td><code>{html.escape(param['name'])}</code></td>" in page
    assert ("<h2>Request body fields</h2>" in page) == (ref["body"] is not None)
    if ref["body"]:
        section = page.split("<h2>Request body fields</h2>", 1)[1].split("</section>", 1)[0]
        assert re.findall(r"<tr><td><code>(.*?)</code></td>", section) == [
            html.escape(f["name"]) for f in ref["body"]["fields"]
        ]
        for field in ref["body"]["fields"]:
            if field["enum"]:
                assert "Valid values: " + ", ".join(f"<code>{v}</code>" for v in field["enum"]) in section
    assert "<h2>Responses</h2>" in page
    for response in ref["responses"]:
        assert f"<h3>{response['status']} " in page


def test_record_refund_matches_seed_000() -> None:
    ref = ref_of("chargebee.record_refund")
    assert (ref["method"], ref["path"]) == ("POST", "/invoices/{invoice-id}/record_refund")
    assert [s["url"] for s in ref["servers"]] == [
        "{protocol}://{site}.{environment}:{port}/api/v1",
        "{protocol}://{site}-test.{environment}:{port}/api/v1",
    ]
    assert [v["name"] for v in ref["servers"][0]["variables"]] == ["protocol", "site", "environment", "port"]
    assert [(p["name"], p["required"]) for p in ref["parameters"] if p["in"] == "path"] == [
        ("invoice-id", True)
    ]
    headers = {p["name"]: p for p in ref["parameters"] if p["in"] == "header"}
    assert headers["Content-Type"]["required"] is True
    assert headers["Content-Type"]["default"] == "application/x-www-form-urlencoded"
    assert "chargebee-request-origin-user-encoded" in headers
    fields = {f["name"]: f for f in ref["body"]["fields"]}
    assert [(name, f["type"], f["required"]) for name, f in fields.items()] == [
        ("transaction", "object", False),
        ("transaction.reference_number", "string", False),
        ("transaction.amount", "integer", False),
        ("transaction.payment_method", "string", True),
        ("transaction.date", "integer", True),
        ("memo", "string", True),
    ]
    assert fields["transaction.payment_method"]["enum"] == [
        "cash",
        "check",
        "chargeback",
        "bank_transfer",
        "other",
    ]
    md, _ = pages(ref)
    assert (
        "| Content-Type | string | Yes | The media type of the request body. "
        'Default value: "application/x-www-form-urlencoded" |' in md
    )


def test_stripe_report_refund_has_dotted_and_array_fields() -> None:
    ref = ref_of("stripe.report_payment_record_refund")
    fields = {f["name"]: f for f in ref["body"]["fields"]}
    assert {
        "expand[]",
        "amount.currency",
        "amount.value",
        "processor_details.custom.refund_reference",
    } <= set(fields)
    assert fields["expand[]"]["type"] == "array"
    assert fields["outcome"]["required"] is True
    assert fields["outcome"]["enum"] == ["refunded"]
    assert ref["idempotency"] == {"header": "Idempotency-Key"}


def test_zoho_and_geins_specifics() -> None:
    for operation_id in ("zoho-billing.refund_credit_note", "zoho-billing.refund_payment"):
        ref = ref_of(operation_id)
        assert [s["url"] for s in ref["servers"]] == ["https://www.zohoapis.com/billing/v1"]
        header = next(p for p in ref["parameters"] if p["in"] == "header")
        assert (header["name"], header["required"]) == ("X-com-zoho-subscriptions-organizationid", True)
        assert ref["body"]["content_type"] == "application/json"
    assert ref_of("zoho-billing.get_credit_note_refund")["body"] is None
    geins = ref_of("geins.create_order_refund")
    refund_type = next(f for f in geins["body"]["fields"] if f["name"] == "RefundType")
    assert (refund_type["type"], refund_type["enum"]) == ("integer", [0, 1, 2, 3])


def test_body_fields_flatten_nesting_and_arrays() -> None:
    spec = load_spec(FIXTURES / "features.yaml")
    refund = spec.operation("refund_order")
    assert refund is not None and refund.request_body is not None
    fields = body_fields(refund.request_body.default.schema)
    assert [(f.name, f.type, f.required, f.depth) for f in fields] == [
        ("reason", "string | null", True, 0),
        ("lines", "array", False, 0),
        ("lines[].sku", "string", True, 1),
        ("lines[].quantity", "integer", False, 1),
        ("tags[]", "array", False, 0),
        ("address", "object", False, 0),
        ("address.city", "string", False, 1),
    ]
    assert fields[0].enum == ("duplicate", "fraud")
    assert fields[3].default == 1
    assert fields[4].enum == ("a", "b")  # an array's values come from its items


def test_body_fields_merge_all_of_and_keep_limits() -> None:
    schema = {
        "type": "object",
        "properties": {
            "amount": {
                "allOf": [
                    {"type": "object", "required": ["value"], "properties": {"value": {"type": "integer"}}},
                    {"properties": {"currency": {"type": "string", "minLength": 3, "maxLength": 3}}},
                ],
                "description": "Money.",
            }
        },
    }
    fields = body_fields(schema)
    assert [(f.name, f.type, f.required) for f in fields] == [
        ("amount", "object", False),
        ("amount.value", "integer", True),
        ("amount.currency", "string", False),
    ]
    assert fields[0].description == "Money."
    assert fields[2].to_dict()["minLength"] == 3


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": ["integer", "null"]}, "integer | null"),
        ({"properties": {}}, "object"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "string | integer"),
        ({}, "any"),
    ],
)
def test_schema_type(schema: dict[str, Any], expected: str) -> None:
    assert schema_type(schema) == expected


def test_reference_json_shape_and_html_escaping(tmp_path: Path) -> None:
    source = tmp_path / "xss.yaml"
    source.write_text(
        "openapi: 3.0.0\ninfo: {title: 'A <b>bold</b> API', version: '1'}\n"
        "servers: [{url: 'https://x.test'}]\npaths:\n  /a:\n    post:\n      operationId: a\n"
        "      summary: 'Use <script>alert(1)</script>'\n"
        "      requestBody:\n        content:\n          application/json:\n            schema:\n"
        "              properties: {'<x>': {type: string, description: 'a & b'}}\n"
        "      responses: {'200': {description: OK}}\n",
        encoding="utf-8",
    )
    op = load_spec(source).operations[0]
    ref = reference(op)
    assert ref["body"]["fields"] == [
        {
            "name": "<x>",
            "type": "string",
            "required": False,
            "enum": None,
            "default": None,
            "description": "a & b",
        }
    ]
    page = render_page("reference-page.html.j2", ref=ref)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<code>&lt;x&gt;</code>" in page
    assert "a &amp; b" in page
    assert "<script>" in render_page(
        "reference.md.j2", ref=ref
    )  # Markdown is text: escaping is the viewer's job
    assert flat(render_page("reference.md.j2", ref=ref)).count("## Responses") == 1
