"""Synthetic OpenAPI 3.0 documents shaped like large vendor documents, for the import benchmark and tests.

`write_document(path, operations=500, schemas=1500)` writes about 6 MB of YAML (JSON for a `.json` path):
component schemas that refer to each other densely and at random, forwards and backwards (so there are
cycles), `allOf`/`oneOf`, a self-recursive category tree, 3.0 quirks (`nullable`, boolean
`exclusiveMinimum`, `example`), and `$ref`-shaped objects inside `example` and `x-*` values, which are
data. Like a vendor's API, the schemas come in modules of related objects that refer to each other densely
(cycles of every length inside a module) and to a few core modules of shared types. Required references
only point into the first core module, whose schemas require no references, so every request body has a
finite valid instance. The same seed writes the same document.

    .venv/bin/python bench/synthetic_openapi.py out.yaml --operations 500 --schemas 1500
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build_document", "write_document"]

_MODULE = 25  # schemas per module
_CORE = 3  # the first modules hold the shared types every other module refers to
# Schemas of the first core module have no required references: they end every chain of required objects.
_LEAVES = _MODULE
_VOCABULARY = (
    "account amount balance billing card charge coupon credit currency customer discount dispute entry fee "
    "invoice item line ledger memo note order payment period plan price quantity reason refund settlement "
    "source status subscription tax total transaction transfer usage vendor"
)
_WORDS = tuple(_VOCABULARY.split())
_FORMATS = ("date", "date-time", "email", "uuid", "uri", None, None, None)


def _name(index: int) -> str:
    return f"Model{index:05d}"


def _ref(index: int) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_name(index)}"}


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _scalar(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("string", "string", "integer", "number", "boolean", "enum"))
    schema: dict[str, Any] = {"description": _text(rng, rng.randint(10, 34))}
    if kind == "string":
        schema["type"] = "string"
        fmt = rng.choice(_FORMATS)
        if fmt:
            schema["format"] = fmt
        else:
            schema["maxLength"] = rng.choice((50, 100, 250))
        schema["nullable"] = rng.random() < 0.3
    elif kind == "integer":
        schema.update(type="integer", minimum=0, example=rng.randint(1, 10_000))
    elif kind == "number":
        schema.update(type="number", minimum=0, exclusiveMinimum=True)
    elif kind == "boolean":
        schema.update(type="boolean", default=False)
    else:
        schema.update(type="string", enum=sorted({rng.choice(_WORDS) for _ in range(4)}))
    return schema


def _ref_shaped_data(rng: random.Random, count: int) -> dict[str, Any]:
    """An example that looks like a JSON Schema with references: data, which a loader must not follow."""
    return {
        "kind": "schema-sample",
        "schema": {"$ref": f"https://schemas.example.com/{rng.choice(_WORDS)}.json"},
        "local": _ref(rng.randrange(count)),
    }


def _related(rng: random.Random, index: int, count: int) -> int:
    """A schema that `index` refers to: mostly one of its own module, else one of a core module below it."""
    module = index // _MODULE
    start = module * _MODULE
    if rng.random() < 0.7 or module == 0:
        return rng.randrange(start, min(start + _MODULE, count))
    return rng.randrange(min(module, _CORE) * _MODULE)


def _schema(rng: random.Random, index: int, count: int, ref_examples: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for _ in range(rng.randint(7, 11)):
        properties[f"{rng.choice(_WORDS)}_{index}_{len(properties)}"] = _scalar(rng)
    required = rng.sample(sorted(properties), 2)
    # Dense references both ways inside a module: cycles of every length.
    for _ in range(rng.randint(3, 5)):
        properties[f"{rng.choice(_WORDS)}_{index}_{len(properties)}"] = _ref(_related(rng, index, count))
    properties[f"{rng.choice(_WORDS)}s_{index}_{len(properties)}"] = {
        "type": "array",
        "description": _text(rng, 12),
        "items": _ref(_related(rng, index, count)),
    }
    if index >= _LEAVES:
        leaf = f"{rng.choice(_WORDS)}_{index}_{len(properties)}"
        properties[leaf] = _ref(rng.randrange(_LEAVES))
        required.append(leaf)
    schema: dict[str, Any] = {
        "type": "object",
        "description": _text(rng, rng.randint(20, 60)),
        "properties": properties,
        "required": required,
    }
    shape = rng.random()
    if shape < 0.15:
        schema = {"allOf": [_ref(_related(rng, index, count)), schema]}
    elif shape < 0.25:
        properties[f"variant_{index}"] = {
            "oneOf": [_ref(_related(rng, index, count)), _ref(_related(rng, index, count))]
        }
    if rng.random() < 0.1 and ref_examples:
        schema["example"] = _ref_shaped_data(rng, count)
    if rng.random() < 0.05 and ref_examples:
        schema["x-schema-sample"] = _ref_shaped_data(rng, count)
    return schema


def _category() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A category tree: every category may have child categories.",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}},
        },
        "required": ["name"],
    }


def _operation(rng: random.Random, index: int, count: int, method: str, ref_examples: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{method}_resource{index // 4:04d}_{index}",
        "summary": _text(rng, 5),
        "description": _text(rng, rng.randint(20, 80)),
        "tags": [rng.choice(_WORDS)],
        "parameters": [{"$ref": "#/components/parameters/Expand"}],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(rng.randrange(count))}},
            },
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    if method in ("post", "put", "patch"):
        media: dict[str, Any] = {"schema": _ref(rng.randrange(_LEAVES, count))}
        if rng.random() < 0.2 and ref_examples:
            media["example"] = _ref_shaped_data(rng, count)
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    return operation


def build_document(
    operations: int = 500, schemas: int = 1500, seed: int = 3, *, ref_examples: bool = True
) -> dict[str, Any]:
    """A whole OpenAPI 3.0.3 document as a dict; `operations` is rounded up to a multiple of four.

    `ref_examples=False` leaves out the `$ref`-shaped example values (for loaders that would follow them).
    """
    rng = random.Random(seed)
    components = {_name(i): _schema(rng, i, schemas, ref_examples) for i in range(schemas)}
    components["Category"] = _category()
    components["Error"] = {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    paths: dict[str, Any] = {}
    for group in range((operations + 3) // 4):
        collection, item = f"/resources{group:04d}", f"/resources{group:04d}/{{id}}"
        paths[collection] = {
            m: _operation(rng, group * 4 + i, schemas, m, ref_examples) for i, m in enumerate(("get", "post"))
        }
        paths[item] = {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            **{
                m: _operation(rng, group * 4 + 2 + i, schemas, m, ref_examples)
                for i, m in enumerate(("put", "delete"))
            },
        }
    paths["/categories"] = {
        "post": {
            "operationId": "create_category",
            "summary": "Create a category tree",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Category"}}},
            },
            "responses": {"201": {"description": "Created"}},
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Synthetic Commerce API", "version": "1.0.0"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "parameters": {
                "Expand": {
                    "name": "expand",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "example": ["customer"],
                }
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
        },
    }


def write_document(
    path: Path, operations: int = 500, schemas: int = 1500, seed: int = 3, *, ref_examples: bool = True
) -> Path:
    """Write the document as YAML, or as JSON when `path` ends in `.json`; returns `path`."""
    document = build_document(operations, schemas, seed, ref_examples=ref_examples)
    if path.suffix == ".json":
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    else:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        path.write_text(yaml.dump(document, Dumper=dumper, sort_keys=False, width=100), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the file to write (.yaml or .json)")
    parser.add_argument("--operations", type=int, default=500)
    parser.add_argument("--schemas", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--without-ref-examples", action="store_true", help="no $ref-shaped example values")
    args = parser.parse_args()
    write_document(
        args.output, args.operations, args.schemas, args.seed, ref_examples=not args.without_ref_examples
    )
    print(f"{args.output}: {args.output.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
