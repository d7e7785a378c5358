"""A vendor that echoes the credentials in forms the redactor's text search does not see (each character
JSON-escaped as `\\uXXXX`, or in the reason phrase of an error) must not put the secret into Temporal's
history, nor into `runs show --engine temporal` read by a client that holds no secret."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from servers import served
from temporal_support import ROOT, WorkerProcess, payload_texts, show_history

pytestmark = pytest.mark.temporal

CANARY = "canary-5d1e7a2b-93c4-4f60-b8e1-leak"
FORMS = [
    CANARY,
    base64.b64encode(CANARY.encode()).decode(),
    base64.b64encode(f"{CANARY}:".encode()).decode(),
]

WORKFLOW = """
name: echoes
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: CANARY
    request:
      path: {invoice-id: "{{ item.id }}"}
      body: {refund_amount: "{{ item.amount }}"}
"""


def _escaped(text: str) -> str:
    """Every character as a JSON `\\uXXXX` escape: valid JSON that no literal search finds."""
    return "".join(f"\\u{ord(char):04x}" for char in text)


@contextlib.contextmanager
def echoing_vendor() -> Iterator[str]:
    """Answers inv_0 with 200 and the credentials, decoded too, in escaped JSON; inv_1 with 402 and the
    credentials in the reason phrase."""

    async def refund(request: web.Request) -> web.Response:
        authorization = request.headers.get("authorization", "")
        decoded = base64.b64decode(authorization.split()[-1]).decode()
        if request.match_info["id"] == "inv_1":
            return web.Response(status=402, reason=f"Refused {authorization} {decoded}")
        fields = {"seen": authorization, "user": decoded}
        text = "{" + ", ".join(f'"{name}": "{_escaped(value)}"' for name, value in fields.items()) + "}"
        return web.Response(text=text, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v2/invoices/{id}/refund", refund)
    with served(app) as server:
        yield f"{server.url}/api/v2"


def _leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text or form in text.encode().decode("unicode_escape")]


def test_echoed_credentials_reach_neither_the_history_nor_runs_show(
    temporal_server: Any, tmp_path: Any
) -> None:
    from httptask.engines.temporal.client import start_run, wait_run
    from httptask.engines.temporal.connection import Connection
    from httptask.engines.temporal.workflows import chunk_id

    queue = f"leaks-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(temporal_server.address, queue, log, secrets={"CANARY": CANARY})
    try:
        with echoing_vendor() as url:
            invoices = [{"id": "inv_0", "amount": 1}, {"id": "inv_1", "amount": 2}]
            inputs = {"invoices": invoices, "api_url": url}

            async def main() -> str:
                conn = Connection(temporal_server.address, task_queue=queue)
                run_id = await start_run(conn, workflow_text=WORKFLOW, file="echoes.yaml", inputs=inputs)
                await asyncio.wait_for(wait_run(conn, run_id), 120)
                return run_id

            run_id = asyncio.run(main())
    finally:
        worker.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTPTASK_SECRET")}
    shown = subprocess.run(
        [sys.executable, "-m", "httptask", "runs", "show", run_id, "--engine", "temporal", "--json",
         "--temporal", temporal_server.address, "--task-queue", queue],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert shown.returncode in (0, 1), shown.stderr
    report = json.loads(shown.stdout)
    assert report["errors"][0]["message"].startswith("task refund (chargebee.refund_invoice) answered 402")
    history = show_history(temporal_server.address, run_id)
    history += show_history(temporal_server.address, chunk_id(run_id, "refund", 0))
    leaked = {form for text in [*payload_texts(history), shown.stdout, shown.stderr] for form in _leaks(text)}
    assert not leaked
