"""Import time and peak memory of large OpenAPI documents, search over the resulting catalog, and a cold
`catalog search` beside `python -c "import httpx"`.

Runs on its own: `.venv/bin/python bench/import_specs.py [--rounds R] [--timeout S] [--runs N] [--json]`;
`--keep-catalog DIR` keeps the catalog holding the 4x document, and `--search-catalog DIR` measures only the
searches over such a catalog (how code that cannot import the document is measured on the same index).
Every import is `httptask specs import` in a fresh process, its peak RSS read from that process's own rusage
(this script stays small, since a child's peak counts its parent's size at the fork: documents are written and
searched in child processes too);
the documents are imported in turn, round after round (interleaved), and each figure is the median of the
rounds with its range. An import still running after `--timeout` seconds is killed and reported as such.
Documents: synthetic ones from `synthetic_openapi.py` at 1x (500 operations, 1,500 schemas, about 6 MB of
YAML), 2x and 4x, and every document in ../shared/vendor-specs when that folder is present. The catalog
directory and cache are temporary; nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_VENDOR = ROOT.parent / "shared" / "vendor-specs"
HTTPTASK = Path(sys.executable).with_name("httptask")
GENERATOR = Path(__file__).with_name("synthetic_openapi.py")
SCALES = {"1x": (500, 1500), "2x": (1000, 3000), "4x": (2000, 6000)}
QUERIES = ("refund", "refnd", "credit note refund", "transfer ledger")


@dataclass
class Document:
    label: str
    paths: list[Path]
    size: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    operations: int | None = None
    failure: str | None = None


@dataclass
class Outcome:
    seconds: float
    cpu_seconds: float
    rss_mb: float
    output: str
    killed: bool
    exit_code: int


def run(command: list[str], env: dict[str, str], timeout: float) -> Outcome:
    """Run `command`; its wall time, its own peak RSS, its output; killed after `timeout` seconds."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        killed = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                killed = True
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Outcome(seconds, cpu, usage.ru_maxrss / 1024, output, killed, process.returncode)


def documents(work: Path, ref_examples: bool) -> list[Document]:
    found = []
    for label, (operations, schemas) in SCALES.items():
        path = work / f"synthetic-{label}.yaml"
        flags = [] if ref_examples else ["--without-ref-examples"]
        subprocess.run(
            [
                sys.executable,
                str(GENERATOR),
                str(path),
                "--operations",
                str(operations),
                "--schemas",
                str(schemas),
                *flags,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found.append(
            Document(f"synthetic {label} ({operations} ops, {schemas} schemas)", [path], path.stat().st_size)
        )
    if SHARED_VENDOR.is_dir():
        for path in sorted(SHARED_VENDOR.glob("*.json")):
            found.append(Document(path.name, [path], path.stat().st_size))
        zoho = sorted((SHARED_VENDOR / "zoho-billing").glob("*.yml"))
        found.append(Document("zoho-billing/ (24 files)", zoho, sum(p.stat().st_size for p in zoho)))
    return found


def import_command(paths: list[Path]) -> list[str]:
    return [str(HTTPTASK), "specs", "import", "--replace", "--name", "bench", *map(str, paths)]


def import_rounds(docs: list[Document], env: dict[str, str], rounds: int, timeout: float) -> None:
    for _ in range(rounds):
        for doc in docs:
            if doc.failure is not None:
                continue  # one kill is enough: a document that never finishes is not retried
            outcome = run(import_command(doc.paths), env, timeout)
            if outcome.killed:
                doc.failure = f"> {timeout:.0f} s, killed (peak RSS so far {outcome.rss_mb:.0f} MB)"
                continue
            if outcome.exit_code != 0:
                last = outcome.output.strip().splitlines()[-1] if outcome.output.strip() else ""
                doc.failure = f"exit {outcome.exit_code} after {outcome.seconds:.1f} s: {last[:160]}"
                continue
            doc.seconds.append(outcome.seconds)
            doc.cpu_seconds.append(outcome.cpu_seconds)
            doc.rss_mb.append(outcome.rss_mb)
            imported = re.search(r"Imported (\d+) operation", outcome.output)
            doc.operations = int(imported.group(1)) if imported else None


def in_process_search(env: dict[str, str], runs: int) -> dict[str, Any]:
    """Search latency in one process over a warm catalog, as the editor's server sees it per keystroke."""
    command = [sys.executable, __file__, "--search-only", "--runs", str(runs)]
    found: dict[str, Any] = json.loads(
        subprocess.run(command, env=env, check=True, capture_output=True).stdout
    )
    return found


def search_here(runs: int) -> dict[str, Any]:
    from httptask.catalog import Catalog

    start = time.perf_counter()
    catalog = Catalog.default()
    result: dict[str, Any] = {
        "operations": len(catalog.entries),
        "load_ms": (time.perf_counter() - start) * 1000,
    }
    for query in QUERIES:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            catalog.search(query)
            times.append((time.perf_counter() - start) * 1000)
        result[query] = times
    return result


def cold_search(env: dict[str, str], runs: int, timeout: float) -> dict[str, list[float]]:
    """`catalog search refund` (index warm) and `python -c "import httpx"`, alternating, fresh processes."""
    commands = {
        "python -c 'import httpx'": [sys.executable, "-c", "import httpx"],
        "catalog search refund (warm index)": [str(HTTPTASK), "catalog", "search", "refund"],
    }
    run(commands["catalog search refund (warm index)"], env, timeout)  # warms the index
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(run(command, env, timeout).seconds * 1000)
    return times


def spread(values: list[float], unit: str, digits: int = 2) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="imports of each document (median is reported)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before an import is killed")
    parser.add_argument("--runs", type=int, default=15, help="runs of each cold command and each search")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--without-ref-examples",
        action="store_true",
        help="synthetic documents without $ref-shaped example values",
    )
    parser.add_argument(
        "--keep-catalog", type=Path, metavar="DIR", help="keep the catalog holding the 4x document in DIR"
    )
    parser.add_argument(
        "--search-catalog",
        type=Path,
        metavar="DIR",
        help="import nothing: only the search figures, over a catalog kept with --keep-catalog",
    )
    parser.add_argument("--search-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_only:
        print(json.dumps(search_here(args.runs)))
        return
    if args.search_catalog is not None:
        env = catalog_env(args.search_catalog)
        report([], *measure_search(env, args.runs, args.timeout), as_json=args.json)
        return

    work = Path(tempfile.mkdtemp(prefix="httptask-bench-import-"))
    try:
        env = catalog_env(work)
        docs = documents(work, ref_examples=not args.without_ref_examples)
        import_rounds(docs, env, args.rounds, args.timeout)
        # The catalog for the search figures holds the 4x document (2,000 operations) when it imports.
        largest = docs[len(SCALES) - 1]
        search: dict[str, Any] | None = None
        cold: dict[str, list[float]] | None = None
        if largest.failure is None:
            # The index names files by path and mtime: a kept catalog is imported where it is kept.
            search_env = env if args.keep_catalog is None else catalog_env(args.keep_catalog)
            run(import_command(largest.paths), search_env, args.timeout)
            cold, search = measure_search(search_env, args.runs, args.timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(docs, cold, search, as_json=args.json)


def catalog_env(directory: Path) -> dict[str, str]:
    (directory / "specs").mkdir(parents=True, exist_ok=True)
    cache, specs = directory / "cache", directory / "specs"
    return {**os.environ, "HTTPTASK_CACHE_DIR": str(cache), "HTTPTASK_SPECS_PATH": str(specs)}


def measure_search(
    env: dict[str, str], runs: int, timeout: float
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    return cold_search(env, runs, timeout), in_process_search(env, max(20, runs * 2))


def report(
    docs: list[Document], cold: dict[str, list[float]] | None, search: dict[str, Any] | None, *, as_json: bool
) -> None:
    if as_json:
        imports = [vars(d) | {"paths": [str(p) for p in d.paths]} for d in docs]
        print(json.dumps({"imports": imports, "search": search, "cold": cold}, indent=2))
        return
    if docs:
        print(f"{'document':<46}{'MB':>6}{'ops':>6}  {'wall time':<24}{'CPU time':<24}{'peak RSS':<20}")
    for doc in docs:
        ops = "-" if doc.operations is None else str(doc.operations)
        if doc.failure is not None:
            print(f"{doc.label:<46}{doc.size / 1e6:>6.1f}{ops:>6}  {doc.failure}")
            continue
        print(
            f"{doc.label:<46}{doc.size / 1e6:>6.1f}{ops:>6}  {spread(doc.seconds, 's'):<24}"
            f"{spread(doc.cpu_seconds, 's'):<24}{spread(doc.rss_mb, 'MB', 0):<20}"
        )
    synthetic = [d for d in docs[: len(SCALES)] if d.seconds]
    if len(synthetic) == len(SCALES):
        print()
        for what, name in (("seconds", "wall"), ("cpu_seconds", "CPU")):
            medians = [statistics.median(getattr(d, what)) for d in synthetic]
            growth = ", ".join(
                f"{label} {m / medians[0]:.2f}" for label, m in zip(SCALES, medians, strict=True)
            )
            print(f"import {name} time relative to 1x: {growth} (sizes 1, 2, 4)")
    if search is None or cold is None:
        print("\nThe 4x document did not import: no search figures.")
        return
    operations, load_ms = search["operations"], search["load_ms"]
    print(f"\nin process, {operations} operations: catalog from the warm index {load_ms:.1f} ms")
    for query in QUERIES:
        print(f"  search {query!r:<24}{spread(search[query], 'ms')}")
    print("\nfresh processes, alternating, with the 4x document imported:")
    for name, values in cold.items():
        print(f"  {name:<40}{spread(values, 'ms', 1)}")
    ratio = statistics.median(cold["catalog search refund (warm index)"]) / statistics.median(
        cold["python -c 'import httpx'"]
    )
    print(f"  warm `catalog search refund` / `import httpx`: {ratio:.2f}x")


if __name__ == "__main__":
    main()
