"""The SSRF guard: refuse destinations that resolve to loopback, private, link-local, multicast, reserved or
cloud-metadata addresses, checked after DNS resolution on every connection (so every redirect too).

It is the resolver the transport connects with, so the addresses it vets are the ones the connection uses: a
name cannot resolve to a public address for the check and to a private one for the connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypedDict
from urllib.parse import urlsplit

from .errors import DestinationRefused

__all__ = ["DestinationPolicy", "GuardedResolver", "check_spelling", "refusal_reason", "static_resolve"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ResolveResult(TypedDict):
    """One address a name resolves to, as a resolve function gives it."""

    hostname: str
    host: str
    port: int
    family: int
    proto: int
    flags: int


ResolveFunction = Callable[[str, int, int], Awaitable[list[ResolveResult]]]

_NUMERIC = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?")
# Not private by ipaddress's rules, but metadata endpoints of cloud providers all the same.
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


def refusal_reason(address: Address) -> str | None:
    """Why an address must not be reached from a shared server, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA or address == ipaddress.ip_address("169.254.169.254"):
        return "a cloud metadata address"
    for check, reason in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        # Before is_private, which 0.0.0.0 and :: also satisfy: "unspecified" says why it reaches this host.
        ("is_unspecified", "an unspecified address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, check):
            return reason
    return None if address.is_global else "not a public address"


class DestinationPolicy:
    """Which destinations may be reached: public addresses and hosts allowed by name (`host`, `host:port`)."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self.allow_hosts = frozenset(host.lower().strip("[]") for host in allow_hosts)

    def allows_host(self, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        return host in self.allow_hosts or f"{host}:{port}" in self.allow_hosts

    def check_address(self, host: str, port: int | None, address: str) -> None:
        if self.allows_host(host, port):
            return
        reason = refusal_reason(ipaddress.ip_address(address.split("%")[0]))
        if reason is not None:
            shown = host if host == address else f"{host} ({address})"
            raise DestinationRefused(
                f"Refused to connect to {shown}: it is {reason}. Test requests only reach public addresses; "
                "to allow this host start the server with --allow-host "
                + (f"{host}:{port}" if port else host)
                + "."
            )

    def check_url(self, url: str) -> None:
        """Refuse non-HTTP schemes, user info, a host not written the usual way (`check_spelling`), and hosts
        that are addresses (never resolved) when the address is not allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise DestinationRefused(f"Refused the URL {url!r}: {exc}.") from None
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused(f"Refused the URL {url!r}: only http and https are allowed.")
        if "@" in parts.netloc:
            raise DestinationRefused(f"Refused the URL {url!r}: it carries a user name or password.")
        host = parts.hostname or ""
        if not host:
            raise DestinationRefused(f"Refused the URL {url!r}: it has no host.")
        check_spelling(host)
        if _address(host) is None:
            if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
                self.check_address(host, port, "127.0.0.1")
            return
        self.check_address(host, port, host)


def check_spelling(host: str) -> None:
    """Refuse a host that is an IPv4 address in another form than the usual one (`127.1`, `2130706433`,
    `0x7f.1`, `010.0.0.1`, `127。0。0。1`, full-width digits) or an ASCII name in other characters: resolvers
    disagree on what these name, so every command refuses them, with or without a guard."""
    problem = _misspelling(host)
    if problem is not None:
        raise DestinationRefused(problem)


@functools.lru_cache(maxsize=256)
def _misspelling(host: str) -> str | None:
    """Why `check_spelling` refuses `host`, or None; remembered, as every request of a run asks again."""
    address = _address(host)
    spelled = _ascii_spelling(host)
    if address is None and spelled is not None:
        return (
            f"Refused to connect to {host}: it is the host name {spelled} written in other characters; "
            f"write it as {spelled}."
        )
    if isinstance(address, ipaddress.IPv4Address) and str(address) != host:
        reason = refusal_reason(address) or "a public address"
        return (
            f"Refused to connect to {host} ({address}): it is {reason} written in another form; "
            f"write addresses the usual way, as {address}, so that every resolver reads them alike."
        )
    return None


def _ascii_spelling(host: str) -> str | None:
    """The ASCII name a non-ASCII ``host`` only disguises (in full-width letters, say), else None; a real
    internationalised name (`bücher.de`, sent as `xn--bcher-kva.de`) disguises none."""
    if host.isascii():
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return None if "xn--" in ascii_host else ascii_host


def _address(host: str) -> Address | None:
    """The IP address ``host`` denotes when it is written as one in any form a resolver accepts, else None."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    try:
        # IDNA maps full-width and other compatibility digits to ASCII ones (U+FF11 FULLWIDTH DIGIT ONE is 1).
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = host
    if not _NUMERIC.fullmatch(ascii_host):
        return None
    try:
        return ipaddress.ip_address(ascii_host)
    except ValueError:
        pass
    try:
        # The C resolver's reading: 127.1, 2130706433, 0x7f.1 and 0177.0.0.1 are all 127.0.0.1.
        return ipaddress.IPv4Address(socket.inet_aton(ascii_host.rstrip(".")))
    except OSError:
        return None


class GuardedResolver:
    """The addresses to connect to for a host: resolved with `resolve` (the system resolver by default) and,
    under a policy, every one of them checked before any connection (one refused address refuses the host)."""

    def __init__(
        self, policy: DestinationPolicy | None = None, resolve: ResolveFunction | None = None
    ) -> None:
        self._policy = policy
        self._resolve = resolve

    async def addresses(self, host: str, port: int) -> list[str]:
        if _literal(host):
            found = [host]
        elif self._resolve is not None:
            found = [str(result["host"]) for result in await self._resolve(host, port, socket.AF_UNSPEC)]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found = [_address_text(info[4]) for info in infos]
        if self._policy is not None:
            for address in found:
                self._policy.check_address(host, port, address)
        return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=256)
def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def _address_text(sockaddr: Any) -> str:
    """An address from getaddrinfo as text, with an IPv6 address's scope (`fe80::1%2`)."""
    address = str(sockaddr[0])
    return f"{address}%{sockaddr[3]}" if len(sockaddr) >= 4 and sockaddr[3] else address


def static_resolve(table: dict[str, list[str]]) -> ResolveFunction:
    """A resolver function answering from a table (for tests and offline use); no packet leaves."""

    async def resolve(host: str, port: int, family: int) -> list[ResolveResult]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        results: list[ResolveResult] = []
        for address in table[host]:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    return resolve
