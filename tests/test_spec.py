"""spec.py: OpenAPI documents into frozen models, `$ref`s, 3.0 quirks, and one clear error per broken file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from httptask.errors import SpecError
from httptask.requests import is_idempotent
from httptask.spec import Operation, Spec, load_spec, normalise_schema

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(FIXTURES / "features.yaml")


def op(spec: Spec, operation_id: str) -> Operation:
    found = spec.operation(operation_id)
    assert found is not None, operation_id
    return found


def test_spec_metadata_and_ids(spec: Spec) -> None:
    assert (spec.api, spec.title, spec.version) == ("features", "Feature Shop", "1.2")
    assert spec.api_name == "Feature Shop"
    assert [o.id for o in spec.operations] == [
        "features.get_order",
        "features.refund_order",
        "features.create_a_node_tree",  # no operationId: derived from the summary
    ]
    assert [(o.method, o.path) for o in spec.operations] == [
        ("GET", "/orders/{order_id}"),
        ("POST", "/orders/{order_id}/refunds"),
        ("POST", "/nodes"),
    ]


def test_models_are_frozen(spec: Spec) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.operations[0].path = "/elsewhere"  # type: ignore[misc]


def test_ref_chain_resolves_parameter_and_its_schema(spec: Spec) -> None:
    order_id = op(spec, "get_order").parameters_in("path")
    assert len(order_id) == 1
    assert order_id[0].name == "order_id"
    assert order_id[0].required is True
    assert order_id[0].description == "The order."
    # Id -> IdBase: a two-step chain inlined completely, no `$ref` left.
    assert order_id[0].schema == {"type": "string", "pattern": "^ord_"}


def test_ref_sibling_keys_override_the_target(spec: Spec) -> None:
    amount = op(spec, "refund_order").parameters_in("query")[0]
    assert amount.name == "amount"
    assert amount.description == "Overridden description of the amount."
    reason = op(spec, "refund_order").request_body.default.schema["properties"]["reason"]  # type: ignore[union-attr]
    assert reason["description"] == "Why the order is refunded."
    assert reason["enum"] == ["duplicate", "fraud"]


def test_path_level_parameters_are_merged_and_operation_level_wins(spec: Spec) -> None:
    params = op(spec, "get_order").parameters
    assert [(p.location, p.name) for p in params] == [
        ("path", "order_id"),
        ("header", "X-Trace"),
        ("query", "expand"),
    ]
    trace = params[1]
    assert trace.required is True
    assert trace.description == "Operation-level trace header."
    # The path-level parameter reaches the sibling path's operation too.
    assert [p.name for p in op(spec, "refund_order").parameters] == ["order_id", "amount"]


def test_operation_servers_replace_the_document_servers(spec: Spec) -> None:
    assert [s.url for s in op(spec, "refund_order").servers] == ["https://payments.shop.test"]
    (server,) = op(spec, "get_order").servers
    assert server.url == "{scheme}://{region}.shop.test/v1"
    assert server.description == "Regional"
    region = server.variable("region")
    assert region is not None
    assert (region.default, region.enum, region.description) == ("eu", ("eu", "us"), "Where the data lives")
    assert server.variable("nope") is None


def test_security_options_schemes_and_auth_prefix(spec: Spec) -> None:
    get_order = op(spec, "get_order")
    assert [[s.name for s in option] for option in get_order.security] == [["basic"]]
    assert get_order.security[0][0].scheme == "basic"  # lower-cased from "Basic"
    refund = op(spec, "refund_order")
    assert [[s.name for s in option] for option in refund.security] == [["oauth"], ["apiKey", "basic"]]
    oauth = refund.security[0][0]
    assert (oauth.type, oauth.prefix) == ("oauth2", "Zoho-oauthtoken ")
    api_key = refund.security[1][0]
    assert (api_key.type, api_key.location, api_key.parameter_name) == ("apiKey", "header", "X-Api-Key")


def test_idempotency_key_seed_notes_and_form_style(spec: Spec) -> None:
    refund = op(spec, "refund_order")
    assert refund.idempotency_header == "Idempotency-Key"
    assert is_idempotent(refund.method, refund.idempotency_header) is True
    assert refund.seed_notes == ("The seed leaves the reasons blank.",)
    assert refund.request_body is not None
    assert refund.request_body.required is True
    media = refund.request_body.default
    assert (media.content_type, media.form_style) == ("application/x-www-form-urlencoded", "indexed")
    assert refund.request_body.media_type("application/x-www-form-urlencoded; charset=utf-8") is media
    assert refund.request_body.media_type("application/json") is None
    nodes = op(spec, "create_a_node_tree")
    assert nodes.idempotency_header is None
    assert is_idempotent(nodes.method, nodes.idempotency_header) is False
    assert nodes.request_body is not None
    assert nodes.request_body.default.form_style == "brackets"


def test_a_recursive_schema_is_shown_once_with_a_marker_and_linked_for_validation(spec: Spec) -> None:
    media = op(spec, "create_a_node_tree").request_body.default  # type: ignore[union-attr]
    assert media.schema["properties"]["name"] == {"type": "string"}
    assert media.schema["properties"]["children"] == {
        "type": "array",
        "items": {"type": "object", "description": "(recursive: Node)", "x-unexpanded": "Node"},
    }
    # What validation compiles keeps the reference, so the tree is checked all the way down.
    assert set(media.linked_schema) == {"$ref"}


def test_openapi_30_quirks_are_normalised_in_parameters(spec: Spec) -> None:
    amount = op(spec, "refund_order").parameters_in("query")[0]
    assert amount.schema == {
        "type": ["integer", "null"],
        "exclusiveMinimum": 0,
        "maximum": 100,
        "examples": [5],
    }


def test_responses_with_refs_and_examples(spec: Spec) -> None:
    (ok,) = op(spec, "get_order").responses
    assert (ok.status, ok.description) == ("200", "The order.")
    assert ok.media_types[0].example == {"id": "ord_1"}
    assert [r.status for r in op(spec, "create_a_node_tree").responses] == ["default"]


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "nullable": True}, {"type": ["string", "null"]}),
        ({"type": ["string", "integer"], "nullable": True}, {"type": ["string", "integer", "null"]}),
        ({"enum": ["a"], "nullable": True}, {"enum": ["a", None]}),
        ({"type": "string", "nullable": False}, {"type": "string"}),
        ({"minimum": 1, "exclusiveMinimum": True}, {"exclusiveMinimum": 1}),
        ({"minimum": 1, "exclusiveMinimum": False}, {"minimum": 1}),
        ({"maximum": 9, "exclusiveMaximum": True}, {"exclusiveMaximum": 9}),
        ({"exclusiveMaximum": 9}, {"exclusiveMaximum": 9}),  # already 3.1 style: untouched
        ({"example": 3}, {"examples": [3]}),
        ({"example": 3, "examples": [4]}, {"example": 3, "examples": [4]}),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "nullable": True, "example": 1}}},
            {"type": "object", "properties": {"a": {"type": ["integer", "null"], "examples": [1]}}},
        ),
        ({"allOf": [{"type": "string", "nullable": True}]}, {"allOf": [{"type": ["string", "null"]}]}),
    ],
)
def test_normalise_schema(schema: dict[str, object], expected: dict[str, object]) -> None:
    assert normalise_schema(schema) == expected


def test_normalise_schema_returns_a_new_object() -> None:
    schema = {"type": "string", "nullable": True}
    normalise_schema(schema)
    assert schema == {"type": "string", "nullable": True}


def test_json_document_and_api_name_override(tmp_path: Path) -> None:
    path = tmp_path / "Mini.json"
    path.write_text(
        '{"openapi": "3.1.0", "x-api-name": "Mini API", "info": {"title": "t", "version": "1"},'
        ' "paths": {"/a": {"delete": {"operationId": "remove", "responses": {}}}}}',
        encoding="utf-8",
    )
    spec = load_spec(path, api="mini")
    assert spec.api_name == "Mini API"
    assert [(o.id, o.method, o.api_name) for o in spec.operations] == [("mini.remove", "DELETE", "Mini API")]
    assert load_spec(path).api == "Mini"


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      operationId: a\n      parameters:\n"
        "        - {name: since, in: query, schema: {type: string, format: date, default: 2024-01-31}}\n",
        encoding="utf-8",
    )
    (param,) = load_spec(path).operations[0].parameters
    assert param.schema["default"] == "2024-01-31"


# -- broken documents: one SpecError naming the file and the JSON pointer, word for word --------------------

BROKEN = {
    "bad-yaml.yaml": (
        "openapi: 3.0.0\ninfo:\n  title: x\n  bad: : :\n",
        "{f}: line 4: invalid YAML: mapping values are not allowed in this context.",
    ),
    "bad-json.json": (
        '{\n  "openapi": "3.0.0",\n  "paths": {\n}\n',
        "{f}: line 5: invalid JSON: Expecting ',' delimiter.",
    ),
    "no-openapi.yaml": (
        "info: {title: x}\npaths: {}\n",
        "{f}#/openapi: expected an OpenAPI 3.0 or 3.1 document, found no 'openapi' field.",
    ),
    "openapi-2.yaml": (
        "openapi: 2.0.0\npaths: {}\n",
        "{f}#/openapi: expected an OpenAPI 3.0 or 3.1 document, found '2.0.0'.",
    ),
    "dangling-schema.yaml": (
        "openapi: 3.0.0\npaths:\n  /a/{id}:\n    post:\n      requestBody:\n        content:\n"
        "          application/json:\n            schema: {$ref: '#/components/schemas/Nope'}\n",
        "{f}#/paths/~1a~1{{id}}/post/requestBody/content/application~1json/schema: "
        "the reference '#/components/schemas/Nope' points to nothing.",
    ),
    "dangling-parameter.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
        "        - $ref: '#/components/parameters/Nope'\n",
        "{f}#/paths/~1a/get/parameters/0: the reference '#/components/parameters/Nope' points to nothing.",
    ),
    "external-ref.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n"
        "        '200': {$ref: 'common.yaml#/Ok'}\n",
        "{f}#/paths/~1a/get/responses/200: the reference 'common.yaml#/Ok' points outside this document; "
        "bundle it into one file first.",
    ),
    "ref-loop.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n"
        "        - $ref: '#/components/parameters/A'\n"
        "components:\n  parameters:\n    A: {$ref: '#/components/parameters/B'}\n"
        "    B: {$ref: '#/components/parameters/A'}\n",
        "{f}#/paths/~1a/get/parameters/0: the reference '#/components/parameters/A' refers to itself.",
    ),
    "duplicate-id.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get: {operationId: x}\n  /b:\n    post: {operationId: x}\n",
        "{f}#/paths/~1b/post/operationId: the operationId 'x' is used by both GET /a and POST /b; "
        "operationIds must be unique.",
    ),
    "list.yaml": ("- openapi\n", "{f}: is not an OpenAPI document: the top level must be a mapping."),
    "scalar.json": ('"openapi"', "{f}: is not an OpenAPI document: the top level must be a mapping."),
    "operation-not-mapping.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get: oops\n",
        '{f}#/paths/~1a/get: an operation must be a mapping, found "oops".',
    ),
    "body-not-mapping.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody: oops\n",
        '{f}#/paths/~1a/post/requestBody: a request body must be a mapping, found "oops".',
    ),
    "responses-not-mapping.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses: [1]\n",
        "{f}#/paths/~1a/get/responses: 'responses' must be a mapping, found [1].",
    ),
    "info-not-mapping.yaml": (
        "openapi: 3.1.0\ninfo: hello\npaths: {}\n",
        "{f}#/info: 'info' must be a mapping, found \"hello\".",
    ),
    "paths-not-mapping.yaml": (
        "openapi: 3.0.0\npaths: [1]\n",
        "{f}#/paths: 'paths' must be a mapping of paths to path items.",
    ),
    "parameter-without-in.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: q}\n",
        "{f}#/paths/~1a/get/parameters/0: a parameter needs 'name' and 'in'.",
    ),
    "unknown-security.yaml": (
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      security: [{nope: []}]\n",
        "{f}#/paths/~1a/get/security: the security requirement names 'nope', "
        "which is not in components.securitySchemes.",
    ),
    "server-without-url.yaml": (
        "openapi: 3.0.0\nservers: [{description: x}]\npaths: {}\n",
        "{f}#/servers/0: a server needs a 'url'.",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_document_gives_one_clear_error(tmp_path: Path, name: str) -> None:
    text, expected = BROKEN[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == expected.format(f=path)
    assert caught.value.file == str(path)


def test_dangling_ref_error_carries_the_pointer(tmp_path: Path) -> None:
    path = tmp_path / "dangling.yaml"
    path.write_text(BROKEN["dangling-parameter.yaml"][0], encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.pointer == "/paths/~1a/get/parameters/0"


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "absent.yaml")
    absent = tmp_path / "absent.yaml"
    assert str(caught.value) == f"{absent}: cannot read the file (No such file or directory)."
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"openapi: 3.0.0\ninfo: {title: caf\xe9}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(latin)
    assert str(caught.value) == f"{latin}: is not UTF-8 text; save it as UTF-8 and try again."


def test_a_path_variable_is_a_required_parameter_even_undeclared_or_declared_optional(tmp_path: Path) -> None:
    """Zoho's vendor document leaves {plan_or_addon_code} undeclared; others say 'required: false' on a path
    parameter. Either way a request without it went out with a literal '{name}' in its URL."""
    path = tmp_path / "lines.yaml"
    path.write_text(
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n"
        "  /subscriptions/{subscription_id}/lineitems/{code}:\n    delete:\n      operationId: remove\n"
        "      parameters: [{name: subscription_id, in: path, required: false, schema: {type: string}}]\n"
        "      responses: {'204': {description: removed}}\n",
        encoding="utf-8",
    )
    remove = load_spec(path).operations[0]
    assert [(p.name, p.location, p.required) for p in remove.parameters] == [
        ("subscription_id", "path", True),
        ("code", "path", True),
    ]
    assert remove.parameters[1].description == "(not declared in the document: the path needs it)"
