"""`make demo`: start the local sandbox, send a real test request for every seed endpoint, show one
refused as invalid, then run an example workflow on the embedded engine. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from ..catalog import Catalog
from ..errors import HttptaskError, RequestInvalid
from ..execute import prepare, response_record, send_prepared
from ..resources import bundled_dir
from ..sandbox import SandboxThread
from ..secrets import SecretStore
from ..tasks import load_task
from ..transport import Sender
from .console import print_table

# Stand-in credentials: the sandbox checks that they are present and well-formed, never their value.
DEMO_SECRETS = {
    "HTTPTASK_SECRET_CHARGEBEE": "demo_chargebee_api_key",
    "HTTPTASK_SECRET_CHARGEBEE_API_KEY": "demo_chargebee_api_key",
    "HTTPTASK_SECRET_STRIPE": "sk_test_demo_stripe_key",
    "HTTPTASK_SECRET_ZOHO": "1000.demo_zoho_oauth_token",
    "HTTPTASK_SECRET_GEINS_API_KEY": "demo-geins-api-key",
    "HTTPTASK_SECRET_GEINS_USER": "demo-user:demo-password",
}
_BODY_LINES = 24


def _examples() -> Path:
    return bundled_dir("specs").parent / "examples"


async def _send_all(
    task_files: list[Path], inputs: dict[str, object], catalog: Catalog, sandbox_url: str
) -> None:
    rows = []
    shown = None
    async with Sender() as sender:
        for file in task_files:
            secrets = SecretStore(environ=DEMO_SECRETS)
            task = load_task(file)
            prepared = prepare(task, inputs=inputs, catalog=catalog, secrets=secrets, sandbox_url=sandbox_url)
            response, _ = await send_prepared(prepared, sender)
            rows.append(
                [
                    task.operation,
                    prepared.request.method,
                    response.status,
                    f"{response.elapsed_ms:.1f} ms",
                    prepared.idempotency_key or "-",
                ]
            )
            if shown is None:
                shown = (prepared.redacted_request(), response_record(response, secrets.redactor))
    print_table(
        ["operation", "method", "status", "time", "idempotency key"],
        rows,
        title="Test requests for the seed endpoints, sent to the local sandbox",
    )
    if shown is not None:
        request, record = shown
        print(f"\nThe first exchange in full:\n{request['method']} {request['url']}")
        for name, value in request["headers"].items():
            print(f"{name}: {value}")
        print(f"\n{request['body']}\n\n-> {record['status']} {record['reason']}")
        lines = json.dumps(record["body"], indent=2).splitlines()
        print("\n".join(lines[:_BODY_LINES]))
        if len(lines) > _BODY_LINES:
            print(f"  ... ({len(lines) - _BODY_LINES} more lines)")


def _show_invalid(task_file: Path, inputs: dict[str, object], catalog: Catalog, sandbox_url: str) -> None:
    broken = {**inputs, "amount": -5, "memo": 12345}
    print("\nThe same Chargebee task with a negative amount and a number as memo is refused before sending:")
    try:
        prepare(
            load_task(task_file),
            inputs=broken,
            catalog=catalog,
            secrets=SecretStore(environ=DEMO_SECRETS),
            sandbox_url=sandbox_url,
        )
    except HttptaskError as exc:
        print(f"error: {exc}")
        if isinstance(exc, RequestInvalid):
            print(json.dumps([issue.to_dict() for issue in exc.issues], indent=2))


def main() -> None:
    examples = _examples()
    task_files = sorted((examples / "tasks").glob("*.yaml"))
    if not task_files:
        print(f"No example tasks under {examples}; run the demo from a source checkout.", file=sys.stderr)
        sys.exit(2)
    inputs = json.loads((examples / "tasks" / "demo-input.json").read_text(encoding="utf-8"))
    catalog = Catalog.default()
    with SandboxThread(catalog) as sandbox:
        print(f"Local sandbox of every catalog operation at {sandbox.url}\n")
        asyncio.run(_send_all(task_files, inputs, catalog, sandbox.url))
        _show_invalid(examples / "tasks" / "chargebee-record-refund.yaml", inputs, catalog, sandbox.url)
    workflow = examples / "refund-invoices.yaml"
    if workflow.exists():
        print(f"\nRunning the workflow {workflow.name} on the embedded engine against the sandbox:\n")
        env = {**os.environ, **DEMO_SECRETS}
        command = [
            sys.executable,
            "-m",
            "httptask",
            "run",
            str(workflow),
            "--sandbox",
            "--input",
            "@" + str(examples / "inputs" / "refund-invoices.json"),
        ]
        sys.exit(subprocess.run(command, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
