"""schemas.py: references stay references for validation (recursive schemas checked all the way down), data
is never followed, and pages and forms get bounded views with a `(recursive: Name)` marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from httptask.errors import SpecError
from httptask.importer import import_specs
from httptask.messages import RequestValues
from httptask.reference import reference
from httptask.schemas import normalise_schema
from httptask.spec import Operation, Spec, load_spec
from httptask.validation import operation_schema, validate_values


def write_spec(tmp_path: Path, schemas: dict[str, Any], body: str, name: str = "shop.yaml") -> Path:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "Shop", "version": "1"},
        "servers": [{"url": "https://shop.test"}],
        "paths": {
            "/things": {
                "post": {
                    "operationId": "create",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
                    },
                    "responses": {"201": {"description": "Created"}},
                }
            }
        },
        "components": {"schemas": schemas},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def create(path: Path) -> Operation:
    op = load_spec(path).operation("create")
    assert op is not None
    return op


def body_issues(op: Operation, body: Any) -> list[tuple[str, str]]:
    issues = validate_values(op, RequestValues(body=body, has_body=True))
    return [(issue.path, issue.message) for issue in issues]


CATEGORY = {
    "Category": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}},
        },
    }
}


def tree(depth: int, leaf_name: Any = "leaf") -> dict[str, Any]:
    """A category tree `depth` levels deep, one child per level; the deepest category is named `leaf_name`."""
    node: dict[str, Any] = {"name": leaf_name}
    for level in range(depth - 1, 0, -1):
        node = {"name": f"level {level}", "children": [node]}
    return node


def test_a_category_tree_is_validated_at_depth_five_with_the_full_path(tmp_path: Path) -> None:
    op = create(write_spec(tmp_path, CATEGORY, "Category"))
    fifth = "$.body.children[0].children[0].children[0].children[0].name"
    assert body_issues(op, tree(5)) == []
    assert body_issues(op, tree(5, leaf_name=7)) == [(fifth, "must be of type string, not integer 7")]
    deep = tree(5)
    del deep["children"][0]["children"][0]["children"][0]["children"][0]["name"]
    assert body_issues(op, deep) == [(fifth, "is required but missing")]


def test_a_cycle_a_b_a_imports_and_its_forms_show_the_marker(tmp_path: Path) -> None:
    schemas = {
        "A": {"type": "object", "properties": {"title": {"type": "string"}, "b": ref("B")}},
        "B": {"type": "object", "properties": {"count": {"type": "integer"}, "a": ref("A")}},
    }
    target = tmp_path / "catalog"
    result = import_specs([write_spec(tmp_path, schemas, "A")], target=target, name="cycle")
    assert result.operations == 1
    op = create(target / "cycle.json")
    fields = {f["name"]: f for f in reference(op)["body"]["fields"]}
    assert list(fields) == ["title", "b", "b.count", "b.a"]
    assert fields["b.a"]["description"] == "(recursive: A)"
    form = operation_schema(op)["properties"]["body"]
    assert form["properties"]["b"]["properties"]["a"] == {
        "type": "object",
        "description": "(recursive: A)",
        "x-unexpanded": "A",
    }
    # Validation is not cut where the form is: the cycle is followed as deep as the value goes.
    assert body_issues(op, {"b": {"a": {"b": {"a": {"b": {"count": "x"}}}}}}) == [
        ("$.body.b.a.b.a.b.count", "must be of type integer, not string 'x'")
    ]


def test_a_cycle_through_all_of_and_one_of_loads_and_validates_without_end(tmp_path: Path) -> None:
    schemas = {
        "Pet": {"oneOf": [{"$ref": "#/components/schemas/Cat"}], "required": ["kind"]},
        "Cat": {"allOf": [{"$ref": "#/components/schemas/Pet"}, {"properties": {"kind": {"enum": ["cat"]}}}]},
        "Loop": {"$ref": "#/components/schemas/Loop"},
    }
    op = create(write_spec(tmp_path, schemas, "Pet"))
    assert body_issues(op, {"kind": "cat"}) == []
    assert body_issues(op, {"kind": "dog"})[0][0] == "$.body"
    loop = create(write_spec(tmp_path, schemas, "Loop", name="loop.yaml"))
    assert body_issues(loop, {"anything": 1}) == []


EXAMPLE = {"$ref": "https://schemas.example.com/order.json", "nested": {"$ref": "#/nowhere"}}


def test_ref_shaped_values_in_examples_defaults_enums_and_extensions_are_data(tmp_path: Path) -> None:
    schemas = {
        "Order": {
            "type": "object",
            "example": EXAMPLE,
            "x-schema-sample": EXAMPLE,
            "properties": {
                "spec": {"type": "object", "default": EXAMPLE, "enum": [EXAMPLE], "const": EXAMPLE},
            },
        }
    }
    path = write_spec(tmp_path, schemas, "Order")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    media = document["paths"]["/things"]["post"]["requestBody"]["content"]["application/json"]
    media["example"] = EXAMPLE
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    target = tmp_path / "catalog"
    assert import_specs([path], target=target, name="orders").operations == 1
    op = create(target / "orders.json")
    assert op.request_body is not None
    body = op.request_body.default
    assert body.example == EXAMPLE
    assert body.schema["examples"] == [EXAMPLE]
    assert body.schema["x-schema-sample"] == EXAMPLE
    assert body.schema["properties"]["spec"]["default"] == EXAMPLE
    assert body_issues(op, {"spec": EXAMPLE}) == []


def test_normalise_schema_rewrites_schema_keywords_only() -> None:
    data = {"nullable": True, "example": 1, "$ref": "#/x"}
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "nullable": True}},
        "default": data,
        "enum": [data],
        "x-extra": data,
        "examples": [data],
    }
    assert normalise_schema(schema) == {
        "type": "object",
        "properties": {"a": {"type": ["string", "null"]}},
        "default": data,
        "enum": [data],
        "x-extra": data,
        "examples": [data],
    }


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "object", "properties": {"a": {"items": {"$ref": "#/components/schemas/Nope"}}}},
            "{f}#/components/schemas/Thing/properties/a/items: the reference '#/components/schemas/Nope' "
            "points to nothing.",
        ),
        (
            {"allOf": [{"$ref": "common.yaml#/Money"}]},
            "{f}#/components/schemas/Thing/allOf/0: the reference 'common.yaml#/Money' points outside this "
            "document; bundle it into one file first.",
        ),
        (
            {"properties": {"a": {"$ref": "#/info/title"}}},
            "{f}#/components/schemas/Thing/properties/a: the reference '#/info/title' points to str data, "
            "not a schema.",
        ),
    ],
)
def test_a_broken_reference_deep_in_a_schema_names_its_pointer(
    tmp_path: Path, schema: dict[str, Any], message: str
) -> None:
    path = write_spec(tmp_path, {"Thing": schema}, "Thing")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == message.format(f=path)


def test_a_swagger_2_document_gets_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "petstore.json"
    path.write_text('{"swagger": "2.0", "info": {"title": "Pets"}, "paths": {}}', encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (
        f"{path}#/swagger: this is a Swagger '2.0' document; httptask reads OpenAPI 3.0 and 3.1: convert it "
        "to OpenAPI 3 first (e.g. with swagger2openapi), then import the result."
    )


def dense(count: int) -> dict[str, Any]:
    """`count` schemas that each refer to the next three (wrapping round): every view is cut by its budget."""
    return {
        f"S{i}": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                **{f"next{k}": {"$ref": f"#/components/schemas/S{(i + k) % count}"} for k in (1, 2, 3)},
            },
        }
        for i in range(count)
    }


def test_views_of_a_dense_graph_are_bounded_and_say_what_they_leave_out(tmp_path: Path) -> None:
    op = create(write_spec(tmp_path, dense(10), "S0"))
    assert op.request_body is not None
    fields = reference(op)["body"]["fields"]
    assert 100 < len(fields) < 2000
    cut = [f for f in fields if f["description"].startswith("(not expanded: S")]
    recursive = [f for f in fields if f["description"].startswith("(recursive: S")]
    assert cut and recursive
    # Breadth first: every field two levels down is there before anything deeper is.
    assert {"next1.next1.id", "next3.next3.next3"} <= {f["name"] for f in fields}


def test_a_list_of_a_recursive_schema_shows_the_marker_on_the_list(tmp_path: Path) -> None:
    fields = reference(create(write_spec(tmp_path, CATEGORY, "Category")))["body"]["fields"]
    assert [(f["name"], f["type"], f["required"], f["description"]) for f in fields] == [
        ("name", "string", True, ""),
        ("children", "array", False, "(recursive: Category)"),
    ]


def test_a_view_is_made_once_per_component(tmp_path: Path) -> None:
    path = write_spec(tmp_path, CATEGORY, "Category")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["paths"]["/other"] = {"post": {**document["paths"]["/things"]["post"], "operationId": "other"}}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    spec: Spec = load_spec(path)
    first, second = (op.request_body.default.schema for op in spec.operations)  # type: ignore[union-attr]
    assert first is second


def test_malformed_keywords_are_left_out_rather_than_stopping_validation(tmp_path: Path) -> None:
    schemas = {
        "Thing": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "(", "required": True, "minLength": "1"},
                "upload": {"type": "file"},
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                "odd": {"properties": ["a"], "allOf": "nope", "not": 3, "$ref": 5},
            },
        }
    }
    op = create(write_spec(tmp_path, schemas, "Thing"))
    assert op.request_body is not None
    assert op.request_body.default.schema["properties"]["name"] == {"type": "string"}
    assert op.request_body.default.schema["properties"]["pair"]["prefixItems"] == [
        {"type": "string"},
        {"type": "integer"},
    ]
    assert body_issues(op, {"name": "", "upload": b"x".hex(), "pair": ["a", "b"], "odd": 1}) == [
        ("$.body.pair[1]", "must be of type integer, not string 'b'")
    ]
    assert body_issues(op, {}) == [("$.body.name", "is required but missing")]


def test_an_operation_pickles_for_the_editors_workers(tmp_path: Path) -> None:
    import pickle

    op = create(write_spec(tmp_path, CATEGORY, "Category"))
    copy = pickle.loads(pickle.dumps(op))
    assert body_issues(copy, tree(5, leaf_name=7)) == body_issues(op, tree(5, leaf_name=7)) != []


def _nodes(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_nodes(item) for item in value.values())
    if isinstance(value, list):
        return sum(_nodes(item) for item in value)
    return 0


def test_required_all_of_parts_that_double_at_each_level_give_a_bounded_view(tmp_path: Path) -> None:
    """Each schema all of the next one twice: 4 kB of YAML at 40 levels was 2^32 expansions, and `catalog
    show`, `task new` and the editor's operation page ran until memory ran out. Here 18 levels, 262,144."""
    levels = 18
    schemas: dict[str, Any] = {f"S{i}": {"allOf": [ref(f"S{i + 1}") for _ in "ab"]} for i in range(levels)}
    schemas[f"S{levels}"] = {"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}}
    op = create(write_spec(tmp_path, schemas, "S0"))
    assert op.request_body is not None
    view = op.request_body.default.schema
    assert 1000 < _nodes(view) < 40_000
    assert "(not expanded: S" in str(view)


def test_validating_against_all_of_parts_that_double_at_each_level_ends(tmp_path: Path) -> None:
    """The same at 40 levels: validation checked one body 2^40 times, and test-request, run and plan never
    ended. The references past a thousand checks of one value are cut; the deepest schema is still checked."""
    levels = 40
    schemas: dict[str, Any] = {f"S{i}": {"allOf": [ref(f"S{i + 1}") for _ in "ab"]} for i in range(levels)}
    schemas[f"S{levels}"] = {"type": "object", "properties": {"x": {"type": "string"}}}
    path = write_spec(tmp_path, schemas, "S0")
    script = (
        "import sys; from httptask.spec import load_spec; from httptask.messages import RequestValues; "
        "from httptask.validation import validate_values; "
        "from pathlib import Path; op = load_spec(Path(sys.argv[1])).operation('create'); "
        "print(validate_values(op, RequestValues(body={'x': 5}, has_body=True)))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating a body of one field ran for more than 20 s")
    assert done.returncode == 0 and "$.body.x" in done.stdout, done.stderr
