"""Run `httptask` and kill -9 it at a chosen point of its Nth request, for the fault-injection tests:

    python tests/crashpoints.py POINT N run WORKFLOW --input ...

POINT is where the process dies, by SIGKILL sent to itself (nothing is flushed, nothing is cleaned up):

    before-sent-commit            the request is about to be journaled as 'sent'; nothing of it is committed
    after-sent-before-write       'sent' is committed; no byte of the request has left
    after-answer-before-finished  the answer came back; the journal does not have it yet
    during-group-commit           inside the Nth group commit's transaction, its statements run, not committed

(The fifth point, mid-write, is the server's: the fault server's `hold` reads half a body, then the test kills
the process.) The patches wrap the journal's and the transport's own entry points, so the engine runs as is.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

POINTS = (
    "before-sent-commit",
    "after-sent-before-write",
    "after-answer-before-finished",
    "during-group-commit",
)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(n: int) -> Callable[[], bool]:
    """True on the Nth call (from any thread)."""
    lock, seen = threading.Lock(), [0]

    def reached() -> bool:
        with lock:
            seen[0] += 1
            return seen[0] == n

    return reached


def install(point: str, n: int) -> None:
    from httptask import journal, transport

    reached = _counter(n)
    if point == "before-sent-commit":
        begin_send = journal.Journal.begin_send

        async def before_sent(self: Any, *args: Any, **kwargs: Any) -> None:
            if reached():
                _die()
            await begin_send(self, *args, **kwargs)

        journal.Journal.begin_send = before_sent  # type: ignore[method-assign]
    elif point in ("after-sent-before-write", "after-answer-before-finished"):
        send = transport.Sender.send

        async def sending(self: Any, *args: Any, **kwargs: Any) -> Any:
            if point == "after-sent-before-write" and reached():
                _die()
            response = await send(self, *args, **kwargs)
            if point == "after-answer-before-finished" and reached():
                _die()
            return response

        transport.Sender.send = sending  # type: ignore[method-assign]
    elif point == "during-group-commit":
        execute = journal._execute

        def executing(connection: Any, statements: Any) -> None:
            execute(connection, statements)
            if reached():
                _die()  # inside the group's transaction: its statements ran, nothing is committed

        journal._execute = executing
    else:
        raise SystemExit(f"unknown crash point {point!r}; one of {', '.join(POINTS)}")


def main() -> None:
    point, n, *args = sys.argv[1:]
    install(point, int(n))
    from httptask.cli import cli

    sys.argv = ["httptask", *args]
    cli.main(args=args, prog_name="httptask")


if __name__ == "__main__":
    main()
