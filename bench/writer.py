"""Where the journal's writer costs throughput: a minimal aiohttp loop that journals the engine's rows, with
the writer on a thread and in a process of its own, beside raw aiohttp (no journal), all against one loopback
server in one script.

`python bench/writer.py [--items 3000] [--concurrency 64] [--rounds 5] [--before PYTHONPATH] [--engine]
[--lean] [--json]`; with --before, another checkout's journal runs in each round too (`loop-thread-before`,
`loop-process-before`); with --engine, the local engine's fan-out (`bench/clients.py engine`) with each writer
(`engine-thread`, `engine-process`); with --lean, the same loop on a lean sending path of about 15 µs per
request (keep-alive connections parsed by httptools, as the engine's is to become) without a journal (`lean`)
and with each writer (`lean-thread`, `lean-process`).

The minimal loop is the floor of any durable engine: per item it commits the 'sent' record (idempotency key
checked, fsync, `synchronous=FULL`) before the POST goes on the wire, and queues the answer's row after it, as
the local engine does, through `httptask.journal.Journal`; it does no templating, validation or response
checks. Every client runs in a fresh process; rounds rotate the order; ratios are paired within a round and
reported as the median with its range, with CPU µs per item (user + system, every thread, not the writer
process: its time is reported apart). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clients import BODY, HEADERS
from loopback import Loopback
from report import arguments, client_rows, interleaved, paired
from stats import spread, text

KINDS = ("aiohttp", "loop-thread", "loop-process")
BEFORE = ("loop-thread-before", "loop-process-before")
ENGINE = ("engine-thread", "engine-process")
LEAN = ("lean", "lean-thread", "lean-process")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def _loop(
    url: str, items: int, concurrency: int, writer: str | None, path: Path, *, lean: bool
) -> tuple[float, int]:
    """Seconds the run took, and how many group commits its journal made."""
    from httptask.journal import Journal
    from httptask.requests import derive_key, step_seed

    run_id, task = "bench", "refund"
    # Each item's key derived as the engine derives it (the keys a template gives are journaled apart).
    keys = [derive_key(step_seed(run_id, task, n)) for n in range(items)]
    started = time.perf_counter()
    journal = Journal(path, writer=writer) if writer else None
    if journal is not None:
        journal.create_run(
            run_id,
            workflow="w",
            file="w.yaml",
            workflow_text="",
            inputs={},
            inputs_redacted=False,
            options={},
        )
        journal.start(asyncio.get_running_loop())
        journal.queue(Journal.schedule(run_id, task, range(-1, items)))
    pending = iter(range(items))

    async def worker(send: Send) -> None:
        for n in pending:
            target = f"{url}/api/v2/invoices/inv_{n}/refund"
            key = keys[n]
            if journal is not None:
                request = {"method": "POST", "url": target, "headers": {"authorization": "[redacted]"},
                           "body": BODY.decode()}  # fmt: skip
                await journal.begin_send(
                    run_id, task, n, idempotent=True, key=key, scope=url, request=request,
                    item_value={"id": f"inv_{n}", "amount": 100},
                )  # fmt: skip
            began = time.perf_counter()
            status, headers, body = await send(f"/api/v2/invoices/inv_{n}/refund", key)
            assert status == 200
            if journal is not None:
                record = {"status": 200, "headers": headers, "body": body.decode()}
                elapsed = (time.perf_counter() - began) * 1000
                journal.queue(
                    [Journal.finished(run_id, task, n, "succeeded", attempts=1, http_status=200,
                                      elapsed_ms=elapsed, response=record, outcome=_answered())]
                )  # fmt: skip

    await (_lean if lean else _aiohttp)(url, concurrency, worker)
    if journal is not None:
        await journal.flush()
        journal.stop()
        journal.finish_run(run_id, "succeeded", None, [])
        journal.close()
    return time.perf_counter() - started, journal.commits if journal is not None else 0


# How a worker sends one refund: (path, idempotency key) -> (status, headers, body).
Send = Callable[[str, str], Awaitable[tuple[int, dict[str, str], bytes]]]


async def _aiohttp(url: str, concurrency: int, worker: Callable[[Send], Awaitable[None]]) -> None:
    """`concurrency` workers sending through one aiohttp session."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def send(path: str, key: str) -> tuple[int, dict[str, str], bytes]:
            headers = {**HEADERS, "chargebee-idempotency-key": key}
            async with session.post(f"{url}{path}", data=BODY, headers=headers) as response:
                return response.status, dict(response.headers), await response.read()

        await asyncio.gather(*(worker(send) for _ in range(concurrency)))


async def _lean(url: str, concurrency: int, worker: Callable[[Send], Awaitable[None]]) -> None:
    """`concurrency` workers, each on a keep-alive connection of its own parsed by httptools: a sending path
    of about 15 µs per request, as the engine's is to become, so the journal's share shows beside it."""
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()

    async def connected() -> None:
        _, connection = await loop.create_connection(_Lean, host, int(port))

        async def send(path: str, key: str) -> tuple[int, dict[str, str], bytes]:
            head = f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\nchargebee-idempotency-key: {key}\r\n"
            return await connection.request(head.encode() + _FIXED)

        try:
            await worker(send)
        finally:
            connection.transport.close()

    await asyncio.gather(*(connected() for _ in range(concurrency)))


_FIXED = (
    "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items()).encode()
    + f"content-length: {len(BODY)}\r\n\r\n".encode()
    + BODY
)


class _Lean(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request written, its answer parsed by httptools."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        answer = (self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = {}, []
        if waiter is not None:
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the loopback server closed the connection"))

    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter


def _answered() -> Any:
    from httptask.outcome import Outcome

    return Outcome.ANSWERED


def client(kind: str, url: str, items: int, concurrency: int) -> dict[str, Any]:
    """One client's run in this process (imports before the clock)."""
    if kind in ENGINE:
        return _engine(kind, url, items, concurrency)
    import aiohttp  # noqa: F401
    import httptools  # noqa: F401

    import httptask.journal  # noqa: F401

    lean = kind.startswith("lean")
    writer = None if kind in ("aiohttp", "lean") else kind.split("-")[1]
    with tempfile.TemporaryDirectory() as folder:
        cpu = _cpu(resource.RUSAGE_SELF)
        path = Path(folder) / "journal.sqlite3"
        seconds, commits = asyncio.run(_loop(url, items, concurrency, writer, path, lean=lean))
        cpu = _cpu(resource.RUSAGE_SELF) - cpu
    return {
        "seconds": seconds,
        "commits": commits,
        "tasks_per_s": items / seconds,
        "cpu_s": cpu,
        "writer_cpu_s": _cpu(resource.RUSAGE_CHILDREN),
    }


def _engine(kind: str, url: str, items: int, concurrency: int) -> dict[str, Any]:
    """The local engine's fan-out (`bench/clients.py engine`) with the writer `kind` names."""
    import clients

    from httptask.journal import WRITER_VAR

    os.environ[WRITER_VAR] = kind.removeprefix("engine-")
    figures = clients.run("engine", url, items, concurrency)
    return {**figures, "commits": 0, "writer_cpu_s": _cpu(resource.RUSAGE_CHILDREN)}


def _run(kind: str, url: str, items: int, concurrency: int, before: str | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": before} if kind.endswith("-before") and before else None
    done = subprocess.run(
        [sys.executable, __file__, "--client", kind, url, str(items), str(concurrency)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"client {kind} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def measure(
    items: int, concurrency: int, rounds: int, before: str | None, engine: bool, lean: bool
) -> dict[str, Any]:
    kinds = KINDS + (BEFORE if before else ()) + (ENGINE if engine else ()) + (LEAN if lean else ())
    with Loopback() as server:
        runs, loads = interleaved(
            kinds, rounds, lambda kind: _run(kind, server.url, items, concurrency, before)
        )
    rates = {kind: [r["tasks_per_s"] for r in results] for kind, results in runs.items()}
    ratios = {f"{kind}/aiohttp": paired(rates[kind], rates["aiohttp"]) for kind in kinds[1:]}
    # CPU per item of raw aiohttp over the loop's (its own process only): the ratio the loop would reach
    # were it CPU-bound with a core to spare for the writer.
    cpu = {kind: [r["cpu_s"] for r in results] for kind, results in runs.items()}
    for kind in kinds[1:]:
        ratios[f"cpu: aiohttp/{kind}"] = paired(cpu["aiohttp"], cpu[kind])
    ratios["loop-process/loop-thread"] = paired(rates["loop-process"], rates["loop-thread"])
    if before:
        for kind in ("loop-thread", "loop-process"):
            ratios[f"{kind}/{kind}-before"] = paired(rates[kind], rates[f"{kind}-before"])
    if engine:
        ratios["engine-process/engine-thread"] = paired(rates["engine-process"], rates["engine-thread"])
    if lean:
        for kind in LEAN[1:]:
            ratios[f"{kind}/lean"] = paired(rates[kind], rates["lean"])
            ratios[f"cpu: lean/{kind}"] = paired(cpu["lean"], cpu[kind])
        ratios["lean-process/lean-thread"] = paired(rates["lean-process"], rates["lean-thread"])
    return {
        "items": items,
        "concurrency": concurrency,
        "rounds": rounds,
        "load_average_1m": spread(loads, 2),
        "tasks_per_s": {kind: spread(values, 1) for kind, values in rates.items()},
        "commits": {kind: spread([r["commits"] for r in results], 0) for kind, results in runs.items()},
        "cpu_us_per_item": {
            kind: spread([r["cpu_s"] / items * 1e6 for r in results], 1) for kind, results in runs.items()
        },
        "writer_process_cpu_us_per_item": {
            kind: spread([r["writer_cpu_s"] / items * 1e6 for r in runs[kind]], 1)
            for kind in kinds
            if kind.endswith("process") or kind.endswith("process-before")
        },
        "ratios": ratios,
    }


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['items']:,} journaled POSTs at concurrency {figures['concurrency']}, median (min-max) of "
        f"{figures['rounds']} interleaved rounds; load average {text(figures['load_average_1m'])}",
        *client_rows(figures, [("cpu_us_per_item", "CPU µs/item", ",.0f"), ("commits", "commits", ",.0f")]),
        *(
            f"  writer process CPU µs/item, {kind}: {text(cpu, ',.0f')}"
            for kind, cpu in figures["writer_process_cpu_us_per_item"].items()
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        kind, url, items, concurrency = sys.argv[2:6]
        print(json.dumps(client(kind, url, int(items), int(concurrency))))
        return
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--before", help="PYTHONPATH of a checkout whose writers run beside")
    parser.add_argument("--engine", action="store_true", help="the engine's fan-out with each writer too")
    parser.add_argument("--lean", action="store_true", help="the loop on a lean sending path too")
    args = parser.parse_args()
    figures = measure(args.items, args.concurrency, args.rounds, args.before, args.engine, args.lean)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
