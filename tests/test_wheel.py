"""The wheel: built from this checkout, installed in a fresh venv, it serves the catalog from its own data.

Nothing is fetched: the wheel is built without isolation (hatchling must be installed) and installed with
--no-deps --no-index; the fresh venv borrows the test venv's third-party packages through a .pth file.
"""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from seed_fields import SEED_IDS

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip(
            "hatchling is not installed: the wheel cannot be built without reaching the package index"
        )
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    (built,) = out.glob("httptask-*.whl")
    return built


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


def test_the_installed_wheel_lists_the_catalog_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )
    # Dependencies come from the test venv; its editable httptask stays invisible (nested .pth are ignored).
    target_site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    )
    (target_site / "zz-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")

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
