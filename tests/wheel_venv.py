"""The wheel built from this checkout and a fresh venv with it installed, for the tests that use the package
as a user installs it. Nothing is fetched: the wheel is built without isolation (hatchling must be installed)
and installed with --no-deps --no-index; the fresh venv borrows the test venv's third-party packages through
a .pth file, and the test venv's editable httptask stays invisible to it (nested .pth files are ignored)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

__all__ = ["build_wheel", "install_wheel", "run"]

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to its end; its stdout, or a failed assertion with both outputs."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env or os.environ.copy(),
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def build_wheel(out: Path) -> Path:
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    (built,) = out.glob("httptask-*.whl")
    return built


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A new venv at `venv` with `wheel` installed; its python."""
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=venv.parent)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv.parent)
    (Path(purelib.strip()) / "zz-test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    return python
