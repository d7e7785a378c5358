"""Export a workflow as a Conductor workflow definition of HTTP system tasks, or say exactly why it cannot be.

Templates become Conductor expressions: `{{ input.x }}` is `${workflow.input.x}`,
`{{ tasks.t.response.body.x }}` is `${t.output.response.body.x}`, `{{ tasks.t.response.status }}` is
`${t.output.response.statusCode}`, and secrets (`secret('NAME')` and the task's `credentials`) are
`${workflow.secrets.NAME}`: no secret value is ever read. Conductor only substitutes references, so filters,
arithmetic, `now()`, `uuid()`, `forEach` and HTTP basic credentials (which need base64) are reported as
issues, never dropped. `needs` becomes the sequential order of the tasks.

Retries: Conductor reads `retryCount` from the workflow task and `retryLogic`/`retryDelaySeconds` from the
task definition, so each task carries both `retryCount` and an inline `taskDefinition`. Conductor cannot tell
a request that never arrived from one whose answer was lost, so an operation that is not idempotent (no
idempotency key, a POST) gets `retryCount: 0`: a refund is never sent twice. Operations with an idempotency
header send `${workflow.workflowId}-TASK` as the key unless the task sets `idempotencyKey`, so Conductor's
retries and reruns replay rather than repeat. Conductor does not percent-encode substituted values: a path,
query or form value that comes from an expression is sent as the expression yields it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

from ..catalog import Catalog
from ..errors import CredentialsError, HttptaskError, Issue, child_path
from ..requests import (
    SERVER_URL,
    RawRequest,
    body_media_type,
    choose_server,
    expand_path,
    expand_server,
    header_defaults,
    idempotency_header,
    is_idempotent,
    path_issues,
    query_items,
    scalar_text,
    server_variables,
)
from ..spec import Operation
from ..tasks import Task
from ..templating import expression_path, is_template, secret_call
from ..workflow import Workflow, topological_order

__all__ = ["to_conductor"]

_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORM_TYPE = "application/x-www-form-urlencoded"


class _Unexpressible(Exception):
    """A value Conductor cannot express; the message says why and what to do instead."""


def to_conductor(workflow: Workflow, catalog: Catalog) -> tuple[dict[str, Any], list[Issue]]:
    """The Conductor workflow definition, and every issue that prevents a faithful one (empty when none)."""
    order = topological_order(workflow)
    if any(isinstance(item, Issue) for item in order):
        return {}, [item for item in order if isinstance(item, Issue)]
    index = {task.id: i for i, task in enumerate(workflow.tasks)}
    issues: list[Issue] = []
    tasks = []
    for task_id in order:
        assert isinstance(task_id, str)
        i = index[task_id]
        exporter = _TaskExport(workflow.tasks[i], f"$.tasks[{i}]", catalog)
        tasks.append(exporter.definition())
        issues += exporter.issues

    def report(path: str, message: str, actual: Any) -> None:
        issues.append(Issue(path, f"outputs: {message}", actual=actual))

    outputs = {
        name: _value(value, child_path("$.outputs", name), report) for name, value in workflow.outputs.items()
    }
    definition = {
        "name": workflow.name,
        "description": workflow.description,
        "version": 1,
        "schemaVersion": 2,
        "inputParameters": list(workflow.inputs),
        "tasks": tasks,
        "outputParameters": outputs,
    }
    located = [
        Issue(i.path, i.message, i.expected, i.actual, i.line or workflow.line(i.path)) for i in issues
    ]
    return definition, sorted(located, key=lambda issue: (issue.line or 0, issue.path))


class _TaskExport:
    """One task as a Conductor HTTP task; problems are collected, each naming the task and the field."""

    def __init__(self, task: Task, root: str, catalog: Catalog) -> None:
        self.task = task
        self.root = root
        self.catalog = catalog
        self.issues: list[Issue] = []

    def problem(self, field: str, message: str, actual: Any = None) -> None:
        self.issues.append(Issue(f"{self.root}.{field}", f"task {self.task.id}: {message}", actual=actual))

    def request_problems(self, issues: list[Issue], location: str, part: str) -> None:
        """Issues the request rules found at `location` (`$.server`, `$.path`), reported at the task's
        `part`."""
        for issue in issues:
            self.problem(part + issue.path.removeprefix(location), issue.message, issue.actual)

    def convert(self, value: Any, field: str) -> Any:
        """`value` as Conductor expressions; each template that has none is reported at its own field."""
        return _value(value, field, lambda where, message, actual: self.problem(where, message, actual))

    def definition(self) -> dict[str, Any]:
        task = self.task
        if task.for_each is not None:
            self.problem(
                "forEach",
                "forEach needs a Conductor FORK_JOIN_DYNAMIC with one branch per item, which "
                "this export does not write; run the workflow with the local engine, or give the items "
                "as separate tasks",
                actual=task.for_each,
            )
        request = self.raw_request() if task.http_request is not None else self.operation_request()
        request["accept"] = "application/json"
        request["connectionTimeOut"] = _milliseconds(task.connection_timeout_seconds)
        request["readTimeOut"] = _milliseconds(task.read_timeout_seconds)
        retry_count, logic, delay = self.retry(request.pop("_idempotent"))
        definition: dict[str, Any] = {
            "name": task.id,
            "taskReferenceName": task.id,
            "type": "HTTP",
            "inputParameters": {"http_request": request},
            "retryCount": retry_count,
            "taskDefinition": {
                "name": task.id,
                "retryCount": retry_count,
                "retryLogic": logic,
                "retryDelaySeconds": delay,
                "maxRetryDelaySeconds": math.ceil(task.retry.max_interval_seconds),
                "timeoutSeconds": math.ceil(task.retry.max_elapsed_seconds),
                "responseTimeoutSeconds": math.ceil(
                    task.connection_timeout_seconds + task.read_timeout_seconds
                ),
            },
        }
        if task.description:
            definition["description"] = task.description
        return definition

    def retry(self, idempotent: bool) -> tuple[int, str, int]:
        policy = self.task.retry
        logic = "FIXED" if policy.backoff_rate == 1 else "EXPONENTIAL_BACKOFF"
        if policy.backoff_rate not in (1, 2):
            self.problem(
                "retry.backoffRate",
                f"backoffRate {policy.backoff_rate:g} cannot be expressed in "
                "Conductor, which retries after a fixed delay (backoffRate 1) or a doubling one "
                "(backoffRate 2); use 1 or 2",
                actual=policy.backoff_rate,
            )
        return (policy.max_attempts - 1 if idempotent else 0), logic, math.ceil(policy.interval_seconds)

    def raw_request(self) -> dict[str, Any]:
        raw = RawRequest.of(self.task.http_request or {})
        request: dict[str, Any] = {
            "uri": self.convert(raw.url, "httpRequest.url"),
            "method": raw.method,
            "headers": {
                str(k): self.convert(v, child_path("httpRequest.headers", str(k)))
                for k, v in raw.headers.items()
            },
        }
        if raw.has_body:
            request["body"] = self.convert(raw.body, "httpRequest.body")
            request["contentType"] = raw.content_type
        key = self.convert(self.task.idempotency_key, "idempotencyKey") if self.task.idempotency_key else None
        header = idempotency_header(None) if key else None
        if header is not None:
            request["headers"][header] = key
        request["_idempotent"] = is_idempotent(raw.method, header)
        return request

    def operation_request(self) -> dict[str, Any]:
        task = self.task
        assert task.operation is not None
        op = self.catalog.operation(task.operation)
        headers: dict[str, Any] = header_defaults(op)
        for name, value in task.headers.items():
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            headers[name] = self.convert(value, child_path("request.headers", name))
        content_type = next((headers.pop(k) for k in list(headers) if k.lower() == "content-type"), None)
        headers.update(self.credentials(op))
        key_header = idempotency_header(op)
        if key_header is not None:
            key = (
                self.convert(task.idempotency_key, "idempotencyKey")
                if task.idempotency_key
                else f"${{workflow.workflowId}}-{task.id}"
            )
            headers[key_header] = key
        request: dict[str, Any] = {"uri": self.uri(op), "method": op.method, "headers": headers}
        media = body_media_type(op, content_type if isinstance(content_type, str) else None)
        if task.has_body and media is not None:
            request["body"] = (
                self.form_body(media.form_style)
                if media.content_type == _FORM_TYPE
                else self.convert(task.body, "request.body")
            )
            request["contentType"] = media.content_type
        request["_idempotent"] = is_idempotent(op.method, key_header)
        return request

    def uri(self, op: Operation) -> str:
        task = self.task
        if SERVER_URL in task.server:
            base = str(self.convert(task.server[SERVER_URL], "server.url") or "")
        else:
            server, issues = choose_server(op, task.server)
            self.request_problems(issues, "$.server", "server")
            if server is None:
                self.problem("server", "the operation lists no server; set server.url in the task")
                return ""
            values = {
                name: str(self.convert(value, f"server.{name}"))
                for name, value in server_variables(task.server).items()
            }
            base, _, issues = expand_server(server, values)
            self.request_problems(issues, "$.server", "server")
        expressions: dict[str, str] = {}
        literal: dict[str, Any] = {}
        for name, value in task.path.items():
            if isinstance(value, str) and is_template(value):
                expressions[name] = str(self.convert(value, child_path("request.path", name)))
                literal[name] = _token(name)
            else:
                literal[name] = value
        literal_issues = path_issues({k: v for k, v in task.path.items() if k not in expressions})
        self.request_problems(literal_issues, "$.path", "request.path")
        path = expand_path(op.path, literal)
        for name, expression in expressions.items():
            path = path.replace(_token(name), expression)
        return base.rstrip("/") + path + self.query()

    def query(self) -> str:
        pairs = []
        for name, item in query_items(self.task.query):
            if isinstance(item, str) and is_template(item):
                text = str(self.convert(item, child_path("request.query", name)))
            else:
                text = quote_plus(scalar_text(item))
            pairs.append(f"{quote_plus(name)}={text}")
        return "?" + "&".join(pairs) if pairs else ""

    def credentials(self, op: Operation) -> dict[str, str]:
        from ..auth import auth_parts

        if self.task.credentials is None or not op.security:
            return {}
        try:
            headers, query, _ = auth_parts(
                op, self.task.credentials, _secret_expression, task_id=self.task.id
            )
        except CredentialsError as exc:
            self.problem("credentials", exc.problem)
            return {}
        basic = sorted(
            {s.name for option in op.security for s in option if s.type == "http" and s.scheme == "basic"}
        )
        if any("${workflow.secrets." not in value for value in [*headers.values(), *query.values()]):
            self.problem(
                "credentials",
                f"{op.id} signs in with HTTP basic ({', '.join(basic)}), which needs the "
                "secret base64-encoded, and Conductor cannot encode; store the encoded 'user:password' in a "
                "secret and set request.headers.Authorization to \"Basic {{ secret('NAME') }}\" instead",
            )
            return {}
        if query:
            self.problem(
                "credentials",
                f"{op.id} takes its key in the query, which this export does not write; "
                "pass it in request.query with secret('NAME')",
            )
        return headers

    def form_body(self, style: str) -> str | None:
        from ..encoding import encode_form

        body = self.task.body
        if not isinstance(body, Mapping):
            self.problem(
                "request.body",
                "a form body given as one template cannot be form-encoded by Conductor; "
                "write the body as an object of fields",
                actual=body,
            )
            return None
        expressions: dict[str, str] = {}

        def placeholders(value: Any, field: str) -> Any:
            if isinstance(value, Mapping):
                return {k: placeholders(v, child_path(field, str(k))) for k, v in value.items()}
            if isinstance(value, list):
                return [placeholders(v, child_path(field, i)) for i, v in enumerate(value)]
            if not (isinstance(value, str) and is_template(value)):
                return value
            reference = _single_reference(value)
            if reference is None:
                try:
                    _string(value)
                    problem = (
                        "a form value must be a literal or a single reference such as {{ input.x }}, "
                        f"because Conductor sends a form body as written; {value!r} mixes text and references"
                    )
                except _Unexpressible as exc:
                    problem = str(exc)
                self.problem(field[len(self.root) + 1 :], problem, actual=value)
                return ""
            token = _token(str(len(expressions)))
            expressions[token] = reference
            return token

        filled = placeholders(body, f"{self.root}.request.body")
        try:
            text = encode_form(filled, style)[1].decode("ascii")
        except HttptaskError as exc:
            self.problem("request.body", exc.message, actual=body)
            return None
        for token, reference in expressions.items():
            text = text.replace(token, reference)
        return text


def _value(value: Any, path: str, report: Callable[[str, str, Any], None]) -> Any:
    """`value` with every template turned into a Conductor expression; dict keys stay as written."""
    if isinstance(value, str):
        if not is_template(value):
            return _escape(value)
        try:
            return _string(value)
        except _Unexpressible as exc:
            report(path, str(exc), value)
            return None
    if isinstance(value, Mapping):
        return {key: _value(item, child_path(path, str(key)), report) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item, child_path(path, i), report) for i, item in enumerate(value)]
    return value


def _string(source: str) -> str:
    whole = _single_reference(source)
    if whole is not None:
        return whole
    if "{%" in source or "{#" in source:
        raise _Unexpressible(_cannot(source))
    parts = []
    position = 0
    for match in _EXPRESSION.finditer(source):
        parts.append(_escape(source[position : match.start()]))
        reference = _single_reference(match.group(0))
        if reference is None:
            raise _Unexpressible(_cannot(source))
        parts.append(reference)
        position = match.end()
    parts.append(_escape(source[position:]))
    return "".join(parts)


def _single_reference(source: str) -> str | None:
    """The Conductor expression for a template that is one reference or one secret() call, else None."""
    secret = secret_call(source)
    if secret is not None:
        return _secret_expression(secret)
    path = expression_path(source)
    if path is None:
        return None
    return _reference(path, source)


def _reference(path: tuple[str | int, ...], source: str) -> str:
    base, rest = path[0], path[1:]
    if base == "input":
        return "${workflow.input" + _json_path(rest) + "}"
    if base == "tasks" and len(rest) >= 3 and rest[1] == "response":
        task_id, part = rest[0], rest[2]
        if part == "status" and len(rest) == 3:
            return f"${{{task_id}.output.response.statusCode}}"
        if part == "body":
            return f"${{{task_id}.output.response.body" + _json_path(rest[3:]) + "}"
        if part == "headers":
            raise _Unexpressible(
                f"{source!r} reads a response header, which Conductor's HTTP task reports in "
                "another shape (a list of values per header); pass the value in the response "
                "body or as an input instead"
            )
    raise _Unexpressible(
        f"{source!r} cannot be written as a Conductor reference; read input.NAME, "
        "tasks.ID.response.status or tasks.ID.response.body"
    )


def _cannot(source: str) -> str:
    return (
        f"the template {source!r} cannot be written as a Conductor expression: Conductor only substitutes "
        "references such as ${workflow.input.x}, so filters, arithmetic, conditions and functions like now() "
        "and uuid() have no equivalent; compute the value in an earlier task or pass it as an input"
    )


def _secret_expression(name: str) -> str:
    return f"${{workflow.secrets.{name}}}"


def _json_path(keys: tuple[str | int, ...]) -> str:
    text = ""
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _IDENTIFIER.fullmatch(key):
            text += f".{key}"
        else:
            text += "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return text


def _escape(text: str) -> str:
    # Conductor reads "${" as the start of an expression; "$${" is its escape for a literal "${".
    return text.replace("${", "$${")


def _token(name: str) -> str:
    return "HTTPTASKREF" + re.sub(r"[^A-Za-z0-9]", "X", name) + "END"


def _milliseconds(seconds: float) -> int:
    return math.ceil(seconds * 1000)
