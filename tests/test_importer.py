"""importer.py: vendor documents into the user catalog, whole or not at all, indexed on the way; strict
findings from `specs check`.

The vendor tests compare the catalog against the source documents, walked here independently of spec.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from httptask.catalog import Catalog
from httptask.errors import SpecError, UsageError
from httptask.importer import check_document, check_specs, import_specs
from httptask.reference import reference

FIXTURES = Path(__file__).parent / "fixtures"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def user_dir() -> Path:
    return Path(os.environ["HTTPTASK_SPECS_PATH"])


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too) with its bytes."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_import_one_document() -> None:
    result = import_specs([FIXTURES / "mini-vendor.json"], target=user_dir())
    assert result.api == "mini-vendor"
    assert result.operations == 4
    assert result.written == [user_dir() / "mini-vendor.json"]
    assert listing(user_dir()) == ["mini-vendor.json"]
    catalog = Catalog.default()
    assert [i for i in catalog.ids() if i.startswith("mini-vendor.")] == [
        "mini-vendor.list_widgets",
        "mini-vendor.create_a_widget",
        "mini-vendor.list_widget_refunds",
        "mini-vendor.refund_a_widget",
    ]
    # The derived operationIds are written into the stored copy, so ids stay stable.
    stored = json.loads((user_dir() / "mini-vendor.json").read_text(encoding="utf-8"))
    assert stored["paths"]["/widgets"]["get"]["operationId"] == "list_widgets"
    op = catalog.operation("mini-vendor.list_widgets")
    (limit,) = op.parameters
    assert (limit.name, limit.schema) == ("limit", {"type": "integer"})  # inline copy overrides the $ref


def test_import_with_a_name_and_a_folder_of_parts() -> None:
    parts = sorted((FIXTURES / "shop-parts").iterdir())
    result = import_specs(parts, target=user_dir(), name="shop")
    assert (result.api, result.operations) == ("shop", 4)
    assert listing(user_dir()) == ["shop", "shop/customers.json", "shop/orders.json"]
    assert {i for i in Catalog.default().ids() if i.startswith("shop.")} == {
        "shop.list_customers",
        "shop.create_a_customer",
        "shop.list_orders",
        "shop.retrieve_an_order",
    }


def test_default_name_is_the_stem_made_valid(tmp_path: Path) -> None:
    source = tmp_path / "Widgets_API v2.json"
    shutil.copy(FIXTURES / "mini-vendor.json", source)
    assert import_specs([source], target=user_dir()).api == "widgets-api-v2"


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (["*refund*"], ["list_widget_refunds", "refund_a_widget"]),
        (["GET *"], ["list_widgets", "list_widget_refunds"]),
        (["/widgets"], ["list_widgets", "create_a_widget"]),
        (["create_a_widget", "list_widget_refunds"], ["create_a_widget", "list_widget_refunds"]),
    ],
)
def test_include_keeps_only_matching_operations(include: list[str], expected: list[str]) -> None:
    result = import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="mini", include=include)
    assert result.operations == len(expected)
    assert [i for i in Catalog.default().ids() if i.startswith("mini.")] == [f"mini.{e}" for e in expected]


def test_include_drops_the_parts_it_empties() -> None:
    parts = sorted((FIXTURES / "shop-parts").iterdir())
    result = import_specs(parts, target=user_dir(), name="shop", include=["*customer*"])
    assert result.operations == 2
    assert listing(user_dir()) == ["shop.json"]  # one part left: stored as one document
    import_specs(parts, target=user_dir(), name="shop", include=["*customer*", "list_orders"], replace=True)
    assert listing(user_dir()) == ["shop", "shop/customers.json", "shop/orders.json"]


def test_include_on_a_document_without_paths(tmp_path: Path) -> None:
    source = tmp_path / "hooks.yaml"
    source.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\nwebhooks: {}\n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        import_specs([source], target=user_dir(), include=["*"])
    assert str(caught.value) == "No operation matches --include *; nothing was imported."


def test_include_matching_nothing_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="mini", include=["nothing*"])
    assert str(caught.value) == "No operation matches --include nothing*; nothing was imported."
    assert snapshot(user_dir()) == {}


def test_importing_the_same_name_twice_needs_replace() -> None:
    import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="mini", include=["GET *"])
    before = snapshot(user_dir())
    with pytest.raises(UsageError) as caught:
        import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="mini")
    assert str(caught.value) == (
        f"The catalog already has an API 'mini' ({user_dir() / 'mini.json'}); add --replace to overwrite it."
    )
    assert snapshot(user_dir()) == before
    result = import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="mini", replace=True)
    assert result.operations == 4
    assert listing(user_dir()) == ["mini.json"]
    assert len([i for i in Catalog.default().ids() if i.startswith("mini.")]) == 4


def test_replace_swaps_a_single_file_for_a_folder() -> None:
    import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="shop")
    import_specs(sorted((FIXTURES / "shop-parts").iterdir()), target=user_dir(), name="shop", replace=True)
    assert listing(user_dir()) == ["shop", "shop/customers.json", "shop/orders.json"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Bad_Name",
            "'Bad_Name' cannot be an API name: use lower-case letters, digits and dashes, "
            "e.g. --name zoho-vendor.",
        ),
        ("stripe", "'stripe' is a bundled API; choose another name with --name, e.g. --name stripe-vendor."),
    ],
)
def test_bad_or_bundled_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name=name)
    assert str(caught.value) == message
    assert snapshot(user_dir()) == {}


def test_no_files_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        import_specs([], target=user_dir())
    assert str(caught.value) == "Name at least one OpenAPI file to import."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "openapi: 3.0.0\npaths:\n  /a:\n    get: {operationId: x}\n  /b:\n    get: {operationId: x}\n",
            "{f}#/paths/~1b/get/operationId: the operationId 'x' is used by both GET /a and GET /b; "
            "operationIds must be unique.",
        ),
        (
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses: {'200': {$ref: '#/nope'}}\n",
            "{f}#/paths/~1a/get/responses/200: the reference '#/nope' points to nothing.",
        ),
        (
            "swagger: '2.0'\npaths: {}\n",
            "{f}#/swagger: this is a Swagger '2.0' document; httptask reads OpenAPI 3.0 and 3.1: convert it "
            "to OpenAPI 3 first (e.g. with swagger2openapi), then import the result.",
        ),
        (
            "openapi: 3.0.0\n  paths: {\n",
            "{f}: line 2: invalid YAML: mapping values are not allowed in this context.",
        ),
        (
            'openapi: 3.1.0\npaths:\n  "/refunds\\0/{id}": {}\n',
            '{f}#/paths/~1refunds%00~1{{id}}: the path "/refunds\\u0000/{{id}}" holds a control character; '
            "remove it.",
        ),
        (
            "openapi: 3.1.0\npaths: [/a]\n",
            "{f}#/paths: 'paths' must be a mapping of paths to path items.",
        ),
        (
            "openapi: 3.1.0\npaths:\n  /a:\n    post: {operationId: [refund, v2]}\n",
            '{f}#/paths/~1a/post/operationId: the operationId must be a string, found ["refund", "v2"].',
        ),
        (
            "openapi: 3.1.0\npaths:\n  /a:\n    post:\n      requestBody:\n"
            "        content: {application/json: {schema: string}}\n",
            "{f}#/paths/~1a/post/requestBody/content/application~1json/schema: a schema must be a mapping "
            '(or true or false), found "string"; write it as a schema, e.g. {{type: string}}.',
        ),
    ],
)
def test_an_invalid_part_leaves_the_catalog_untouched(tmp_path: Path, text: str, message: str) -> None:
    import_specs([FIXTURES / "mini-vendor.json"], target=user_dir(), name="earlier")
    before = snapshot(user_dir())
    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    parts = [*sorted((FIXTURES / "shop-parts").iterdir()), broken]  # the good parts come first
    with pytest.raises(SpecError) as caught:
        import_specs(parts, target=user_dir(), name="shop")
    assert str(caught.value) == message.format(f=broken)
    assert snapshot(user_dir()) == before
    with pytest.raises(SpecError):
        import_specs(parts, target=user_dir(), name="earlier", replace=True)
    assert snapshot(user_dir()) == before


def test_an_invalid_document_does_not_even_create_the_directory(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"openapi": "3.1.0",', encoding="utf-8")
    target = tmp_path / "catalog"
    with pytest.raises(SpecError):
        import_specs([broken], target=target)
    assert not target.exists()


def test_operation_ids_clashing_across_parts_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "again.yaml"
    shutil.copy(FIXTURES / "shop-parts" / "orders.yaml", copy)
    with pytest.raises(SpecError) as caught:
        import_specs([FIXTURES / "shop-parts" / "orders.yaml", copy], target=user_dir(), name="shop")
    assert str(caught.value) == (
        f"{copy}#/paths/~1orders/get/operationId: "
        "the operationId 'list_orders' is already used by another imported document of this API."
    )
    assert snapshot(user_dir()) == {}


def test_derived_operation_ids_never_clash(tmp_path: Path) -> None:
    source = tmp_path / "twins.yaml"
    source.write_text(
        "openapi: 3.0.0\npaths:\n"
        "  /a:\n    get: {summary: Fetch it}\n"
        "  /b:\n    get: {summary: Fetch it}\n"
        "  /c:\n    get: {summary: Fetch it}\n",
        encoding="utf-8",
    )
    import_specs([source], target=user_dir())
    ids = [i for i in Catalog.default().ids() if i.startswith("twins.")]
    assert ids == ["twins.fetch_it", "twins.get_b", "twins.get_c"]


def test_strict_findings_are_left_to_specs_check_with_their_pointers(tmp_path: Path) -> None:
    # A `$ref` with an inline copy beside it (Chargebee's style) breaks OpenAPI 3.1 but imports fine.
    result = import_specs([FIXTURES / "mini-vendor.json"], target=user_dir())
    assert result.operations == 4
    (checked,) = check_specs([("mini-vendor", FIXTURES / "mini-vendor.json")])
    assert (checked.operations, checked.count, checked.error) == (4, 1, None)
    (finding,) = checked.findings
    assert (finding.file, finding.pointer) == (
        str(FIXTURES / "mini-vendor.json"),
        "/paths/~1widgets/get/parameters/0",
    )
    # One sentence from either schema backend (jsonschema or jsonschema-rs); the names' order varies.
    assert finding.message.startswith("Unevaluated properties are not allowed (")
    assert finding.message.endswith(" were unexpected)")
    assert sorted(re.findall(r"'(\w+)'", finding.message)) == ["in", "name", "schema"]
    document = yaml.safe_load((FIXTURES / "shop-parts" / "orders.yaml").read_text(encoding="utf-8"))
    assert check_document(document, "orders.yaml") == ([], 0)
    del document["info"]["version"]
    findings, count = check_document(document, "orders.yaml")
    assert count == 1
    assert [(f.file, f.pointer) for f in findings] == [("orders.yaml", "/info")]
    assert findings[0].message.replace('"', "'") == "'version' is a required property"


# -- the vendor documents of ../shared, compared with the catalog operation by operation ---------------------


def _resolve(document: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """`node` with every local `$ref` inlined (sibling keys win; a cycle stops at the repeated reference)."""
    if isinstance(node, list):
        return [_resolve(document, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return {}
        target: Any = document
        for token in ref.lstrip("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve(document, {**target, **siblings}, seen | {ref})
    return {key: _resolve(document, value, seen) for key, value in node.items()}


def _field_names(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Field names as the seed pages write them: `a.b` nested, `a[]` scalar arrays, `a[].b` object arrays."""
    names = []
    for name, child in (schema.get("properties") or {}).items():
        items = child.get("items") if child.get("type") == "array" else None
        object_items = isinstance(items, dict) and "properties" in items
        display = (
            f"{prefix}{name}[]" if child.get("type") == "array" and not object_items else f"{prefix}{name}"
        )
        names.append(display)
        if "properties" in child:
            names.extend(_field_names(child, f"{display}."))
        elif object_items:
            names.extend(_field_names(items, f"{display}[]."))
    return names


def _source_operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> parameter keys, body content type and field names, read from the raw document."""
    found = {}
    for path, raw_item in document["paths"].items():
        item = _resolve(document, raw_item)
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            params = {(p["in"], p["name"]) for p in item.get("parameters", [])}
            params |= {(p["in"], p["name"]) for p in operation.get("parameters", [])}
            # A path variable the document does not declare is a required parameter all the same.
            params |= {("path", name) for name in re.findall(r"\{([^{}]+)\}", path)}
            body = None
            content = (operation.get("requestBody") or {}).get("content") or {}
            if content:
                content_type, media = next(iter(content.items()))
                body = (content_type, _field_names(media.get("schema") or {}))
            found[(method.upper(), path)] = {"parameters": params, "body": body}
    return found


def _assert_catalog_matches(api: str, sources: dict[str, dict[str, Any]]) -> None:
    catalog = Catalog.default()
    checked = 0
    for stem, document in sources.items():
        expected = _source_operations(document)
        entries = [e for e in catalog.entries if e.api == api and Path(e.source).stem == stem]
        got = {(e.method, e.path): e for e in entries}
        assert set(got) == set(expected), stem
        assert len(entries) == len(expected), f"{stem}: an operation is catalogued twice"
        for key, want in expected.items():
            ref = reference(catalog.operation(got[key].id))
            assert {(p["in"], p["name"]) for p in ref["parameters"]} == want["parameters"], (stem, key)
            assert len(ref["parameters"]) == len(want["parameters"]), (stem, key)
            if want["body"] is None:
                assert ref["body"] is None, (stem, key)
            else:
                assert ref["body"] is not None, (stem, key)
                assert (ref["body"]["content_type"], [f["name"] for f in ref["body"]["fields"]]) == want[
                    "body"
                ], (
                    stem,
                    key,
                )
            checked += 1
    assert checked == sum(len(_source_operations(d)) for d in sources.values())


@pytest.mark.shared
def test_chargebee_v1_imports_every_operation(
    vendor_specs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(vendor_specs_dir))
    path = Path(__file__).resolve().parents[2] / "shared" / "vendor-specs" / "chargebee_api_v1_spec.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(_source_operations(document)) == 104
    _assert_catalog_matches("chargebee-vendor", {"chargebee-vendor": document})


@pytest.mark.shared
def test_zoho_billing_imports_every_operation(
    vendor_specs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_SPECS_PATH", str(vendor_specs_dir))
    folder = Path(__file__).resolve().parents[2] / "shared" / "vendor-specs" / "zoho-billing"
    sources = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.yml"))}
    assert len(sources) == 24
    assert sum(len(_source_operations(d)) for d in sources.values()) == 192
    _assert_catalog_matches("zoho-vendor", sources)


@pytest.mark.shared
def test_vendor_include_filter(shared_dir: Path) -> None:
    result = import_specs(
        [shared_dir / "vendor-specs" / "chargebee_api_v1_spec.json"],
        target=user_dir(),
        name="cb",
        include=["*refund*"],
    )
    ids = [i for i in Catalog.default().ids() if i.startswith("cb.")]
    assert result.operations == len(ids) > 0
    assert {"cb.refund_an_invoice", "cb.record_refund_for_an_invoice"} <= set(ids)
    assert all("refund" in i or "refund" in Catalog.default().entry(i).path for i in ids)


def test_an_import_fills_the_index_so_listing_and_searching_parse_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Catalog.default().ids()  # the bundled specs are indexed first, as any earlier command would have
    import_specs(sorted((FIXTURES / "shop-parts").iterdir()), target=user_dir(), name="shop")
    import_specs([FIXTURES / "mini-vendor.json"], target=user_dir())

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a spec was parsed")

    monkeypatch.setattr("httptask.spec.parse_spec", no_parsing)
    monkeypatch.setattr("httptask.spec.load_spec", no_parsing)
    catalog = Catalog.default()
    assert {"mini-vendor.refund_a_widget", "mini-vendor.list_widgets"} <= set(catalog.ids())
    assert any(i.startswith("shop.") for i in catalog.ids())
    assert catalog.search("widget refund")[0].entry.id == "mini-vendor.refund_a_widget"


def test_a_strict_check_that_overflows_the_stack_is_a_finding_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import openapi_spec_validator

    def overflow(self: object) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(openapi_spec_validator.OpenAPIV30SpecValidator, "iter_errors", overflow)
    document = yaml.safe_load((FIXTURES / "shop-parts" / "orders.yaml").read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.0")
    findings, count = check_document(document, "orders.yaml")
    assert count == 1
    assert [(f.pointer, f.message) for f in findings] == [
        (
            "",
            "the strict check could not finish: its validator overflowed the stack following this document's "
            "references (httptask loads the document all the same)",
        )
    ]


def test_operation_ids_a_task_cannot_name_are_renamed_and_said(tmp_path: Path) -> None:
    """A task names its operation as API.operationId in letters, digits, '_', '.' and '-': 'réfund €' or
    'v1/refunds' would be in the catalog, yet no task (nor the editor's URL) could name it."""
    spec = tmp_path / "odd.json"
    operations = {"réfund €": "/a", "v1/refunds": "/b", "../../x": "/c", "refund": "/d", "€": "/e"}
    paths = {
        path: {"post": {"operationId": given, "responses": {"200": {"description": "ok"}}}}
        for given, path in operations.items()
    }
    spec.write_text(json.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}))
    result = import_specs([spec], target=user_dir())
    assert result.renamed == {
        "réfund €": "refund_",
        "v1/refunds": "v1_refunds",
        "../../x": "x",
        "€": "post_e",
    }
    imported = sorted(e.id for e in Catalog.default().entries if not e.bundled)
    assert imported == ["odd.post_e", "odd.refund", "odd.refund_", "odd.v1_refunds", "odd.x"]
    shown = subprocess.run(
        [sys.executable, "-m", "httptask", "specs", "import", str(spec), "--name", "odd2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stderr.splitlines()[0] == (
        "Renamed 4 operationIds that a task cannot name (letters, digits, '_', '.' and '-' only): "
        "'réfund €' as 'refund_', 'v1/refunds' as 'v1_refunds', '../../x' as 'x', '€' as 'post_e'."
    )


def test_a_json_document_with_a_byte_order_mark_imports(tmp_path: Path) -> None:
    spec = tmp_path / "bom.json"
    paths = {"/a": {"post": {"operationId": "refund", "responses": {"200": {"description": "ok"}}}}}
    text = json.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths})
    spec.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert import_specs([spec], target=user_dir()).operations == 1
