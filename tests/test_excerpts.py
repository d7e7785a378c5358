"""excerpts.py with the catalog: one operation of a large imported document loads from its cached excerpt,
without the document being read, exactly as the whole document gives it; a changed document is never served
from an old cache, a corrupt cache is rebuilt, and builders running at once leave one whole cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import httptask.spec as spec_module
from httptask import excerpts
from httptask.catalog import Catalog
from httptask.cli import cli
from httptask.importer import import_specs
from httptask.messages import RequestValues
from httptask.reference import reference
from httptask.resources import cache_dir
from httptask.samples import sample_value
from httptask.skeleton import placeholders
from httptask.spec import Operation, load_spec
from httptask.validation import operation_schema, validate_values
from test_synthetic_specs import generator

SHOWN = "big.post_resource0005_21"


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A synthetic document of 161 operations (about 0.9 MB of JSON) imported as `big` into the user's
    catalog; returns the catalogued file."""
    source = generator().write_document(tmp_path / "big.json", 160, 320)
    target = Path(os.environ["HTTPTASK_SPECS_PATH"])
    import_specs([source], target=target, name="big")
    catalogued = target / "big.json"
    assert catalogued.stat().st_size >= excerpts.MIN_BYTES
    return catalogued


def refuse_parsing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make reading a whole document fail the test; returns the list of excerpt files opened."""

    def whole(path: Path) -> None:
        raise AssertionError(f"the whole document {path} was read")

    monkeypatch.setattr(spec_module, "load_document", whole)
    opened: list[str] = []
    connect = sqlite3.connect

    def counted(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(excerpts.sqlite3, "connect", counted)
    return opened


def cache_of(document: Path) -> Path:
    return excerpts.cache_file(cache_dir(), document, "big")


def test_catalog_show_of_one_operation_reads_its_excerpt_not_the_document(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = load_spec(big, api="big")
    expected = reference(whole.operation(SHOWN.split(".")[1]))  # type: ignore[arg-type]
    assert SHOWN in Catalog.default().ids()  # the index is warm, as after any earlier command
    opened = refuse_parsing(monkeypatch)
    result = CliRunner().invoke(cli, ["catalog", "show", SHOWN, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(expected))
    assert opened == [f"file:{cache_of(big)}?mode=ro"]


def shown(op: Operation | None) -> str:
    """Every field an operation shows, its schemas' references named alike in any registry."""
    return re.sub(r"urn:httptask:\d+:", "urn:httptask:N:", repr(op))


def same(excerpted: Operation, whole: Operation, *, validated: bool = True) -> None:
    assert shown(excerpted) == shown(whole)
    assert reference(excerpted) == reference(whole)
    if not validated:
        return
    assert operation_schema(excerpted) == operation_schema(whole)
    values = {p.input: sample_value(p.schema) for p in placeholders(whole)}
    body = values.get("body", {"unexpected": [1, {"nested": True}]})
    wrong = {"currency": 3, "items": "x", **(body if isinstance(body, dict) else {})}
    for value in (body, wrong, [], None):
        request = RequestValues(body=value, has_body=True)
        assert validate_values(excerpted, request) == validate_values(whole, request)


def test_every_operation_from_its_excerpt_is_the_operation_of_the_whole_document(big: Path) -> None:
    whole = load_spec(big, api="big")
    key = _key(big)
    for i, op in enumerate(whole.operations[::2]):  # all of them, validated, would take 20 s
        excerpted = excerpts.load_operation(big, "big", op.operation_id, key, cache_dir())
        assert excerpted is not None, op.operation_id
        same(excerpted, op, validated=i % 10 == 0)


@pytest.mark.shared
def test_every_operation_of_the_chargebee_vendor_document_from_its_excerpt(
    shared_dir: Path, tmp_path: Path
) -> None:
    import_specs([shared_dir / "vendor-specs" / "chargebee_api_v1_spec.json"], target=tmp_path, name="big")
    catalogued = tmp_path / "big.json"
    whole = load_spec(catalogued, api="big")
    for op in whole.operations:
        excerpted = excerpts.load_operation(catalogued, "big", op.operation_id, _key(catalogued), cache_dir())
        assert excerpted is not None, op.operation_id
        same(excerpted, op, validated="refund" in op.operation_id)


def _key(path: Path) -> list[int]:
    from httptask.catalog import _file_key

    return _file_key(path)


def test_a_changed_document_is_never_served_from_the_old_cache(big: Path) -> None:
    document = json.loads(big.read_text(encoding="utf-8"))
    operation = document["paths"]["/resources0005"]["post"]
    old = operation["summary"]
    operation["summary"] = old.upper()  # the same size
    stat = big.stat()
    big.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    assert big.stat().st_size == stat.st_size
    assert excerpts.load_operation(big, "big", "post_resource0005_21", _key(big), cache_dir()) is None
    assert Catalog.default().operation(SHOWN).summary == old.upper()
    # The catalog parsed the document and wrote its excerpts again, for the file as it is now.
    fresh = excerpts.load_operation(big, "big", "post_resource0005_21", _key(big), cache_dir())
    assert fresh is not None and fresh.summary == old.upper()


def corrupt_garbage(file: Path) -> None:
    file.write_bytes(b"not a database at all" * 100)


def corrupt_truncated(file: Path) -> None:
    with file.open("r+b") as handle:
        handle.truncate(file.stat().st_size // 3)


def corrupt_a_part(file: Path) -> None:
    connection = sqlite3.connect(file)
    with connection:
        connection.execute("UPDATE parts SET body = replace(body, '\"string\"', '\"integer\"')")
    connection.close()


def corrupt_an_excerpt(file: Path) -> None:
    connection = sqlite3.connect(file)
    with connection:
        connection.execute("UPDATE operations SET parts = '[0, 1]'")
    connection.close()


def corrupt_the_tables(file: Path) -> None:
    connection = sqlite3.connect(file)
    with connection:
        connection.execute("DROP TABLE parts")
    connection.close()


@pytest.mark.parametrize(
    "corrupt", [corrupt_garbage, corrupt_truncated, corrupt_a_part, corrupt_an_excerpt, corrupt_the_tables]
)
def test_a_corrupt_cache_is_rebuilt_without_a_traceback(big: Path, corrupt: Any) -> None:
    whole = load_spec(big, api="big").operation("post_resource0005_21")
    assert whole is not None
    corrupt(cache_of(big))
    result = CliRunner().invoke(cli, ["catalog", "show", SHOWN, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(reference(whole)))
    rebuilt = excerpts.load_operation(big, "big", "post_resource0005_21", _key(big), cache_dir())
    assert rebuilt is not None
    same(rebuilt, whole)


def _build_again(document: Path, cache: str, rounds: int) -> None:
    os.environ["HTTPTASK_CACHE_DIR"] = cache
    data = spec_module.load_document(document)
    spec = spec_module.parse_spec(data, api="big", source=str(document))
    for _ in range(rounds):
        excerpts.write_excerpts(data, spec, document, _key(document), Path(cache))


def test_builders_at_once_leave_one_whole_cache_and_readers_never_see_half(big: Path) -> None:
    whole = load_spec(big, api="big").operation("post_resource0005_21")
    context = multiprocessing.get_context("spawn")
    builders = [context.Process(target=_build_again, args=(big, str(cache_dir()), 2)) for _ in range(3)]
    for builder in builders:
        builder.start()
    seen = 0
    while any(builder.is_alive() for builder in builders):
        op = excerpts.load_operation(big, "big", "post_resource0005_21", _key(big), cache_dir())
        assert op is None or shown(op) == shown(whole)  # None: not written yet, or being replaced
        seen += 1
    for builder in builders:
        builder.join()
        assert builder.exitcode == 0
    assert seen > 0
    final = excerpts.load_operation(big, "big", "post_resource0005_21", _key(big), cache_dir())
    assert shown(final) == shown(whole)
    assert [p.name for p in cache_of(big).parent.iterdir()] == [cache_of(big).name]


def test_a_small_document_is_parsed_whole_and_gets_no_excerpts() -> None:
    catalog = Catalog.default()
    geins = Path(catalog.entry("geins.create_order_refund").source)
    assert geins.stat().st_size < excerpts.MIN_BYTES
    assert catalog.operation("geins.create_order_refund").method == "POST"
    assert not excerpts.cache_file(cache_dir(), geins, "geins").exists()


def test_the_bundled_documents_load_each_operation_from_its_excerpt_as_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog.default()
    sources = {Path(e.source): e.api for e in catalog.entries if e.bundled}
    large = {path: api for path, api in sources.items() if path.stat().st_size >= excerpts.MIN_BYTES}
    assert {"chargebee", "stripe", "zoho-billing"} <= set(large.values())
    catalog.operation("chargebee.record_refund")  # the first load parses its document whole and caches it
    with monkeypatch.context() as patched:
        patched.setattr(spec_module, "load_document", _never)
        assert Catalog.default().operation("chargebee.record_refund").method == "POST"
    for path, api in large.items():
        whole = load_spec(path, api=api)
        for op in whole.operations:
            excerpted = excerpts.load_operation(path, api, op.operation_id, _key(path), cache_dir())
            assert excerpted is not None, op.id
            same(excerpted, op)


def _never(path: Path) -> Any:
    raise AssertionError(f"{path} was parsed whole")


def test_what_a_killed_builder_left_is_removed_by_the_next_build(big: Path) -> None:
    left = cache_of(big).parent / "killed-builder.tmp"
    left.write_bytes(b"half a database")
    journal = cache_of(big).parent / "killed-builder.tmp-journal"
    journal.write_bytes(b"its journal")
    os.utime(journal, (time.time() - 7200, time.time() - 7200))
    recent = cache_of(big).parent / "running-builder.tmp"
    recent.write_bytes(b"a database being written")
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    cache_of(big).unlink()
    assert Catalog.default().operation(SHOWN).method == "POST"  # parsed whole, and cached again
    kept = {p.name for p in cache_of(big).parent.iterdir()}
    assert {cache_of(big).name, recent.name} <= kept
    assert not {left.name, journal.name} & kept


def test_an_editor_showing_many_operations_never_reads_the_whole_document(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.default()
    ids = [i for i in catalog.ids() if i.startswith("big.")][:40]
    refuse_parsing(monkeypatch)
    assert [catalog.operation(i).id for i in ids] == ids
    # A worker the editor starts gets the catalog without the operations loaded so far, and loads its own.
    copy = pickle.loads(pickle.dumps(catalog))
    assert copy._operations == {} and copy._specs == {}
    assert copy.operation(ids[-1]).id == ids[-1]


def test_every_operation_at_once_parses_each_document_once(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog.default()
    read: list[Path] = []
    load_document = spec_module.load_document

    def counted(path: Path) -> Any:
        read.append(path)
        return load_document(path)

    monkeypatch.setattr(spec_module, "load_document", counted)
    assert [op.id for op in catalog.operations()] == catalog.ids()
    assert sorted(read) == sorted({Path(entry.source) for entry in catalog.entries})
