"""A worker of `httptask run --workers N` (`shards`): what its shards share made ready once in the starter,
before it forks (`ready`), then one shard's items acted on in the forked worker (`act`).
"""

from __future__ import annotations

import asyncio
import os
import select
import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from . import eventloop
from .catalog import Catalog
from .engines.local import ForEachResults, LocalEngine
from .engines.protocol import Resumption, Wiring
from .errors import HttptaskError
from .frames import LENGTH
from .journal import Journal
from .runs import lean_gc, preload_secrets
from .secrets import SecretStore
from .shards import Shard, die_with, frame
from .tasks import Task
from .transport import Sender
from .workflow import Workflow

__all__ = ["Ready", "act", "ready"]


@dataclass(frozen=True)
class Ready:
    """What every worker of a forEach acts with, made once before they are forked."""

    workflow: Workflow
    task: Task
    catalog: Catalog
    secrets: SecretStore


def ready(shard: Shard) -> Ready | HttptaskError:
    """The workflow's task, a catalog of its operations and the run's secrets (every one the workflow names
    resolved); the error each worker is to report when they cannot be had. Opens no journal: a connection
    to it must not be carried over a fork."""
    try:
        task = shard.workflow.task(shard.task_id)
        assert task is not None
        secrets = SecretStore(
            environ=shard.secret_variables, file=Path(shard.secrets_file) if shard.secrets_file else None
        )
        preload_secrets(shard.workflow, secrets)
    except HttptaskError as exc:
        return exc
    return Ready(shard.workflow, task, Catalog.of(shard.operations), secrets)


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
        data = memoryview(frame((kind, value)))
        while data:
            try:
                data = data[os.write(self._fd, data) :]
            except BlockingIOError:
                # The socket is full (a frame of many steps, each with a response off its spec): the owner
                # reads as it goes; a frame written in part and then dropped would garble every one after.
                select.select([], [self._fd], [])


def act(shard: Shard, fd: int, made: Ready | HttptaskError, starter: int) -> NoReturn:
    """In a process just forked by the starter (pid `starter`): act on the shard's items, write their steps
    to socket `fd`, and end; never returns into the starter's code."""
    code = 1
    try:
        die_with(starter)
        results = _Results(fd)
        try:
            if isinstance(made, HttptaskError):
                raise made
            with lean_gc():
                eventloop.run(_work(shard, fd, made, results))
        except HttptaskError as exc:
            results.send("error", str(exc))
            code = 2
        else:
            results.send("done", None)
            code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


async def _work(shard: Shard, fd: int, made: Ready, results: _Results) -> None:
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, lambda: os.read(fd, LENGTH.size) or os._exit(1))  # the owner's end closed: it ended
    journal = Journal(Path(shard.journal))
    try:
        journal.share_lease(*shard.lease)
        async with Sender(max_connections=shard.concurrency) as sender:
            wiring = Wiring(
                made.workflow,
                made.catalog,
                made.secrets,
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
                context = {
                    **shard.context,
                    **{
                        name: ForEachResults(journal, shard.run_id, task_id, items)
                        for name, (task_id, items) in shard.journaled.items()
                    },
                }
                await engine.act_on(
                    shard.run_id, shard.inputs, resumption, shard.twins, made.task, shard.items, context,
                    results.add,
                )  # fmt: skip
            finally:
                results.flush()
                journal.stop()
    finally:
        journal.close()
