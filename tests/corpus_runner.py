"""Runs command-line cases of the bad-input corpus, each in a child forked from this already-started process,
and reports what each did: exit code, stdout, stderr, wall and processor time, and peak memory.

Forking from a process that has imported httptask measures a case's own work rather than Python's start;
each child has a hard address-space limit, so a case that would blow up cannot take the machine with it.
Reads a JSON list of cases on stdin; writes one JSON line per case on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

# Imported before any case runs: each child then starts with them loaded, as the command would have them.
import httptask.checks
import httptask.cli
import httptask.engines.local
import httptask.execute
import httptask.importer
import httptask.spec

HARD_LIMIT_BYTES = 1536 * 1024 * 1024
KILL_AFTER_SECONDS = 20.0


def run_case(case: dict[str, Any], root: Path) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(dir=root))
    for name, text in case.get("files", {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    out, err = folder / ".stdout", folder / ".stderr"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(case, folder, out, err)
    deadline = started + KILL_AFTER_SECONDS
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    return {
        "name": case["name"],
        "code": code,
        "stdout": out.read_text(errors="replace"),
        "stderr": err.read_text(errors="replace"),
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
    }


def _child(case: dict[str, Any], folder: Path, out: Path, err: Path) -> None:
    code = 70
    try:
        resource.setrlimit(resource.RLIMIT_AS, (HARD_LIMIT_BYTES, HARD_LIMIT_BYTES))
        os.chdir(folder)
        for name, value in case.get("env", {}).items():
            os.environ[name] = value.replace("{folder}", str(folder))
        stdout = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        stderr = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        sys.argv = ["httptask", *case["argv"]]
        try:
            httptask.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            # What the command would have printed had it crashed: the test then shows the traceback.
            traceback.print_exc()
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    cases = json.load(sys.stdin)
    root = Path(tempfile.mkdtemp(prefix="httptask-corpus-"))
    for case in cases:
        print(json.dumps(run_case(case, root)), flush=True)


if __name__ == "__main__":
    main()
