"""The editor: a FastAPI app serving the catalog, task building, Test request and workflow checks as JSON, and
the page that uses them; it parses, calls the library and maps errors to HTTP statuses.

Statuses: 400 for bad input (unknown operation, bad YAML or task, a destination the SSRF guard refuses, a
task needing more time or memory than one request is given), 401 without the token, 413 for a request body
over the cap, 422 when the request breaks the spec (nothing was sent; the issues are in the body), 502 when
the upstream could not be reached or answered.

Everything that reads untrusted text (YAML, templates) runs in worker processes with a time and a memory
limit (`isolation`), never on the event loop, and so does reading a Test request's answer (parsing, checking
and redacting it), of which the editor shows the first megabyte (`shown`); every response body passes the
redactor on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .byte_budget import ByteBudget, NoRoom
from .catalog import Catalog
from .engines.protocol import RunResult, TaskUpdate
from .errors import (
    DestinationRefused,
    EditorBusy,
    HttptaskError,
    Issue,
    OverLimit,
    RequestInvalid,
    SendError,
    TaskError,
    UnknownOperation,
    UsageError,
)
from .execute import Prepared, issue_records, prepare
from .isolation import WorkerPool
from .limits import LimitExceeded, check_depth, serving
from .liveruns import LiveRun, LiveRuns
from .messages import HttpResponse
from .netguard import DestinationPolicy, ResolveFunction
from .redaction import Redactor
from .secret_origins import ReadSecrets, check_secret_destination
from .secrets import SECRET_VAR_PREFIX, SecretStore
from .shown import shown_response
from .tasks import Task, parse_task
from .testrequest import TEST_REQUEST_SECONDS, send_test_request
from .transport import Sender
from .yamlsource import dump_yaml, parse_source

__all__ = ["MAX_BODY_BYTES", "ServerConfig", "create_app", "is_loopback_host"]

MAX_BODY_BYTES = 1024 * 1024
_STATIC = Path(__file__).resolve().parent / "static"
_STAND_IN = "sandbox-stand-in-credential"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address) only accepts connections from this machine."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """How the editor runs: its token, the sandbox to send to, the SSRF guard's exceptions and the caps."""

    token: str | None = None
    sandbox_url: str | None = None
    allow_hosts: tuple[str, ...] = ()
    # Origins a Test request may carry a secret to besides the servers its operation documents.
    secret_origins: tuple[str, ...] = ()
    secrets_file: Path | None = None
    resolve: ResolveFunction | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_response_bytes: int = 10 * 1024 * 1024
    call_timeout_seconds: float = TEST_REQUEST_SECONDS
    work_seconds: float = 1.5
    work_memory_bytes: int = 512 * 1024 * 1024
    workers: int = 2
    # Reading a 10 MB answer (parse, check, redact) takes about a second of a worker's time.
    answer_seconds: float = 10.0
    # What the answers of Test requests in progress may hold at once, each counted at its size limit: twelve
    # of 10 MB. A Test request past it waits for room, up to `answer_wait_seconds`, before it is sent.
    answer_memory_bytes: int = 128 * 1024 * 1024
    answer_wait_seconds: float = 15.0

    def policy(self) -> DestinationPolicy:
        """Public addresses, the `--allow-host` exceptions, and the sandbox when there is one."""
        hosts = list(self.allow_hosts)
        if self.sandbox_url is not None:
            parts = urlsplit(self.sandbox_url)
            hosts.append(f"{parts.hostname}:{parts.port}")
        return DestinationPolicy(allow_hosts=hosts)


class _SandboxSecrets(SecretStore):
    """The server's secrets, and a stand-in value for a name that is not set: the sandbox only checks that
    credentials are there, so a first Test request works before any secret is set."""

    def get(self, name: str) -> str:
        try:
            return super().get(name)
        except UsageError:
            if not name or not isinstance(name, str):
                raise
            return _STAND_IN


# -- the documented shapes -----------------------------------------------------------------------------------


class IssueOut(BaseModel):
    path: str = Field(description="JSON path of the field, e.g. `$.body.memo`.")
    message: str
    expected: Any = None
    actual: Any = None
    line: int | None = None


class ErrorOut(BaseModel):
    error: str = Field(description="One sentence saying what is wrong and what to do.")
    issues: list[IssueOut] = Field(default_factory=list)
    request: dict[str, Any] | None = Field(
        default=None, description="The redacted request, when one was built."
    )


class OperationSummary(BaseModel):
    id: str
    api: str
    api_name: str
    method: str
    path: str
    summary: str
    tags: list[str]
    score: float


class SearchOut(BaseModel):
    query: str
    operations: list[OperationSummary]


class OperationOut(BaseModel):
    reference: dict[str, Any] = Field(
        description="The reference data of `httptask catalog show --format json`."
    )
    reference_html: str = Field(description="The reference page as an HTML fragment.")
    request_schema: dict[str, Any] = Field(
        description="JSON Schema of the request: server, path, query, headers, body."
    )
    skeleton: dict[str, Any]
    skeleton_yaml: str
    sample_input: dict[str, Any] = Field(
        description="A value for every `{{ input.NAME }}` of the skeleton, from the spec's examples and "
        "schemas."
    )


class TaskIn(BaseModel):
    operation: str = Field(description="A catalog id, e.g. `chargebee.record_refund`.", max_length=300)
    values: dict[str, Any] = Field(
        default_factory=dict, description="Field values by the reference page's names (`body.memo`, `site`)."
    )
    credentials: str | dict[str, str] | None = Field(default=None, description="Secret names, never secrets.")


class TaskOut(BaseModel):
    task: dict[str, Any]
    yaml: str


class SendTaskIn(BaseModel):
    task: dict[str, Any] | str = Field(description="A task definition, as an object or as YAML text.")
    input: dict[str, Any] = Field(default_factory=dict, description="The values of `{{ input.NAME }}`.")


class Timings(BaseModel):
    prepare_ms: float
    send_ms: float
    total_ms: float


class SendTaskOut(BaseModel):
    task: str
    operation: str | None
    sandbox: bool = Field(description="Whether the request went to the local sandbox.")
    request: dict[str, Any]
    response: dict[str, Any]
    response_issues: list[IssueOut] = Field(
        description="Where the response breaks the operation's spec (status, content type, body), by path."
    )
    strict_responses: bool = Field(description="Whether the task makes a response that breaks its spec fail.")
    attempts: int
    timings: Timings


class ValidateIn(BaseModel):
    workflow: str = Field(description="Workflow YAML text.")


class ValidateOut(BaseModel):
    valid: bool
    errors: list[IssueOut]
    sample_input: dict[str, Any] | None = Field(
        default=None,
        description="A sample value for every required input, when the workflow is valid; for the editor's "
        "run form.",
    )


class ExampleSummary(BaseModel):
    name: str
    description: str


class ExamplesOut(BaseModel):
    examples: list[ExampleSummary]


class ExampleOut(BaseModel):
    name: str
    workflow: str = Field(description="The workflow YAML, as shipped.")
    input: dict[str, Any] = Field(description="Inputs to run it with: the shipped file, else samples.")


class InsertTaskIn(BaseModel):
    workflow: str = Field(description="Workflow YAML text; empty text starts a new workflow.")
    task: dict[str, Any] = Field(description="A task definition, as the task builder gives it.")


class RunIn(BaseModel):
    workflow: str = Field(description="Workflow YAML text.")
    input: dict[str, Any] = Field(default_factory=dict, description="The workflow's inputs.")


class RunOut(BaseModel):
    run_id: str
    status: str = Field(description="`running`, then `succeeded` or `failed`.")
    tasks: list[dict[str, Any]] = Field(
        description="Each task's state, as `httptask runs show --json` has it."
    )
    outputs: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class InsertTaskOut(BaseModel):
    workflow: str = Field(description="The text with the task added to `tasks:`; other lines are kept.")
    task_id: str = Field(description="The id the task got: its own, or with a suffix when that is taken.")
    declared: list[str] = Field(description="Inputs added to `inputs:` for the task's `{{ input.NAME }}`.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "Bad input: unknown operation, bad YAML or task, refused destination.",
    },
    401: {"model": ErrorOut, "description": "The token is missing or wrong."},
    413: {"model": ErrorOut, "description": "The request body is larger than the cap."},
    422: {"model": ErrorOut, "description": "The request breaks its schema; nothing was sent."},
}
_UPSTREAM: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorOut, "description": "The upstream server could not be reached or did not answer."},
}


# -- errors to statuses --------------------------------------------------------------------------------------

_HTTP_MESSAGES = {
    400: "The request body cannot be parsed; send a UTF-8 JSON object.",
    404: "No such page or API route; the API lives under /api/ (see /openapi.json).",
    405: "This route does not accept that method; see /openapi.json.",
}


class _Failure(Exception):
    """An error already mapped to a status and a redacted body."""

    def __init__(self, status: int, body: ErrorOut) -> None:
        super().__init__(body.error)
        self.status = status
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        # Made in a worker process and sent back: rebuilt from its fields, not from its message.
        return _Failure, (self.status, self.body)


def _issues(issues: Iterable[Issue], redactor: Redactor) -> list[IssueOut]:
    return [IssueOut(**redactor.redact_value(issue.to_dict())) for issue in issues]


def _failure(exc: HttptaskError, redactor: Redactor, request: dict[str, Any] | None = None) -> _Failure:
    if isinstance(exc, DestinationRefused):
        status = 400
    elif isinstance(exc, EditorBusy):
        status = 503
    elif isinstance(exc, SendError):
        status = 502
    elif isinstance(exc, RequestInvalid):
        status = 422
    else:
        status = 400
    found = exc.issues if isinstance(exc, RequestInvalid | TaskError) else []
    body = ErrorOut(error=redactor.redact(exc.message), issues=_issues(found, redactor), request=request)
    return _Failure(status, body)


def _validation_issues(exc: RequestValidationError) -> list[IssueOut]:
    issues = []
    for error in exc.errors():
        path = "$"
        for part in error.get("loc", ())[1:]:
            path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
        issues.append(IssueOut(path=path, message=str(error.get("msg", "is not valid"))))
    return issues


# -- the guard in front of every route -----------------------------------------------------------------------


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=message).model_dump(), status_code=status, headers=headers)


class _Guard:
    """Checks the Host and Origin headers, the token for `/api/` and the body size cap before any route runs.

    Without a token the editor only answers requests addressed to a loopback name, so a web page that
    rebinds its own name to 127.0.0.1 cannot drive it; a cross-site Origin is refused in every mode.
    """

    def __init__(self, app: ASGIApp, config: ServerConfig, redactor: Redactor) -> None:
        self._app = app
        self._config = config
        self._redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        cap = self._config.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _too_large(cap)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = scope["method"] not in ("GET", "HEAD")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _too_large(cap)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self._app(
            scope, _replay(b"".join(chunks), receive), _redacted(_with_security_headers(send), self._redactor)
        )

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> JSONResponse | None:
        host = headers.get("host", "")
        if self._config.token is None and not is_loopback_host(urlsplit(f"//{host}").hostname or ""):
            return _error_response(
                400,
                f"Refused the Host header {host!r}: without --token the editor only "
                "answers at 127.0.0.1 or localhost.",
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != host:
            return _error_response(
                403, f"Refused a request from the page at {origin!r}: the editor only answers its own page."
            )
        token = self._config.token
        if token is not None and str(scope["path"]).startswith("/api/"):
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return _error_response(
                    401,
                    "This editor needs its token: send 'Authorization: Bearer TOKEN', "
                    "or open the page as /?token=TOKEN.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return None


def _too_large(cap: int) -> JSONResponse:
    return _error_response(413, f"The request body is larger than the cap of {cap:,} bytes; send less.")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


def _redacted(send: Send, redactor: Redactor) -> Send:
    """``send`` for a response whose body, gathered whole, passes ``redactor`` first: every answer the editor
    gives, whichever route or error handler made it."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def redacting(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = redactor.redact(b"".join(chunks).decode("utf-8", errors="replace")).encode("utf-8")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers = [(k, redactor.redact(v.decode("latin-1")).encode("latin-1")) for k, v in headers]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return redacting


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
        await send(message)

    return wrapped


# -- the app -------------------------------------------------------------------------------------------------


def create_app(
    config: ServerConfig | None = None, *, catalog: Catalog | None = None, secrets: SecretStore | None = None
) -> Any:
    """The editor as an ASGI app: the FastAPI routes behind the guard (host, origin, token, body cap)."""
    config = config or ServerConfig()
    catalog = catalog or Catalog.default()
    if secrets is None:
        # Only HTTPTASK_SECRET_* variables: a template's secret('AWS_SECRET_ACCESS_KEY') must not reach the
        # rest of the server's environment, which an exposed editor would otherwise hand to any caller.
        environ = {k: v for k, v in os.environ.items() if k.startswith(SECRET_VAR_PREFIX)}
        stand_ins = config.sandbox_url is not None and config.secrets_file is None
        secrets = (_SandboxSecrets if stand_ins else SecretStore)(environ=environ, file=config.secrets_file)
    state: dict[str, Sender] = {}
    pool = WorkerPool(
        setup=_set_up_worker,
        setup_args=(catalog, secrets),
        size=config.workers,
        seconds=config.work_seconds,
        memory_bytes=config.work_memory_bytes,
    )

    async def isolated(function: Callable[..., Any], *args: Any) -> Any:
        try:
            # Deep data cannot even be handed to a worker: pickling it recurses.
            check_depth(args, "The request body")
            return await pool.run(function, *args)
        except LimitExceeded as exc:
            raise _failure(UsageError(f"{exc}."), secrets.redactor) from None
        except OverLimit as exc:
            raise _failure(exc, secrets.redactor) from None

    # Answers are read in at most all workers but one, so that one is always free for the light work.
    answering = asyncio.Semaphore(max(1, config.workers - 1))
    answer_room = ByteBudget(config.answer_memory_bytes)

    async def answer(operation: str | None, response: HttpResponse) -> tuple[dict[str, Any], list[Any]]:
        """A Test request's answer as shown, and where it breaks its operation's spec, both redacted.

        Parsing, checking and redacting a large body takes the better part of a second: it is done in a
        worker, never on the event loop, which keeps serving others. When the worker fails or runs out of
        time, the answer is still shown, as the start of its text, and its check says why it stopped."""
        try:
            async with answering:
                found: tuple[dict[str, Any], list[Any]] = await pool.run(
                    _answer, operation, response, secrets.redactor, seconds=config.answer_seconds
                )
                return found
        except HttptaskError:
            # OverLimit's own words ("nothing was sent") are about preparing: here the request was sent.
            unchecked = Issue("$", "could not be checked against the spec in the editor's time and memory")
            return shown_response(response, secrets.redactor, whole=False), issue_records(
                [unchecked] if operation else [], secrets.redactor
            )

    live_runs = LiveRuns()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        state["sender"] = Sender(policy=config.policy(), resolve=config.resolve)
        # The workers start while the editor already answers; the first job waits for them if it must.
        starting = asyncio.create_task(pool.start())
        # The first search then finds the index read and its words indexed.
        warming = asyncio.create_task(asyncio.to_thread(catalog.warm))
        try:
            yield
        finally:
            with contextlib.suppress(HttptaskError):  # a broken spec: the searches say what is wrong
                await warming
            await starting
            await live_runs.stop()
            pool.close()
            await state["sender"].aclose()

    app = FastAPI(
        title="httptask editor",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description=__doc__,
    )
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.exception_handler(_Failure)
    async def failure(_request: Request, exc: _Failure) -> JSONResponse:
        return JSONResponse(exc.body.model_dump(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
        return JSONResponse(
            ErrorOut(error=message).model_dump(), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = _validation_issues(exc)
        body = ErrorOut(
            error=f"The API request is not valid: {len(issues)} problem(s); see issues.", issues=issues
        )
        return JSONResponse(body.model_dump(), status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        from .pages import render_page
        from .tasks import schema_modeline

        page = render_page(
            "editor.html.j2",
            sandbox=config.sandbox_url is not None,
            workflow_modeline=schema_modeline("workflow"),
        )
        return HTMLResponse(page)

    @app.get("/api/operations", response_model=SearchOut, responses=_ERRORS)
    def search(
        q: str = Query("", max_length=500, description="Words to search; empty lists every operation."),
        limit: int = Query(50, ge=1, le=1000),
    ) -> SearchOut:
        """Operations ranked by how well they match `q`, typos forgiven."""
        hits = catalog.search(q, limit=limit)
        return SearchOut(
            query=q,
            operations=[
                OperationSummary(
                    id=h.entry.id,
                    api=h.entry.api,
                    api_name=h.entry.api_name,
                    method=h.entry.method,
                    path=h.entry.path,
                    summary=h.entry.summary,
                    tags=list(h.entry.tags),
                    score=h.score,
                )
                for h in hits
            ],
        )

    @app.get("/api/operations/{operation_id}", response_model=OperationOut, responses=_ERRORS)
    def operation(
        operation_id: str = FastAPIPath(max_length=300, description="A catalog id."),
    ) -> OperationOut:
        """The reference data and page of one operation, its request schema, and a task skeleton."""
        from .pages import render_page
        from .reference import reference
        from .skeleton import sample_input, skeleton, skeleton_yaml
        from .validation import operation_schema

        op = _call(lambda: catalog.operation(operation_id), secrets.redactor)
        ref = reference(op)
        return OperationOut(
            reference=ref,
            reference_html=render_page("reference.html.j2", ref=ref),
            request_schema=operation_schema(op),
            skeleton=skeleton(op),
            skeleton_yaml=skeleton_yaml(op),
            sample_input=sample_input(op),
        )

    @app.post("/api/tasks", response_model=TaskOut, responses=_ERRORS)
    async def build_task(body: TaskIn) -> TaskOut:
        """A task definition for an operation with the form's values filled in, as JSON and as YAML."""
        task, text = await isolated(_build_task, body.operation, body.values, body.credentials)
        return TaskOut(task=task, yaml=text)

    @app.post("/api/test-request", response_model=SendTaskOut, responses={**_ERRORS, **_UPSTREAM})
    async def test_request(body: SendTaskIn) -> SendTaskOut:
        """Render, validate and send one task (to the sandbox when the editor runs with --sandbox)."""
        started = time.perf_counter()
        prepared, carried = await isolated(
            _prepare, body.task, body.input, config.sandbox_url, config.max_response_bytes
        )
        # The worker registered the secrets it used and their derived forms: mask them here too.
        secrets.redactor.merge(prepared.redactor)
        task = prepared.task
        request = prepared.redacted_request()
        allowed = (*config.secret_origins, *([config.sandbox_url] if config.sandbox_url else []))
        try:
            check_secret_destination(prepared.request.url, carried, prepared.operation, allowed)
        except DestinationRefused as exc:
            raise _failure(exc, secrets.redactor, request) from None
        try:
            async with answer_room.reserved(task.max_response_bytes, config.answer_wait_seconds):
                prepared_at = time.perf_counter()
                try:
                    sender = state["sender"]
                    response, attempts = await send_test_request(
                        prepared, sender, config.call_timeout_seconds
                    )
                except SendError as exc:
                    raise _failure(exc, secrets.redactor, request) from None
                done = time.perf_counter()
                shown, issues = await answer(task.operation, response)
                del response  # its room is given back as the block ends: nothing here holds it any more
        except NoRoom:
            busy = EditorBusy(
                f"The editor holds as many answers as it has room for ({config.answer_memory_bytes:,} bytes, "
                f"each Test request counted at its size limit of {task.max_response_bytes:,}); nothing was "
                "sent. Send it again in a moment, or lower the task's maxResponseBytes."
            )
            raise _failure(busy, secrets.redactor, request) from None
        return SendTaskOut(
            task=task.id,
            operation=task.operation,
            sandbox=config.sandbox_url is not None,
            request=request,
            response=shown,
            response_issues=[IssueOut(**record) for record in issues],
            strict_responses=task.strict_responses,
            attempts=attempts,
            timings=Timings(
                prepare_ms=_ms(prepared_at - started),
                send_ms=_ms(done - prepared_at),
                total_ms=_ms(done - started),
            ),
        )

    @app.post("/api/validate", response_model=ValidateOut, responses=_ERRORS)
    async def validate(body: ValidateIn) -> ValidateOut:
        """Check a workflow without sending anything: every problem with its JSON path and line."""
        issues = await isolated(_check_workflow, body.workflow)
        # Only a valid workflow gets samples: its text is known to parse within the worker's limits.
        sample = None if issues else await isolated(_workflow_sample_input, body.workflow)
        return ValidateOut(valid=not issues, errors=_issues(issues, secrets.redactor), sample_input=sample)

    @app.post("/api/runs", status_code=202, response_model=RunOut, responses=_ERRORS)
    async def start_run(body: RunIn) -> RunOut:
        """Run a workflow on the local engine against the sandbox; follow it at `/api/runs/{run_id}/events`.

        The workflow gets the checks of `httptask validate` first: with any problem, nothing is sent (422).
        The run is journaled like `httptask run --sandbox`, so `httptask runs show` lists it.
        """
        from .journal import Journal, default_journal_path
        from .runs import begin_run, drive_run

        if config.sandbox_url is None:
            raise _failure(
                UsageError("Runs from the editor go to the sandbox: start it with --sandbox."),
                secrets.redactor,
            )
        _call(live_runs.check_room, secrets.redactor)
        # The workflow's text, inputs and templates are read in a worker first, within its time and memory
        # limits; only a run that passed there is parsed and planned again here, on the event loop.
        issues = await isolated(_check_run, body.workflow, body.input)
        if issues:
            count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
            error = ErrorOut(
                error=f"The workflow has {count}; nothing was sent.", issues=_issues(issues, secrets.redactor)
            )
            raise _Failure(422, error)
        journal = _call(lambda: Journal(default_journal_path()), secrets.redactor)
        try:
            run = _call(
                lambda: begin_run(
                    body.workflow,
                    "<editor>",
                    inputs=body.input,
                    catalog=catalog,
                    secrets=secrets,
                    journal=journal,
                    sandbox=True,
                ),
                secrets.redactor,
            )
        except BaseException:
            journal.close()
            raise

        async def drive(on_task: TaskUpdate) -> RunResult:
            # On the run's own thread and loop (liveruns.py), with a pool of its own.
            async with Sender(policy=config.policy(), resolve=config.resolve) as sender:
                return await drive_run(
                    run,
                    journal=journal,
                    secrets=secrets,
                    catalog=catalog,
                    sender=sender,
                    sandbox_url=config.sandbox_url,
                    on_task=on_task,
                )

        with serving():  # limits count wall time in the run, which shares the process with everyone's work
            live = live_runs.start(run.run_id, run.workflow, drive, journal.close)
        return RunOut(**secrets.redactor.redact_value(live.snapshot()))

    @app.get("/api/runs/{run_id}", response_model=RunOut, responses=_ERRORS)
    def show_run(run_id: str = FastAPIPath(max_length=100)) -> RunOut:
        """A run started from this editor, as it stands."""
        return RunOut(**secrets.redactor.redact_value(_live(run_id).snapshot()))

    @app.get(
        "/api/runs/{run_id}/events",
        response_class=StreamingResponse,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
        },
    )
    def run_events(run_id: str = FastAPIPath(max_length=100)) -> StreamingResponse:
        """The run's events from its start, as server-sent events: `task` (one task's state) whenever one
        changes, and `run` (status, tasks, outputs, errors) when it ends, after which the stream closes."""
        live = _live(run_id)

        async def stream() -> AsyncIterator[str]:
            async for index, kind, data in live.follow():
                text = json.dumps(secrets.redactor.redact_value(data), ensure_ascii=False)
                yield f"id: {index}\nevent: {kind}\ndata: {text}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    def _live(run_id: str) -> LiveRun:
        live = live_runs.get(run_id)
        if live is None:
            error = UsageError(
                f"No run {run_id!r} was started from this editor since it started; "
                "see 'httptask runs show' for older runs."
            )
            raise _failure(error, secrets.redactor)
        return live

    @app.get("/api/examples", response_model=ExamplesOut, responses=_ERRORS)
    def list_examples() -> ExamplesOut:
        """The example workflows shipped with httptask."""
        from .examples import examples

        found = _call(examples, secrets.redactor)
        return ExamplesOut(examples=[ExampleSummary(name=e.name, description=e.description) for e in found])

    @app.get("/api/examples/{name}", response_model=ExampleOut, responses=_ERRORS)
    def show_example(name: str = FastAPIPath(max_length=200)) -> ExampleOut:
        """One example workflow as YAML text, with inputs to run it with."""
        from .examples import example

        found = _call(lambda: example(name), secrets.redactor)
        return ExampleOut(name=found.name, workflow=found.text, input=found.inputs)

    @app.post("/api/workflows/insert-task", response_model=InsertTaskOut, responses=_ERRORS)
    async def insert_into_workflow(body: InsertTaskIn) -> InsertTaskOut:
        """Add a task to workflow text, under an id of its own, declaring the inputs it reads."""
        text, task_id, declared = await isolated(_insert_task, body.workflow, body.task)
        return InsertTaskOut(workflow=text, task_id=task_id, declared=declared)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            if config.token is not None:
                document.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"}
                }
                document["security"] = [{"bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return _Guard(app, config, secrets.redactor)


# -- the work done in worker processes (see isolation) -------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _set_up_worker(catalog: Catalog, secrets: SecretStore) -> None:
    _WORKER["catalog"] = catalog
    _WORKER["secrets"] = secrets


def _prepare(
    task_data: dict[str, Any] | str, inputs: dict[str, Any], sandbox_url: str | None, max_response_bytes: int
) -> tuple[Prepared, list[str]]:
    """Parse the task and prepare its request, in a worker; with the names of the secrets it carries."""
    catalog: Catalog = _WORKER["catalog"]
    secrets: SecretStore = _WORKER["secrets"]
    task = _call(lambda: _task(task_data), secrets.redactor)
    task = dataclasses.replace(task, max_response_bytes=min(task.max_response_bytes, max_response_bytes))
    read = ReadSecrets(secrets)
    prepared: Prepared = _call(
        lambda: prepare(task, inputs=inputs, catalog=catalog, secrets=read, sandbox_url=sandbox_url),
        secrets.redactor,
    )
    return prepared, read.names


def _answer(
    operation: str | None, response: HttpResponse, redactor: Redactor
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A test request's answer as the editor shows it, and where it breaks its operation's spec, both
    redacted, in a worker."""
    from .responses import check_response

    issues = check_response(_WORKER["catalog"].operation(operation), response) if operation else []
    return shown_response(response, redactor), issue_records(issues, redactor)


def _check_workflow(text: str) -> list[Issue]:
    """Every issue of a workflow's YAML text, in a worker."""
    from .checks import check_workflow_text

    secrets: SecretStore = _WORKER["secrets"]
    return _call(lambda: check_workflow_text(text, _WORKER["catalog"]), secrets.redactor)  # type: ignore[no-any-return]


def _check_run(text: str, inputs: dict[str, Any]) -> list[Issue]:
    """The issues of a workflow's text; when there are none, its inputs and requests are checked as a run
    on the sandbox would check them (raising what the run would raise), in a worker."""
    from .checks import check_workflow_text
    from .runs import check_new_run

    catalog: Catalog = _WORKER["catalog"]
    secrets: SecretStore = _WORKER["secrets"]
    issues: list[Issue] = _call(lambda: check_workflow_text(text, catalog), secrets.redactor)
    if not issues:

        def check() -> None:
            check_new_run(text, "<editor>", inputs=inputs, catalog=catalog, secrets=secrets, sandbox=True)

        _call(check, secrets.redactor)
    return issues


def _build_task(
    operation: str, values: dict[str, Any], credentials: str | dict[str, str] | None
) -> tuple[dict[str, Any], str]:
    """A task definition and its YAML for an operation and the form's values, in a worker."""
    from .skeleton import task_definition

    catalog: Catalog = _WORKER["catalog"]

    def build() -> dict[str, Any]:
        task = task_definition(catalog.operation(operation), values)
        if credentials is not None:
            task["credentials"] = credentials
        parse_task(json.loads(json.dumps(task)))
        return task

    task = _call(build, _WORKER["secrets"].redactor)
    from .tasks import schema_modeline

    return task, f"{schema_modeline('task')}\n{dump_yaml(task)}"


def _call(function: Callable[[], Any], redactor: Redactor) -> Any:
    try:
        return function()
    except (UnknownOperation, UsageError, TaskError, RequestInvalid, SendError) as exc:
        raise _failure(exc, redactor) from None


def _task(data: dict[str, Any] | str) -> Task:
    if isinstance(data, str):
        source = parse_source(data, "the task")
        return parse_task(source.data, source=source)
    return parse_task(data)


def _insert_task(text: str, task_data: dict[str, Any]) -> tuple[str, str, list[str]]:
    """Workflow text with a task inserted and the inputs it reads declared, in a worker."""
    from .authoring import input_names, insert_task
    from .skeleton import placeholders

    catalog: Catalog = _WORKER["catalog"]

    def insert() -> tuple[str, str, list[str]]:
        task = parse_task(task_data)
        schemas = {}
        if task.operation is not None:
            schemas = {p.input: p.schema for p in placeholders(catalog.operation(task.operation))}
        done = insert_task(text, task_data, {name: schemas.get(name) for name in input_names(task_data)})
        return done.text, done.task_id, list(done.declared)

    return _call(insert, _WORKER["secrets"].redactor)  # type: ignore[no-any-return]


def _workflow_sample_input(text: str) -> dict[str, Any] | None:
    """Sample values for a workflow's required inputs, or None when it does not parse, in a worker."""
    from .authoring import sample_inputs
    from .workflow import parse_workflow_text

    try:
        return sample_inputs(parse_workflow_text(text))
    except HttptaskError:
        return None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
