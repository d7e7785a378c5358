"""The journal's writer as its parent sees it: requests shipped from the event loop, group commits made
elsewhere (`journal_commit`), and each commit's answer handed back on the loop.

`WriterThread` commits on a thread of this process (the default). `WriterProcess` commits in a process of its
own, so SQLite, fsync and the commit's Python work hold no lock of the event loop's interpreter; it reads
requests from a socket and ends when the socket closes, so a parent killed with `kill -9` leaves no writer
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from . import journal_commit
from .journal_commit import STOP, Answer, Committer, Request, frame, read_frames

__all__ = ["WRITERS", "Spawned", "Writer", "WriterProcess", "WriterThread"]

# Called on the event loop's thread with each commit's answer.
OnAnswer = Callable[[Answer], None]
_CHUNK = 1 << 20


class Writer(Protocol):
    def ship(self, requests: list[Request]) -> None:
        """Hand requests to the writer; any thread may call it."""

    def poll(self) -> None:
        """Hand over the answers that have arrived (on the loop's thread)."""

    def stop(self) -> None:
        """Commit what was shipped, hand over every answer, and end."""


# The writer process imports this package's commit module and what it imports, nothing else (-I -S: no site
# folder, no environment variable, no current folder on the path, so no file of the user's shadows a module).
# An empty module stands in for the package, whose __init__ (the public API's errors and types) would cost
# each run's writer 10 ms of CPU.
_WRITER = (
    "import sys, types; package = types.ModuleType('httptask'); package.__path__ = [sys.argv[1]]; "
    "sys.modules['httptask'] = package; from httptask.journal_commit import main; main()"
)


def command(fd: int, path: Path) -> list[str]:
    """How the writer process starts: reading socket `fd`, writing the journal at `path`."""
    package_folder = str(Path(journal_commit.__file__).resolve().parent)
    return [sys.executable, "-I", "-S", "-c", _WRITER, package_folder, str(fd), str(path)]


class Spawned:
    """A writer process started for the journal at `path` and not yet writing: it starts up (some 40 ms of
    CPU) while its parent does other work, then `WriterProcess` takes it. Closed unused, it ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                command(theirs.fileno(), path),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # Nothing of the run's environment, secrets included.
                env={"PATH": os.environ.get("PATH", "")},
            )

    def close(self) -> None:
        self.socket.close()  # the writer reads the end of its socket and ends
        self.process.wait()


class WriterProcess:
    """The writer in a child process (`journal_commit.main`), fed through a socket pair; one started
    beforehand (`spawned`) for the same journal, or a new one."""

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, on_answer: OnAnswer, spawned: Spawned | None = None
    ) -> None:
        if spawned is None or spawned.path != path:
            if spawned is not None:
                spawned.close()
            spawned = Spawned(path)
        ours, self._process = spawned.socket, spawned.process
        ours.setblocking(False)
        self._socket, self._loop, self._on_answer = ours, loop, on_answer
        self._lock = threading.Lock()  # the heartbeat thread ships too
        self._inbox = bytearray()
        self._gone = False
        self._reading = True  # the loop watches the socket until the writer ends or is stopped
        loop.add_reader(ours.fileno(), self.poll)

    def ship(self, requests: list[Request]) -> None:
        data = memoryview(frame(requests))
        with self._lock:
            while data and not self._gone:
                try:
                    data = data[self._socket.send(data) :]
                except BlockingIOError:
                    # The writer is behind: wait, taking in its answers meanwhile so it never waits on us.
                    readable, _, _ = select.select([self._socket], [self._socket], [])
                    if readable:
                        self._receive()
                        self._wake()
                except OSError:
                    self._gone = True
        if self._gone:
            self._wake()

    def _wake(self) -> None:
        """Have the loop read the answers (from any thread; a loop already closed has no one to tell)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.poll)

    def poll(self) -> None:
        if not self._reading:  # stopped, or the writer's end was reported already
            return
        with self._lock:
            self._receive()
            answers = read_frames(self._inbox)
            gone = self._gone and not self._inbox
        for answer in answers:
            self._on_answer(answer)
        if gone:  # said once, then the socket is no longer watched
            self._reading = False
            self._loop.remove_reader(self._socket.fileno())
            try:
                code: int | None = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            self._on_answer((0, 0.0, ("gone", code), []))

    def _receive(self) -> None:
        """Take in what has arrived; the lock is held."""
        try:
            while chunk := self._socket.recv(_CHUNK):
                self._inbox += chunk
            self._gone = True  # the writer closed its end: it has ended
        except BlockingIOError:
            pass
        except OSError:
            self._gone = True

    def stop(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._socket.fileno())
        self.ship([(0, STOP, None)])
        with self._lock:
            self._socket.setblocking(True)
            try:
                while chunk := self._socket.recv(_CHUNK):
                    self._inbox += chunk
            except OSError:
                pass
            self._gone = True
        answers = read_frames(self._inbox)
        for answer in answers:
            self._on_answer(answer)
        self._socket.close()
        code = self._process.wait()
        if code != 0:  # it did not commit the last of what it was sent
            self._on_answer((0, 0.0, ("gone", code), []))


class WriterThread:
    """The writer on a thread of this process."""

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, on_answer: OnAnswer, spawned: Spawned | None = None
    ) -> None:
        assert spawned is None, "a writer thread takes no process"
        self._queue: queue.SimpleQueue[list[Request]] = queue.SimpleQueue()
        self._loop, self._on_answer = loop, on_answer
        self._committer = Committer(path)
        self._last: Answer = (0, 0.0, None, [])
        self._thread = threading.Thread(target=self._write_forever, name="httptask-journal", daemon=True)
        self._thread.start()

    def ship(self, requests: list[Request]) -> None:
        self._queue.put(requests)

    def poll(self) -> None:
        """Answers arrive through the loop's own callbacks."""

    def stop(self) -> None:
        self._queue.put([(0, STOP, None)])
        self._thread.join()
        self._committer.close()
        self._on_answer(self._last)

    def _write_forever(self) -> None:
        stopping = False
        while not stopping:
            requests = self._queue.get()
            while True:
                try:
                    requests += self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = any(kind == STOP for _, kind, _ in requests)
            self._last = answer = self._committer.commit(requests)
            if not stopping:
                self._loop.call_soon_threadsafe(self._on_answer, answer)


WRITERS: dict[str, type[WriterProcess] | type[WriterThread]] = {
    "process": WriterProcess,
    "thread": WriterThread,
}
