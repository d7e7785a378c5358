"""`httptask test-request`: load a task, prepare it, send it (or not, with --dry-run) and report the exchange."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .errors import EXIT_FAILED, EXIT_INVALID, HttptaskError, RequestInvalid, SendError, UsageError
from .execute import Exchange, prepare, response_record, send_prepared
from .secrets import SecretStore
from .snippets import snippet
from .tasks import load_task
from .transport import Sender
from .yamlsource import load_source

__all__ = ["parse_input", "run_test_request"]


def parse_input(text: str | None) -> dict[str, Any]:
    """`--input` as JSON text, or `@FILE` holding JSON or YAML; it must be an object."""
    if not text:
        return {}
    if text.startswith("@"):
        data = load_source(Path(text[1:])).data
        where = f"the file {text[1:]}"
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--input is not valid JSON ({exc.msg} at column {exc.colno}); "
                             "pass a JSON object or @FILE.") from None
        where = "--input"
    if not isinstance(data, dict):
        raise UsageError(f"{where} must hold an object of input names to values, not {type(data).__name__}.")
    return data


@contextlib.contextmanager
def _sandbox(catalog: Catalog, enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from .sandbox import SandboxThread

    with SandboxThread(catalog) as sandbox:
        yield sandbox.url


def run_test_request(
    task_file: Path, *, input_text: str | None, dry_run: bool, as_json: bool, use_sandbox: bool,
    secrets_file: Path | None,
) -> int:
    """The whole command; returns the exit code."""
    task = load_task(task_file)
    inputs = parse_input(input_text)
    catalog = Catalog.default()
    secrets = SecretStore(file=secrets_file)
    exchange = Exchange(task_id=task.id, operation=task.operation, request=None)
    with _sandbox(catalog, use_sandbox and not dry_run) as sandbox_url:
        try:
            prepared = prepare(task, inputs=inputs, catalog=catalog, secrets=secrets,
                               sandbox_url=sandbox_url or ("http://127.0.0.1:8787" if use_sandbox else None))
        except RequestInvalid as exc:
            exchange.errors = [issue.to_dict() for issue in exc.issues]
            _report(exchange, as_json, error=exc)
            return EXIT_INVALID
        exchange.request = prepared.redacted_request()
        if dry_run:
            if as_json:
                _print_json({**exchange.to_dict(), "curl": snippet(prepared, "curl")})
            else:
                _print_request(exchange.request)
                sys.stdout.write("\n" + snippet(prepared, "curl"))
            return 0
        try:
            response, attempts = asyncio.run(_send(prepared))
        except SendError as exc:
            exchange.errors = [{"path": "$", "message": secrets.redactor.redact(str(exc))}]
            _report(exchange, as_json, error=exc)
            return EXIT_FAILED
    exchange.response = response_record(response, secrets.redactor)
    exchange.attempts = attempts
    exchange.sent = True
    _report(exchange, as_json)
    return 0 if response.ok else EXIT_FAILED


async def _send(prepared: Any) -> Any:
    async with Sender() as sender:
        return await send_prepared(prepared, sender)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _print_request(request: dict[str, Any]) -> None:
    lines = [f"{request['method']} {request['url']}"]
    lines += [f"{name}: {value}" for name, value in request["headers"].items()]
    if request["body"]:
        lines += ["", request["body"]]
    sys.stdout.write("\n".join(lines) + "\n")


def _report(exchange: Exchange, as_json: bool, error: HttptaskError | None = None) -> None:
    if as_json:
        _print_json(exchange.to_dict())
        return
    if error is not None:
        sys.stderr.write(f"error: {exchange.errors[0]['message'] if isinstance(error, SendError) else error}\n")
        return
    response = exchange.response
    assert response is not None and exchange.request is not None
    attempts = f"{exchange.attempts} attempt{'s' if exchange.attempts != 1 else ''}"
    sys.stdout.write(f"{exchange.request['method']} {exchange.request['url']}\n")
    sys.stdout.write(f"{response['status']} {response['reason']} · {response['elapsed_ms']:.1f} ms · {attempts}\n")
    for name, value in response["headers"].items():
        sys.stdout.write(f"{name}: {value}\n")
    body = response["body"]
    text = json.dumps(body, indent=2, ensure_ascii=False) if not isinstance(body, str) else body
    sys.stdout.write("\n" + text + "\n")

