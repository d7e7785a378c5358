"""The wheel: built from this checkout, installed in a fresh venv (see wheel_venv.py), it serves the catalog
from its own data."""

from __future__ import annotations

import zipfile
from pathlib import Path

from seed_fields import SEED_IDS
from wheel_venv import run as _run

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_specs_templates_and_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = {Path(n).name for n in names if n.startswith("httptask/_data/specs/")}
    assert specs == {p.name for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json")}
    assert {"chargebee.yaml", "stripe.yaml", "zoho-billing.yaml", "geins.yaml"} <= specs
    prefix = "httptask/_data/templates/"
    templates = {n.removeprefix(prefix) for n in names if n.startswith(prefix) and n.endswith(".j2")}
    assert templates == {str(p.relative_to(ROOT / "templates")) for p in (ROOT / "templates").rglob("*.j2")}
    assert {"reference.md.j2", "reference.html.j2", "reference-page.html.j2"} <= templates
    shipped = {"httptask/__init__.py", "httptask/cli/__init__.py", "httptask/catalog.py", "httptask/py.typed"}
    assert shipped <= names
    assert not any(n.startswith(("tests/", "bench/", "plugin/")) for n in names)


def test_the_installed_wheel_lists_the_catalog_from_anywhere(wheel_venv: Path, tmp_path: Path) -> None:
    venv = wheel_venv
    python = venv / "bin" / "python"
    where = _run(
        python,
        "-c",
        "import httptask.resources as r; print(r.__file__); print(r.bundled_dir('specs'))",
        cwd=tmp_path,
    ).splitlines()
    assert Path(where[0]).is_relative_to(venv), where
    assert Path(where[1]) == Path(where[0]).parent / "_data" / "specs"

    listing = _run(venv / "bin" / "httptask", "catalog", "list", cwd=tmp_path)
    assert {line.split()[0] for line in listing.splitlines()[1:]} >= SEED_IDS
    page = _run(venv / "bin" / "httptask", "catalog", "show", "geins.create_order_refund", cwd=tmp_path)
    assert page.startswith("# Creates refund\n")
