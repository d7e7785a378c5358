"""`httptask worker`: runs the generic workflow and the HTTP activities for one task queue until stopped.

Start as many as needed, on as many machines: they share the work of every run on their task queue. Each holds
its own credentials (environment or secrets file); none are sent to Temporal.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from ...catalog import Catalog
from ...secrets import SecretStore
from ...transport import Sender
from .activities import Activities
from .connection import Connection, connect
from .history import HistoryReader
from .workflows import ChunkWorkflow, RunWorkflow

__all__ = ["WorkerSettings", "run_worker"]


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker takes work; see the README's "Settings"."""

    concurrency: int = 64
    # A workflow whose worker was killed waits this long before another worker takes it over.
    sticky_seconds: float = 3.0
    # On Ctrl-C or SIGTERM, requests in flight get this long to finish before they are cancelled.
    drain_seconds: float = 30.0


async def run_worker(
    connection: Connection,
    *,
    settings: WorkerSettings | None = None,
    secrets_file: Path | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Poll `connection.task_queue` until SIGINT or SIGTERM, then finish what is in flight and return."""
    settings = settings or WorkerSettings()
    client = await connect(connection)
    catalog = Catalog.default()
    secrets = SecretStore(file=secrets_file)
    async with Sender(max_connections=settings.concurrency) as sender:
        activities = Activities(HistoryReader(client), catalog=catalog, secrets=secrets, sender=sender)
        worker = Worker(
            client,
            task_queue=connection.task_queue,
            workflows=[RunWorkflow, ChunkWorkflow],
            activities=activities.all(),
            max_concurrent_activities=settings.concurrency,
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_seconds),
            graceful_shutdown_timeout=timedelta(seconds=settings.drain_seconds),
            # The SDK sends a heartbeat at most every 0.8 x the heartbeat timeout by default: 4 s of a 5 s
            # timeout, so a busy worker's live batches timed out. Once a second leaves room for a slow loop.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
        )
        _lean_gc()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        try:
            async with worker:
                if on_ready is not None:
                    on_ready()
                await stop.wait()
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
            activities.close()


# The young generation's threshold while a worker runs: each request allocates a few hundred objects that die
# young, and the default 700 collected them thousands of times a second.
_WORKER_GC_THRESHOLD = 50_000


def _lean_gc() -> None:
    """What start-up made (the catalog, the SDK's modules) is frozen out of the collector's sight, and the
    young generation is collected less often. The 3,000-item fan-out of bench/temporal_fanout.py: worker CPU
    per item 0.53 -> 0.46 ms (median of 3, interleaved)."""
    gc.freeze()
    gc.set_threshold(_WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])
