"""Fan-out throughput of the local engine (journal on) as ratios to raw aiohttp, aiohttp on uvloop and raw
httpx, all measured in this one script against one loopback server, and that server's own capacity.

`python bench/fanout.py [--items 3000] [--concurrency 64] [--rounds 5] [--before PYTHONPATH] [--json]`.
With --before, the engine of another checkout (its `plugin` folder, and any packages it needs that this one
dropped, on PYTHONPATH) runs in each round too, as `engine-before`, so before and after are paired as well.

Every client runs in a fresh process (bench/clients.py); a round runs each client once, in an order that
rotates from round to round, and each ratio is taken within a round (paired), so a burst of load from
elsewhere on the machine hits both sides of a ratio alike. Figures are the median of the rounds with their
min-max range; CPU µs per item (the client process's user + system time) is steadier than tasks/s on a busy
machine. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import KINDS
from loopback import Loopback
from report import arguments, client_rows, interleaved, paired
from stats import spread, text

CLIENTS = Path(__file__).resolve().parent / "clients.py"
BASELINES = ("aiohttp", "aiohttp-uvloop", "httpx")


def client(
    kind: str,
    server: Loopback,
    items: int,
    concurrency: int,
    pythonpath: str | None = None,
    *,
    count_only: bool = False,
) -> dict[str, Any]:
    """One client run in a fresh process, with how busy the server was meanwhile (1.0 = one whole core);
    `count_only`: the engine's workflow keeps only its count output (clients.py --count-only)."""
    cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    done = subprocess.run(
        [sys.executable, str(CLIENTS), "engine" if kind == "engine-before" else kind, server.url, str(items),
         str(concurrency), *(["--count-only"] if count_only else [])],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"client {kind} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    # The process's life includes start-up; the server only works while requests flow, within `seconds`.
    figures["server_busy"] = (server.cpu_seconds() - cpu_before) / figures["seconds"]
    figures["process_s"] = time.perf_counter() - wall_before
    return figures


def capacity(server: Loopback, items: int, concurrency: int, processes: int) -> dict[str, Any]:
    """What the server answers with `processes` aiohttp-on-uvloop clients at once, and its CPU per request."""
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, str(CLIENTS), "aiohttp-uvloop", server.url, str(items), str(concurrency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = [json.loads(p.communicate()[0]) for p in running]
    wall = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    requests = items * processes
    # Client start-up is inside `wall`; the busiest stretch is bounded by the slowest client's own clock.
    busiest = max(r["seconds"] for r in results)
    return {
        "clients": processes,
        "requests": requests,
        "requests_per_s": round(requests / busiest, 1),
        "server_cpu_us_per_request": round(cpu / requests * 1e6, 1),
        "one_core_requests_per_s": round(requests / cpu, 1),
        "wall_s": round(wall, 2),
    }


def measure(items: int, concurrency: int, rounds: int, before: str | None = None) -> dict[str, Any]:
    kinds = (*KINDS, "engine-before") if before else KINDS
    with Loopback() as server:
        server_capacity = capacity(server, items * 2, concurrency, processes=2)

        def one(kind: str) -> dict[str, Any]:
            return client(kind, server, items, concurrency, before if kind == "engine-before" else None)

        runs, loads = interleaved(kinds, rounds, one)
    rates = {kind: [r["tasks_per_s"] for r in results] for kind, results in runs.items()}
    ratios = {f"engine/{base}": paired(rates["engine"], rates[base]) for base in BASELINES}
    if before:
        ratios["engine/engine-before"] = paired(rates["engine"], rates["engine-before"])
        ratios["engine-before/aiohttp"] = paired(rates["engine-before"], rates["aiohttp"])
    ratios["aiohttp-uvloop/aiohttp"] = paired(rates["aiohttp-uvloop"], rates["aiohttp"])
    # CPU per item of raw aiohttp over the engine's, round by round: the throughput ratio the engine would
    # reach were it the only thing on the machine and CPU-bound (it is, on loopback).
    cpu = {kind: [r["cpu_s"] for r in results] for kind, results in runs.items()}
    ratios["cpu: aiohttp/engine"] = paired(cpu["aiohttp"], cpu["engine"])
    return {
        "items": items,
        "concurrency": concurrency,
        "rounds": rounds,
        "load_average_1m": spread(loads, 2),
        "server_capacity": server_capacity,
        "tasks_per_s": {kind: spread(values, 1) for kind, values in rates.items()},
        "cpu_us_per_item": {
            kind: spread([r["cpu_s"] / items * 1e6 for r in results], 1) for kind, results in runs.items()
        },
        "server_busy": {
            kind: spread([r["server_busy"] for r in results], 2) for kind, results in runs.items()
        },
        "ratios": ratios,
    }


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['items']:,} forEach refunds at concurrency {figures['concurrency']}, "
        f"median (min-max) of {figures['rounds']} interleaved rounds; load average "
        f"{text(figures['load_average_1m'])}",
        *client_rows(
            figures,
            [("cpu_us_per_item", "CPU µs/item", ",.0f"), ("server_busy", "server busy", ",.2f")],
        ),
    ]
    cap = figures["server_capacity"]
    lines.append(
        f"  loopback server: {cap['requests_per_s']:,.0f} requests/s with {cap['clients']} aiohttp-uvloop "
        f"clients at once; {cap['server_cpu_us_per_request']} µs CPU per request "
        f"(one core: {cap['one_core_requests_per_s']:,.0f} requests/s)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--before", help="PYTHONPATH of another checkout whose engine runs beside")
    args = parser.parse_args()
    figures = measure(args.items, args.concurrency, args.rounds, args.before)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
