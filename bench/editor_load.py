"""How long a light editor request waits while heavy Test requests are answered.

Starts three processes on 127.0.0.1: an upstream that answers every request with a large JSON body (9 MB by
default: a `chargebee.refund_invoice` answer with a long list beside it), `httptask serve` allowed to reach
it, and a client that sends `--heavy` concurrent Test requests to that upstream through the editor. Meanwhile
this process asks the editor for a light page over and over, one at a time (`GET /api/operations?q=refund`,
the search the editor's page makes per keystroke), and records each answer's latency. It prints the light
request's latency when the editor is idle and while the heavy ones run (median, 90th percentile, max), and
how long the heavy ones took; as JSON with `--json`.

`python bench/editor_load.py [--heavy 30] [--mb 9] [--rounds 1] [--before CHECKOUT]`: `--before` runs the
editor of another checkout too, in the same rounds, interleaved. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

_ROOT = Path(__file__).resolve().parent.parent
_CANARY = "sk_live_CANARY_editor_load_0123456789"


def _body(megabytes: float) -> bytes:
    row = {"id": "txn_0000000001", "amount": 1000, "currency_code": "USD", "status": "ok", "note": "x" * 40}
    rows = int(megabytes * 1024 * 1024 / (len(json.dumps(row)) + 1))
    answer = {
        "invoice": {"id": "inv_1", "customer_id": "cus_1", "status": "paid", "currency_code": "USD",
                    "price_type": "tax_exclusive"},
        "transaction": {"id": "txn_1", "currency_code": "USD", "gateway": "chargebee",
                        "payment_method": "card", "type": "refund"},
        "history": [row] * rows,
    }
    return json.dumps(answer).encode()


async def _upstream(megabytes: float) -> None:
    body = _body(megabytes)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def _test_request(upstream: int) -> dict[str, Any]:
    return {
        "task": {
            "id": "refund",
            "operation": "chargebee.refund_invoice",
            "server": {"url": f"http://127.0.0.1:{upstream}/api/v2"},
            "credentials": "CHARGEBEE_API_KEY",
            "request": {"path": {"invoice-id": "inv_1"}, "body": {"refund_amount": 100}},
        }
    }


async def _heavy(editor: str, upstream: int, count: int) -> None:
    async with httpx.AsyncClient(timeout=600) as client:

        async def one() -> tuple[int, int, float]:
            started = time.perf_counter()
            answer = await client.post(f"{editor}/api/test-request", json=_test_request(upstream))
            return answer.status_code, len(answer.content), time.perf_counter() - started

        print("go", flush=True)
        done = await asyncio.gather(*(one() for _ in range(count)))
    statuses: dict[str, int] = {}
    for status, _size, _seconds in done:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    sizes = [size for _status, size, _seconds in done]
    seconds = [s for _status, _size, s in done]
    print(json.dumps({"statuses": statuses, "max_bytes": max(sizes), "max_s": max(seconds)}), flush=True)


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args!r} exited before it was ready")
    return line.strip()


def _probe(editor: str, client: httpx.Client) -> float:
    started = time.perf_counter()
    client.get(f"{editor}/api/operations", params={"q": "refund", "limit": 5}).raise_for_status()
    return time.perf_counter() - started


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _round(editor: str, upstream: int, heavy: int) -> dict[str, Any]:
    with httpx.Client(timeout=600) as client:
        idle = [_probe(editor, client) for _ in range(20)]
        script = [sys.executable, __file__, "--role", "heavy", "--editor", editor]
        script += ["--upstream", str(upstream), "--heavy", str(heavy)]
        with subprocess.Popen(script, stdout=subprocess.PIPE, text=True) as load:
            _line(load)  # "go": its requests are under way
            started = time.perf_counter()
            loaded: list[float] = []
            while load.poll() is None:
                loaded.append(_probe(editor, client))
            heavy_s = time.perf_counter() - started
            outcome = json.loads(_line(load))
    return {"idle": _summary(idle), "loaded": _summary(loaded), "heavy_s": round(heavy_s, 1), **outcome}


def _serve_and_load(plugin: str, megabytes: float, heavy: int) -> dict[str, Any]:
    """One round: the upstream and the editor of the checkout whose package is in `plugin`, then the load."""
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "HTTPTASK_CACHE_DIR": f"{folder}/cache",
            "HTTPTASK_SPECS_PATH": f"{folder}/specs",
            "HTTPTASK_SECRET_CHARGEBEE_API_KEY": _CANARY,
            "PYTHONPATH": plugin,
        }
        upstream_cmd = [sys.executable, __file__, "--role", "upstream", "--mb", str(megabytes)]
        with subprocess.Popen(upstream_cmd, stdout=subprocess.PIPE, text=True) as upstream:
            port = int(_line(upstream))
            serve = [sys.executable, "-m", "httptask", "serve", "--port", "0"]
            serve += ["--allow-host", f"127.0.0.1:{port}"]
            with subprocess.Popen(serve, stdout=subprocess.PIPE, text=True, env=env) as editor:
                try:
                    return _round(_line(editor).split()[3].rstrip("/"), port, heavy)
                finally:
                    editor.terminate()
                    upstream.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heavy", type=int, default=30)
    parser.add_argument("--mb", type=float, default=9.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--before", default="", help="Another checkout to run in the same rounds.")
    parser.add_argument("--role", choices=["main", "upstream", "heavy"], default="main")
    parser.add_argument("--editor", default="")
    parser.add_argument("--upstream", type=int, default=0)
    args = parser.parse_args()
    if args.role == "upstream":
        asyncio.run(_upstream(args.mb))
        return
    if args.role == "heavy":
        asyncio.run(_heavy(args.editor, args.upstream, args.heavy))
        return
    checkouts = [("this", str(_ROOT / "plugin"))]
    if args.before:
        checkouts.insert(0, ("before", str(Path(args.before).resolve() / "plugin")))
    rounds = []
    for number in range(args.rounds):
        # Interleaved: each round runs every checkout, in an order that rotates from round to round.
        order = checkouts[number % len(checkouts) :] + checkouts[: number % len(checkouts)]
        for name, plugin in order:
            rounds.append({"checkout": name, **_serve_and_load(plugin, args.mb, args.heavy)})
    result = {"heavy": args.heavy, "mb": args.mb, "load": os.getloadavg()[0], "rounds": rounds}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.heavy} Test requests answered {args.mb:g} MB each; load average {result['load']:.1f}")
    for found in rounds:
        idle, loaded = found["idle"], found["loaded"]
        print(
            f"{found['checkout']}: light request idle median {idle['median_ms']} ms; under load median "
            f"{loaded['median_ms']} ms, p90 {loaded['p90_ms']} ms, max {loaded['max_ms']} ms "
            f"({loaded['count']} probes); heavy ones {found['heavy_s']} s, statuses {found['statuses']}"
        )


if __name__ == "__main__":
    main()
