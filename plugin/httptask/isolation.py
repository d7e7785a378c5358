"""Untrusted work in worker processes with a time and a memory limit, so a template or YAML bomb costs one
worker and never the editor's event loop: a worker that runs over is killed and a fresh one takes its place.

Workers are forked from a small server process that has already imported httptask, so a new one is ready in
tens of milliseconds; they run at a lower priority than the editor, which keeps answering meanwhile.

The limit is on the processor time a job uses, not on the clock: a niced worker on a busy machine may wait
long for a core, and an honest request must not fail for that. The clock still caps a job at
`_WALL_FACTOR` times the limit, so one that sleeps or blocks is stopped too.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .errors import OverLimit

__all__ = ["WorkerPool"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["httptask.server"])
# Lower than the editor's own priority: a worker busy with a bomb slows nobody else down.
_NICENESS = 10
_WALL_FACTOR = 10
_READY_SECONDS = 60.0
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection


class WorkerPool:
    """`size` worker processes, each set up once with ``setup(*setup_args)``, each job limited to ``seconds``
    and each worker to ``memory_bytes`` of address space."""

    def __init__(
        self,
        *,
        setup: Callable[..., None],
        setup_args: tuple[Any, ...] = (),
        size: int = 2,
        seconds: float = 1.5,
        memory_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._setup = setup
        self._setup_args = setup_args
        self._size = size
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self._idle: asyncio.Queue[_Worker] | None = None
        self._started = asyncio.Event()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Start the workers now rather than on the first job; a second caller waits for the first."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self._size):
                self._idle.put_nowait(await asyncio.to_thread(self._start))
            self._started.set()
        await self._started.wait()

    async def run(self, function: Callable[..., Any], *args: Any, seconds: float | None = None) -> Any:
        """``function(*args)`` in a worker: its result, or the exception it raised (which must pickle);
        `OverLimit` if it ran past the time limit (the pool's, or `seconds`) or out of memory. Waits for a
        free worker."""
        await self.start()
        assert self._idle is not None
        worker = await self._idle.get()
        replace = True
        try:
            limit = self.seconds if seconds is None else seconds
            status, value = await asyncio.to_thread(self._call, worker, function, args, limit)
            replace = False
        finally:
            if replace:
                worker = await asyncio.to_thread(self._replace, worker)
            self._idle.put_nowait(worker)
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            _stop(worker)

    def _start(self) -> _Worker:
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_serve,
            args=(child, self.memory_bytes, self._setup, self._setup_args),
            name="httptask-worker",
            daemon=True,
        )
        process.start()
        child.close()
        # Setting up (loading the catalog) is not part of any job's time: wait for the worker to say so.
        if not parent.poll(_READY_SECONDS) or parent.recv() != "ready":
            process.kill()
            raise OverLimit(f"A worker of the editor did not start within {_READY_SECONDS:g} s.")
        worker = _Worker(process, parent)
        with self._lock:
            self._all.append(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        _stop(worker)
        return self._start()

    def _call(
        self, worker: _Worker, function: Callable[..., Any], args: tuple[Any, ...], seconds: float
    ) -> tuple[str, Any]:
        try:
            worker.connection.send((function, args))
            if not _answered_in_time(worker, seconds):
                raise OverLimit(
                    f"The request needed more than {seconds:g} s to prepare and was stopped; nothing "
                    "was sent. Simplify its templates or make it smaller."
                )
            status, value = worker.connection.recv()
        except (EOFError, OSError):
            # The worker died, and only the memory limit kills one: the kernel refused it more.
            raise _out_of_memory(self.memory_bytes) from None
        return status, value


def _answered_in_time(worker: _Worker, seconds: float) -> bool:
    """Wait for the answer while the job has used less than `seconds` of processor time and less than
    `_WALL_FACTOR` times that on the clock."""
    pid = worker.process.pid
    assert pid is not None
    started, used_before = time.monotonic(), _cpu_seconds(pid)
    while True:
        if worker.connection.poll(min(seconds, 0.1)):
            return True
        waited = time.monotonic() - started
        used_now = _cpu_seconds(pid)
        spent = waited if used_before is None or used_now is None else used_now - used_before
        if spent >= seconds or waited >= seconds * _WALL_FACTOR:
            return False


def _cpu_seconds(pid: int) -> float | None:
    """The processor time process `pid` has used, from /proc; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def _stop(worker: _Worker) -> None:
    worker.process.kill()
    worker.process.join(5)
    with contextlib.suppress(OSError):
        worker.connection.close()


def _serve(
    connection: Connection, memory_bytes: int, setup: Callable[..., None], args: tuple[Any, ...]
) -> None:
    """A worker's life: set up, then run each job it is sent, answering ("ok", result) or ("error", exc)."""
    os.nice(_NICENESS)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    setup(*args)
    connection.send("ready")
    while True:
        try:
            function, job_args = connection.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", function(*job_args))
        except MemoryError:
            reply = ("error", _out_of_memory(memory_bytes))
        except Exception as exc:
            reply = ("error", exc)
        try:
            connection.send(reply)
        except Exception as exc:  # an answer that does not pickle is a bug: report it as one
            connection.send(("error", RuntimeError(f"a worker's answer could not be sent back: {exc!r}")))


def _out_of_memory(memory_bytes: int) -> OverLimit:
    return OverLimit(
        f"The request needed more than the {memory_bytes // 2**20} MB of memory the editor gives one request "
        "and was stopped; nothing was sent. Make it smaller."
    )
