"""`httptask run --workers N`: a forEach task's items shared out over N worker processes, each with its own
event loop, connection pool and journal writer, all writing one journal.

The process that owns the run (its lease) renders the items, schedules them, and has the run's starter
(`shard_starter`) fork a worker per shard. The starter is spawned when the run starts, so it imports what a
worker runs while the owner checks and schedules, once for every worker; each worker is handed what it acts
with (the workflow, its task's operations, the run's secret variables) through a socket, never its command
line or environment. Worker K acts on the items whose index is K modulo N, under the owner's lease: every
commit of a worker renews it and is refused once another process has taken the run over, so a worker follows
the same rules as the owner. The starter dies with the owner and each worker with the starter
(`PR_SET_PDEATHSIG`), and a worker ends when its socket to the owner closes; a worker that ends early leaves
its items to a resume, as a killed run does. Results come back as framed pickles on the worker's socket,
compact: what the task's tally and its errors need.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from . import frames
from .errors import UnknownOperation
from .frames import LENGTH
from .journal import Decision, StepRecord
from .reconcile import reconcile_of
from .redaction import RedactingStream, process_redactor
from .secrets import SECRET_VAR_PREFIX

if TYPE_CHECKING:
    from .catalog import Catalog
    from .spec import Operation
    from .tasks import Task
    from .workflow import Workflow

__all__ = [
    "MAX_WORKERS",
    "Shard",
    "Starter",
    "die_with",
    "frame",
    "run_shards",
    "shard_items",
    "task_operations",
    "unframe",
]

MAX_WORKERS = 64
_CHUNK = 1 << 16
_RELAY_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Shard:
    """What one worker acts on, and with what: everything a worker cannot read from the journal itself."""

    journal: str
    run_id: str
    lease: tuple[str, str]
    workflow: Workflow
    task_id: str
    # The operations the task sends to (its own, and the read of its x-reconcile): no catalog is loaded.
    operations: dict[str, Operation]
    number: int
    workers: int
    items: list[tuple[int, Any]]
    context: dict[str, Any]
    journaled: dict[str, tuple[str, Sequence[Any]]]  # the earlier forEach tasks: task id and items, by name
    inputs: Mapping[str, Any]
    secret_variables: dict[str, str]
    secrets_file: str | None
    sandbox_url: str | None
    concurrency: int
    strict_responses: bool
    previous: dict[tuple[str, int], StepRecord]
    decisions: dict[tuple[str, int], Decision]
    reconcile: bool
    twins: dict[tuple[str, int], tuple[int, int]]


def shard_items(items: Sequence[Any], workers: int) -> list[list[tuple[int, Any]]]:
    """Item N goes to worker N modulo `workers`: each item to exactly one worker, and no worker without one
    (fewer items than workers start fewer workers)."""
    workers = min(workers, len(items))
    return [
        [(index, items[index]) for index in range(number, len(items), workers)] for number in range(workers)
    ]


def task_operations(task: Task, catalog: Catalog, *, reconcile: bool) -> dict[str, Operation]:
    """The operations a worker acting on `task` sends to, by catalog id: the task's own and, when the run
    reconciles, the read its x-reconcile names."""
    if task.operation is None:
        return {}
    op = catalog.operation(task.operation)
    found = {task.operation: op}
    if reconcile:
        with contextlib.suppress(ValueError, UnknownOperation):  # the worker says so as the owner would
            read = reconcile_of(op)
            if read is not None:
                found[read.operation] = catalog.operation(read.operation)
    return found


def frame(message: Any) -> bytes:
    return frames.frame(pickle.dumps(message))


def unframe(buffer: bytearray) -> list[Any]:
    """The complete frames at the start of `buffer`, taken out of it."""
    return frames.unframe(buffer, pickle.loads)


def die_with(parent: int) -> None:
    """Be killed when process `parent` ends, even by SIGKILL (Linux); end now if it has ended already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


async def _frames(connection: socket.socket) -> AsyncIterator[Any]:
    """The frames read from a non-blocking socket until its other end closes (or ends with what this end
    sent it unread: a starter killed before it read its job)."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := await loop.sock_recv(connection, _CHUNK):
            buffer += chunk
            for message in unframe(buffer):
                yield message


@dataclass
class _Worker:
    """A worker as its owner sees it: its pid, its socket, and its exit status once it has ended (None when
    the starter ended first and cannot tell)."""

    pid: int | None
    connection: socket.socket
    ended: asyncio.Future[int | None]


class Starter:
    """`--workers N` as the run's owner holds it: the starter process (`shard_starter`), spawned before
    the run needs it, that imports a worker's modules once, forks a worker per shard, and tells how each
    ended."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._watching: asyncio.Task[None] | None = None
        self._relay: threading.Thread | None = None

    def __enter__(self) -> Starter:
        self.spawn()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:  # the run stopped early: no worker of it is to act
            self.kill()

    def spawn(self) -> None:
        """Start the starter process unless it runs: it imports while this process checks and schedules."""
        if self._process is not None and self._process.poll() is None:
            return
        self.close()
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "httptask.shard_starter", str(os.getpid())],
                stdin=theirs.fileno(),
                stderr=subprocess.PIPE,
                # Secrets reach a worker through its socket, in memory, never through its environment.
                env={name: v for name, v in os.environ.items() if not name.startswith(SECRET_VAR_PREFIX)},
            )
        assert self._process.stderr is not None
        self._relay = threading.Thread(
            target=_relay, args=(self._process.stderr,), name="httptask-workers-stderr", daemon=True
        )
        self._relay.start()
        ours.setblocking(False)
        self._control = ours

    async def start(self, shards: list[Shard]) -> list[_Worker]:
        """A worker per shard, each connected to this process by a socket of its own."""
        self.spawn()
        assert self._control is not None
        loop = asyncio.get_running_loop()
        pairs = [socket.socketpair() for _ in shards]
        body = pickle.dumps(shards)  # once: what the shards share is pickled once
        ended: list[asyncio.Future[int | None]] = [loop.create_future() for _ in shards]
        try:
            socket.send_fds(self._control, [LENGTH.pack(len(body))], [theirs.fileno() for _, theirs in pairs])
            await loop.sock_sendall(self._control, body)
        except OSError:  # the starter has ended: each worker's socket closes unread
            pass
        finally:
            for _, theirs in pairs:
                theirs.close()
        frames = _frames(self._control)
        pids: list[int | None] = [None] * len(shards)
        async for kind, value in frames:
            if kind == "started":
                pids = value
                break
        self._watching = asyncio.ensure_future(_watch(frames, ended))
        workers = []
        for pid, (ours, _), end in zip(pids, pairs, ended, strict=True):
            ours.setblocking(False)
            workers.append(_Worker(pid, ours, end))
        return workers

    def kill(self) -> None:
        """End the starter now; its workers die with it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.close()

    def close(self) -> None:
        """Let the starter end (it ends when its socket closes) and wait for it."""
        if self._watching is not None:
            self._watching.cancel()
            self._watching = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._relay is not None:
            self._relay.join(_RELAY_SECONDS)  # what the workers printed last is shown before the run's end
            self._relay = None


def _relay(pipe: IO[bytes]) -> None:
    """Copy what the starter and its workers print (an unexpected traceback, say) to this process's standard
    error through the redactor guarding it, so a secret a worker holds never reaches the terminal that way.
    It keeps reading when writing fails: a worker blocked on a full pipe would never end."""
    stream = sys.stderr
    if not isinstance(stream, RedactingStream):
        stream = RedactingStream(stream, process_redactor())
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with pipe:
        while chunk := os.read(pipe.fileno(), _CHUNK):
            with contextlib.suppress(OSError, ValueError):
                stream.write(decoder.decode(chunk))
    with contextlib.suppress(OSError, ValueError):
        stream.write(decoder.decode(b"", final=True))
        stream.flush()


async def _watch(frames: AsyncIterator[Any], ended: list[asyncio.Future[int | None]]) -> None:
    """Hand each worker its exit status as the starter reports it; None to those left when it ends."""
    try:
        async for kind, (number, code) in frames:
            if kind == "ended":
                ended[number].set_result(code)
                if all(end.done() for end in ended):
                    return
    finally:
        for end in ended:
            if not end.done():
                end.set_result(None)


async def run_shards(shards: list[Shard], on_step: Callable[[Any], None], starter: Starter) -> list[str]:
    """Run one worker process per shard until all have ended, handing each item's step to `on_step`; why
    each worker that did not finish its items ended (an empty list when all did)."""
    workers = await starter.start(shards)
    try:
        ended = await asyncio.gather(
            *(_drive(worker, shard, on_step) for worker, shard in zip(workers, shards, strict=True))
        )
    except BaseException:  # the owner is being cancelled: its workers end with the starter
        starter.kill()
        raise
    finally:
        for worker in workers:
            worker.connection.close()
    return [why for why in ended if why]


async def _drive(worker: _Worker, shard: Shard, on_step: Callable[[Any], None]) -> str | None:
    error: str | None = None
    finished = False
    async for kind, value in _frames(worker.connection):
        if kind == "steps":
            for step in value:
                on_step(step)
        elif kind == "error":
            error = value
        else:
            finished = True
    code = await worker.ended
    pid = f" (pid {worker.pid})" if worker.pid is not None else ""  # None: the starter ended before it
    where = f"worker {shard.number + 1} of {shard.workers}{pid}"
    if error is not None:
        return f"{where} stopped: {error}"
    if finished and code == 0:
        return None
    if code is None:
        how = "ended with the process that started it"
    elif code < 0:
        how = f"was killed by signal {-code}"
    else:
        how = f"ended with exit status {code}"
    return f"{where} {how} before it finished its items; 'httptask run --resume {shard.run_id}' finishes them"
