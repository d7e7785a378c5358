"""How the local engine scales with the size of a fan-out: tasks/s, peak RSS and journal size at 1k, 10k and
100k items, with the invoices given as one JSON list (`--input`) and read from a JSON Lines file
(`--input-items`), and with --million a million from JSON Lines (journal on, concurrency 64, against the
loopback server).

`python bench/growth.py [--sizes 1000,10000,100000] [--million] [--rounds 1] [--json]`. The million is left
out by default: at about 1,000 tasks/s on this machine it takes some twenty minutes.

Each size runs in a fresh process (bench/clients.py `engine` and `engine-jsonl`, with `--count-only`: the
example's `statuses` output, a status per item, does not fit a template value at a million), the two sources
one after the other, `--rounds` times; peak RSS is that process's `ru_maxrss`, tasks/s the median of the
rounds (the range beside it). Throughput should stay flat as the run grows and memory should not grow with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import JSONL
from fanout import client
from loopback import Loopback

DEFAULT_SIZES = "1000,10000,100000"
MILLION = 1_000_000
SOURCES = {"list": "engine", "jsonl": JSONL}


def measure(sizes: list[int], concurrency: int, rounds: int = 1, million: bool = False) -> dict[str, Any]:
    runs = [(items, source) for items in sizes for source in SOURCES]
    runs += [(MILLION, "jsonl")] if million else []
    rows = []
    with Loopback() as server:
        for items, source in runs:
            measured = [
                client(SOURCES[source], server, items, concurrency, count_only=True) for _ in range(rounds)
            ]
            rates = [m["tasks_per_s"] for m in measured]
            cpu_us = [m["cpu_s"] / items * 1e6 for m in measured]
            rows.append(
                {
                    "items": items,
                    "source": source,
                    "tasks_per_s": round(statistics.median(rates), 1),
                    "tasks_per_s_range": [round(min(rates), 1), round(max(rates), 1)],
                    "seconds": round(statistics.median(m["seconds"] for m in measured), 1),
                    "peak_rss_mb": round(max(m["peak_rss_mb"] for m in measured), 1),
                    "journal_mb": round(measured[-1]["journal_mb"], 1),
                    "cpu_us_per_item": round(statistics.median(cpu_us), 1),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # a long run's rows as they come
    return {"concurrency": concurrency, "rounds": rounds, "sizes": rows}


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"growth of a fan-out at concurrency {figures['concurrency']} ({figures.get('rounds', 1)} run(s) per "
        "size and source; peak RSS the highest, tasks/s the median and range):",
        f"  {'items':>10}{'source':>7}{'tasks/s':>9}{'range':>14}{'seconds':>9}{'peak RSS MB':>13}"
        f"{'journal MB':>12}{'CPU µs/item':>13}{'load':>6}",
    ]
    for row in figures["sizes"]:
        low, high = row.get("tasks_per_s_range", [row["tasks_per_s"]] * 2)
        lines.append(
            f"  {row['items']:>10,}{row.get('source', 'list'):>7}{row['tasks_per_s']:>9,.0f}"
            f"{f'{low:,.0f}-{high:,.0f}':>14}{row['seconds']:>9,.1f}{row['peak_rss_mb']:>13,.1f}"
            f"{row['journal_mb']:>12,.1f}{row['cpu_us_per_item']:>13,.0f}{row.get('load_average', 0):>6.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated item counts")
    parser.add_argument("--million", action="store_true", help="also a million items from JSON Lines")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    figures = measure(sizes, args.concurrency, args.rounds, args.million)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
