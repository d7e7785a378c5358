"""Cold-start and search latency of the catalog, next to the cost of importing httpx alone.

Runs on its own: `.venv/bin/python bench/cold_start.py [--runs N] [--json]`. Every subprocess run is a fresh
interpreter; the catalog directory and index cache are temporary, so the user's own catalog is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_VENDOR = ROOT.parent / "shared" / "vendor-specs"
HTTPTASK = Path(sys.executable).with_name("httptask")


def wall(
    command: list[str], env: dict[str, str], before: Callable[[], None] | None = None, runs: int = 15
) -> float:
    """Median wall time of `command` in milliseconds, one fresh process per run."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def in_process_search(env: dict[str, str], runs: int) -> dict[str, float]:
    """Median search latency in this process: catalog loaded once from a warm index, as the editor sees it."""
    os.environ.update(env)
    from httptask.catalog import Catalog

    start = time.perf_counter()
    catalog = Catalog.default()
    operations = len(catalog.entries)
    load_ms = (time.perf_counter() - start) * 1000
    result = {"operations": operations, "load_ms": load_ms}
    for query in ("refund", "refnd", "credit note refund"):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            catalog.search(query)
            times.append((time.perf_counter() - start) * 1000)
        result[f"search {query!r} ms"] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per measurement (median is reported)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="httptask-bench-"))
    try:
        cache, specs = work / "cache", work / "specs"
        specs.mkdir()
        env = {**os.environ, "HTTPTASK_CACHE_DIR": str(cache), "HTTPTASK_SPECS_PATH": str(specs)}
        search = [str(HTTPTASK), "catalog", "search", "refund"]
        figures: dict[str, float] = {}
        figures["python -c pass"] = wall([sys.executable, "-c", "pass"], env, runs=args.runs)
        figures["python -c 'import httpx'"] = wall(
            [sys.executable, "-c", "import httpx"], env, runs=args.runs
        )
        figures["search refund, cold cache"] = wall(
            search, env, before=lambda: shutil.rmtree(cache, ignore_errors=True), runs=args.runs
        )
        figures["search refund, warm cache"] = wall(search, env, runs=args.runs)
        vendor = None
        if SHARED_VENDOR.is_dir():
            from httptask.importer import import_specs

            import_specs(
                [SHARED_VENDOR / "chargebee_api_v1_spec.json"], target=specs, name="chargebee-vendor"
            )
            import_specs(
                sorted((SHARED_VENDOR / "zoho-billing").glob("*.yml")), target=specs, name="zoho-vendor"
            )
            figures["search refund + vendors, cold cache"] = wall(
                search,
                env,
                before=lambda: shutil.rmtree(cache, ignore_errors=True),
                runs=max(3, args.runs // 3),
            )
            figures["search refund + vendors, warm cache"] = wall(search, env, runs=args.runs)
            vendor = in_process_search(env, runs=max(20, args.runs * 4))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = figures["search refund, warm cache"] / figures["python -c 'import httpx'"]
    if args.json:
        print(json.dumps({"wall_ms": figures, "warm_over_httpx": ratio, "in_process": vendor}, indent=2))
        return
    print(f"{'measurement (median of fresh processes)':<44}{'ms':>9}")
    for name, ms in figures.items():
        print(f"{name:<44}{ms:>9.1f}")
    print(f"\nwarm `catalog search refund` / `import httpx`: {ratio:.2f}x")
    if vendor is None:
        print("\n../shared/vendor-specs is absent: the in-process search with vendor documents was skipped.")
        return
    print(
        f"\nin process, {vendor.pop('operations'):.0f} operations (bundled + both vendor documents imported):"
    )
    for name, ms in vendor.items():
        print(f"  {name:<42}{ms:>9.2f}")


if __name__ == "__main__":
    main()
