"""secret_origins.py: the origins a request carrying a secret may go to, from the editor."""

from __future__ import annotations

import pytest

from httptask.errors import DestinationRefused, UsageError
from httptask.secret_origins import ReadSecrets, check_secret_destination, normal_origin
from httptask.secrets import SecretStore
from httptask.spec import Operation, Server, ServerVariable

CHARGEBEE = Server(
    url="https://{site}.chargebee.com/api/v2", variables=(ServerVariable(name="site", default="acme"),)
)
REGIONAL = Server(
    url="https://api.{region}.example.com:8443",
    variables=(ServerVariable(name="region", default="eu", enum=("eu", "us")),),
)


def operation(*servers: Server) -> Operation:
    return Operation(api="vendor", operation_id="refund", method="POST", path="/x", servers=servers)


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.chargebee.com/api/v2/invoices/1/refund",
        "HTTPS://Acme-2.ChargeBee.com:443/api/v2/x",
        "https://api.us.example.com:8443/refunds",
    ],
)
def test_a_documented_server_may_get_the_secret(url: str) -> None:
    check_secret_destination(url, ["KEY"], operation(CHARGEBEE, REGIONAL), ())


@pytest.mark.parametrize(
    "url",
    [
        "https://collector.example/api/v2",
        "https://a.b.chargebee.com/api/v2",  # a variable is one label: no dot, no other domain
        "https://acme.chargebee.com.collector.example/api/v2",
        "https://evil.com#.chargebee.com/api/v2",
        "https://acme.chargebee.com@collector.example/api/v2",  # user info, then the host
        "https://acme.chargebee.com./api/v2",  # the root's dot: another spelling is not documented
        "http://acme.chargebee.com/api/v2",  # another scheme
        "https://acme.chargebee.com:8443/api/v2",  # another port
        "https://api.ap.example.com:8443/refunds",  # not in the enum
        "https://api.eu.example.com/refunds",  # the documented port is 8443
        "not a url",
    ],
)
def test_anywhere_else_is_refused_before_sending(url: str) -> None:
    with pytest.raises(DestinationRefused, match="Not sent: this request carries the secret KEY") as refused:
        check_secret_destination(url, ["KEY", "KEY"], operation(CHARGEBEE, REGIONAL), ())
    assert "https://{site}.chargebee.com/api/v2" in str(refused.value)


def test_an_allowed_origin_is_compared_as_an_origin() -> None:
    allowed = ("https://Collector.example:443",)
    check_secret_destination("https://collector.example/log?x=1", ["KEY"], None, allowed)
    with pytest.raises(DestinationRefused, match="A raw request sends a secret only to an origin allowed"):
        check_secret_destination("https://collector.example:444/log", ["KEY"], None, allowed)


def test_a_request_without_secrets_goes_anywhere() -> None:
    check_secret_destination("https://collector.example/log", [], None, ())


def test_a_relative_server_documents_no_origin() -> None:
    with pytest.raises(DestinationRefused):
        check_secret_destination("https://collector.example/x", ["KEY"], operation(Server(url="/api")), ())


def test_normal_origin() -> None:
    assert normal_origin("HTTP://Example.COM:80/a") == "http://example.com"
    assert normal_origin("https://[::1]:8443/") == "https://[::1]:8443"
    assert normal_origin("ftp://example.com") is None
    assert normal_origin("https://example.com:99999") is None


def test_read_secrets_records_what_one_request_read() -> None:
    store = SecretStore.of({"KEY": "zq-canary-1", "OTHER": "zq-canary-2"})
    read = ReadSecrets(store)
    assert read.get("KEY") == "zq-canary-1"
    assert read.names == ["KEY"]
    assert read.redactor is store.redactor
    with pytest.raises(UsageError):
        read.get("MISSING")
    assert read.names == ["KEY"]


def test_the_bundled_chargebee_servers_take_any_site_and_nothing_else() -> None:
    from httptask.catalog import Catalog

    record_refund = Catalog.default().operation("chargebee.record_refund")
    for url in ("https://demo.chargebee.com/api/v1/x", "https://acme-test.chargebee.com:443/api/v1/x"):
        check_secret_destination(url, ["KEY"], record_refund, ())
    with pytest.raises(DestinationRefused):
        check_secret_destination("https://demo.chargebee.com.evil.example/api/v1", ["KEY"], record_refund, ())


@pytest.mark.parametrize(
    "origin", ["collector.example", "https://collector.example/log", "https://u@collector.example"]
)
def test_serve_refuses_a_secret_origin_that_is_not_one(origin: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "httptask", "serve", "--port", "0", "--secret-origin", origin],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"--secret-origin {origin!r} is not an origin" in done.stderr
    assert "Traceback" not in done.stderr
