"""A socket-level tripwire for the whole test session: no Python socket connects, sends or resolves a name
beyond loopback.

It is an audit hook (PEP 578), so it sees every `socket.connect`, `sendto`, `sendmsg` and `getaddrinfo`
made through Python's socket module, whatever event loop or client library made it. An event loop written in
C (uvloop) connects without the socket module; for that, `make test` runs the suite in a network namespace
that has only loopback, so even then no packet leaves the machine.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

__all__ = ["ATTEMPTS", "install"]

# Every refused destination, in order: a test that expects a refusal reads and clears it (the `tripwire`
# fixture); any other test fails when something lands here.
ATTEMPTS: list[Any] = []

_LOCAL_NAMES = ("localhost", "localhost.", "ip6-localhost")


def _is_loopback_host(host: object) -> bool:
    if not isinstance(host, str | bytes):
        return host is None  # getaddrinfo(None, port) means the wildcard/loopback address: no packet
    text = host.decode() if isinstance(host, bytes) else host
    text = text.strip("[]").split("%")[0].lower()
    if text in _LOCAL_NAMES or text.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _is_numeric(host: object) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1]
        # AF_UNIX paths and socketpairs are local by nature.
        if not isinstance(address, tuple) or not address:
            return
        host = address[0]
    elif event == "socket.getaddrinfo":
        host = args[0]
        # A numeric address resolves without a lookup; connecting to it is checked above.
        if host is not None and _is_numeric(host):
            return
    else:
        return
    if not _is_loopback_host(host):
        ATTEMPTS.append(args[1] if event != "socket.getaddrinfo" else (host, args[1]))
        raise ConnectionRefusedError(f"tripwire: the tests may not reach {host!r} ({event})")


_installed = False


def install() -> None:
    """Install the hook once per process (audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
