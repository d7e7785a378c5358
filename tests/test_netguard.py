"""The SSRF guard in the real transport: private, loopback, link-local and metadata destinations are refused
before any connection, names are checked after (stubbed) resolution, and the allow-list lets hosts through."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from httptask.errors import DestinationRefused, NotSent
from httptask.messages import HttpRequest, HttpResponse
from httptask.netguard import DestinationPolicy, refusal_reason, static_resolve
from httptask.transport import Sender, Timeouts, check_url
from servers import RecordingServer


def _send(url: str, policy: DestinationPolicy, table: dict[str, list[str]] | None = None) -> HttpResponse:
    async def go() -> HttpResponse:
        # The stub resolver answers every name: nothing is ever looked up or reached beyond loopback.
        async with Sender(policy=policy, resolve=static_resolve(table or {})) as sender:
            return await sender.send(HttpRequest("GET", url), timeouts=Timeouts(connect=0.5, read=1))

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("[fd00:ec2::254]", "a cloud metadata address"),
        ("[::ffff:127.0.0.1]", "a loopback address"),
    ],
)
def test_ip_literals_are_refused_before_connecting(host: str, reason: str) -> None:
    with pytest.raises(DestinationRefused) as caught:
        _send(f"http://{host}:8080/x", DestinationPolicy())
    bare = host.strip("[]")
    assert str(caught.value) == (
        f"Refused to connect to {bare}: it is {reason}. Test requests only reach public "
        f"addresses; to allow this host start the server with --allow-host {bare}:8080."
    )


def test_a_name_resolving_to_loopback_is_refused_and_nothing_arrives(server: RecordingServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    with pytest.raises(DestinationRefused) as caught:
        _send(
            f"http://api.example.com:{port}/refund", DestinationPolicy(), {"api.example.com": ["127.0.0.1"]}
        )
    assert str(caught.value) == (
        "Refused to connect to api.example.com (127.0.0.1): it is a loopback address. Test "
        "requests only reach "
        f"public addresses; to allow this host start the server with --allow-host api.example.com:{port}."
    )
    assert server.requests == []


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(DestinationRefused):
        _send(
            "http://mixed.example.com/",
            DestinationPolicy(),
            {"mixed.example.com": ["93.184.216.34", "10.0.0.5"]},
        )


def test_localhost_is_refused_without_resolving() -> None:
    with pytest.raises(DestinationRefused):
        _send("http://localhost:1/", DestinationPolicy())


def test_non_http_schemes_are_refused() -> None:
    with pytest.raises(DestinationRefused) as caught:
        _send("file:///etc/passwd", DestinationPolicy())
    assert str(caught.value) == "Refused the URL 'file:///etc/passwd': only http and https are allowed."


def test_the_allow_list_by_host_and_by_host_and_port(server: RecordingServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    table = {"sandbox.test": ["127.0.0.1"]}
    assert _send(f"http://sandbox.test:{port}/a", DestinationPolicy(["sandbox.test"]), table).status == 200
    assert _send(f"http://127.0.0.1:{port}/b", DestinationPolicy([f"127.0.0.1:{port}"])).status == 200
    with pytest.raises(DestinationRefused):
        _send(f"http://127.0.0.1:{port}/c", DestinationPolicy([f"127.0.0.1:{port + 1}"]))
    assert [r.path for r in server.requests[-2:]] == ["/a", "/b"]
    assert "/c" not in [r.path for r in server.requests]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("100.100.100.200", "a cloud metadata address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("fe80::1", "a link-local address"),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("host", "address", "reason"),
    [
        ("127.1", "127.0.0.1", "a loopback address"),
        ("2130706433", "127.0.0.1", "a loopback address"),
        ("0x7f.1", "127.0.0.1", "a loopback address"),
        ("0x7f000001", "127.0.0.1", "a loopback address"),
        ("0177.0.0.1", "127.0.0.1", "a loopback address"),
        ("127.000.000.001", "127.0.0.1", "a loopback address"),
        ("127.0.0.1.", "127.0.0.1", "a loopback address"),
        ("010.0.0.1", "8.0.0.1", "a public address"),
        ("134744072", "8.8.8.8", "a public address"),
        ("169.254.43518", "169.254.169.254", "a cloud metadata address"),
        ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1", "a loopback address"),
        ("\u2460\u2461\u2466.0.0.1", "127.0.0.1", "a loopback address"),
        ("127\u30020\u30020\u30021", "127.0.0.1", "a loopback address"),
    ],
)
def test_an_address_written_in_another_form_is_refused_as_that_address(
    host: str, address: str, reason: str
) -> None:
    message = (
        f"Refused to connect to {host} ({address}): it is {reason} written in another form; write addresses "
        f"the usual way, as {address}, so that every resolver reads them alike."
    )
    # With the editor's guard, and without one (the CLI), alike.
    for check in (DestinationPolicy().check_url, check_url):
        with pytest.raises(DestinationRefused) as caught:
            check(f"http://{host}:8080/x")
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://user:pw@example.com/",
            "Refused the URL 'http://user:pw@example.com/': it carries a user name or password.",
        ),
        (
            "http://example.com:99999/",
            "Refused the URL 'http://example.com:99999/': Port out of range 0-65535.",
        ),
        ("http://[::1/", "Refused the URL 'http://[::1/': Invalid IPv6 URL."),
        ("http:///x", "Refused the URL 'http:///x': it has no host."),
    ],
)
def test_urls_that_name_no_clear_destination_are_refused(url: str, message: str) -> None:
    with pytest.raises(DestinationRefused) as caught:
        DestinationPolicy().check_url(url)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "host", ["example.com", "b\u00fccher.de", "1.2.3.4", "[2606:4700::1111]", "cafe.beef"]
)
def test_public_names_and_canonical_addresses_pass(host: str) -> None:
    DestinationPolicy().check_url(f"https://{host}/")


def test_a_host_name_in_full_width_letters_is_refused_as_the_name_it_disguises() -> None:
    with pytest.raises(DestinationRefused) as caught:
        DestinationPolicy().check_url("http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/")
    assert str(caught.value) == (
        "Refused to connect to \uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com: it is the host name "
        "example.com "
        "written in other characters; write it as example.com."
    )


def test_one_sender_checks_every_origin_it_has_not_let_through_before(server: RecordingServer) -> None:
    # A sender remembers the origins it let through: a URL that only begins like one of them is checked.
    port = server.url.rsplit(":", 1)[1]
    allowed = f"http://127.0.0.1:{port}"
    refused = [
        f"http://127.0.0.1:{port}@10.0.0.5/x",
        f"http://user:pw@127.0.0.1:{port}/x",
        f"http://127.0.0.1:{port}0/x",
        f"http://127.0.0.1:{port}.example.com/x",
        f"http://127.1:{port}/x",
        f"file://127.0.0.1:{port}/x",
    ]

    async def go() -> list[str]:
        said = []
        async with Sender(policy=DestinationPolicy([f"127.0.0.1:{port}"]), resolve=static_resolve({})) as s:
            for url in [f"{allowed}/a", *refused, f"{allowed}/b"]:
                try:
                    said.append(str((await s.send(HttpRequest("GET", url), timeouts=Timeouts(1, 1))).status))
                except NotSent as exc:
                    said.append(str(exc).split(" ")[0])
        return said

    assert asyncio.run(go()) == ["200", "Refused", "Refused", "Not", "Not", "Refused", "Refused", "200"]
    assert [r.path for r in server.requests] == ["/a", "/b"]
