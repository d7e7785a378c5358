"""What Test request does, and what every engine does per task: render, build, validate, then send.

`prepare` is everything up to the wire and sends nothing: the CLI's `--dry-run`, the editor and the
engines share it. `send_prepared` sends with the task's retry policy; the idempotency key is fixed in
`prepare`, so every attempt carries the same one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import auth_parts
from .catalog import Catalog
from .encoding import encode_body
from .errors import Issue, RequestInvalid
from .messages import HttpRequest, HttpResponse, RequestValues
from .requests import build_request, build_values, expand_server, header_issues, path_issues, sandbox_base_url
from .retry import Attempt, send_with_retries
from .secrets import Redactor, SecretStore
from .spec import Operation, Server
from .tasks import Task
from .templating import base_context, render_value
from .transport import Sender, Timeouts
from .validation import validate_values

__all__ = ["Exchange", "Prepared", "prepare", "send_prepared"]

# Keys derived from a seed (a run id and a task) are the same after a crash and a resume.
_KEY_NAMESPACE = uuid.UUID("6f1c1d52-8f0a-4d4e-9a57-1f3c2b8e7a10")


@dataclass(frozen=True)
class Prepared:
    """A request ready for the wire, with what is needed to send it safely and to report it redacted."""

    task: Task
    operation: Operation | None
    request: HttpRequest
    values: RequestValues | None
    idempotent: bool
    idempotency_key: str | None
    redactor: Redactor

    @property
    def label(self) -> str:
        target = self.operation.id if self.operation is not None else self.request.url
        return f"task {self.task.id} ({target})"

    def redacted_request(self) -> dict[str, Any]:
        r = self.redactor
        return {
            "method": self.request.method,
            "url": r.redact(self.request.url),
            "headers": r.redact_headers(dict(self.request.headers)),
            "body": r.redact(self.request.content.decode("utf-8", errors="replace")),
            "idempotency_key": self.idempotency_key,
        }


@dataclass
class Exchange:
    """One task's request and outcome, redacted, as `test-request --json` and the editor report it."""

    task_id: str
    operation: str | None
    request: dict[str, Any] | None
    response: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    sent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task_id, "operation": self.operation, "request": self.request,
                "response": self.response, "errors": self.errors, "attempts": self.attempts, "sent": self.sent}


def prepare(
    task: Task,
    *,
    inputs: Mapping[str, Any],
    catalog: Catalog,
    secrets: SecretStore,
    sandbox_url: str | None = None,
    tasks: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    key_seed: str | None = None,
) -> Prepared:
    """Render and check `task` into a request; raises `RequestInvalid` (nothing to send) with every issue."""
    context = base_context(inputs=inputs, tasks=tasks, secrets=secrets, extra=extra)
    rendered = {part: render_value(value, context, task_id=task.id, field_path=part)
                for part, value in task.templates.items()}
    key = rendered.get("idempotencyKey")
    if task.http_request is not None:
        return _prepare_raw(task, rendered["httpRequest"], secrets.redactor, key, key_seed)
    assert task.operation is not None
    op = catalog.operation(task.operation)
    server_values = {k: v for k, v in rendered["server"].items() if k not in ("url", "index")}
    server, server_issues = _choose_server(op, rendered["server"])
    base_url, filled, issues = expand_server(server, server_values) if server else ("", {}, server_issues)
    issues = [*server_issues, *issues]
    if sandbox_url is not None:
        base_url = sandbox_base_url(op, sandbox_url)
    elif "url" in rendered["server"]:
        base_url = str(rendered["server"]["url"]).rstrip("/")
    values = build_values(
        op,
        server=filled,
        path=rendered["request.path"],
        query=rendered["request.query"],
        headers=rendered["request.headers"],
        body=rendered.get("request.body"),
        has_body=task.has_body,
    )
    issues += path_issues(values.path) + header_issues(values.headers) + validate_values(op, values, server)
    if not base_url:
        issues.append(Issue("$.server", "has no URL: the operation lists no server; set server.url in the task",
                            expected="a URL"))
    if issues:
        raise RequestInvalid(op.id, sorted(issues, key=lambda i: i.path))
    auth_headers, auth_query, sent = auth_parts(op, task.credentials, secrets.get, task_id=task.id)
    for value in sent:
        secrets.redactor.add(value)
    extra_headers = dict(auth_headers)
    if op.idempotency_header is not None:
        key = str(key) if key else _new_key(key_seed)
        extra_headers[op.idempotency_header.lower()] = key
    content = b""
    if values.has_body and op.request_body is not None:
        media = op.request_body.media_type(values.headers.get("content-type")) or op.request_body.default
        body_headers, content = encode_body(values.body, media.content_type, form_style=media.form_style)
        extra_headers.update({k.lower(): v for k, v in body_headers.items()})
    request = build_request(op, values, base_url=base_url, content=content, extra_headers=extra_headers,
                            extra_query=auth_query)
    return Prepared(task, op, request, values, op.is_idempotent, str(key) if key else None, secrets.redactor)


def _choose_server(op: Operation, rendered: Mapping[str, Any]) -> tuple[Server | None, list[Issue]]:
    index = rendered.get("index", 0)
    if not op.servers:
        return None, []
    if not isinstance(index, int) or not 0 <= index < len(op.servers):
        return op.servers[0], [Issue("$.server.index", f"must be between 0 and {len(op.servers) - 1}",
                                     expected=list(range(len(op.servers))), actual=index)]
    return op.servers[index], []


def _new_key(seed: str | None) -> str:
    return str(uuid.uuid5(_KEY_NAMESPACE, seed)) if seed else str(uuid.uuid4())


def _prepare_raw(task: Task, raw: Mapping[str, Any], redactor: Redactor, key: Any, seed: str | None) -> Prepared:
    method = str(raw.get("method", "GET")).upper()
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    issues = header_issues(headers)
    if issues:
        raise RequestInvalid(task.id, issues)
    content = b""
    if raw.get("body") is not None:
        body_headers, content = encode_body(raw["body"], str(raw.get("contentType", "application/json")))
        headers = {**{k.lower(): v for k, v in body_headers.items()}, **headers}
    if key:
        headers["idempotency-key"] = str(key)
    request = HttpRequest(method, str(raw["url"]), tuple(headers.items()), content)
    idempotent = method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE") or bool(key)
    return Prepared(task, None, request, None, idempotent, str(key) if key else None, redactor)


async def send_prepared(
    prepared: Prepared,
    sender: Sender,
    *,
    on_attempt: Callable[[Attempt], None] | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> tuple[HttpResponse, int]:
    """Send with the task's retries; the same request (and idempotency key) on every attempt."""
    task = prepared.task
    timeouts = Timeouts(connect=task.connection_timeout_seconds, read=task.read_timeout_seconds)

    async def attempt() -> HttpResponse:
        return await sender.send(prepared.request, timeouts=timeouts, max_response_bytes=task.max_response_bytes,
                                 follow_redirects=task.follow_redirects)

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return await send_with_retries(attempt, task.retry, idempotent=prepared.idempotent, what=prepared.label,
                                   on_attempt=on_attempt, **kwargs)


def response_record(response: HttpResponse, redactor: Redactor) -> dict[str, Any]:
    """A response as reported and journaled: status, headers and body, redacted."""
    return {
        "status": response.status,
        "reason": response.reason,
        "headers": redactor.redact_headers(dict(response.headers)),
        "body": redactor.redact_value(response.body()),
        "elapsed_ms": response.elapsed_ms,
    }
