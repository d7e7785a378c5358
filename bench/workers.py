"""`httptask run --workers N` against raw aiohttp: the refund fan-out of bench/fanout.py (the example
workflow, journal on) on the local engine with its items shared out over N processes, beside raw aiohttp, all
in one script against one loopback server.

`python bench/workers.py [--items 3000] [--concurrency 64] [--workers 1,2] [--rounds 5] [--before PYTHONPATH]
[--json]`; with --before, another checkout's runs (`workers-N-before`) go in each round too.

Every client is a fresh process; a round runs each once, in an order that rotates from round to round; each
ratio is paired within a round and reported as the median with its min-max range. CPU is the whole process
tree's (the run, its workers and every journal writer), per item. "First result" is the time from the run's
start to the first item's result reaching the run's own process: the start-up a run with N workers pays
(checks, scheduling, starting the workers, the first connection). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import EXAMPLE
from loopback import Loopback
from report import arguments, client_rows, interleaved, paired
from stats import spread, text

CLIENTS = Path(__file__).resolve().parent / "clients.py"


def _engine(url: str, items: int, concurrency: int, workers: int) -> dict[str, Any]:
    """One run of the example with `workers` processes, in this process (imports before the clock)."""
    from httptask.catalog import Catalog
    from httptask.journal import Journal
    from httptask.runs import start_run
    from httptask.secrets import SecretStore

    invoices = [{"id": f"inv_{n}", "amount": 100} for n in range(items)]
    os.environ["HTTPTASK_SECRET_CHARGEBEE_API_KEY"] = "bench_key"
    first: list[float] = []

    def progress(more: int, done: int) -> None:
        if done and not first:
            first.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder) / "journal.sqlite3")
        started = time.perf_counter()
        result = start_run(
            EXAMPLE,
            inputs={"invoices": invoices, "api_url": f"{url}/api/v2"},
            catalog=Catalog.default(),
            secrets=SecretStore(),
            journal=journal,
            concurrency=concurrency,
            workers=workers,
            on_progress=progress,
        )
        seconds = time.perf_counter() - started
        journal.close()
    if result.status != "succeeded":
        raise SystemExit(f"the engine's run failed: {result.errors[:3]}")
    return {"seconds": seconds, "tasks_per_s": items / seconds, "first_result_s": first[0] - started}


def _run(
    kind: str, url: str, items: int, concurrency: int, envs: dict[bool, dict[str, str]]
) -> dict[str, Any]:
    if kind == "aiohttp":
        command = [sys.executable, str(CLIENTS), "aiohttp", url, str(items), str(concurrency)]
    else:
        workers = kind.removeprefix("workers-").removesuffix("-before")
        command = [sys.executable, __file__, "--client", workers, url, str(items), str(concurrency)]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=envs[kind.endswith("-before")]
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"client {kind} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    # Every process of the tree that has been waited for: the run, its workers and their journal writers.
    figures["tree_cpu_s"] = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    return figures


def _checkouts(before: str | None, folder: Path) -> dict[bool, dict[str, str]]:
    """The environment of this checkout's runs and of --before's (False, True): each with a catalog index of
    its own, built here, so that no timed run rebuilds the other's."""
    envs = {False: {**os.environ, "HTTPTASK_CACHE_DIR": str(folder / "cache")}}
    if before:
        envs[True] = {**os.environ, "PYTHONPATH": before, "HTTPTASK_CACHE_DIR": str(folder / "cache-before")}
    for env in envs.values():
        index = "from httptask.catalog import Catalog; Catalog.default().ids()"
        subprocess.run([sys.executable, "-c", index], env=env, check=True)
    return envs


def measure(
    items: int, concurrency: int, workers: list[int], rounds: int, before: str | None
) -> dict[str, Any]:
    engines = [f"workers-{n}" for n in workers]
    kinds = ("aiohttp", *engines, *(f"{kind}-before" for kind in engines if before))
    with Loopback() as server, tempfile.TemporaryDirectory() as folder:
        envs = _checkouts(before, Path(folder))
        runs, loads = interleaved(
            kinds, rounds, lambda kind: _run(kind, server.url, items, concurrency, envs)
        )
    rates = {kind: [r["tasks_per_s"] for r in results] for kind, results in runs.items()}
    ratios = {f"{kind}/aiohttp": paired(rates[kind], rates["aiohttp"]) for kind in kinds[1:]}
    for kind in engines[1:]:
        ratios[f"{kind}/{engines[0]}"] = paired(rates[kind], rates[engines[0]])
    for kind in engines if before else []:
        ratios[f"{kind}/{kind}-before"] = paired(rates[kind], rates[f"{kind}-before"])
    return {
        "items": items,
        "concurrency": concurrency,
        "rounds": rounds,
        "cores": os.cpu_count(),
        "load_average_1m": spread(loads, 2),
        "tasks_per_s": {kind: spread(values, 1) for kind, values in rates.items()},
        "tree_cpu_us_per_item": {
            kind: spread([r["tree_cpu_s"] / items * 1e6 for r in results], 1)
            for kind, results in runs.items()
        },
        "first_result_s": {
            kind: spread([r["first_result_s"] for r in results], 3)
            for kind, results in runs.items()
            if kind != "aiohttp"
        },
        "ratios": ratios,
    }


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['items']:,} forEach refunds at concurrency {figures['concurrency']} (in all), "
        f"{figures['cores']} cores, median (min-max) of {figures['rounds']} interleaved rounds; load average "
        f"{text(figures['load_average_1m'])}",
        *client_rows(figures, [("tree_cpu_us_per_item", "CPU µs/item (tree)", ",.0f")]),
        "  first result after (s): "
        + "; ".join(f"{kind} {text(value, '.3f')}" for kind, value in figures["first_result_s"].items()),
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        workers, url, items, concurrency = sys.argv[2:6]
        print(json.dumps(_engine(url, int(items), int(concurrency), int(workers))))
        return
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="the numbers of processes to compare")
    parser.add_argument("--before", help="PYTHONPATH of a checkout whose runs go in each round too")
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",")]
    figures = measure(args.items, args.concurrency, workers, args.rounds, args.before)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
