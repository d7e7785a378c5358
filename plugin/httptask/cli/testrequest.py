"""`httptask test-request`: load a task, prepare it, send it (or not, with --dry-run) and report the
exchange."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import EXIT_FAILED, EXIT_INVALID, HttptaskError, RequestInvalid, SendError
from ..messages import printable
from ..testrequest import TEST_REQUEST_SECONDS
from .console import (
    input_option,
    optional_sandbox,
    parse_input,
    plural,
    print_json,
    print_response_issues,
    secrets_file_option,
    strict_responses_option,
)

if TYPE_CHECKING:  # sending imports the HTTP client: only when a request is made, not for every command
    from ..execute import Exchange, Prepared
    from ..messages import HttpResponse

__all__ = ["run_test_request", "test_request_command"]


@click.command("test-request")
@click.argument("task_file", type=click.Path(path_type=Path))
@input_option("The task's input")
@click.option(
    "--dry-run", is_flag=True, help="Print the exact request (redacted) and a curl command; send nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print {request, response, errors} as JSON.")
@click.option(
    "--sandbox", is_flag=True, help="Send to a local sandbox of the API instead of the real server."
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=TEST_REQUEST_SECONDS,
    show_default=True,
    metavar="SECONDS",
    callback=lambda _context, _param, value: _finite(value),
    help="Give up on an answer after this long, attempts included; the outcome is then unknown.",
)
@secrets_file_option
@strict_responses_option
def test_request_command(
    task_file: Path,
    input_text: str | None,
    dry_run: bool,
    as_json: bool,
    sandbox: bool,
    timeout_seconds: float,
    secrets_file: Path | None,
    strict_responses: bool,
) -> None:
    """Render, validate and send one task; exit 0 on a 2xx, 1 on failure, 2 on bad usage, 3 when invalid."""
    code = run_test_request(
        task_file,
        input_text=input_text,
        dry_run=dry_run,
        as_json=as_json,
        use_sandbox=sandbox,
        secrets_file=secrets_file,
        strict_responses=strict_responses,
        timeout_seconds=timeout_seconds,
    )
    sys.exit(code)


def _finite(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise click.BadParameter(f"{seconds} is not a number of seconds; give one such as 60.")
    return seconds


def run_test_request(
    task_file: Path,
    *,
    input_text: str | None,
    dry_run: bool,
    as_json: bool,
    use_sandbox: bool,
    secrets_file: Path | None,
    strict_responses: bool = False,
    timeout_seconds: float = TEST_REQUEST_SECONDS,
) -> int:
    """The whole command; returns the exit code."""
    import asyncio

    from ..catalog import Catalog
    from ..execute import Exchange, answer_record, prepare
    from ..secrets import SecretStore
    from ..snippets import snippet
    from ..tasks import load_task

    task = load_task(task_file)
    inputs = parse_input(input_text)
    catalog = Catalog.default()
    secrets = SecretStore(file=secrets_file)
    exchange = Exchange(task_id=task.id, operation=task.operation, request=None)
    with optional_sandbox(catalog, use_sandbox and not dry_run) as sandbox_url:
        try:
            prepared = prepare(
                task,
                inputs=inputs,
                catalog=catalog,
                secrets=secrets,
                sandbox_url=sandbox_url or ("http://127.0.0.1:8787" if use_sandbox else None),
            )
        except RequestInvalid as exc:
            exchange.errors = [issue.to_dict() for issue in exc.issues]
            _report(exchange, as_json, error=exc)
            return EXIT_INVALID
        exchange.request = prepared.redacted_request()
        if dry_run:
            if as_json:
                print_json({**exchange.to_dict(), "curl": snippet(prepared, "curl")})
            else:
                _print_request(exchange.request)
                sys.stdout.write("\n" + snippet(prepared, "curl"))
            return 0
        try:
            response, attempts = asyncio.run(_send(prepared, timeout_seconds))
        except SendError as exc:
            exchange.errors = [{"path": "$", "message": secrets.redactor.redact(str(exc))}]
            _report(exchange, as_json, error=exc)
            return EXIT_FAILED
    exchange.response, failure = answer_record(prepared, response, strict=strict_responses)
    exchange.response_issues = exchange.response.pop("issues", [])
    exchange.attempts = attempts
    exchange.sent = True
    if failure is not None and response.ok:
        # Strict responses: the request was answered, and the failure says so; it is never a retry.
        exchange.errors = [{"path": "$", "message": failure}]
    _report(exchange, as_json)
    return 0 if failure is None else EXIT_FAILED


async def _send(prepared: Prepared, seconds: float) -> tuple[HttpResponse, int]:
    from ..testrequest import send_test_request
    from ..transport import Sender

    async with Sender() as sender:
        more_time = "a slow server gets more time with --timeout SECONDS"
        return await send_test_request(prepared, sender, seconds, more_time=more_time)


def _print_request(request: dict[str, Any]) -> None:
    lines = [f"{request['method']} {request['url']}"]
    lines += [f"{name}: {value}" for name, value in request["headers"].items()]
    if request["body"]:
        lines += ["", request["body"]]
    sys.stdout.write("\n".join(lines) + "\n")


def _report(exchange: Exchange, as_json: bool, error: HttptaskError | None = None) -> None:
    if as_json:
        print_json(exchange.to_dict())
        return
    if error is not None:
        message = exchange.errors[0]["message"] if isinstance(error, SendError) else error
        sys.stderr.write(f"error: {message}\n")
        return
    response = exchange.response
    assert response is not None and exchange.request is not None
    attempts = plural(exchange.attempts, "attempt")
    sys.stdout.write(f"{exchange.request['method']} {exchange.request['url']}\n")
    reason = printable(response["reason"])
    sys.stdout.write(f"{response['status']} {reason} · {response['elapsed_ms']:.1f} ms · {attempts}\n")
    for name, value in response["headers"].items():
        sys.stdout.write(printable(f"{name}: {value}") + "\n")
    body = response["body"]
    text = json.dumps(body, indent=2, ensure_ascii=False) if not isinstance(body, str) else body
    sys.stdout.write("\n" + printable(text) + "\n")
    if exchange.response_issues:
        print_response_issues(exchange.operation or exchange.task_id, exchange.response_issues)
    for problem in exchange.errors:
        sys.stderr.write(f"error: {problem['message'].splitlines()[0]}\n")
