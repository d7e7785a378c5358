"""How the local engine scales with the size of a fan-out: tasks/s, peak RSS and journal size at 1k, 10k and
100k items (journal on, concurrency 64, against the loopback server).

`python bench/growth.py [--sizes 1000,10000,100000] [--json]`. A million items is left out by default: a
forEach's results stream to the journal, but its items are the workflow's input, held as one list, and on this
machine a million of them take most of an hour.

Each size runs once in a fresh process (bench/clients.py `engine`); peak RSS is that process's `ru_maxrss`.
Throughput should stay flat as the run grows and memory should not grow with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import client
from loopback import Loopback

DEFAULT_SIZES = "1000,10000,100000"


def measure(sizes: list[int], concurrency: int) -> dict[str, Any]:
    rows = []
    with Loopback() as server:
        for items in sizes:
            figures = client("engine", server, items, concurrency)
            rows.append(
                {
                    "items": items,
                    "tasks_per_s": round(figures["tasks_per_s"], 1),
                    "seconds": round(figures["seconds"], 1),
                    "peak_rss_mb": round(figures["peak_rss_mb"], 1),
                    "journal_mb": round(figures["journal_mb"], 1),
                    "cpu_us_per_item": round(figures["cpu_s"] / items * 1e6, 1),
                }
            )
    return {"concurrency": concurrency, "sizes": rows}


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"growth of a fan-out at concurrency {figures['concurrency']} (one run per size):",
        f"  {'items':>10}{'tasks/s':>10}{'seconds':>10}{'peak RSS MB':>13}{'journal MB':>12}"
        f"{'CPU µs/item':>13}",
    ]
    for row in figures["sizes"]:
        lines.append(
            f"  {row['items']:>10,}{row['tasks_per_s']:>10,.0f}{row['seconds']:>10,.1f}"
            f"{row['peak_rss_mb']:>13,.1f}{row['journal_mb']:>12,.1f}{row['cpu_us_per_item']:>13,.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated item counts")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure([int(size) for size in args.sizes.split(",")], args.concurrency)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
