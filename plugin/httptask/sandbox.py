"""The local sandbox: an aiohttp server on 127.0.0.1 that serves every catalog operation from its spec.

Each request is checked as the client checks it (auth, body decoding, `validation.validate_values`), answered
with the operation's sample response, and recorded for `GET /_sandbox/requests`; idempotency keys replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from .auth import carries_credential, is_credential_name
from .catalog import Catalog
from .encoding import decode_body, encode_body
from .errors import HttptaskError, Issue
from .ledger import Ledger
from .messages import RequestValues
from .redaction import process_redactor
from .requests import TEMPLATE_VARIABLE, sandbox_base_url
from .samples import sample_response
from .spec import Operation, SecurityScheme
from .validation import coerce_to_schema, validate_values

__all__ = ["MAX_BODY_BYTES", "MAX_RECORDS", "SandboxThread", "create_app", "serve_forever", "start"]

MAX_BODY_BYTES = 1024 * 1024
MAX_RECORDS = 10_000
PROBLEM_TYPE = "application/problem+json"



@dataclass(frozen=True)
class _Route:
    """One operation's path template as segments: literal text, or a regex whose groups are parameters."""

    op: Operation
    segments: tuple[str | re.Pattern[str], ...]
    names: tuple[tuple[str, ...], ...]

    @property
    def specificity(self) -> tuple[int, ...]:
        # OpenAPI matches concrete paths before templated ones: /refunds/latest beats /refunds/{id}.
        return tuple(0 if isinstance(segment, str) else 1 for segment in self.segments)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        values: dict[str, str] = {}
        for given, wanted, names in zip(segments, self.segments, self.names, strict=True):
            if isinstance(wanted, str):
                if given != wanted:
                    return None
                continue
            found = wanted.fullmatch(given)
            if found is None:
                return None
            values.update(zip(names, found.groups(), strict=True))
        return values


def _route(op: Operation) -> _Route:
    template = sandbox_base_url(op, "") + op.path
    segments: list[str | re.Pattern[str]] = []
    names: list[tuple[str, ...]] = []
    for part in template.strip("/").split("/"):
        found = TEMPLATE_VARIABLE.findall(part)
        if not found:
            segments.append(part)
            names.append(())
            continue
        # A segment such as `{id}.json` holds literal text around its parameters; each value is non-empty.
        pattern = "".join(
            "(.+?)" if i % 2 else re.escape(piece) for i, piece in enumerate(TEMPLATE_VARIABLE.split(part))
        )
        segments.append(re.compile(pattern, re.DOTALL))
        names.append(tuple(found))
    return _Route(op, tuple(segments), tuple(names))


@dataclass
class _Stored:
    fingerprint: str
    status: int
    content_type: str
    body: bytes


@dataclass
class _State:
    """What one sandbox remembers: the requests it received, the responses stored under idempotency keys, and
    the writes that reads reconciling them show (`ledger`).

    Handlers change it only in synchronous stretches, so the event loop alone would keep it consistent; the
    lock keeps it so for readers in other threads (SandboxThread users) too.
    """

    ledger: Ledger
    records: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    stored: OrderedDict[tuple[str, str], _Stored] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> str:
        with self.lock:
            return f"req_{next(self.ids):06d}"

    def record(self, entry: dict[str, Any]) -> None:
        """Keep ``entry`` for the log, every secret this process's redactor knows masked."""
        redacted = process_redactor().redact_value(entry)
        with self.lock:
            self.records.append(redacted)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.records)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()

    def stored_response(self, key: tuple[str, str]) -> _Stored | None:
        with self.lock:
            return self.stored.get(key)

    def store(self, key: tuple[str, str], response: _Stored) -> None:
        with self.lock:
            self.stored[key] = response
            while len(self.stored) > MAX_RECORDS:
                self.stored.popitem(last=False)


_ROUTES = web.AppKey("routes", list[_Route])
_STATE = web.AppKey("state", _State)


def create_app(catalog: Catalog) -> web.Application:
    """The sandbox application for every operation of `catalog` (specs are loaded now, not per request)."""
    operations = catalog.operations()
    routes = [_route(op) for op in operations]
    routes.sort(key=lambda route: route.specificity)
    # request.read() raises at this size; the handler turns that into a problem+json 413 (not aiohttp's text).
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_ROUTES] = routes
    app[_STATE] = _State(Ledger(operations))
    app.router.add_get("/_sandbox/health", _health)
    app.router.add_get("/_sandbox/requests", _list_requests)
    app.router.add_delete("/_sandbox/requests", _clear_requests)
    app.router.add_route("*", "/{tail:.*}", _serve_operation)
    return app


async def start(catalog: Catalog, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start the sandbox on the running loop; returns the runner (`cleanup()` stops it) and the root URL."""
    return await _start_app(create_app(catalog), host, port)


async def _start_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"


def serve_forever(
    catalog: Catalog, host: str = "127.0.0.1", port: int = 0, *, echo: Callable[[str], None] = print
) -> None:
    """Serve until Ctrl-C, announcing the root URL once the port is bound."""
    app = create_app(catalog)

    async def main() -> None:
        runner, url = await _start_app(app, host, port)
        echo(f"The sandbox serves {len(app[_ROUTES])} operations at {url}; press Ctrl-C to stop.")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class SandboxThread:
    """The sandbox on a free port in a background thread with its own event loop; `.url` is its root URL.

    Specs are loaded in the calling thread, so a broken spec raises from `__enter__`.
    """

    def __init__(self, catalog: Catalog, host: str = "127.0.0.1", port: int = 0) -> None:
        self._catalog = catalog
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""

    def __enter__(self) -> SandboxThread:
        app = create_app(self._catalog)
        self._thread = threading.Thread(target=self._run, args=(app,), name="httptask-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def _run(self, app: web.Application) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                self._runner, self.url = loop.run_until_complete(_start_app(app, self._host, self._port))
            except BaseException as exc:  # handed to the caller of __enter__
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "operations": len(request.app[_ROUTES])})


async def _list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[_STATE].snapshot())


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[_STATE].clear()
    return web.Response(status=204)


def _problem(status: int, title: str, detail: str | None = None, **extra: Any) -> web.Response:
    data: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        data["detail"] = detail
    data.update(extra)
    return web.Response(status=status, body=_json_bytes(data), content_type=PROBLEM_TYPE)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


async def _serve_operation(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    request_id = state.next_id()
    raw_path, _, raw_query = request.raw_path.partition("?")
    record: dict[str, Any] = {
        "id": request_id,
        "operation": None,
        "method": request.method,
        "path": raw_path,
        "query": _query_record(raw_query),
        "path_params": {},
        "headers": _headers_record(request, None),
        "body": None,
        "raw_body": "",
        "status": 0,
        "replayed": False,
        "idempotency_key": None,
    }
    response = await _answer(request, raw_path, record)
    response.headers["x-sandbox-request-id"] = request_id
    record["status"] = response.status
    state.record(record)
    return response


async def _answer(request: web.Request, raw_path: str, record: dict[str, Any]) -> web.Response:
    """The response to one API request; fills in `record` with what it learns on the way."""
    # Split before unquoting, so that an encoded slash (a%2Fb) stays inside its one parameter value.
    segments = [unquote(part) for part in raw_path.strip("/").split("/")]
    routes: list[_Route] = request.app[_ROUTES]
    matches = [(route, found) for route in routes if (found := route.match(segments)) is not None]
    if not matches:
        return _problem(404, "No such endpoint",
                        f"No operation in the sandbox is served at {request.method} {raw_path}. Operations "
                        "are served at /{api}{server base path}{path}, as requests.sandbox_base_url gives.")
    chosen = next(((route, values) for route, values in matches if route.op.method == request.method), None)
    if chosen is None:
        allowed = sorted({route.op.method for route, _ in matches})
        return _method_not_allowed(request.method, raw_path, allowed)
    route, path_values = chosen
    op = route.op
    record["operation"] = op.id
    record["path_params"] = path_values
    record["headers"] = _headers_record(request, op)

    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _too_large(op)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(op)
    record["raw_body"] = raw.decode("utf-8", errors="replace")
    decoded = _decode(op, request, raw)
    if not isinstance(decoded, web.Response):
        record["body"] = decoded[1]

    # Credentials first: a caller without them learns nothing about the body or the keys seen before.
    missing = _missing_auth(op, request)
    if missing is not None:
        return missing

    key = request.headers.get(op.idempotency_header) if op.idempotency_header else None
    store_key = (op.id, key) if key else None
    record["idempotency_key"] = key
    fingerprint = _fingerprint(request, raw)
    if store_key is not None:
        stored = request.app[_STATE].stored_response(store_key)
        if stored is not None and stored.fingerprint != fingerprint:
            return _problem(409, "This idempotency key was used with a different request",
                            f"The {op.idempotency_header} {key!r} was first sent to {op.id} with a "
                            "different path, query or body. Send a new key for a new request, or repeat the "
                            "first request exactly to get its answer again.", operation=op.id)
        if stored is not None:
            record["replayed"] = True
            replay = _stored_response(stored)
            replay.headers["x-sandbox-idempotent-replay"] = "true"
            return replay

    if isinstance(decoded, web.Response):
        return decoded
    has_body, body = decoded
    values = RequestValues(
        path={name: _coerce(op, "path", name, value) for name, value in path_values.items()},
        query=_query_values(op, request),
        headers=_header_values(op, request),
        body=body,
        has_body=has_body,
    )
    issues = validate_values(op, values)
    if issues:
        return _invalid(op, issues)

    status, content_type, sample = sample_response(op)
    ledger = request.app[_STATE].ledger
    if ledger.answers(op):
        sample = ledger.answer(op, values, sample)
    ledger.record(op, values)
    answer = _Stored(fingerprint, status, content_type, _encode_sample(sample, content_type))
    if store_key is not None:
        request.app[_STATE].store(store_key, answer)
    return _stored_response(answer)


def _method_not_allowed(method: str, raw_path: str, allowed: list[str]) -> web.Response:
    response = _problem(405, "Method not allowed",
                        f"{raw_path} does not take {method}; it takes {', '.join(allowed)}.")
    response.headers["Allow"] = ", ".join(allowed)
    return response


def _too_large(op: Operation) -> web.Response:
    return _problem(413, "Request body too large",
                    f"The sandbox takes request bodies of at most {MAX_BODY_BYTES} bytes.", operation=op.id)


def _invalid(op: Operation, issues: list[Issue]) -> web.Response:
    return _problem(422, "The request does not match the spec", operation=op.id,
                    errors=[issue.to_dict() for issue in issues])


def _stored_response(stored: _Stored) -> web.Response:
    if not stored.content_type:
        return web.Response(status=stored.status)
    return web.Response(status=stored.status, body=stored.body, headers={"Content-Type": stored.content_type})


def _encode_sample(sample: Any, content_type: str) -> bytes:
    if not content_type or sample is None:
        return b""
    try:
        return encode_body(sample, content_type)[1]
    except HttptaskError:
        # A structured example for a media type that has no encoder here: JSON is the most readable stand-in.
        return _json_bytes(sample)


def _fingerprint(request: web.Request, raw: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.raw_path.encode(), raw):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _decode(op: Operation, request: web.Request, raw: bytes) -> tuple[bool, Any] | web.Response:
    """(has_body, body) as the spec reads it, or the 400 or 415 problem that says why it cannot be read."""
    if op.request_body is None or not raw:
        return False, None
    content_type = request.headers.get("Content-Type")
    if not content_type:
        offered = ", ".join(m.content_type for m in op.request_body.media_types)
        return _problem(415, "Unsupported media type",
                        f"The request has a body but no Content-Type header; {op.id} takes {offered}.",
                        operation=op.id)
    media = op.request_body.media_type(content_type)
    if media is None:
        offered = ", ".join(m.content_type for m in op.request_body.media_types)
        return _problem(415, "Unsupported media type",
                        f"{op.id} takes {offered}, not {content_type!r}.", operation=op.id)
    try:
        body = decode_body(raw, content_type, form_style=media.form_style)
    except HttptaskError as exc:
        return _problem(400, "The body cannot be read", str(exc), operation=op.id)
    if isinstance(body, bytes):
        return True, raw.decode("utf-8", errors="replace")
    # Only form and text values arrive as strings; JSON carries its own types, and a JSON "20" for a number
    # must stay the type error it is.
    if not _is_json(media.content_type):
        body = coerce_to_schema(body, media.schema)
    return True, body


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _coerce(op: Operation, location: str, name: str, value: Any) -> Any:
    param = next((p for p in op.parameters_in(location) if p.name.lower() == name.lower()), None)
    return coerce_to_schema(value, param.schema) if param is not None else value


def _query_values(op: Operation, request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in op.parameters_in("query"):
        given = request.query.getall(param.name, [])
        if not given:
            continue
        value: Any = given if len(given) > 1 or param.schema.get("type") == "array" else given[0]
        values[param.name] = coerce_to_schema(value, param.schema)
    return values


def _header_values(op: Operation, request: web.Request) -> dict[str, str]:
    """The spec's own header parameters only: credentials and transport headers are not the spec's values."""
    values: dict[str, Any] = {}
    for param in op.parameters_in("header"):
        if param.name in request.headers:
            values[param.name.lower()] = coerce_to_schema(request.headers[param.name], param.schema)
    return values


def _missing_auth(op: Operation, request: web.Request) -> web.Response | None:
    """None when one of the operation's security requirements is met; else the 401 that names them."""
    if not op.security or any(all(_has_credential(s, request) for s in option) for option in op.security):
        return None
    wanted = "; or ".join(" and ".join(_describe(s) for s in option) for option in op.security)
    response = _problem(401, "Authentication required", f"{op.id} needs {wanted}.", operation=op.id,
                        schemes=[[s.name for s in option] for option in op.security])
    challenges = [s.scheme.capitalize() for option in op.security for s in option
                  if s.type == "http" and s.scheme in ("basic", "bearer")]
    if challenges:
        response.headers["WWW-Authenticate"] = ", ".join(f'{c} realm="sandbox"' for c in challenges)
    return response


def _has_credential(scheme: SecurityScheme, request: web.Request) -> bool:
    if scheme.type == "http" or scheme.type in ("oauth2", "openIdConnect"):
        return carries_credential(scheme, request.headers.get("Authorization"))
    if scheme.type == "apiKey":
        return carries_credential(scheme, _api_key(scheme, request))
    return True  # mutualTLS and unknown types: nothing the sandbox could check


def _api_key(scheme: SecurityScheme, request: web.Request) -> str | None:
    if scheme.location == "header":
        return request.headers.get(scheme.parameter_name)
    if scheme.location == "query":
        return request.query.get(scheme.parameter_name)
    return request.cookies.get(scheme.parameter_name)


def _describe(scheme: SecurityScheme) -> str:
    if scheme.type == "http" and scheme.scheme == "basic":
        return f"HTTP basic authentication ({scheme.name}): an 'Authorization: Basic ...' header"
    if (scheme.type == "http" and scheme.scheme == "bearer") or scheme.type in ("oauth2", "openIdConnect"):
        return f"bearer authentication ({scheme.name}): an 'Authorization: Bearer ...' header"
    if scheme.type == "http":
        return f"HTTP {scheme.scheme} authentication ({scheme.name})"
    if scheme.type == "apiKey":
        where = {"header": "header", "query": "query parameter", "cookie": "cookie"}.get(scheme.location, "")
        value = f"'{scheme.prefix}...'" if scheme.prefix else "a key"
        return f"an API key ({scheme.name}): the {scheme.parameter_name} {where} set to {value}"
    return f"{scheme.type} authentication ({scheme.name})"


def _headers_record(request: web.Request, op: Operation | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        shown = "***" if is_credential_name(lowered, op) else value
        headers[lowered] = f"{headers[lowered]}, {shown}" if lowered in headers else shown
    return headers


def _query_record(raw_query: str) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        shown = "***" if is_credential_name(name, None) else value
        if name in query:
            existing = query[name]
            query[name] = [*existing, shown] if isinstance(existing, list) else [existing, shown]
        else:
            query[name] = shown
    return query
