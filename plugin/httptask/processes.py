"""Whether the process holding a run's lease lives, and how old its heartbeat is, told without the wall clock.

A lease records its holder's pid and, on Linux, an identity (the machine's boot id and the process's start
time in clock ticks since boot) and stamps its heartbeats with CLOCK_BOOTTIME, which every process of one
boot shares and which no one can set. A pid alone can be reused by another process, and the age of a
wall-clock heartbeat is fooled by a clock set forward: on the holder's own machine neither is trusted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["boot_clock", "identity", "same_process"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def identity(pid: int | None = None) -> str | None:
    """`boot_id:start_ticks` of a process (this one by default), or None where /proc does not tell."""
    try:
        return f"{_boot_id()}:{_started(pid or os.getpid())}"
    except (OSError, ValueError, IndexError):
        return None


def same_process(pid: int, recorded: str) -> bool | None:
    """Whether `pid` is still the process whose identity was recorded: False when it exited, is a zombie,
    or the pid is another process's now, or the machine restarted; None when this machine cannot tell."""
    boot, _, started = recorded.rpartition(":")
    try:
        if _boot_id() != boot:
            return False
        return str(_started(pid)) == started
    except FileNotFoundError:
        return _gone_or_hidden(pid)
    except (OSError, ValueError, IndexError):
        return None


def _gone_or_hidden(pid: int) -> bool | None:
    """False when `pid`, which /proc does not show, has exited (or is a zombie); None when it lives and /proc
    hides it (another user's process, /proc mounted with hidepid): whose it is cannot be told then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None
    return False


def boot_clock() -> float | None:
    """Seconds since this machine booted (CLOCK_BOOTTIME: counts suspend, cannot be set), or None where
    there is no such clock. Comparable only between processes of one boot."""
    if not hasattr(time, "CLOCK_BOOTTIME"):
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _boot_id() -> str:
    return _BOOT_ID.read_text().strip()


def _started(pid: int) -> int:
    """A live process's start time in clock ticks since boot, from /proc/PID/stat; a zombie counts as gone."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name, in parentheses, may hold spaces and parentheses: fields follow its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X", "x"):
        raise FileNotFoundError(pid)
    return int(fields[19])
