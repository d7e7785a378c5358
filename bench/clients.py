"""The clients whose throughput is compared: httptask's local engine and the raw libraries beside it.

Each client sends `items` refund POSTs at `concurrency` to the loopback server, in a fresh process:
`python bench/clients.py KIND URL ITEMS CONCURRENCY [--count-only]` prints one JSON line with its wall time,
tasks/s, CPU time and peak RSS. Imports happen before the clock starts; everything after (sessions, the run's
journal, the catalog) is timed.

- `engine`: `examples/refund-invoices.yaml` on the local engine, journal on (a new SQLite file, made before
  the clock starts, as a user's journal is there after their first run; every refund's 'sent' record committed
  with fsync before it goes on the wire);
- `engine-jsonl`: the same, its invoices read from a JSON Lines file (`--input-items`), written before the
  clock starts;
- `--count-only`: the engine runs the example with its `refunded` output only, not `statuses` (a list with a
  status per item, which at a million items is over the 2,000,000 characters a template value may render to);
- `aiohttp`: one `aiohttp.ClientSession`, `concurrency` workers under `asyncio.gather`;
- `aiohttp-uvloop`: the same on uvloop's event loop;
- `httpx`: one `httpx.AsyncClient` with its own pool, the same workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"
KINDS = ("engine", "aiohttp", "aiohttp-uvloop", "httpx")
# Not in the fan-out's rounds: bench/growth.py runs it.
JSONL = "engine-jsonl"
BODY = b"refund_amount=100&comment=Refund+approved+by+support."
HEADERS = {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic YmVuY2hfa2V5Og=="}


def run(kind: str, url: str, items: int, concurrency: int, *, count_only: bool = False) -> dict[str, Any]:
    """One client's run; CPU time is counted from just before the clock starts, imports excluded."""
    if kind not in (*KINDS, JSONL):
        raise SystemExit(f"unknown client {kind!r}; one of {', '.join((*KINDS, JSONL))}")
    figures: dict[str, Any] = {}
    if kind.startswith("engine"):
        seconds, cpu = _engine(url, items, concurrency, figures, jsonl=kind == JSONL, count_only=count_only)
    else:
        import aiohttp  # noqa: F401  (imported before the clock starts, as the engine's modules are)
        import httpx  # noqa: F401
        import uvloop

        cpu = _cpu_seconds()
        if kind == "aiohttp-uvloop":
            seconds = uvloop.run(_aiohttp(url, items, concurrency))
        elif kind == "aiohttp":
            seconds = asyncio.run(_aiohttp(url, items, concurrency))
        else:
            seconds = asyncio.run(_httpx(url, items, concurrency))
        cpu = _cpu_seconds() - cpu
    return {
        **figures,
        "seconds": seconds,
        "tasks_per_s": items / seconds,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_seconds() -> float:
    """This process's CPU time so far, every thread included, and that of its children that have ended (the
    engine's journal writer process, which ends with the run)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _engine(
    url: str, items: int, concurrency: int, figures: dict[str, Any], *, jsonl: bool, count_only: bool
) -> tuple[float, float]:
    _import_engine_modules()
    inputs: dict[str, Any] = {"api_url": f"{url}/api/v2"}
    os.environ["HTTPTASK_SECRET_CHARGEBEE_API_KEY"] = "bench_key"
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as data:
        path = Path(folder) / "journal.sqlite3"
        files: dict[str, Path] = {}
        if jsonl:
            files["invoices"] = Path(data) / "invoices.jsonl"
            with files["invoices"].open("w") as out:
                for n in range(items):
                    out.write(f'{{"id": "inv_{n}", "amount": 100}}\n')
        else:
            inputs["invoices"] = [{"id": f"inv_{n}", "amount": 100} for n in range(items)]
        workflow = _count_only(Path(data)) if count_only else EXAMPLE
        _create_journal(path)
        cpu = _cpu_seconds()
        started = time.perf_counter()
        result = _start_run(workflow, inputs, concurrency, path, files)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu
        figures["journal_mb"] = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
    if result.status != "succeeded":
        raise SystemExit(f"the engine's run failed: {result.errors[:3]}")
    return seconds, cpu


def _create_journal(path: Path) -> None:
    """The journal's file, made before the clock starts, as a user's journal is there after their first run:
    making a new SQLite file in WAL mode takes some 10 ms of fsyncs. Opening it, the run's rows and closing it
    (its checkpoint) are timed."""
    try:
        from httptask.journal import Journal
    except ImportError:
        return
    Journal(path).close()


def _count_only(folder: Path) -> Path:
    """The example with its `refunded` output only, written into `folder`."""
    workflow = yaml.safe_load(EXAMPLE.read_text())
    workflow["outputs"] = {"refunded": workflow["outputs"]["refunded"]}
    path = folder / EXAMPLE.name
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def _start_run(
    workflow: Path, inputs: dict[str, Any], concurrency: int, path: Path, files: dict[str, Path]
) -> Any:
    """A run of the example through the run lifecycle (`httptask.runs`), or through the engine module of a
    checkout from before that module existed (`--before`)."""
    try:
        from httptask.runs import start_run
    except ImportError:
        from httptask.engines.local import start_run  # type: ignore[attr-defined,no-redef]

        return start_run(workflow, inputs=inputs, concurrency=concurrency, journal_path=path)
    from httptask.catalog import Catalog
    from httptask.journal import Journal
    from httptask.secrets import SecretStore

    journal = Journal(path)
    try:
        return start_run(
            workflow,
            inputs=inputs,
            catalog=Catalog.default(),
            secrets=SecretStore(),
            journal=journal,
            concurrency=concurrency,
            **({"input_items": files} if files else {}),
        )
    finally:
        journal.close()


def _import_engine_modules() -> None:
    """The engine's modules, its lazy imports too, done before the clock starts (as the raw clients'
    libraries are): the run lifecycle imports the engine, the transport and aiohttp."""
    modules = ("httptask.runs", "httptask.catalog", "httptask.journal", "httptask.secrets")
    # What a run imports lazily: the excerpt cache, the user cache's place, the event loop, the thread pool.
    lazy = ("httptask.excerpts", "platformdirs", "uvloop", "concurrent.futures.thread")
    for name in (*modules, "httptask.validation", "httptask.encoding", "httptask.auth", *lazy):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


async def _workers(items: int, concurrency: int, send: Callable[[int], Any]) -> None:
    pending = iter(range(items))

    async def worker() -> None:
        for n in pending:
            await send(n)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _aiohttp(url: str, items: int, concurrency: int) -> float:
    import aiohttp

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def send(n: int) -> None:
            async with session.post(
                f"{url}/api/v2/invoices/inv_{n}/refund",
                data=BODY,
                headers={**HEADERS, "chargebee-idempotency-key": f"k{n}"},
            ) as response:
                await response.read()
                assert response.status == 200

        await _workers(items, concurrency, send)
    return time.perf_counter() - started


async def _httpx(url: str, items: int, concurrency: int) -> float:
    import httpx

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:

        async def send(n: int) -> None:
            response = await http.post(
                f"{url}/api/v2/invoices/inv_{n}/refund",
                content=BODY,
                headers={**HEADERS, "chargebee-idempotency-key": f"k{n}"},
            )
            assert response.status_code == 200

        await _workers(items, concurrency, send)
    return time.perf_counter() - started


if __name__ == "__main__":
    kind, url, items, concurrency = sys.argv[1:5]
    count_only = sys.argv[5:] == ["--count-only"]
    print(json.dumps(run(kind, url, int(items), int(concurrency), count_only=count_only)))
