"""Large documents from bench/synthetic_openapi.py (dense cross references, cycles, allOf/oneOf, `$ref`-shaped
examples): they import whole, and every operation's skeleton, filled with sample inputs, passes its own
validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from httptask.catalog import Catalog
from httptask.errors import RequestInvalid
from httptask.execute import prepare
from httptask.importer import import_specs
from httptask.reference import reference
from httptask.samples import sample_value
from httptask.secrets import SecretStore
from httptask.skeleton import placeholders, skeleton
from httptask.tasks import parse_task

GENERATOR = Path(__file__).resolve().parents[1] / "bench" / "synthetic_openapi.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_openapi", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "operations", "schemas"),
    [("synthetic.yaml", 40, 120), ("synthetic.json", 500, 1500)],
)
def test_a_synthetic_document_imports_whole_and_every_skeleton_validates(
    tmp_path: Path, name: str, operations: int, schemas: int
) -> None:
    synthetic = generator()
    document = synthetic.build_document(operations, schemas)
    written = synthetic.write_document(tmp_path / name, operations, schemas)
    expected = {
        f"synthetic.{op['operationId']}"
        for item in document["paths"].values()
        for key, op in item.items()
        if key != "parameters"
    }
    target = tmp_path / "catalog"
    result = import_specs([written], target=target, name="synthetic")
    assert result.operations == len(expected) == operations + 1  # and the category tree's operation
    catalog = Catalog([("synthetic", target / "synthetic.json", False)])
    assert set(catalog.ids()) == expected
    invalid = []
    for operation_id in sorted(expected):
        op = catalog.operation(operation_id)
        assert reference(op)["id"] == operation_id
        task = parse_task(skeleton(op))
        inputs = {p.input: sample_value(p.schema) for p in placeholders(op)}
        try:
            prepare(task, inputs=inputs, catalog=catalog, secrets=SecretStore(environ={}))
        except RequestInvalid as exc:
            invalid.append(str(exc))
    assert "\n".join(invalid) == ""
