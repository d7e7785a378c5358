"""Fan-out throughput of the local engine (journal on) beside raw aiohttp, raw httpx and httptask's transport
alone, and the engine's peak RSS.

Runs on its own: `.venv/bin/python bench/fanout.py [--items N] [--concurrency C] [--rounds R] [--rss-items M]
[--json]`. A minimal aiohttp server answers on 127.0.0.1 in its own process; each client runs in a fresh
process, the four clients interleaved round by round; figures are medians. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
CLIENTS = ("engine", "sender", "aiohttp", "httpx")
BODY = b"refund_amount=100&comment=Refund+approved+by+support."


# -- the server (its own process) ----------------------------------------------------------------------------


def serve() -> None:
    from aiohttp import web

    answer = b'{"invoice":{"id":"inv","status":"paid"},"transaction":{"id":"txn","type":"refund"}}'

    async def refund(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/v2/invoices/{id}/refund", refund)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the clients (one process each) --------------------------------------------------------------------------


def client(kind: str, url: str, items: int, concurrency: int) -> dict[str, Any]:
    if kind == "engine":
        seconds = _engine(url, items, concurrency)
    else:
        seconds = asyncio.run(_raw(kind, url, items, concurrency))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "tasks_per_s": items / seconds, "peak_rss_mb": peak_kib / 1024}


def _engine(url: str, items: int, concurrency: int) -> float:
    from httptask.catalog import Catalog
    from httptask.journal import Journal
    from httptask.runs import start_run
    from httptask.secrets import SecretStore

    inputs = {
        "invoices": [{"id": f"inv_{n}", "amount": 100} for n in range(items)],
        "api_url": f"{url}/api/v2",
    }
    with tempfile.TemporaryDirectory() as folder:
        os.environ["HTTPTASK_SECRET_CHARGEBEE_API_KEY"] = "bench_key"
        started = time.perf_counter()
        journal = Journal(Path(folder) / "journal.sqlite3")
        try:
            result = start_run(
                EXAMPLE,
                inputs=inputs,
                catalog=Catalog.default(),
                secrets=SecretStore(),
                journal=journal,
                concurrency=concurrency,
            )
        finally:
            journal.close()
        seconds = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"the engine's run failed: {result.errors[:3]}")
    return seconds


async def _raw(kind: str, url: str, items: int, concurrency: int) -> float:
    headers = {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic YmVuY2hfa2V5Og=="}
    pending = iter(range(items))
    if kind == "sender":
        # httptask's own transport alone: the ceiling of the engine, which sends through it.
        from httptask.messages import HttpRequest
        from httptask.transport import Sender

        async with Sender(max_connections=concurrency) as sender:

            async def sender_worker() -> None:
                for n in pending:
                    request = HttpRequest(
                        "POST",
                        f"{url}/api/v2/invoices/inv_{n}/refund",
                        (*headers.items(), ("chargebee-idempotency-key", f"k{n}")),
                        BODY,
                    )
                    assert (await sender.send(request)).status == 200

            started = time.perf_counter()
            await asyncio.gather(*(sender_worker() for _ in range(concurrency)))
            return time.perf_counter() - started
    if kind == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def worker() -> None:
                for n in pending:
                    async with session.post(
                        f"{url}/api/v2/invoices/inv_{n}/refund",
                        data=BODY,
                        headers={**headers, "chargebee-idempotency-key": f"k{n}"},
                    ) as response:
                        await response.read()
                        assert response.status == 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:

        async def httpx_worker() -> None:
            for n in pending:
                response = await http.post(
                    f"{url}/api/v2/invoices/inv_{n}/refund",
                    content=BODY,
                    headers={**headers, "chargebee-idempotency-key": f"k{n}"},
                )
                assert response.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(httpx_worker() for _ in range(concurrency)))
        return time.perf_counter() - started


# -- the driver ----------------------------------------------------------------------------------------------


def _spawn(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(items: int, concurrency: int, rounds: int, rss_items: int) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        runs: dict[str, list[float]] = {kind: [] for kind in CLIENTS}
        for _ in range(rounds):
            for kind in CLIENTS:
                runs[kind].append(_spawn("--client", kind, url, str(items), str(concurrency))["tasks_per_s"])
        peak = _spawn("--client", "engine", url, str(rss_items), str(concurrency))
    finally:
        server.terminate()
        server.wait()
    rates = {kind: statistics.median(values) for kind, values in runs.items()}
    return {
        "items": items,
        "concurrency": concurrency,
        "rounds": rounds,
        "tasks_per_s": {kind: round(rate, 1) for kind, rate in rates.items()},
        "engine_over_aiohttp": round(rates["engine"] / rates["aiohttp"], 3),
        "engine_over_httpx": round(rates["engine"] / rates["httpx"], 3),
        "sender_over_aiohttp": round(rates["sender"] / rates["aiohttp"], 3),
        "rss_items": rss_items,
        "engine_peak_rss_mb": round(peak["peak_rss_mb"], 1),
        "engine_tasks_per_s_at_rss_items": round(peak["tasks_per_s"], 1),
    }


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve()
        return
    if sys.argv[1:2] == ["--client"]:
        kind, url, items, concurrency = sys.argv[2:6]
        print(json.dumps(client(kind, url, int(items), int(concurrency))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-items", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.items, args.concurrency, args.rounds, args.rss_items)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{figures['items']} forEach refunds at concurrency {figures['concurrency']}, median of "
        f"{figures['rounds']} interleaved rounds:"
    )
    for kind in CLIENTS:
        print(f"  {kind:8} {figures['tasks_per_s'][kind]:8.1f} tasks/s")
    print(
        f"  engine / raw aiohttp = {figures['engine_over_aiohttp']:.2f}, "
        f"engine / raw httpx = {figures['engine_over_httpx']:.2f}, "
        f"transport.Sender alone / raw aiohttp = {figures['sender_over_aiohttp']:.2f}"
    )
    print(
        f"  peak RSS of a {figures['rss_items']:,}-task fan-out: {figures['engine_peak_rss_mb']:.1f} MB "
        f"({figures['engine_tasks_per_s_at_rss_items']:.1f} tasks/s)"
    )


if __name__ == "__main__":
    main()
