"""The sending path alone: httptask's `Sender` beside raw aiohttp, both on uvloop, each sending the
fan-out's refund POSTs (bench/clients.py's) to one loopback server; `Sender` is transport.py over http1.py.

`python bench/sender.py [--items 20000] [--concurrency 64] [--rounds 5] [--json]`. Every run is a fresh
process (this script with `--one KIND URL ITEMS CONCURRENCY`); a round runs each kind once, in an order that
rotates from round to round, and the CPU ratio is taken within a round. The Sender's figure includes building
each `HttpRequest` and reading each `HttpResponse`, as an engine does. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import BODY, HEADERS, _aiohttp, _workers
from loopback import Loopback
from report import arguments, client_rows, interleaved, paired
from stats import spread

KINDS = ("sender", "aiohttp-uvloop")


def one(kind: str, url: str, items: int, concurrency: int) -> dict[str, Any]:
    """One run in this process: wall time, tasks/s and CPU µs per request (imports done before the clock)."""
    import uvloop

    from httptask.messages import HttpRequest
    from httptask.transport import Sender, Timeouts

    async def sender() -> float:
        started = time.perf_counter()
        timeouts = Timeouts()
        headers = tuple(HEADERS.items())
        async with Sender(max_connections=concurrency) as using:

            async def send(n: int) -> None:
                request = HttpRequest(
                    "POST",
                    f"{url}/api/v2/invoices/inv_{n}/refund",
                    (*headers, ("chargebee-idempotency-key", f"k{n}")),
                    BODY,
                )
                response = await using.send(request, timeouts=timeouts)
                assert response.status == 200

            await _workers(items, concurrency, send)
        return time.perf_counter() - started

    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = uvloop.run(sender() if kind == "sender" else _aiohttp(url, items, concurrency))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "tasks_per_s": items / seconds, "cpu_us_per_item": cpu / items * 1e6}


def measure(items: int, concurrency: int, rounds: int) -> dict[str, Any]:
    with Loopback() as server:

        def run(kind: str) -> dict[str, Any]:
            done = subprocess.run(
                [sys.executable, __file__, "--one", kind, server.url, str(items), str(concurrency)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugin")},
            )
            if done.returncode != 0:
                raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
            figures: dict[str, Any] = json.loads(done.stdout)
            return figures

        runs, loads = interleaved(KINDS, rounds, run)
    rates = {kind: [r["tasks_per_s"] for r in runs[kind]] for kind in KINDS}
    cpu = {kind: [r["cpu_us_per_item"] for r in runs[kind]] for kind in KINDS}
    return {
        "items": items,
        "concurrency": concurrency,
        "load": spread(loads, 2),
        "tasks_per_s": {kind: spread(rates[kind], 0) for kind in KINDS},
        "cpu_us_per_item": {kind: spread(cpu[kind], 1) for kind in KINDS},
        "ratios": {"cpu: aiohttp-uvloop/sender": paired(cpu["aiohttp-uvloop"], cpu["sender"])},
    }


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        kind, url, items, concurrency = sys.argv[2:6]
        print(json.dumps(one(kind, url, int(items), int(concurrency))))
        return
    parser = arguments(__doc__.splitlines()[0])
    parser.set_defaults(items=20000)
    options = parser.parse_args()
    figures = measure(options.items, options.concurrency, options.rounds)
    if options.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{figures['items']:,} refund POSTs at concurrency {figures['concurrency']} on uvloop, median "
        f"(min-max) of {options.rounds} interleaved rounds; load average {figures['load']['median']}"
    )
    print("\n".join(client_rows(figures, [("cpu_us_per_item", "CPU µs/request", ",.1f")])))


if __name__ == "__main__":
    main()
