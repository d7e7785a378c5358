"""The starter of a run's `--workers` (`shards`): a process that imports what a worker runs once, then, for
each forEach the owner shares out, makes ready what its workers share and forks one worker per shard.

It is spawned fresh (`python -m httptask.shard_starter OWNER_PID`), opens no journal and starts no thread, so
each fork copies one thread and no database connection. It reads jobs from its standard input, a socket to
the owner: a length with one socket per worker (`SCM_RIGHTS`), then the pickled shards. It answers on the
same socket: the workers' pids once forked, then each one's exit status as it ends.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import socket
import sys
import threading

# Everything a worker runs is imported with these, once, before the first fork.
from . import eventloop
from .frames import LENGTH
from .shard_worker import act, ready
from .shards import MAX_WORKERS, Shard, die_with, frame

__all__ = ["main"]


def _exactly(connection: socket.socket, size: int, start: bytes = b"") -> bytes:
    data = bytearray(start)
    while len(data) < size:
        chunk = connection.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def _job(control: socket.socket) -> tuple[list[Shard], list[int]] | None:
    """The next shards and their sockets; None once the owner has closed its end."""
    try:
        head, fds, _, _ = socket.recv_fds(control, LENGTH.size, MAX_WORKERS)
        if not head:
            return None
        (size,) = LENGTH.unpack(_exactly(control, LENGTH.size, head))
        shards: list[Shard] = pickle.loads(_exactly(control, size))
    except EOFError:
        return None
    return shards, fds


def _serve(control: socket.socket, shards: list[Shard], fds: list[int]) -> None:
    """Fork a worker per shard, and report their pids, then how each ended."""
    made = ready(shards[0])
    if threading.active_count() != 1:  # a fork would copy a thread's locks without the thread
        raise RuntimeError("the starter of --workers started a thread; it forks only while it has none")
    gc.freeze()  # what the workers share stays out of each one's collections (and its pages stay shared)
    me = os.getpid()
    pids = []
    for number, (shard, fd) in enumerate(zip(shards, fds, strict=True)):
        pid = os.fork()
        if pid == 0:
            control.close()
            for other in fds[number + 1 :]:
                os.close(other)
            act(shard, fd, made, me)
        os.close(fd)
        pids.append(pid)
    control.sendall(frame(("started", pids)))
    for _ in pids:
        pid, status = os.wait()
        control.sendall(frame(("ended", (pids.index(pid), os.waitstatus_to_exitcode(status)))))


def main() -> None:
    """Serve the owner (its pid the first argument) until it closes the socket on standard input."""
    die_with(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle: it ends the run
    os.dup2(2, 1)  # whatever a worker prints goes to standard error
    eventloop.preload()
    control = socket.socket(fileno=os.dup(0))
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # takes descriptor 0: no worker reads the owner's socket by mistake
    while (job := _job(control)) is not None:
        _serve(control, *job)


if __name__ == "__main__":
    main()
