"""The bundled OpenAPI documents in specs/ are valid and say what the seed documents say, field by field.

The seed documents live in ../shared/seeds (next to this repository); tests that read them are marked
`shared` and skip where that folder is absent. `seed_fields.py` holds a copy of the seed facts so the same
field checks also run from a fresh clone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

try:  # tests/ may or may not become a package; support both layouts.
    from tests.seed_fields import (
        CATALOG,
        SEED_001_NAMES,
        SEED_FIELDS,
        SEED_FILES,
        SEED_SERVERS,
        VENDOR_ENUMS,
        SeedField,
    )
except ImportError:
    from seed_fields import (  # type: ignore[no-redef, unused-ignore]
        CATALOG,
        SEED_001_NAMES,
        SEED_FIELDS,
        SEED_FILES,
        SEED_SERVERS,
        VENDOR_ENUMS,
        SeedField,
    )

SPECS_DIR = Path(__file__).parents[1] / "specs"
SHARED_DIR = Path(__file__).parents[2] / "shared"
SEEDS_DIR = SHARED_DIR / "seeds"
VENDOR_DIR = SHARED_DIR / "vendor-specs"
SPEC_FILES = sorted(SPECS_DIR.glob("*.yaml"))

needs_seeds = pytest.mark.skipif(
    not SEEDS_DIR.is_dir(), reason="../shared/seeds is absent (a fresh clone without the shared folder)"
)
needs_vendor = pytest.mark.skipif(
    not VENDOR_DIR.is_dir(),
    reason="../shared/vendor-specs is absent (a fresh clone without the shared folder)",
)

# The seeds' type words, as (JSON Schema type, format).
SEED_TYPES: dict[str, tuple[str | None, str | None]] = {
    "": (None, None),
    "String": ("string", None),
    "Integer": ("integer", None),
    "Object": ("object", None),
    "Array": ("array", None),
    "string": ("string", None),
    "integer": ("integer", None),
    "boolean": ("boolean", None),
    "int32": ("integer", "int32"),
    "double": ("number", "double"),
    "uuid": ("string", "uuid"),
    "string[]": ("array", None),
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


# --- reading the specs ---------------------------------------------------------------------------------


@cache
def load_spec(stem: str) -> dict[str, Any]:
    with (SPECS_DIR / f"{stem}.yaml").open(encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow `$ref`s (local `#/...` pointers only) until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/components/"), f"non-local $ref {ref!r}"
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline_refs(spec: dict[str, Any], node: Any) -> Any:
    """Return `node` with every `$ref` replaced by its target (the bundled specs have no cycles)."""
    node = resolve(spec, node)
    if isinstance(node, dict):
        return {key: inline_refs(spec, value) for key, value in node.items()}
    if isinstance(node, list):
        return [inline_refs(spec, value) for value in node]
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def find_operation(catalog_id: str) -> tuple[dict[str, Any], str, str, dict[str, Any]]:
    stem, operation_id = catalog_id.split(".", 1)
    spec = load_spec(stem)
    found = [(p, m, op) for p, m, op in operations(spec) if op.get("operationId") == operation_id]
    assert len(found) == 1, f"{catalog_id}: expected one operation, found {len(found)}"
    path, method, op = found[0]
    return spec, path, method, op


def operation_parameters(spec: dict[str, Any], path: str, op: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Path-level then operation-level parameters, keyed by (in, name); header names are lower-cased."""
    merged: dict[tuple[str, str], Any] = {}
    for raw in [*spec["paths"][path].get("parameters", []), *op.get("parameters", [])]:
        param = resolve(spec, raw)
        name = param["name"].lower() if param["in"] == "header" else param["name"]
        merged[(param["in"], name)] = param
    return merged


def request_schema(spec: dict[str, Any], op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    content = resolve(spec, op["requestBody"])["content"]
    assert len(content) == 1, f"expected one request media type, got {sorted(content)}"
    media_type, media = next(iter(content.items()))
    return media_type, resolve(spec, media["schema"])


def response_schema(spec: dict[str, Any], op: dict[str, Any], status: str) -> dict[str, Any]:
    response = resolve(spec, op["responses"][status])
    schema: dict[str, Any] = resolve(spec, response["content"]["application/json"]["schema"])
    return schema


def walk(spec: dict[str, Any], schema: dict[str, Any], dotted: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find a field named like the seeds do ("a.b", "expand[]"): return (parent schema, field schema)."""
    parent, node = schema, schema
    for segment in dotted.split("."):
        name = segment.removesuffix("[]")
        if "array" in types_of(node):
            node = resolve(spec, node["items"])
        props = node.get("properties", {})
        assert name in props, f"{dotted}: no property {name!r} (have {sorted(props)})"
        parent, node = node, resolve(spec, props[name])
        if segment.endswith("[]"):
            assert "array" in types_of(node), (
                f"{dotted}: the seed says array, the spec says {node.get('type')}"
            )
    return parent, node


def types_of(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def plain(text: str) -> str:
    """Text without markdown links, code spans or line breaks, for comparing descriptions."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return re.sub(r"\s+", " ", text.replace("`", "")).strip()


# --- checking one seed field -----------------------------------------------------------------------------


def check_field(field: SeedField) -> None:
    spec, path, _method, op = find_operation(field.operation)
    where = f"{field.operation} {field.location} {field.name!r}"
    if field.location in ("path", "header"):
        key = field.name.lower() if field.location == "header" else field.name
        params = operation_parameters(spec, path, op)
        assert (field.location, key) in params, f"{where}: missing (have {sorted(params)})"
        param = params[(field.location, key)]
        schema = resolve(spec, param["schema"])
        required = bool(param.get("required", False))
        description = param.get("description") or schema.get("description", "")
    else:
        if field.location == "body":
            root = request_schema(spec, op)[1]
        else:
            root = response_schema(spec, op, field.location.removeprefix("response:"))
        parent, schema = walk(spec, root, field.name)
        required = field.name.split(".")[-1].removesuffix("[]") in parent.get("required", [])
        description = schema.get("description", "")

    json_type, json_format = SEED_TYPES[field.type]
    if json_type is not None:
        assert json_type in types_of(schema), (
            f"{where}: seed type {field.type}, spec type {schema.get('type')}"
        )
    if field.type.endswith("[]"):
        item_type = SEED_TYPES[field.type.removesuffix("[]")][0]
        assert item_type in types_of(resolve(spec, schema["items"])), f"{where}: seed items are {item_type}"
    if json_format is not None:
        assert schema.get("format") == json_format, (
            f"{where}: seed format {json_format}, spec {schema.get('format')}"
        )
    assert required is field.required, f"{where}: seed required={field.required}, spec required={required}"
    if field.valid_values:
        assert schema.get("enum"), f"{where}: the seed lists valid values; the spec has no enum"
    if field.enum is not None:
        assert schema.get("enum") == list(field.enum), (
            f"{where}: enum {schema.get('enum')} != seed {field.enum}"
        )
    if field.default is not None:
        assert schema.get("default") == field.default, f"{where}: default {schema.get('default')!r}"
    if field.minimum is not None:
        assert schema.get("minimum") == field.minimum, f"{where}: minimum {schema.get('minimum')}"
    if field.max_length is not None:
        assert schema.get("maxLength") == field.max_length, f"{where}: maxLength {schema.get('maxLength')}"
    # The seeds cut some descriptions short; the spec must start with the seed's text.
    assert plain(description).startswith(plain(field.description)), (
        f"{where}: description {plain(description)[:120]!r} does not start with the seed's "
        f"{plain(field.description)[:120]!r}"
    )


# --- parsing the seed documents --------------------------------------------------------------------------

TABLE_SECTIONS = {"Path parameters": "path", "Request headers": "header", "Request body fields": "body"}
ROW_NAME = re.compile(r"^([A-Za-z0-9_.\[\]-]+) \|$")
ROW_META = re.compile(r"^(?:(\w+) \| )?(Yes|No) \|(.*)$")


def _row_starts(lines: list[str], i: int) -> bool:
    return bool(ROW_NAME.match(lines[i])) and i + 1 < len(lines) and bool(ROW_META.match(lines[i + 1]))


def parse_table_seed(text: str, operation: str) -> tuple[list[str], list[SeedField]]:
    """Servers and fields of a seed in the catalog's table layout (seeds 000 and 002)."""
    lines = [line.strip() for line in text.splitlines()]
    servers: list[str] = []
    fields: list[SeedField] = []
    section: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line == "Servers":
            section = "servers"
        elif line in TABLE_SECTIONS:
            section = TABLE_SECTIONS[line]
        elif line.startswith("How to start integrating"):
            section = None
        elif section == "servers" and line.startswith("- "):
            servers.append(line[2:])
        elif section in ("path", "header", "body") and _row_starts(lines, i):
            name = ROW_NAME.match(line).group(1)  # type: ignore[union-attr]
            meta = ROW_META.match(lines[i + 1])
            assert meta is not None
            seed_type, required, rest = meta.group(1) or "", meta.group(2) == "Yes", meta.group(3)
            parts = [rest]
            i += 2
            while (
                i < len(lines)
                and not _row_starts(lines, i)
                and lines[i] not in TABLE_SECTIONS
                and not lines[i].startswith("How to start integrating")
            ):
                parts.append(lines[i])
                i += 1
            description = re.sub(r"\s*\|\s*", " ", " ".join(parts)).strip()
            default = re.search(r'Default value: "([^"]*)"', description)
            valid_values = "Valid values:" in description
            description = re.sub(r'Default value: "[^"]*"|Valid values:.*$', "", description).strip()
            fields.append(
                SeedField(
                    operation,
                    section,
                    name,
                    seed_type,
                    required,
                    description,
                    valid_values=valid_values,
                    default=default.group(1) if default else None,
                )
            )
            continue
        i += 1
    return servers, fields


GEINS_FIELD = re.compile(r"^(\w+) (int32|string|double|boolean|uuid|string\[\])(?: (REQUIRED|OPTIONAL))?$")


def parse_geins_seed(text: str, operation: str) -> tuple[bool, dict[str, str], list[SeedField]]:
    """(request body required, response descriptions, fields) of the "Name type" layout (seed 003)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fields: list[SeedField] = []
    responses: dict[str, str] = {}
    body_required = False
    location = ""
    for i, line in enumerate(lines):
        if line == "Path Parameters":
            location = "path"
        elif line.startswith("Request Body"):
            location, body_required = "body", line.endswith("REQUIRED")
        elif re.fullmatch(r"[1-5]\d\d", line) and location.startswith(("body", "response")):
            location = f"response:{line}"
            responses[line] = lines[i + 1]
        elif (match := GEINS_FIELD.match(line)) and location:
            name, seed_type, flag = match.groups()
            following = []
            for later in lines[i + 1 :]:
                if GEINS_FIELD.match(later) or later == "Responses" or re.fullmatch(r"[1-5]\d\d", later):
                    break
                following.append(later)
            enum = None
            if following and following[0].startswith("Possible values:"):
                enum = tuple(json.loads(following.pop(0).removeprefix("Possible values:").strip()))
            description = following[0] if following else ""
            # RefundAmount has no REQUIRED flag, but its text says "Required.": the seed's words count too.
            required = flag == "REQUIRED" or description.endswith(" Required.")
            fields.append(
                SeedField(operation, location, name, seed_type, required, description, enum=enum)
            )
    return body_required, responses, fields


def parse_chargebee_v2_seed(text: str, operation: str) -> dict[str, Any]:
    """Facts of the prose seed 001: idempotency, URL format, the unnamed inputs and the returned objects."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    url_line = lines[lines.index("URL Format") + 1]
    method, url = url_line.split(" ", 1)
    inputs = []
    for i, line in enumerate(lines):
        if match := re.fullmatch(r"(optional|required), (.+)", line):
            words = [w.strip() for w in match.group(2).split(",")]
            seed_type = "integer" if "in cents" in words else words[0]
            minimum = next((int(w[4:]) for w in words if w.startswith("min=")), None)
            max_length = next((int(w[10:]) for w in words if w.startswith("max chars=")), None)
            inputs.append((seed_type, match.group(1) == "required", minimum, max_length, lines[i + 1]))
    assert len(inputs) == len(SEED_001_NAMES), inputs
    fields = [
        SeedField(
            operation, "body", name, seed_type, required, description, minimum=minimum, max_length=maxlen
        )
        for name, (seed_type, required, minimum, maxlen, description) in zip(
            SEED_001_NAMES, inputs, strict=True
        )
    ]
    returns = lines[lines.index("Returns") + 1 :]
    returned = [m.group(1) for line in returns if (m := re.match(r"^([a-z_]+)[A-Z]", line))]
    return {
        "idempotent": "Idempotency Supported" in lines,
        "method": method.lower(),
        "url": url.replace("[site]", "{site}"),
        "fields": fields,
        "returns": returned,
    }


def json_objects(lines: list[str]) -> list[Any]:
    """Every JSON object that starts at the beginning of a line and parses."""
    decoder = json.JSONDecoder()
    text = "\n".join(lines)
    found, pos = [], 0
    for match in re.finditer(r"(?m)^\{", text):
        if match.start() < pos:
            continue
        try:
            value, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        found.append(value)
        pos = end
    return found


def parse_zoho_seed(text: str) -> dict[str, Any]:
    """Endpoints (by heading), their arguments, scopes, URLs and JSON samples (seed 004)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    headings = lines[lines.index("End Points") + 1 : lines.index("Attribute")]
    starts = [max(i for i, line in enumerate(lines) if line == heading) for heading in headings]
    attribute_example = json_objects(lines[: starts[0]])[0]
    endpoints = {}
    for heading, start, end in zip(headings, starts, [*starts[1:], len(lines)], strict=True):
        block = lines[start:end]
        args = []
        if "Arguments" in block:
            k = block.index("Arguments") + 1
            while re.fullmatch(r"[a-z_]+", block[k]) and block[k + 1] in SEED_TYPES:
                required = block[k + 2] == "(Required)"
                description = block[k + 3] if required else block[k + 2]
                args.append((block[k], block[k + 1], required, description))
                k += 4 if required else 3
        curl = next(i for i, line in enumerate(block) if line.startswith("curl --request"))
        samples = json_objects(block)
        endpoints[heading] = {
            "description": block[1],
            "scope": next(line.split(":", 1)[1].strip() for line in block if line.startswith("OAuth Scope")),
            "method": block[curl].split()[2].lower(),
            "url": block[curl + 1].split()[1],
            "arguments": args,
            "response": next(s for s in samples if "code" in s),
        }
    return {"attribute_example": attribute_example, "endpoints": endpoints}


def seed_text(key: str) -> str:
    text: str = (SEEDS_DIR / SEED_FILES[key]).read_text(encoding="utf-8")
    return text


def parsed_seed_fields() -> list[SeedField]:
    fields = [*parse_table_seed(seed_text("000"), CATALOG["000"][0][0])[1]]
    fields += parse_chargebee_v2_seed(seed_text("001"), CATALOG["001"][0][0])["fields"]
    fields += parse_table_seed(seed_text("002"), CATALOG["002"][0][0])[1]
    fields += parse_geins_seed(seed_text("003"), CATALOG["003"][0][0])[2]
    zoho = parse_zoho_seed(seed_text("004"))
    for catalog_id, _method, _path in CATALOG["004"]:
        summary = find_operation(catalog_id)[3]["summary"]
        for name, seed_type, required, description in zoho["endpoints"][summary]["arguments"]:
            fields.append(SeedField(catalog_id, "body", name, seed_type, required, description))
    return fields


# --- the documents themselves ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_spec_is_valid_openapi_3_1(path: Path) -> None:
    spec = load_spec(path.stem)
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_refs_are_local_and_resolve(path: Path) -> None:
    spec = load_spec(path.stem)
    refs = list(refs_in(spec))
    assert refs, "expected at least one $ref"
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        assert resolve(spec, {"$ref": ref}) is not None


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_document_and_operation_metadata(path: Path) -> None:
    spec = load_spec(path.stem)
    assert path.read_text(encoding="utf-8").startswith("# "), "the conventions comment block comes first"
    for key in ("title", "version", "description"):
        assert spec["info"].get(key), f"info.{key} is missing"
    assert spec.get("x-api-name")
    for _path, _method, op in operations(spec):
        for key in ("operationId", "summary", "description", "tags"):
            assert op.get(key), f"{op.get('operationId')}: {key} is missing"
        notes = op.get("x-seed-notes", [])
        assert isinstance(notes, list)
        assert all(isinstance(note, str) and note for note in notes)


def test_catalog_has_exactly_the_seed_operations() -> None:
    expected = {catalog_id: (method, path) for ids in CATALOG.values() for catalog_id, method, path in ids}
    actual = {
        f"{spec_path.stem}.{op['operationId']}": (method, path)
        for spec_path in SPEC_FILES
        for path, method, op in operations(load_spec(spec_path.stem))
    }
    # Besides the seed endpoints, only the reads that an x-reconcile of a seed endpoint names.
    reads = {
        f"{spec_path.stem}.{op['x-reconcile']['operation']}"
        for spec_path in SPEC_FILES
        for _path, _method, op in operations(load_spec(spec_path.stem))
        if "x-reconcile" in op
    }
    assert reads == {"chargebee.retrieve_invoice", "zoho-billing.list_credit_note_refunds"}
    assert {k: v for k, v in actual.items() if k not in reads} == expected


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_examples_match_their_schemas(path: Path) -> None:
    spec = load_spec(path.stem)
    checked = 0
    for _path, _method, op in operations(spec):
        bodies = []
        if "requestBody" in op:
            bodies += resolve(spec, op["requestBody"])["content"].values()
        for status, response in op["responses"].items():
            content = resolve(spec, response).get("content", {})
            if status.startswith("2"):
                assert all("example" in media for media in content.values()), f"{status} needs an example"
            bodies += content.values()
        for media in bodies:
            if "example" in media:
                schema = inline_refs(spec, media["schema"])
                jsonschema.Draft202012Validator(schema).validate(media["example"])
                checked += 1
    assert checked


# --- seed fidelity, from the inline table ------------------------------------------------------------------


@pytest.mark.parametrize("field", SEED_FIELDS, ids=lambda f: f"{f.operation}:{f.location}:{f.name}")
def test_seed_field_is_in_spec(field: SeedField) -> None:
    check_field(field)


@pytest.mark.parametrize("catalog_id", sorted(SEED_SERVERS))
def test_servers_match_seed(catalog_id: str) -> None:
    spec, _path, _method, op = find_operation(catalog_id)
    servers = op.get("servers") or spec["servers"]
    assert [server["url"] for server in servers] == list(SEED_SERVERS[catalog_id])
    for server in servers:
        for name in re.findall(r"{(\w+)}", server["url"]):
            variable = server["variables"][name]
            assert variable["default"]
            if "enum" in variable:
                assert variable["default"] in variable["enum"]


@pytest.mark.parametrize(("catalog_id", "location", "name"), sorted(VENDOR_ENUMS))
def test_vendor_filled_enums(catalog_id: str, location: str, name: str) -> None:
    """The seeds' empty "Valid values:" lists are filled from the vendor documents."""
    spec, path, _method, op = find_operation(catalog_id)
    if location == "header":
        schema = resolve(spec, operation_parameters(spec, path, op)[("header", name)]["schema"])
    else:
        schema = walk(spec, request_schema(spec, op)[1], name)[1]
    assert schema.get("enum"), f"{catalog_id} {name}: empty enum"
    assert schema["enum"] == list(VENDOR_ENUMS[(catalog_id, location, name)])


def test_conventions_form_style_encoding_idempotency_auth() -> None:
    form_styles = {"chargebee": "index-last", "stripe": "brackets"}
    idempotency = {
        "chargebee.refund_invoice": "chargebee-idempotency-key",
        "stripe.report_payment_record_refund": "Idempotency-Key",
    }
    for spec_path in SPEC_FILES:
        spec = load_spec(spec_path.stem)
        for _path, _method, op in operations(spec):
            catalog_id = f"{spec_path.stem}.{op['operationId']}"
            marker = op.get("x-idempotency-key")
            if catalog_id in idempotency:
                assert marker is not None, f"{catalog_id} needs x-idempotency-key"
                assert marker["header"] == idempotency[catalog_id]
                assert marker["description"]
            else:
                assert marker is None, f"{catalog_id} must not carry x-idempotency-key"
            if "requestBody" not in op:
                continue
            media_type, schema = request_schema(spec, op)
            media = resolve(spec, op["requestBody"])["content"][media_type]
            if spec_path.stem in form_styles:
                assert media_type == "application/x-www-form-urlencoded"
                assert media["x-form-style"] == form_styles[spec_path.stem]
                nested = {k for k, v in schema["properties"].items() if types_of(v) & {"object", "array"}}
                assert set(media["encoding"]) == nested
                assert all(e == {"style": "deepObject", "explode": True} for e in media["encoding"].values())
            else:
                assert media_type == "application/json"
                assert "x-form-style" not in media

    schemes = {stem: load_spec(stem)["components"]["securitySchemes"] for stem in ("chargebee", "stripe")}
    assert schemes["chargebee"]["BasicAuth"]["type"] == "http"
    assert schemes["chargebee"]["BasicAuth"]["scheme"] == "basic"
    assert "password is empty" in schemes["chargebee"]["BasicAuth"]["description"]
    assert schemes["stripe"]["bearerAuth"] == {
        **schemes["stripe"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    zoho = load_spec("zoho-billing")
    assert zoho["security"] == [{"ZohoAuth": []}]
    assert zoho["components"]["securitySchemes"]["ZohoAuth"]["x-auth-prefix"] == "Zoho-oauthtoken "
    assert zoho["components"]["securitySchemes"]["ZohoAuth"]["name"] == "Authorization"
    geins = load_spec("geins")
    assert geins["security"] == [{"apiKey": [], "basicAuth": []}]
    assert geins["components"]["securitySchemes"]["apiKey"]["name"] == "X-ApiKey"
    assert "refund_invoice" in {
        op["operationId"] for _p, _m, op in operations(load_spec("chargebee")) if op.get("servers")
    }


# --- seed fidelity, from ../shared/seeds --------------------------------------------------------------------


@pytest.mark.shared
@needs_seeds
def test_seed_files_parse_into_the_inline_table() -> None:
    """Keeps seed_fields.py honest: it must be exactly what the seed documents say."""
    assert parsed_seed_fields() == list(SEED_FIELDS)
    for key in ("000", "002"):
        catalog_id = CATALOG[key][0][0]
        assert parse_table_seed(seed_text(key), catalog_id)[0] == list(SEED_SERVERS[catalog_id])


@pytest.mark.shared
@needs_seeds
@pytest.mark.parametrize("key", sorted(SEED_FILES))
def test_every_seed_field_is_in_spec(key: str) -> None:
    fields = [f for f in parsed_seed_fields() if f.operation in {c[0] for c in CATALOG[key]}]
    assert fields, f"no fields parsed from seed {key}"
    for field in fields:
        check_field(field)


@pytest.mark.shared
@needs_seeds
def test_table_seed_servers_are_in_spec() -> None:
    for key in ("000", "002"):
        catalog_id = CATALOG[key][0][0]
        servers = parse_table_seed(seed_text(key), catalog_id)[0]
        spec, _path, _method, op = find_operation(catalog_id)
        assert [s["url"] for s in op.get("servers") or spec["servers"]] == servers


@pytest.mark.shared
@needs_seeds
def test_chargebee_v2_seed_facts() -> None:
    facts = parse_chargebee_v2_seed(seed_text("001"), "chargebee.refund_invoice")
    spec, path, method, op = find_operation("chargebee.refund_invoice")
    assert facts["idempotent"] and op["x-idempotency-key"]["header"] == "chargebee-idempotency-key"
    assert (method, op["servers"][0]["url"] + path) == (facts["method"], facts["url"])
    assert set(facts["returns"]) == {"invoice", "transaction", "credit_note"}
    assert set(facts["returns"]) <= set(response_schema(spec, op, "200")["properties"])


@pytest.mark.shared
@needs_seeds
def test_geins_seed_body_and_responses() -> None:
    body_required, responses, _fields = parse_geins_seed(seed_text("003"), "geins.create_order_refund")
    spec, _path, _method, op = find_operation("geins.create_order_refund")
    assert resolve(spec, op["requestBody"]).get("required", False) is body_required
    assert {
        status: resolve(spec, op["responses"][status])["description"] for status in responses
    } == responses
    assert set(op["responses"]) == set(responses)


@pytest.mark.shared
@needs_seeds
def test_zoho_seed_endpoints_scopes_and_examples() -> None:
    zoho = parse_zoho_seed(seed_text("004"))
    ids = [catalog_id for catalog_id, _method, _path in CATALOG["004"]]
    by_summary = {find_operation(catalog_id)[3]["summary"]: catalog_id for catalog_id in ids}
    assert set(zoho["endpoints"]) == set(by_summary)
    for heading, endpoint in zoho["endpoints"].items():
        spec, path, method, op = find_operation(by_summary[heading])
        assert method == endpoint["method"]
        pattern = re.escape(spec["servers"][0]["url"]) + re.sub(r"\\{\w+\\}", "[^/]*", re.escape(path))
        assert re.fullmatch(pattern, endpoint["url"]), (endpoint["url"], pattern)
        assert op["x-oauth-scopes"] == [endpoint["scope"]]
        assert op["description"].startswith(endpoint["description"])
        success = next(s for s in op["responses"] if s.startswith("2"))
        media = resolve(spec, op["responses"][success])["content"]["application/json"]
        assert media["example"] == endpoint["response"]
        assert ("header", "x-com-zoho-subscriptions-organizationid") in operation_parameters(spec, path, op)
    refund = resolve(load_spec("zoho-billing"), {"$ref": "#/components/schemas/Refund"})

    def keys_in(example: dict[str, Any], schema: dict[str, Any], where: str) -> None:
        for key, value in example.items():
            assert key in schema["properties"], f"{where}{key} is not in the Refund schema"
            if isinstance(value, dict):
                keys_in(value, schema["properties"][key], f"{where}{key}.")

    keys_in(zoho["attribute_example"], refund, "")


@pytest.mark.shared
@needs_vendor
def test_vendor_enums_match_vendor_documents() -> None:
    v1 = json.loads((VENDOR_DIR / "chargebee_api_v1_spec.json").read_text(encoding="utf-8"))
    v1_op = v1["paths"]["/invoices/{invoice-id}/record_refund"]["post"]
    v1_body = v1_op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    stripe = json.loads((VENDOR_DIR / "stripe-report_refund.json").read_text(encoding="utf-8"))
    stripe_body = stripe["paths"]["/v1/payment_records/{id}/report_refund"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    v2 = json.loads((VENDOR_DIR / "chargebee-v2-refund_and_record_refund.json").read_text(encoding="utf-8"))
    vendor = {
        "transaction.payment_method": v1_body["properties"]["transaction"]["properties"]["payment_method"][
            "enum"
        ],
        "processor_details.type": stripe_body["properties"]["processor_details"]["properties"]["type"][
            "enum"
        ],
        "outcome": stripe_body["properties"]["outcome"]["enum"],
    }
    for param in v1_op["parameters"]:
        if param["name"].startswith("chargebee-event-"):
            vendor[param["name"]] = param["schema"]["enum"]
    for (_catalog_id, _location, name), values in VENDOR_ENUMS.items():
        assert list(values) == vendor[name], name
    v2_props = v2["paths"]["/invoices/{invoice-id}/refund"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]["properties"]
    assert set(SEED_001_NAMES) <= set(v2_props)
