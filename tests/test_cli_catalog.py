"""The `catalog` and `specs` commands as a user runs them: the installed `httptask` script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seed_fields import SEED_IDS

FIXTURES = Path(__file__).parent / "fixtures"
HTTPTASK = Path(sys.executable).with_name("httptask")


def run(*args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run `httptask ARGS`, check its exit code, and that no traceback ever reaches the user."""
    done = subprocess.run(
        [str(HTTPTASK), *map(str, args)], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    return done


def run_json(*args: str | Path) -> Any:
    return json.loads(run(*args).stdout)


def user_dir() -> Path:
    return Path(os.environ["HTTPTASK_SPECS_PATH"])


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


# -- catalog list / search / show ----------------------------------------------------------------------------


def test_list_json_shape() -> None:
    rows = run_json("catalog", "list", "--json")
    assert {row["id"] for row in rows} >= SEED_IDS
    for row in rows:
        assert {"id", "api", "method", "path", "summary"} <= set(row)
        assert row["id"].startswith(row["api"] + ".")
    record = next(row for row in rows if row["id"] == "chargebee.record_refund")
    assert (record["api"], record["method"], record["path"], record["summary"]) == (
        "chargebee",
        "POST",
        "/invoices/{invoice-id}/record_refund",
        "Record refund for an invoice",
    )


def test_list_as_text() -> None:
    lines = run("catalog", "list").stdout.splitlines()
    assert lines[0].split() == ["id", "method", "path", "summary"]
    assert any(
        line.split()[:3] == ["geins.create_order_refund", "POST", "/API/Order/{orderId}/Refund"]
        for line in lines
    )
    assert {line.split()[0] for line in lines[1:]} >= SEED_IDS


@pytest.mark.parametrize("query", ["refund", "refnd"])
def test_search_ranks_the_seed_endpoints_first(query: str) -> None:
    rows = run_json("catalog", "search", query, "--json")
    assert {row["id"] for row in rows[:7]} == SEED_IDS
    assert {"id", "api", "method", "path", "summary", "score"} <= set(rows[0])
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
    text = run("catalog", "search", query).stdout.splitlines()
    assert {line.split()[0] for line in text[1:8]} == SEED_IDS


def test_search_of_several_words_and_limit() -> None:
    rows = run_json("catalog", "search", "credit", "note", "refund", "--json", "--limit", "2")
    assert {row["id"] for row in rows} == {
        "zoho-billing.refund_credit_note",
        "zoho-billing.get_credit_note_refund",
    }
    assert [row["id"] for row in run_json("catalog", "search", "geins", "--json")] == [
        "geins.create_order_refund"
    ]


def test_search_without_a_match() -> None:
    done = run("catalog", "search", "zzqqxx", code=1)
    assert done.stdout == ""
    assert done.stderr == "No operation matches 'zzqqxx'. Try fewer or other words.\n"
    assert run_json("catalog", "search", "zzqqxx", "--json") == []


def test_show_json_shape() -> None:
    ref = run_json("catalog", "show", "chargebee.record_refund", "--format", "json")
    assert {"id", "method", "path", "summary", "description", "servers", "parameters", "body"} <= set(ref)
    assert (ref["id"], ref["method"], ref["path"]) == (
        "chargebee.record_refund",
        "POST",
        "/invoices/{invoice-id}/record_refund",
    )
    assert ref["description"].startswith("Offline refunds can be recorded")
    server = ref["servers"][0]
    assert server["url"] == "{protocol}://{site}.{environment}:{port}/api/v1"
    protocol = next(v for v in server["variables"] if v["name"] == "protocol")
    assert (protocol["default"], protocol["enum"]) == ("https", ["https"])
    for param in ref["parameters"]:
        assert {"name", "in", "required", "schema", "description"} <= set(param)
    invoice_id = next(p for p in ref["parameters"] if p["in"] == "path")
    assert (invoice_id["name"], invoice_id["required"], invoice_id["schema"]["type"]) == (
        "invoice-id",
        True,
        "string",
    )
    assert ref["body"]["content_type"] == "application/x-www-form-urlencoded"
    for field in ref["body"]["fields"]:
        assert {"name", "type", "required", "enum", "default", "description"} <= set(field)
    amount = next(f for f in ref["body"]["fields"] if f["name"] == "transaction.amount")
    assert (amount["type"], amount["required"]) == ("integer", False)
    method = next(f for f in ref["body"]["fields"] if f["name"] == "transaction.payment_method")
    assert method["enum"] == ["cash", "check", "chargeback", "bank_transfer", "other"]
    stripe = run_json("catalog", "show", "stripe.report_payment_record_refund", "--format", "json")
    assert "expand[]" in [f["name"] for f in stripe["body"]["fields"]]


def test_show_markdown_is_the_default_and_html_is_a_page() -> None:
    md = run("catalog", "show", "zoho-billing.refund_payment").stdout
    assert md.startswith("# Refund a payment\n")
    assert "`POST /payments/{payment_id}/refunds`" in md
    for section in (
        "## Servers",
        "## Path parameters",
        "## Request headers",
        "## Request body fields",
        "## Responses",
    ):
        assert f"\n{section}\n" in md
    assert md == run("catalog", "show", "zoho-billing.refund_payment", "--format", "md").stdout
    page = run("catalog", "show", "zoho-billing.refund_payment", "--format", "html").stdout
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    assert '<article class="reference" data-operation="zoho-billing.refund_payment">' in page


def test_show_unknown_id_suggests_the_closest() -> None:
    done = run("catalog", "show", "chargebee.record_refnd", code=2)
    assert done.stdout == ""
    assert done.stderr.startswith(
        "error: No operation 'chargebee.record_refnd' in the catalog. Did you mean chargebee.record_refund"
    )
    assert done.stderr.endswith("? Run 'httptask catalog search WORDS' to find one.\n")
    assert done.stderr.count("\n") == 1
    far = run("catalog", "show", "qqqqqqqq", code=2)
    assert (
        far.stderr
        == "error: No operation 'qqqqqqqq' in the catalog. Run 'httptask catalog search WORDS' to find one.\n"
    )


def test_bad_format_is_a_usage_error() -> None:
    done = run("catalog", "show", "chargebee.record_refund", "--format", "pdf", code=2)
    assert "Invalid value for '--format'" in done.stderr


def test_a_broken_user_spec_is_one_clear_error() -> None:
    broken = user_dir() / "broken.yaml"
    broken.write_text("openapi: 3.0.0\npaths:\n  /a:\n    get: oops\n", encoding="utf-8")
    done = run("catalog", "list", code=2)
    assert done.stderr == f'error: {broken}#/paths/~1a/get: an operation must be a mapping, found "oops".\n'


# -- specs import / check ------------------------------------------------------------------------------------


def test_import_then_list_and_refuse_a_second_import() -> None:
    done = run("specs", "import", FIXTURES / "mini-vendor.json")
    assert done.stdout == f"Imported 4 operations as 'mini-vendor' into {user_dir()}.\n"
    assert done.stderr == (
        "Not checked strictly: 'httptask specs check FILE' lists what the OpenAPI validator finds.\n"
    )
    ids = {row["id"] for row in run_json("catalog", "list", "--json")}
    assert {"mini-vendor.list_widgets", "mini-vendor.refund_a_widget"} <= ids
    before = snapshot(user_dir())
    again = run("specs", "import", FIXTURES / "mini-vendor.json", code=2)
    assert again.stderr == (
        f"error: The catalog already has an API 'mini-vendor' ({user_dir() / 'mini-vendor.json'}); "
        "add --replace to overwrite it.\n"
    )
    assert snapshot(user_dir()) == before
    replaced = run("specs", "import", FIXTURES / "mini-vendor.json", "--replace", "--include", "GET *")
    assert replaced.stdout.startswith("Imported 2 operations as 'mini-vendor'")
    ids = {row["id"] for row in run_json("catalog", "list", "--json")}
    assert "mini-vendor.refund_a_widget" not in ids
    assert "mini-vendor.list_widget_refunds" in ids


def test_import_a_folder_with_a_name_and_include() -> None:
    done = run("specs", "import", FIXTURES / "shop-parts", "--name", "shop", "--include", "*customer*")
    assert done.stdout == f"Imported 2 operations as 'shop' into {user_dir()}.\n"
    assert sorted(p.name for p in user_dir().iterdir()) == ["shop.json"]
    rows = run_json("catalog", "search", "customer", "--json")
    shop = {row["id"] for row in rows if row["api"] == "shop"}
    assert shop == {"shop.list_customers", "shop.create_a_customer"}


def test_import_of_an_invalid_document_changes_nothing(tmp_path: Path) -> None:
    run("specs", "import", FIXTURES / "shop-parts" / "orders.yaml", "--name", "orders")
    before = snapshot(user_dir())
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "openapi": "3.0.0",\n  "paths": {\n}\n', encoding="utf-8")
    done = run("specs", "import", broken, "--name", "broken", code=2)
    assert done.stderr == f"error: {broken}: line 5: invalid JSON: Expecting ',' delimiter.\n"
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters: [{$ref: '#/components/parameters/P'}]\n",
        encoding="utf-8",
    )
    done = run("specs", "import", dangling, code=2)
    assert done.stderr == (
        f"error: {dangling}#/paths/~1a/get/parameters/0: "
        "the reference '#/components/parameters/P' points to nothing.\n"
    )
    run(
        "specs",
        "import",
        FIXTURES / "mini-vendor.json",
        "--name",
        "orders",
        "--replace",
        "--include",
        "none*",
        code=2,
    )
    assert snapshot(user_dir()) == before
    missing = run("specs", "import", tmp_path / "absent.json", code=2)
    assert missing.stderr == f"error: No such file or folder: '{tmp_path / 'absent.json'}'.\n"


def test_import_refuses_a_bundled_name() -> None:
    done = run("specs", "import", FIXTURES / "mini-vendor.json", "--name", "stripe", code=2)
    assert done.stderr == (
        "error: 'stripe' is a bundled API; choose another name with --name, e.g. --name stripe-vendor.\n"
    )
    assert snapshot(user_dir()) == {}


def test_check_files_and_the_whole_catalog(tmp_path: Path) -> None:
    clean = run("specs", "check", FIXTURES / "shop-parts" / "orders.yaml")
    assert clean.stdout == f"{FIXTURES / 'shop-parts' / 'orders.yaml'}: 2 operations, ok\n"
    loose = run("specs", "check", FIXTURES / "mini-vendor.json", code=1)
    first, second = loose.stdout.splitlines()
    assert first == f"{FIXTURES / 'mini-vendor.json'}: 4 operations, 1 finding"
    assert second.startswith("  /paths/~1widgets/get/parameters/0: Unevaluated properties are not allowed (")
    assert second.endswith(" were unexpected)")
    whole = run("specs", "check")
    assert [line.rsplit(": ", 1)[1] for line in whole.stdout.splitlines()] == [
        "3 operations, ok",
        "1 operation, ok",
        "1 operation, ok",
        "4 operations, ok",
    ]
    shutil.copy(FIXTURES / "mini-vendor.json", user_dir() / "mini.json")
    assert run("specs", "check", code=1).stdout.count("1 finding") == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: 3.0.0\n  paths: {\n", encoding="utf-8")
    done = run("specs", "check", broken, code=2)
    assert (
        done.stderr
        == f"error: {broken}: line 2: invalid YAML: mapping values are not allowed in this context.\n"
    )


# -- the vendor documents of ../shared ----------------------------------------------------------------------


@pytest.mark.shared
def test_import_the_vendor_documents_and_search(shared_dir: Path) -> None:
    vendor = shared_dir / "vendor-specs"
    done = run("specs", "import", vendor / "chargebee_api_v1_spec.json", "--name", "chargebee-v1")
    assert done.stdout == f"Imported 104 operations as 'chargebee-v1' into {user_dir()}.\n"
    done = run("specs", "import", vendor / "zoho-billing", "--name", "zoho-vendor")
    assert done.stdout == f"Imported 192 operations as 'zoho-vendor' into {user_dir()}.\n"
    rows = run_json("catalog", "list", "--json")
    assert len([r for r in rows if r["api"] in ("chargebee-v1", "zoho-vendor")]) == 104 + 192
    for query in ("refund", "refnd"):
        ranked = [row["id"] for row in run_json("catalog", "search", query, "--json", "--limit", "30")]
        assert set(ranked[:7]) == SEED_IDS, query
        assert {"chargebee-v1.refund_an_invoice", "zoho-vendor.refund_a_payment"} <= set(ranked), query
    ref = run_json("catalog", "show", "chargebee-v1.record_refund_for_an_invoice", "--format", "json")
    assert {"transaction.amount", "transaction.payment_method", "memo"} <= {
        f["name"] for f in ref["body"]["fields"]
    }
