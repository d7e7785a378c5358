"""catalog.py: listing the bundled and imported operations from a cached index, looking them up, searching."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from httptask import spec as spec_module
from httptask.catalog import Catalog, spec_files
from httptask.errors import UnknownOperation
from httptask.resources import bundled_dir
from seed_fields import SEED_IDS

FIXTURES = Path(__file__).parent / "fixtures"


def user_dir() -> Path:
    return Path(os.environ["HTTPTASK_SPECS_PATH"])


def test_bundled_catalog_holds_the_seven_seed_endpoints() -> None:
    catalog = Catalog.default()
    assert set(catalog.ids()) >= SEED_IDS
    assert len(catalog.ids()) == len(set(catalog.ids())), "catalog ids must be unique"
    assert {e.api for e in catalog.entries} == {"chargebee", "stripe", "zoho-billing", "geins"}
    assert all(e.bundled for e in catalog.entries)
    entry = catalog.entry("chargebee.record_refund")
    assert (entry.method, entry.path) == ("POST", "/invoices/{invoice-id}/record_refund")
    assert entry.summary == "Record refund for an invoice"


def test_operation_returns_the_full_model() -> None:
    op = Catalog.default().operation("zoho-billing.get_credit_note_refund")
    assert (op.id, op.method, op.path) == (
        "zoho-billing.get_credit_note_refund",
        "GET",
        "/creditnotes/refunds/{refund_id}",
    )
    assert [p.name for p in op.parameters_in("path")] == ["refund_id"]


@pytest.mark.parametrize("query", ["refund", "refnd", "Refunds", "REFUND"])
def test_search_finds_the_seven_seed_endpoints_first(query: str) -> None:
    hits = Catalog.default().search(query)
    # The reads that reconcile refunds (x-reconcile) are refund endpoints too.
    first = {hit.entry.id for hit in hits[: len(SEED_IDS) + 2]}
    reads = {"chargebee.retrieve_invoice", "zoho-billing.list_credit_note_refunds"}
    assert SEED_IDS <= first <= SEED_IDS | reads
    assert all(hit.score > 0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_search_needs_every_word_and_ranks_the_best_first() -> None:
    catalog = Catalog.default()
    assert {hit.entry.id for hit in catalog.search("refund payment")[:2]} == {
        "zoho-billing.refund_payment",
        "stripe.report_payment_record_refund",
    }
    assert catalog.search("stripe refund")[0].entry.id == "stripe.report_payment_record_refund"
    assert catalog.search("credit note refund details")[0].entry.id == "zoho-billing.get_credit_note_refund"
    assert [hit.entry.id for hit in catalog.search("geins")] == ["geins.create_order_refund"]
    assert catalog.search("refund zzzzqqq") == []
    assert catalog.search("refund", limit=2) == catalog.search("refund")[:2]


def test_empty_query_lists_everything() -> None:
    catalog = Catalog.default()
    assert [hit.entry.id for hit in catalog.search("  ", limit=None)] == catalog.ids()


def test_unknown_id_suggests_the_closest() -> None:
    catalog = Catalog.default()
    with pytest.raises(UnknownOperation) as caught:
        catalog.entry("chargebee.record_refnd")
    assert caught.value.suggestions[0] == "chargebee.record_refund"
    assert str(caught.value).startswith("No operation 'chargebee.record_refnd' in the catalog. Did you mean ")
    assert str(caught.value).endswith("? Run 'httptask catalog search WORDS' to find one.")
    with pytest.raises(UnknownOperation) as caught:
        catalog.operation("qqqqqq")
    assert str(caught.value) == (
        "No operation 'qqqqqq' in the catalog. Run 'httptask catalog search WORDS' to find one."
    )


def test_user_specs_join_the_catalog_as_files_and_folders() -> None:
    shutil.copy(FIXTURES / "mini-vendor.json", user_dir() / "mini.json")
    shutil.copytree(FIXTURES / "shop-parts", user_dir() / "shop")
    (user_dir() / ".import-staging").mkdir()  # half-done imports are hidden
    shutil.copy(FIXTURES / "mini-vendor.json", user_dir() / ".import-staging" / "ghost.json")
    catalog = Catalog.default()
    user = [e for e in catalog.entries if not e.bundled]
    assert [e.id for e in user] == [
        "mini.list_widgets",
        "mini.create_a_widget",
        "mini.list_widget_refunds",
        "mini.refund_a_widget",
        "shop.list_customers",
        "shop.create_a_customer",
        "shop.list_orders",
        "shop.retrieve_an_order",
    ]
    assert catalog.operation("shop.retrieve_an_order").path == "/orders/{id}"
    # Curated bundled endpoints win ties; the imported widget refund still matches.
    ids = [hit.entry.id for hit in catalog.search("refund")]
    assert set(ids[:7]) == SEED_IDS
    assert "mini.refund_a_widget" in ids


def test_spec_files_pairs_apis_with_files(tmp_path: Path) -> None:
    assert [api for api, _ in spec_files(bundled_dir("specs"))] == [
        "chargebee",
        "geins",
        "stripe",
        "zoho-billing",
    ]
    assert spec_files(tmp_path / "absent") == []
    (tmp_path / "notes.txt").write_text("not a spec", encoding="utf-8")
    shutil.copytree(FIXTURES / "shop-parts", tmp_path / "shop")
    assert [(api, path.name) for api, path in spec_files(tmp_path)] == [
        ("shop", "customers.yml"),
        ("shop", "orders.yaml"),
    ]


def test_the_index_cache_spares_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Catalog.default().entries
    index = Path(os.environ["HTTPTASK_CACHE_DIR"]) / "index.json"
    assert json.loads(index.read_text(encoding="utf-8"))["version"] == 2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the index is fresh: no spec should be parsed")

    monkeypatch.setattr(spec_module, "load_document", refuse)
    assert Catalog.default().entries == first
    assert Catalog.default().search("refund")[0].entry.id in SEED_IDS


def test_the_index_follows_a_changed_file() -> None:
    target = user_dir() / "mini.json"
    shutil.copy(FIXTURES / "mini-vendor.json", target)
    assert "mini.list_widgets" in Catalog.default().ids()
    document = json.loads(target.read_text(encoding="utf-8"))
    document["paths"]["/widgets"]["get"]["summary"] = "Enumerate all the gadgets"
    target.write_text(json.dumps(document), encoding="utf-8")
    catalog = Catalog.default()
    assert "mini.enumerate_all_the_gadgets" in catalog.ids()
    assert "mini.list_widgets" not in catalog.ids()
    target.unlink()
    assert not any(i.startswith("mini.") for i in Catalog.default().ids())


def test_a_broken_cache_is_ignored_and_rewritten() -> None:
    index = Path(os.environ["HTTPTASK_CACHE_DIR"]) / "index.json"
    index.write_text("{not json", encoding="utf-8")
    assert set(Catalog.default().ids()) >= SEED_IDS
    assert json.loads(index.read_text(encoding="utf-8"))["version"] == 2


@pytest.mark.shared
def test_search_with_the_vendor_documents_imported(
    vendor_specs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(vendor_specs_dir))
    catalog = Catalog.default()
    assert len([e for e in catalog.entries if not e.bundled]) == 104 + 192
    for query in ("refund", "refnd"):
        ids = [hit.entry.id for hit in catalog.search(query, limit=None)]
        assert set(ids[:7]) == SEED_IDS, query
        assert "chargebee-vendor.refund_an_invoice" in ids
        assert "zoho-vendor.refund_a_payment" in ids


def test_two_catalogs_sharing_the_index_keep_each_others_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two checkouts of httptask share one user cache: each keeps the other's records, so neither parses its
    specs again on every start; a record of a file that is gone is dropped at the next write."""
    mine = user_dir()
    target = mine / "mini.json"
    shutil.copy(FIXTURES / "mini-vendor.json", target)
    with_mini = Catalog.default()
    assert "mini.list_widgets" in with_mini.ids()
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(mine / "elsewhere"))
    assert not any(i.startswith("mini.") for i in Catalog.default().ids())
    index = Path(os.environ["HTTPTASK_CACHE_DIR"]) / "index.json"
    assert str(target) in json.loads(index.read_text(encoding="utf-8"))["files"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("both catalogs' records are in the index: no spec should be parsed")

    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(mine))
    with monkeypatch.context() as patched:
        patched.setattr(spec_module, "load_document", refuse)
        assert Catalog.default().ids() == with_mini.ids()
    target.unlink()
    (mine / "elsewhere").mkdir()
    shutil.copy(FIXTURES / "mini-vendor.json", mine / "elsewhere" / "other.json")
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(mine / "elsewhere"))
    assert "other.list_widgets" in Catalog.default().ids()
    assert str(target) not in json.loads(index.read_text(encoding="utf-8"))["files"]
