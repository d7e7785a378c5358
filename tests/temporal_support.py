"""What the Temporal tests share: a vendor stand-in on 127.0.0.1 that keeps every request and dedupes by
idempotency key as Chargebee does, and `httptask worker` processes that can be killed with SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from servers import serving_refunds

ROOT = Path(__file__).resolve().parents[1]
KEY_HEADER = "chargebee-idempotency-key"


# Chargebee v1 refunds: not idempotent, no key, one activity each.
RECORD_REFUNDS = """
name: record-refunds
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: record
    operation: chargebee.record_refund
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url | replace('/v2', '/v1') }}"}
    credentials: CHARGEBEE_API_KEY
    request:
      path: {invoice-id: "{{ item.id }}"}
      body:
        memo: refund
        transaction: {amount: "{{ item.amount }}", payment_method: other, date: 1700000000}
"""


@dataclass(frozen=True)
class Received:
    invoice: str
    key: str | None
    authorization: str | None
    body: bytes
    at: float


@dataclass
class Vendor:
    """Refund endpoints of a Chargebee stand-in: a request is acted on when it arrives, unless its
    idempotency key was seen, in which case the stored answer is replayed. `hang` holds invoices answered only
    on release; `status` answers chosen invoices with another status; `echo` puts the request's credentials
    in the body; `padding` pads every answer, `padded` chosen invoices' answers, with that many bytes."""

    url: str = ""
    delay: float = 0.0
    hang: set[str] = field(default_factory=set)
    status: dict[str, int] = field(default_factory=dict)
    echo: bool = False
    padding: int = 0
    padded: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    acted: dict[str, int] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: asyncio.Event | None = None

    async def refund(self, request: web.Request) -> web.Response:
        invoice = request.match_info["id"]
        key = request.headers.get(KEY_HEADER)
        body = await request.read()
        with self.lock:
            self.received.append(
                Received(invoice, key, request.headers.get("authorization"), body, time.monotonic())
            )
            if key is not None and key in self.answers:
                answer = self.answers[key]
            else:
                self.acted[invoice] = self.acted.get(invoice, 0) + 1
                answer = {
                    "invoice": {"id": invoice, "status": "paid"},
                    "transaction": {"id": f"txn_{invoice}_{self.acted[invoice]}", "type": "refund"},
                }
                if self.echo:
                    answer["seen"] = {
                        "authorization": request.headers.get("authorization"),
                        "body": body.decode(),
                    }
                if self.padding or invoice in self.padded:
                    answer["padding"] = "x" * self.padded.get(invoice, self.padding)
                if key is not None:
                    self.answers[key] = answer
            hang = invoice in self.hang
        if hang:
            assert self.release is not None
            await self.release.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response(answer, status=self.status.get(invoice, 200))

    def requests_for(self, invoice: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.invoice == invoice]

    def count(self) -> int:
        with self.lock:
            return len(self.received)


def vendor_server() -> AbstractContextManager[Vendor]:
    return serving_refunds(Vendor())


class WorkerProcess:
    """`httptask worker` in its own process, with its own environment (its own secrets)."""

    def __init__(
        self, address: str, queue: str, log: Path, *, secrets: dict[str, str], args: tuple[str, ...] = ()
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET_")}
        env.update({f"HTTPTASK_SECRET_{name}": value for name, value in secrets.items()})
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "httptask", "worker", "--temporal", address, "--task-queue", queue, *args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while b": ready" not in log.read_bytes():
            assert self.process.poll() is None, f"the worker exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"the worker did not start: {log.read_text()}"
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def refund_inputs(url: str, count: int, *, prefix: str = "inv") -> dict[str, Any]:
    return {
        "invoices": [{"id": f"{prefix}_{n}", "amount": 100 + n} for n in range(count)],
        "api_url": f"{url}/api/v2",
    }


def show_history(address: str, workflow_id: str) -> list[dict[str, Any]]:
    """`temporal workflow show --output json`: the events of a workflow as the server keeps them."""
    from httptask.engines.temporal.devserver import temporal_cli

    shown = subprocess.run(
        [
            str(temporal_cli()),
            "workflow",
            "show",
            "--workflow-id",
            workflow_id,
            "--address",
            address,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = json.loads(shown.stdout)
    events: list[dict[str, Any]] = data.get("events", data) if isinstance(data, dict) else data
    return events


def payload_texts(node: Any) -> Iterator[str]:
    """Every string in a history, with each payload's base64 `data` decoded as well."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    yield base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
            yield from payload_texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from payload_texts(value)
    elif isinstance(node, str):
        yield node
