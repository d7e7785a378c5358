"""No test reaches beyond loopback: the socket-level tripwire refuses it in this process, and `make test`
runs the suite in a network namespace whose only interface is loopback, for what bypasses Python's sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from typing import Any

import pytest


def test_a_blocking_connect_beyond_loopback_is_refused_and_recorded(tripwire: list[Any]) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="tripwire"):
        sock.connect(("10.1.2.3", 80))
    assert tripwire == [("10.1.2.3", 80)]


def test_an_event_loop_connect_beyond_loopback_is_refused(tripwire: list[Any]) -> None:
    async def connect() -> None:
        await asyncio.open_connection("192.168.7.7", 443)

    with pytest.raises(ConnectionRefusedError, match="tripwire"):
        asyncio.run(connect())
    assert [address[0] for address in tripwire] == ["192.168.7.7"]


def test_a_datagram_beyond_loopback_is_refused(tripwire: list[Any]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ConnectionRefusedError):
        sock.sendto(b"x", ("8.8.8.8", 53))
    assert tripwire == [("8.8.8.8", 53)]


def test_a_name_lookup_beyond_loopback_is_refused_but_loopback_names_resolve(tripwire: list[Any]) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.getaddrinfo("example.com", 443)
    assert tripwire == [("example.com", 443)]
    assert socket.getaddrinfo("localhost", 80)
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_loopback_is_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_the_suite_runs_in_a_loopback_only_network_namespace() -> None:
    if os.environ.get("HTTPTASK_NETNS") != "1":
        pytest.skip("not run by `make test` in a network namespace (HTTPTASK_NETNS is unset)")
    # if_nameindex asks the kernel about this process's namespace (/sys/class/net may show the host's).
    interfaces = sorted(name for _, name in socket.if_nameindex())
    assert interfaces == ["lo"], f"the namespace has more than loopback: {interfaces}"
    # A process without the tripwire, connecting as C code would: the namespace alone must stop it.
    probe = (
        "import socket, sys\n"
        "s = socket.socket()\n"
        "s.settimeout(2)\n"
        "sys.exit(s.connect_ex(('10.1.2.3', 80)))\n"
    )
    code = subprocess.run([sys.executable, "-c", probe], timeout=10).returncode
    assert code == 101  # ENETUNREACH: no route exists, so nothing was sent


def test_the_namespace_stops_uvloop_whose_connects_the_tripwire_cannot_see() -> None:
    if os.environ.get("HTTPTASK_NETNS") != "1":
        pytest.skip("not run by `make test` in a network namespace (HTTPTASK_NETNS is unset)")
    # Checked first, so this test can never send a packet from a namespace that has a way out.
    assert sorted(name for _, name in socket.if_nameindex()) == ["lo"]
    # uvloop connects in C (libuv), without Python's socket module: no audit event, so only the namespace
    # stands between it and the address. A fresh process has no tripwire at all.
    probe = (
        "import asyncio, sys, uvloop\n"
        "async def main():\n"
        "    try:\n"
        "        await asyncio.wait_for(asyncio.open_connection('10.1.2.3', 80), 2)\n"
        "    except OSError as exc:\n"
        "        sys.exit(exc.errno)\n"
        "    sys.exit('connected')\n"
        "uvloop.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], timeout=10, capture_output=True, text=True)
    assert done.returncode == 101, done.stderr  # ENETUNREACH from libuv: no route, nothing sent
