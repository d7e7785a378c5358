"""Test request as an SSRF vector: loopback, private, link-local and metadata destinations are refused, by
address, by name after resolution (a stubbed resolver) and on redirects, before any connection is made.

The session's socket-level tripwire (tests/tripwire.py) refuses and records every connection beyond loopback,
so even a broken guard sends no packet off this machine, and the tests see that it tried.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from browser_setup import running_editor
from httptask.catalog import Catalog
from httptask.errors import SendError
from httptask.messages import HttpRequest
from httptask.netguard import static_resolve
from httptask.server import ServerConfig
from httptask.skeleton import task_definition
from httptask.transport import Sender

RESOLVER = static_resolve(
    {
        "internal.example": ["127.0.0.1"],
        "private.example": ["10.0.0.7"],
        "metadata.example": ["169.254.169.254"],
        "mixed.example": ["93.184.216.34", "10.0.0.8"],
    }
)


class _Redirector(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        target = {
            "/to-private": "http://10.1.2.3/",
            "/to-name": "http://private.example/",
            "/to-self": "/landed",
        }.get(self.path)
        if target is None:
            self.send_response(200)
            self.send_header("content-length", "6")
            self.end_headers()
            self.wfile.write(b"landed")
            return
        self.send_response(302)
        self.send_header("location", target)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read responses, not the log."""


@pytest.fixture(scope="module")
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def editor(catalog: Catalog, redirector: str) -> Iterator[str]:
    config = ServerConfig(allow_hosts=(redirector,), resolve=RESOLVER)
    with running_editor(config, catalog) as url:
        yield url


def _send(editor: str, url: str, **extra: Any) -> httpx.Response:
    task = {"id": "probe", "httpRequest": {"url": url}, "retry": {"maxAttempts": 1}, **extra}
    return httpx.post(f"{editor}/api/test-request", json={"task": task}, timeout=30)


def _refusal(host: str, reason: str, allow: str) -> str:
    return (
        f"Refused to connect to {host}: it is {reason}. Test requests only reach public addresses; "
        f"to allow this host start the server with --allow-host {allow}."
    )


def _another_form(host: str, address: str, reason: str) -> str:
    return (
        f"Refused to connect to {host} ({address}): it is {reason} written in another form; write addresses "
        f"the usual way, as {address}, so that every resolver reads them alike."
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/", _refusal("127.0.0.1", "a loopback address", "127.0.0.1:9")),
        ("http://[::1]:9/", _refusal("::1", "a loopback address", "::1:9")),
        ("http://localhost:9/admin", _refusal("localhost (127.0.0.1)", "a loopback address", "localhost:9")),
        ("http://10.20.30.40/", _refusal("10.20.30.40", "a private address", "10.20.30.40:80")),
        ("http://192.168.1.1/", _refusal("192.168.1.1", "a private address", "192.168.1.1:80")),
        (
            "http://169.254.169.254/latest/meta-data/",
            _refusal("169.254.169.254", "a cloud metadata address", "169.254.169.254:80"),
        ),
        (
            "http://[fd00:ec2::254]/",
            _refusal("fd00:ec2::254", "a cloud metadata address", "fd00:ec2::254:80"),
        ),
        (
            "http://internal.example:8080/",
            _refusal("internal.example (127.0.0.1)", "a loopback address", "internal.example:8080"),
        ),
        (
            "http://private.example/",
            _refusal("private.example (10.0.0.7)", "a private address", "private.example:80"),
        ),
        (
            "http://metadata.example/",
            _refusal("metadata.example (169.254.169.254)", "a cloud metadata address", "metadata.example:80"),
        ),
        (
            "http://mixed.example/",
            _refusal("mixed.example (10.0.0.8)", "a private address", "mixed.example:80"),
        ),
        ("http://127.1:9/", _another_form("127.1", "127.0.0.1", "a loopback address")),
        ("http://2130706433/", _another_form("2130706433", "127.0.0.1", "a loopback address")),
        ("http://010.0.0.1/", _another_form("010.0.0.1", "8.0.0.1", "a public address")),
        (
            "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
            _another_form("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1", "a loopback address"),
        ),
    ],
)
def test_refused_destinations_are_a_400_and_nothing_connects(
    editor: str, tripwire: list[Any], url: str, message: str
) -> None:
    response = _send(editor, url)
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == message
    assert data["request"]["url"] == url
    assert tripwire == []


def test_a_url_that_cannot_be_sent_is_a_422_and_nothing_connects(editor: str, tripwire: list[Any]) -> None:
    response = _send(editor, "file:///etc/passwd")
    assert response.status_code == 422
    assert response.json()["issues"] == [
        {
            "path": "$.httpRequest.url",
            "message": "must start with http:// or https://",
            "expected": "an http or https URL",
            "actual": "file:///etc/passwd",
            "line": None,
        }
    ]
    assert tripwire == []


def test_an_operations_server_url_pointing_inside_is_refused(
    editor: str, catalog: Catalog, tripwire: list[Any]
) -> None:
    task = task_definition(
        catalog.operation("chargebee.record_refund"),
        {
            "invoice-id": "inv_1",
            "body.memo": "m",
            "body.transaction.amount": 1,
            "body.transaction.payment_method": "check",
            "body.transaction.date": 1517467200,
        },
    )
    task["server"] = {"url": "http://169.254.169.254/latest"}
    task["retry"] = {"maxAttempts": 1}
    # Without credentials: a request that carries a secret is refused anywhere its operation does not
    # document (tests/test_editor_credentials.py); this one reaches the SSRF guard.
    task.pop("credentials", None)
    response = httpx.post(f"{editor}/api/test-request", json={"task": task}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"] == _refusal(
        "169.254.169.254", "a cloud metadata address", "169.254.169.254:80"
    )
    assert tripwire == []


@pytest.mark.parametrize(
    ("path", "target"), [("/to-private", "http://10.1.2.3"), ("/to-name", "http://private.example")]
)
def test_a_redirect_inside_is_refused_before_connecting(
    editor: str, redirector: str, tripwire: list[Any], path: str, target: str
) -> None:
    response = _send(editor, f"http://{redirector}{path}", followRedirects=True)
    assert response.status_code == 502
    assert response.json()["error"] == (
        f"Refused a redirect from http://{redirector} to another host ({target}); "
        "only same-host redirects are followed."
    )
    assert tripwire == []


def test_redirects_are_not_followed_unless_the_task_asks(editor: str, redirector: str) -> None:
    response = _send(editor, f"http://{redirector}/to-private")
    assert response.status_code == 200
    data = response.json()["response"]
    assert (data["status"], data["headers"]["location"]) == (302, "http://10.1.2.3/")


def test_an_allowed_host_is_reached_and_same_host_redirects_followed(editor: str, redirector: str) -> None:
    response = _send(editor, f"http://{redirector}/to-self", followRedirects=True)
    assert response.status_code == 200
    assert response.json()["response"]["body"] == "landed"


def test_the_tripwire_itself_stops_and_records_a_connection_beyond_loopback(tripwire: list[Any]) -> None:
    async def unguarded() -> None:
        async with Sender() as sender:
            await sender.send(HttpRequest("GET", "http://10.1.2.3/", (), b""))

    with pytest.raises(SendError, match=r"Could not connect to http://10\.1\.2\.3: "):
        asyncio.run(unguarded())
    assert [address[0] for address in tripwire] == ["10.1.2.3"]
