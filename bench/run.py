"""`make bench`: run every benchmark script in bench/ in turn, each in its own interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Modules that other scripts import rather than benchmarks of their own.
LIBRARIES = {"synthetic_openapi.py", "_naive_temporal.py"}


def main() -> None:
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or script.name in LIBRARIES:
            continue
        print(f"== {script.name}", flush=True)
        subprocess.run([sys.executable, str(script)], check=True)


if __name__ == "__main__":
    main()
