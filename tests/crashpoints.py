"""Run `httptask` and kill -9 it at a chosen point of its Nth request, for the fault-injection tests:

    python tests/crashpoints.py POINT N run WORKFLOW --input ...

POINT is where the process dies, by SIGKILL sent to itself (nothing is flushed, nothing is cleaned up), or,
written `stop:POINT`, where it stops itself with SIGSTOP (a test wakes it with SIGCONT):

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
from pathlib import Path
from typing import Any

POINTS = (
    "before-sent-commit",
    "after-sent-before-write",
    "after-answer-before-finished",
    "during-group-commit",
)


_SIGNAL = [signal.SIGKILL]
WRITER = str(Path(__file__).with_name("crashpoint_writer.py"))


def _die() -> None:
    os.kill(os.getpid(), _SIGNAL[0])


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

    if point.startswith("stop:"):
        point = point.removeprefix("stop:")
        _SIGNAL[0] = signal.SIGSTOP
    reached = _counter(n)
    if point in ("before-sent-commit", "after-sent-before-write"):
        begin_send = journal.Journal.begin_send

        async def around_sent(self: Any, *args: Any, **kwargs: Any) -> None:
            if point == "before-sent-commit" and reached():
                _die()
            await begin_send(self, *args, **kwargs)
            if point == "after-sent-before-write" and reached():
                _die()

        journal.Journal.begin_send = around_sent  # type: ignore[method-assign]
    elif point == "after-answer-before-finished":
        send = transport.Sender.send

        async def sending(self: Any, *args: Any, **kwargs: Any) -> Any:
            response = await send(self, *args, **kwargs)
            if reached():
                _die()
            return response

        transport.Sender.send = sending  # type: ignore[method-assign]
    elif point == "during-group-commit":
        from httptask import journal_commit, journal_writer

        if (os.environ.get(journal.WRITER_VAR) or journal.DEFAULT_WRITER) == "process":
            # The group commit runs in the journal's writer process: it kills this process, then itself.
            def command(fd: int, path: Any) -> list[str]:
                plugin = str(Path(journal_commit.__file__).resolve().parents[1])
                signal_name = _SIGNAL[0].name
                return [sys.executable, "-I", "-S", WRITER, plugin, str(n), signal_name, str(fd), str(path)]

            journal_writer.command = command
        else:
            execute = journal_commit.execute

            def executing(connection: Any, statements: Any) -> None:
                execute(connection, statements)
                if reached():
                    _die()  # inside the group's transaction: its statements ran, nothing is committed

            journal_commit.execute = executing
    else:
        raise SystemExit(f"unknown crash point {point!r}; one of {', '.join(POINTS)}")


def killed_run(env: dict[str, str], point: str, n: int, *args: str) -> str:
    """Run `httptask ARGS` (a run) killed with SIGKILL at POINT of its Nth request; the run id it journaled
    in `env`'s HTTPTASK_JOURNAL."""
    import sqlite3
    import subprocess

    command = [sys.executable, __file__, point, str(n), *args]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs ORDER BY started_at DESC").fetchone()
    return str(run_id)


def later(hours: float) -> str:
    """Python code that runs `httptask ARGV` with its clock `hours` ahead (a resume a day later, in a test
    that does not wait a day): `[sys.executable, "-c", later(25), "run", ...]`."""
    return (
        f"import sys, time\nreal = time.time\ntime.time = lambda: real() + {hours} * 3600\n"
        "from httptask.cli import main\nsys.argv = ['httptask', *sys.argv[1:]]\nmain()\n"
    )


def main() -> None:
    point, n, *args = sys.argv[1:]
    install(point, int(n))
    from httptask.cli import main as httptask

    sys.argv = ["httptask", *args]
    httptask()


if __name__ == "__main__":
    main()
