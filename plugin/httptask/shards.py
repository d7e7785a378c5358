"""`httptask run --workers N`: a forEach task's items shared out over N worker processes, each with its own
event loop, connection pool and journal writer, all writing one journal.

The process that owns the run (its lease) renders the items, schedules them, and starts the workers; worker K
acts on the items whose index is K modulo N, under the owner's lease: every commit of a worker renews it and
is refused once another process has taken the run over, so a worker follows the same rules as the owner. Each
worker dies with the owner (`PR_SET_PDEATHSIG`, and its standard input closing); a worker that ends early
leaves its items to a resume, as a killed run does. Results come back as framed pickles on the worker's
standard output, compact: what the task's tally and its errors need.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import HttptaskError
from .journal import Decision, StepRecord

__all__ = ["MAX_WORKERS", "Shard", "run_shards"]

MAX_WORKERS = 64
_LENGTH = struct.Struct("<I")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Shard:
    """What one worker acts on, and with what: everything a worker cannot read from the journal itself."""

    journal: str
    run_id: str
    lease: tuple[str, str]
    task_id: str
    number: int
    workers: int
    items: list[tuple[int, Any]]
    context: dict[str, Any]
    inputs: Mapping[str, Any]
    secrets_file: str | None
    sandbox_url: str | None
    concurrency: int
    strict_responses: bool
    previous: dict[tuple[str, int], StepRecord]
    decisions: dict[tuple[str, int], Decision]
    reconcile: bool
    twins: dict[tuple[str, int], tuple[int, int]]


def shard_items(items: Sequence[Any], workers: int) -> list[list[tuple[int, Any]]]:
    """Item N goes to worker N modulo `workers`: each item to exactly one worker."""
    return [
        [(index, items[index]) for index in range(number, len(items), workers)] for number in range(workers)
    ]


async def run_shards(shards: list[Shard], on_step: Callable[[Any], None]) -> list[str]:
    """Run one worker process per shard until all have ended, handing each item's step to `on_step`; why
    each worker that did not finish its items ended (an empty list when all did)."""
    started = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "httptask.shards",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in shards
    ]
    try:
        ended = await asyncio.gather(
            *(_drive(process, shard, on_step) for process, shard in zip(started, shards, strict=True))
        )
    finally:
        for process in started:  # a worker still running (the owner is being cancelled) ends with it
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    return [why for why in ended if why]


async def _drive(
    process: asyncio.subprocess.Process, shard: Shard, on_step: Callable[[Any], None]
) -> str | None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(pickle.dumps(shard))
    await process.stdin.drain()  # its standard input stays open: it closes when this process ends
    error: str | None = None
    finished = False
    try:
        while True:
            head = await process.stdout.readexactly(_LENGTH.size)
            kind, value = pickle.loads(await process.stdout.readexactly(_LENGTH.unpack(head)[0]))
            if kind == "steps":
                for step in value:
                    on_step(step)
            elif kind == "error":
                error = value
            else:
                finished = True
    except asyncio.IncompleteReadError:
        pass
    process.stdin.close()
    code = await process.wait()
    where = f"worker {shard.number + 1} of {shard.workers} (pid {process.pid})"
    if error is not None:
        return f"{where} stopped: {error}"
    if finished and code == 0:
        return None
    how = f"was killed by signal {-code}" if code < 0 else f"ended with exit status {code}"
    return f"{where} {how} before it finished its items; 'httptask run --resume {shard.run_id}' finishes them"


# -- in the worker -------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Be killed when the process that started this one ends, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # it had ended already
        os._exit(1)


class _Results:
    """Steps written to the owner in one frame per turn of the event loop."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._steps: list[Any] = []

    def add(self, step: Any) -> None:
        if not self._steps:
            asyncio.get_running_loop().call_soon(self.flush)
        # The tally needs the state and the status; a response only when it breaks its spec.
        odd = step.response is not None and step.response.get("issues")
        self._steps.append(step if odd else replace(step, response=None))

    def flush(self) -> None:
        if self._steps:
            steps, self._steps = self._steps, []
            self.send("steps", steps)

    def send(self, kind: str, value: Any) -> None:
        body = pickle.dumps((kind, value))
        data = memoryview(_LENGTH.pack(len(body)) + body)
        while data:
            data = data[os.write(self._fd, data) :]


async def _work(shard: Shard, results: _Results) -> None:
    from .catalog import Catalog
    from .engines.local import LocalEngine
    from .engines.protocol import Resumption, Wiring
    from .journal import Journal
    from .runs import preload_secrets
    from .secrets import SecretStore
    from .transport import Sender
    from .workflow import parse_workflow_text

    loop = asyncio.get_running_loop()
    loop.add_reader(0, lambda: os.read(0, 1 << 16) or os._exit(1))  # the owner's end closed: it has ended
    journal = Journal(Path(shard.journal))
    try:
        journal.share_lease(*shard.lease)
        record = journal.run(shard.run_id)
        workflow = parse_workflow_text(record.workflow_text, record.file)
        task = workflow.task(shard.task_id)
        assert task is not None
        secrets = SecretStore(file=Path(shard.secrets_file) if shard.secrets_file else None)
        preload_secrets(workflow, secrets)
        async with Sender(max_connections=shard.concurrency) as sender:
            wiring = Wiring(
                workflow,
                Catalog.default(),
                secrets,
                journal,
                sender,
                shard.sandbox_url,
                shard.concurrency,
                strict_responses=shard.strict_responses,
            )
            engine = LocalEngine(wiring)
            journal.start(loop)
            try:
                resumption = Resumption(shard.previous, shard.decisions, shard.reconcile)
                await engine.act_on(
                    shard.run_id, shard.inputs, resumption, shard.twins, task, shard.items, shard.context,
                    results.add,
                )  # fmt: skip
            finally:
                results.flush()
                journal.stop()
    finally:
        journal.close()


def main() -> None:
    """A worker: its shard from standard input, its items acted on, their steps to standard output."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle: it ends its workers
    shard: Shard = pickle.load(sys.stdin.buffer)
    results = _Results(os.dup(1))
    os.dup2(2, 1)  # whatever else this process prints goes to standard error, not into the frames
    from . import eventloop

    try:
        eventloop.run(_work(shard, results))
    except HttptaskError as exc:
        results.send("error", str(exc))
        sys.exit(2)
    results.send("done", None)


if __name__ == "__main__":
    main()
