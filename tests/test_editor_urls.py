"""Schemathesis against the editor's Test request with malformed URLs in every place a URL goes (a raw task's
URL, an operation's server URL and its server variables): user info, numbers in every form a resolver reads,
non-ASCII and disguised hosts, odd ports and schemes. Not one answer is a 500, and not one connection is made
to anything but a public address (which the loopback tripwire then refuses: nothing leaves the machine).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from browser_setup import bundled_catalog, running_editor
from httptask.netguard import static_resolve
from httptask.server import ServerConfig

_OCTET = st.integers(0, 255)
_NUMERIC_HOSTS = st.one_of(
    st.tuples(_OCTET, _OCTET, _OCTET, _OCTET).map(lambda p: ".".join(map(str, p))),
    st.tuples(_OCTET, _OCTET, _OCTET, _OCTET).map(lambda p: ".".join(f"{n:03d}" for n in p)),
    st.tuples(_OCTET, _OCTET, _OCTET, _OCTET).map(lambda p: ".".join(f"0{n:o}" for n in p)),
    st.tuples(_OCTET, _OCTET, _OCTET, _OCTET).map(lambda p: ".".join(f"0x{n:x}" for n in p)),
    st.integers(0, 2**32 - 1).map(str),
    st.integers(0, 2**32 - 1).map(hex),
    st.tuples(_OCTET, st.integers(0, 2**24 - 1)).map(lambda p: f"{p[0]}.{p[1]}"),
    st.sampled_from(["127.1", "0", "0.0.0.0", "169.254.169.254", "10.0.0.1", "[::1]", "[::ffff:127.0.0.1]",
                     "[fe80::1%25eth0]", "[::1", "[fd00:ec2::254]", "localhost", "localhost.", "LOCALHOST"]),
)  # fmt: skip
# Each ASCII digit, dot and letter to its full-width form (U+FF10 on for digits, U+FF41 on for letters).
_FULL_WIDTH = str.maketrans(
    {
        **{c: chr(0xFF10 + i) for i, c in enumerate("0123456789")},
        ".": "\uff0e",
        **{c: chr(0xFF41 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")},
    }
)
_HOSTS = st.one_of(
    _NUMERIC_HOSTS,
    _NUMERIC_HOSTS.map(lambda host: host.translate(_FULL_WIDTH)),
    st.sampled_from(["example.com", "b\u00fccher.de", "\U0001f511.example", "exa mple.com", "-x.example",
                     "a" * 64 + ".example", "x_y.example", "%00.example", "example.com:", "",
                     "\uff45\uff58.com"]),
    st.text(min_size=1, max_size=12),
)  # fmt: skip
_USERINFO = st.sampled_from(["", "", "user@", "user:pass@", ":@", "@", "a:b:c@", "%40@"])
_PORTS = st.one_of(
    st.just(""),
    st.integers(-1, 70000).map(lambda p: f":{p}"),
    st.sampled_from([":", ":abc", ":\uff18\uff10"]),
)
_SCHEMES = st.sampled_from(
    ["http://", "https://", "HTTP://", "ftp://", "file://", "javascript:", "//", "", "http:"]
)
URLS = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}{user}{host}{port}{path}",
    _SCHEMES, _USERINFO, _HOSTS, _PORTS, st.sampled_from(["/", "/refunds?x=1", "", "/#frag", "/%zz"]),
)  # fmt: skip


def _task(draw: st.DrawFn) -> dict[str, Any]:
    url = draw(URLS)
    kind = draw(st.sampled_from(["raw", "server url", "server variable"]))
    if kind == "raw":
        return {"id": "t", "httpRequest": {"method": "POST", "url": url}, "retry": {"maxAttempts": 1}}
    server = {"url": url} if kind == "server url" else {"site": draw(_HOSTS | st.text(max_size=10))}
    return {
        "id": "t",
        "operation": "chargebee.record_refund",
        "server": server,
        "retry": {"maxAttempts": 1},
        "request": {
            "path": {"invoice-id": "inv_1"},
            "body": {"memo": "m", "transaction": {"amount": 1, "payment_method": "check", "date": 1}},
        },
    }


@pytest.fixture(scope="module")
def editor_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    catalog = bundled_catalog(tmp_path_factory.mktemp("cache"))
    config = ServerConfig(resolve=static_resolve({}), call_timeout_seconds=2)
    with running_editor(config, catalog) as url:
        yield url


def _public(address: Any) -> bool:
    try:
        return ipaddress.ip_address(str(address[0]).strip("[]").split("%")[0]).is_global
    except ValueError:
        return False  # a name looked up: the static resolver should have answered it


def test_malformed_urls_never_make_a_server_error(editor_url: str, tripwire: list[Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{editor_url}/openapi.json")

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        return st.composite(lambda draw: {"task": _task(draw), "input": {}})()

    operation = schema["/api/test-request"]["POST"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=int(os.environ.get("HTTPTASK_FUZZ_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Any) -> None:
        response = case.call()
        # 502 is the answer for a public address: the tripwire refused the connection, as an upstream would.
        assert response.status_code in (400, 422, 502), response.text
        assert response.json()["error"]

    check()
    assert [address for address in tripwire if not _public(address)] == [], "the guard let one through"
