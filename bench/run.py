"""`make bench`: every benchmark in turn, each in its own interpreter; writes bench/results.json and prints
the figures against their targets, beside those in bench/baseline.json (the "before") when present.

`python bench/run.py [--rounds 5] [--sizes 1000,10000,100000] [--million]`: rounds of the fan-out ratios, the
fan-out sizes whose throughput and memory are measured (each with a JSON list and a JSON Lines file), and
with --million also a million items from JSON Lines (some twenty minutes more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fanout
import growth
import prepare

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
# This script, the scripts whose figures go to results.json, and the modules they share.
OWN = {"run.py", "fanout.py", "prepare.py", "growth.py", "cold_start.py", "clients.py", "loopback.py"}
OWN |= {"stats.py"}
LIBRARIES = {"synthetic_openapi.py", "_naive_temporal.py"}
BASELINE = HERE / "baseline.json"


def _script(name: str, *args: str) -> dict[str, Any]:
    print(f"== {name} {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, str(HERE / name), *args, "--json"], stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _size(figures: dict[str, Any], items: int, source: str = "list") -> dict[str, Any] | None:
    rows = figures["growth"]["sizes"]
    return next((row for row in rows if row["items"] == items and row.get("source", "list") == source), None)


# (what, figure, target, better when) for the table of targets; a figure is read from results.json.
TARGETS: list[tuple[str, Callable[[dict[str, Any]], float | None], float, str]] = [
    (
        "engine / raw aiohttp, 3,000 items",
        lambda f: f["fanout"]["ratios"]["engine/aiohttp"]["median"],
        0.8,
        ">=",
    ),
    ("prepare, µs per fan-out item", lambda f: f["prepare"]["fanout_item_us"]["median"], 40, "<="),
    ("prepare, µs per Test request", lambda f: f["prepare"]["test_request_us"]["median"], 50, "<="),
    ("peak RSS MB, 10,000 items", lambda f: (_size(f, 10_000) or {}).get("peak_rss_mb"), 120, "<="),
    (
        "peak RSS MB, 1,000,000 items, JSON Lines",
        lambda f: (_size(f, 1_000_000, "jsonl") or {}).get("peak_rss_mb"),
        250,
        "<=",
    ),
]


def targets_table(figures: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    lines = [f"  {'target':42}{'before':>10}{'now':>10}{'goal':>10}  met"]
    for what, read, goal, sense in TARGETS:
        now = _read(read, figures)
        before = _read(read, baseline) if baseline else None
        met = "-" if now is None else "yes" if (now >= goal if sense == ">=" else now <= goal) else "NO"
        lines.append(f"  {what:42}{_cell(before):>10}{_cell(now):>10}{sense + ' ' + str(goal):>10}  {met}")
    return "\n".join(lines)


def _read(read: Callable[[dict[str, Any]], float | None], figures: dict[str, Any]) -> float | None:
    try:
        return read(figures)
    except (KeyError, TypeError):
        return None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}" if value < 10 else f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", default="5")
    parser.add_argument("--sizes", default=growth.DEFAULT_SIZES)
    parser.add_argument("--million", action="store_true", help="a million items from JSON Lines too")
    parser.add_argument("--before", help="PYTHONPATH of the old checkout, run beside the engine (fanout.py)")
    args = parser.parse_args()
    sizes, rounds = args.sizes, args.rounds
    started = time.time()
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
            ).stdout.strip(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "fanout": _script(
            "fanout.py", "--rounds", rounds, *(["--before", args.before] if args.before else [])
        ),
        "prepare": _script("prepare.py"),
        "growth": _script("growth.py", "--sizes", sizes, *(["--million"] if args.million else [])),
        "cold_start": _script("cold_start.py"),
    }
    figures["machine"]["minutes"] = round((time.time() - started) / 60, 1)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    baseline = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.exists() else None
    print()
    print(fanout.table(figures["fanout"]))
    print(prepare.table(figures["prepare"]))
    print(growth.table(figures["growth"]))
    print()
    if baseline is not None:
        print(
            f"before: {BASELINE.name} (commit {baseline['machine']['commit']}, {baseline['machine']['date']})"
        )
    print(targets_table(figures, baseline))
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    # The other benchmarks (Temporal, spec imports) print their own figures.
    for script in sorted(HERE.glob("*.py")):
        if script.name not in OWN | LIBRARIES:
            print(f"\n== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=True)


if __name__ == "__main__":
    main()
