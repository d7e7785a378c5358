"""What Test request does, and what every engine does per task: render, build, validate, then send.

`prepare` is everything up to the wire and sends nothing: the CLI's `--dry-run`, the editor and the
engines share it. `send_prepared` sends with the task's retry policy; the idempotency key is fixed in
`prepare`, so every attempt carries the same one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import auth_parts
from .catalog import Catalog
from .encoding import encode_body
from .errors import HttptaskError, Issue, RequestInvalid, ResponseInvalid, TemplateError, child_path
from .item_drafts import Draft, ItemDrafter, ItemField, body_writer
from .messages import HttpRequest, HttpResponse, RequestValues
from .redaction import Redactor
from .requests import (
    RawRequest,
    ServerChoice,
    body_media_type,
    build_raw_request,
    build_request,
    build_values,
    derive_key,
    header_issues,
    idempotency_header,
    is_idempotent,
    new_key,
    path_issues,
    request_headers,
    request_url,
    resolve_server,
)
from .responses import check_response
from .retry import Attempt, send_with_retries
from .secrets import SecretStore
from .spec import MediaType, Operation
from .tasks import SECRET_PARTS, Task
from .templating import (
    UNSURE,
    Scope,
    base_context,
    direct_renderer,
    is_template,
    render_value,
    varies,
    whole_lookup,
)
from .transport import Sender, Timeouts
from .validation import QUOTE_CHARS, valid_request, validate_values, within_float

__all__ = [
    "Draft",
    "Exchange",
    "Prepared",
    "TaskPlan",
    "answer_record",
    "issue_records",
    "prepare",
    "response_issues",
    "response_record",
    "send_prepared",
]


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
        target = self.operation.id if self.operation is not None else self.redactor.redact(self.request.url)
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
    # Where the response breaks the operation's spec: warnings, unless strict responses make them errors.
    response_issues: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "operation": self.operation,
            "request": self.request,
            "response": self.response,
            "response_issues": self.response_issues,
            "errors": self.errors,
            "attempts": self.attempts,
            "sent": self.sent,
        }


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
    idempotency_key: str | None = None,
) -> Prepared:
    """Render and check `task` into a request; raises `RequestInvalid` (nothing to send) with every issue.

    Where the request takes an idempotency key it is `idempotency_key` when given (the key recorded for an
    earlier attempt of the same request), else the task's own `idempotencyKey`, else one derived from
    `key_seed`, else a new one.
    """
    plan = TaskPlan(
        task,
        inputs=inputs,
        catalog=catalog,
        secrets=secrets,
        sandbox_url=sandbox_url,
        tasks=tasks,
        varying=extra or (),
    )
    return plan.prepare(extra, key_seed=key_seed, idempotency_key=idempotency_key)


class TaskPlan:
    """`task` compiled once for every request it makes with the same inputs (the items of a forEach): what
    does not depend on the per-request names (`item`) is rendered, resolved and checked here, once.

    Template values that read a per-request name, or call `now()`, `uuid()` or `secret()`, are rendered for
    each request; so are all of them when a once-only part failed, so that each request reports the failure
    as `prepare` would. Values rendered here are shared by every request and never changed.
    """

    def __init__(
        self,
        task: Task,
        *,
        inputs: Mapping[str, Any],
        catalog: Catalog,
        secrets: SecretStore,
        sandbox_url: str | None = None,
        tasks: Mapping[str, Any] | None = None,
        varying: Iterable[str] = ("item",),
    ) -> None:
        self.task = task
        self._inputs, self._tasks, self._catalog, self._secrets = inputs, tasks, catalog, secrets
        self._sandbox_url = sandbox_url
        self._varying = frozenset(varying)
        # The names every request shares, wrapped once; each request adds its own (`item`) to a copy.
        self._base = base_context(inputs=inputs, tasks=tasks, secrets=secrets)
        # Each template split in what every request shares and what it renders itself; a plan of one request
        # (no `varying`) renders every template once, here, and has nothing to split.
        self._shapes: dict[str, _Shape] = {}
        # What each request renders read without Jinja's walk where its templates are that simple.
        self._direct: dict[str, Callable[[Scope], Any] | None] = {}
        if self._varying:
            self._base.extended(dict.fromkeys(self._varying))  # a reserved name fails here, before a request
            self._shapes = {part: _shape(value, self._varying) for part, value in task.templates.items()}
            self._direct = {
                part: direct_renderer(shape.dynamic)
                for part, shape in self._shapes.items()
                if shape.dynamic is not _NOTHING
            }
        self._static: dict[str, Any] | None = None
        self._op: Operation | None = None
        self._choice: ServerChoice | None = None
        self._auth: tuple[dict[str, str], dict[str, str]] | None = None
        self._fine_headers: dict[str, str] | None = None
        self._media_types: dict[tuple[int, str | None], tuple[Operation, MediaType | None]] = {}
        # A plan of one request whose templates failed here fails with that error: rendering them again would
        # fail the same way, after as long again (a template stopped at its time limit).
        self._failed: TemplateError | None = None
        try:
            self._compile()
        except TemplateError as exc:
            self._static = None
            self._failed = None if self._varying else exc
        except HttptaskError:
            self._static = None  # every request renders and checks everything, and fails as it should

    def _compile(self) -> None:
        context = self._base
        task = self.task
        shared = {part: shape.static for part, shape in self._shapes.items()} or task.templates
        self._static = {
            part: render_value(
                value, context, task_id=task.id, field_path=part, secrets_allowed=part in SECRET_PARTS
            )
            for part, value in shared.items()
        }
        if task.operation is None:
            return
        self._op = self._catalog.operation(task.operation)
        if not self._shapes or self._shapes["server"].dynamic is _NOTHING:
            self._choice = resolve_server(self._op, self._static["server"], sandbox_url=self._sandbox_url)
        self._auth = self._auth_parts(self._op)

    def prepare(
        self,
        names: Mapping[str, Any] | None = None,
        *,
        key_seed: str | None = None,
        idempotency_key: str | None = None,
    ) -> Prepared:
        """The request for one set of per-request `names` (`{"item": ...}`); see `prepare`."""
        if self._failed is not None:
            raise self._failed
        if key_seed and idempotency_key is None:  # a key to derive: as the run finishes a draft
            drafter, quick = self._drafter, self._quick_draft(names)
            if drafter is not None and quick is not None and names is not None:
                return self.finish(quick, key_seed, drafter.values(names["item"]))
        task = self.task
        rendered = self._render(names)
        key = _key(task, rendered, idempotency_key, self._secrets.redactor)
        if task.http_request is not None:
            return _prepare_raw(task, RawRequest.of(rendered["httpRequest"]), self._secrets.redactor, key)
        op, choice, values = self._values(rendered)
        key_header = idempotency_header(op)
        if key_header is not None:
            key = key or (derive_key(key_seed) if key_seed else new_key())
        request = self._request(op, choice, values, key_header, key)
        redactor = self._secrets.redactor
        return Prepared(task, op, request, values, is_idempotent(op.method, key_header), key, redactor)

    @functools.cached_property
    def draftable(self) -> bool:
        """Whether `draft` can make this task's requests before its run: an operation's, compiled, needing no
        other task, and with no template that calls now(), uuid() or secret() (the first two would give
        other values by the time the request is sent)."""
        task = self.task
        return (
            self._op is not None
            and self._static is not None
            and not task.needs
            and task.http_request is None
            and not any(_varies(value, frozenset()) for value in task.templates.values())
        )

    def draft(self, names: Mapping[str, Any] | None = None) -> Draft:
        """The request `prepare` makes for `names` in a run, raising what it raises, but for the idempotency
        key the run derives for it (`finish` places it); only where the plan is `draftable`."""
        assert self.draftable and self._op is not None
        made = self._quick_draft(names)
        if made is not None:
            return made
        rendered = self._render(names)
        key = _key(self.task, rendered, None, self._secrets.redactor)
        op, choice, values = self._values(rendered)
        key_header = idempotency_header(op)
        derived = key_header is not None and key is None
        request = self._request(op, choice, values, key_header, "" if derived else key)
        if not derived:
            return Draft(request.url, request.headers, request.content, key, -1)
        assert key_header is not None
        headers, at = _without(request.headers, key_header)
        return Draft(request.url, headers, request.content, None, at)

    def _quick_draft(self, names: Mapping[str, Any] | None) -> Draft | None:
        """The draft `item_drafts` makes for `names`, where the task and the item let it; else None."""
        drafter = self._drafter
        if drafter is None or names is None or len(names) != 1 or "item" not in names:
            return None
        return drafter.draft(names["item"])

    @functools.cached_property
    def _drafter(self) -> ItemDrafter | None:
        """What makes the drafts of a task whose items only fill fields of its path, query or body in
        (`item_drafts`), with everything else made here once, by the general path's own functions; None for
        any other task."""
        op, choice, auth, static, shapes = self._op, self._choice, self._auth, self._static, self._shapes
        if not self.draftable or self._varying != {"item"} or choice is None or choice.issues:
            return None
        assert op is not None and auth is not None and static is not None
        if any(shape.dynamic is not _NOTHING for part, shape in shapes.items() if part not in _ITEM_PARTS):
            return None
        path = _fields(shapes["request.path"], static["request.path"])
        query = _fields(shapes["request.query"], static["request.query"])
        body_shape = shapes.get("request.body")
        body_varies = body_shape is not None and body_shape.dynamic is not _NOTHING
        body_fields = _fields(body_shape, static["request.body"]) if body_shape is not None else None
        valid = valid_request(op, choice.server)
        if path is None or query is None or (body_varies and body_fields is None) or valid is None:
            return None
        values = build_values(
            op,
            server=choice.variables,
            path=_fixed(path),
            query=_fixed(query),
            headers=static["request.headers"],
            body=_fixed(body_fields or ()) if body_varies else static.get("request.body"),
            has_body=self.task.has_body,
        )
        if header_issues(values.headers) or path_issues(values.path) or not within_float(values.to_dict()):
            return None
        try:
            body_headers, content = _body(op, values, self._media_type)
        except (HttptaskError, UnicodeEncodeError):
            return None
        media = self._media_type(op, values.headers.get("content-type")) if values.has_body else None
        write: Callable[[dict[Any, Any]], bytes] = _nothing
        if media is not None and body_varies and body_fields is not None:
            try:
                write = body_writer(media.content_type, media.form_style, body_fields)
            except HttptaskError:
                return None
        if static.get("idempotencyKey"):  # the task's own key: checked for a secret as each item is made
            return None
        key_header = idempotency_header(op)
        extra = _extra_headers(auth[0], key_header, "", body_headers)
        headers, at = request_headers(values.headers, extra), -1
        if key_header is not None:  # the key the run derives goes there
            headers, at = _without(headers, key_header)
        return ItemDrafter(
            path_template=op.path,
            base_url=choice.base_url,
            server=values.server,
            headers=values.headers,
            path=path,
            query=query,
            auth_query=auth[1],
            has_body=values.has_body,
            body=values.body,
            content=content,
            body_fields=body_fields if body_varies else None,
            write=write,
            valid=valid,
            wire_headers=headers,
            key_at=at,
        )

    def finish(self, draft: Draft, key_seed: str, values: RequestValues | None = None) -> Prepared:
        """The request `draft` stands for, as `prepare(names, key_seed=key_seed)` makes it, but for its
        `values` (those given, or None: a run needs them only to settle an outcome it does not know)."""
        task, op, key_name, idempotent, redactor = self._finishing
        url, headers, content, key, at = draft
        if at >= 0:
            key = derive_key(key_seed)
            headers = (*headers[:at], (key_name, key), *headers[at:])
        # Both made with their fields set at once, not one by one through `object.__setattr__` as a frozen
        # dataclass's `__init__` sets them: a run makes them for every item.
        request = _new(HttpRequest)
        request.__dict__.update(method=op.method, url=url, headers=headers, content=content)
        prepared = _new(Prepared)
        prepared.__dict__.update(
            task=task,
            operation=op,
            request=request,
            values=values,
            idempotent=idempotent,
            idempotency_key=key,
            redactor=redactor,
        )
        return prepared

    @functools.cached_property
    def _finishing(self) -> tuple[Task, Operation, str, bool, Redactor]:
        """What `finish` adds to every draft: the task, its operation, the key's header name on the wire,
        whether its requests are idempotent, and the redactor."""
        op = self._op
        assert op is not None
        key_header = idempotency_header(op)
        idempotent = is_idempotent(op.method, key_header)
        return self.task, op, (key_header or "").lower(), idempotent, self._secrets.redactor

    def _request(
        self,
        op: Operation,
        choice: ServerChoice,
        values: RequestValues,
        key_header: str | None,
        key: str | None,
    ) -> HttpRequest:
        """The request on the wire, with the credentials, `key` in `key_header` and the encoded body."""
        auth_headers, auth_query = self._auth or self._auth_parts(op)
        try:
            body_headers, content = _body(op, values, self._media_type)
            return build_request(
                op,
                values,
                base_url=choice.base_url,
                content=content,
                extra_headers=_extra_headers(auth_headers, key_header, key, body_headers),
                extra_query=auth_query,
            )
        except UnicodeEncodeError:
            raise _unencodable_request(op, values) from None

    def check(self, names: Mapping[str, Any] | None = None) -> None:
        """Raise what `prepare` raises for `names`, with its messages, doing only what can fail: a pre-send
        check needs no idempotency key, no credentials on the wire and no request to send."""
        if self._failed is not None:
            raise self._failed
        if self._quick_draft(names) is not None:
            return  # a request made: `prepare` makes one too
        rendered = self._render(names)
        if self.task.http_request is not None:
            raw = RawRequest.of(rendered["httpRequest"])
            redactor = self._secrets.redactor
            _prepare_raw(self.task, raw, redactor, _key(self.task, rendered, None, redactor))
            return
        _key(self.task, rendered, None, self._secrets.redactor)
        op, choice, values = self._values(rendered)
        _, auth_query = self._auth or self._auth_parts(op)
        try:
            _body(op, values, self._media_type)
            request_url(op, values, base_url=choice.base_url, extra_query=auth_query)
        except UnicodeEncodeError:
            raise _unencodable_request(op, values) from None

    def _values(self, rendered: Mapping[str, Any]) -> tuple[Operation, ServerChoice, RequestValues]:
        """The operation, server and values of the rendered request; `RequestInvalid` with every issue."""
        task = self.task
        op = self._op if self._static is not None else self._catalog.operation(str(task.operation))
        assert op is not None
        choice = self._choice or resolve_server(op, rendered["server"], sandbox_url=self._sandbox_url)
        values = build_values(
            op,
            server=choice.variables,
            path=rendered["request.path"],
            query=rendered["request.query"],
            headers=rendered["request.headers"],
            body=rendered.get("request.body"),
            has_body=task.has_body,
        )
        # Most requests of a plan send the same headers: those found fine once are not checked again.
        header_problems = [] if values.headers == self._fine_headers else header_issues(values.headers)
        if not header_problems:
            self._fine_headers = values.headers
        issues = choice.issues + path_issues(values.path) + header_problems
        issues += validate_values(op, values, choice.server)
        if issues:
            raise RequestInvalid(op.id, sorted(issues, key=lambda i: i.path))
        return op, choice, values

    def _render(self, names: Mapping[str, Any] | None) -> dict[str, Any]:
        task = self.task
        context = self._base
        if names:
            context = self._base.extended(names)
        if self._static is None:
            return {
                part: render_value(
                    value, context, task_id=task.id, field_path=part, secrets_allowed=part in SECRET_PARTS
                )
                for part, value in task.templates.items()
            }
        if not self._shapes:
            return self._static
        rendered = {}
        for part, shape in self._shapes.items():
            if shape.dynamic is _NOTHING:
                rendered[part] = self._static[part]
                continue
            direct = self._direct.get(part)
            dynamic = direct(context) if direct is not None else UNSURE
            if dynamic is UNSURE:
                allowed = part in SECRET_PARTS
                dynamic = render_value(
                    shape.dynamic, context, task_id=task.id, field_path=part, secrets_allowed=allowed
                )
            rendered[part] = _merge(shape, self._static[part], dynamic)
        return rendered

    def _media_type(self, op: Operation, content_type: str | None) -> MediaType | None:
        """`body_media_type`, looked up once for each content type the plan's requests send."""
        key = (id(op), content_type)
        found = self._media_types.get(key)
        if found is None or found[0] is not op:
            if len(self._media_types) >= _MEDIA_TYPES_KEPT:  # a content type rendered from each item
                self._media_types.clear()
            found = self._media_types[key] = (op, body_media_type(op, content_type))
        return found[1]

    def _auth_parts(self, op: Operation) -> tuple[dict[str, str], dict[str, str]]:
        """The credentials' headers and query parameters; their secret values join the redactor."""
        headers, query, sent = auth_parts(op, self.task.credentials, self._secrets.get, task_id=self.task.id)
        for value in sent:
            self._secrets.redactor.add_derived(value)
        unsendable = sorted({issue.path.rsplit(".", 1)[-1] for issue in header_issues(headers)})
        if unsendable:
            problem = (
                f"give the header {', '.join(unsendable)} a character that is not ASCII, or a line break, "
                "which HTTP headers cannot carry; check the secret's value"
            )
            raise RequestInvalid(op.id, [Issue("$.credentials", problem)])
        return headers, query


_NOTHING: Any = object()
# Makes an object without its `__init__`: `finish` sets a frozen dataclass's fields at once.
_new = object.__new__
_MEDIA_TYPES_KEPT = 64
_SECRET_KEY = (
    "holds the value of a secret (or part of one); an idempotency key is stored in the journal and shown by "
    "'httptask runs show' as it is, so build it from values that are not secret, e.g. the item's id"
)
# The parts of a task whose fields `item_drafts` fills in from each item.
_ITEM_PARTS = frozenset({"request.path", "request.query", "request.body"})


def _extra_headers(
    auth_headers: Mapping[str, str], key_header: str | None, key: str | None, body_headers: Mapping[str, str]
) -> dict[str, str]:
    """The headers put over the spec's values: the credentials', `key` in `key_header`, then the body's."""
    extra = dict(auth_headers)
    if key_header is not None and key is not None:
        extra[key_header.lower()] = key
    extra.update(body_headers)
    return extra


def _without(
    headers: tuple[tuple[str, str], ...], key_header: str
) -> tuple[tuple[tuple[str, str], ...], int]:
    """`headers` without the key's, and where it was: where the run puts the key it derives."""
    at = next(n for n, (name, _) in enumerate(headers) if name == key_header.lower())
    return headers[:at] + headers[at + 1 :], at


@dataclass(frozen=True)
class _Shape:
    """A template value split in two: `static`, what renders the same for every request, and `dynamic`, what
    must be rendered each time (`_NOTHING` where a side is empty); `keys` keeps a mapping's order."""

    static: Any
    dynamic: Any
    keys: tuple[Any, ...] = ()
    children: Mapping[Any, _Shape] = field(default_factory=dict)


def _shape(value: Any, varying: frozenset[str]) -> _Shape:
    if isinstance(value, Mapping) and value:
        children = {key: _shape(item, varying) for key, item in value.items()}
        static = {k: c.static for k, c in children.items() if c.static is not _NOTHING}
        dynamic = {k: c.dynamic for k, c in children.items() if c.dynamic is not _NOTHING}
        return _Shape(
            static if static or not dynamic else _NOTHING,
            dynamic if dynamic else _NOTHING,
            tuple(value),
            children,
        )
    if _varies(value, varying):
        return _Shape(_NOTHING, value)
    return _Shape(value, _NOTHING)


def _varies(value: Any, varying: frozenset[str]) -> bool:
    """A list varies as a whole when any part of it does (its items are rendered together)."""
    if isinstance(value, str):
        return is_template(value) and varies(value, varying)
    if isinstance(value, Mapping):
        return any(_varies(item, varying) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_varies(item, varying) for item in value)
    return False


def _fields(shape: _Shape, static: Any) -> tuple[tuple[Any, Any], ...] | None:
    """A mapping part's fields in the template's order: the value rendered once, or the `ItemField` read
    from each item where the field is `{{ item.<keys> }}`; None where the part varies in any other way."""
    if shape.dynamic is _NOTHING:
        return tuple(static.items()) if type(static) is dict else None
    if not shape.children:  # a whole part read from one template
        return None
    fields = []
    for key in shape.keys:
        child = shape.children[key]
        if child.dynamic is _NOTHING:
            fields.append((key, static[key]))
            continue
        lookup = (
            whole_lookup(child.dynamic) if child.static is _NOTHING and type(child.dynamic) is str else None
        )
        if lookup is None or lookup[0] != "item":
            return None
        fields.append((key, ItemField(lookup[1:])))
    return tuple(fields)


def _nothing(body: Any) -> bytes:
    """The bytes of a body that is not sent: an operation without a request body takes none."""
    return b""


def _fixed(fields: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """The fields that every item shares."""
    return {name: value for name, value in fields if not isinstance(value, ItemField)}


def _merge(shape: _Shape, static: Any, dynamic: Any) -> Any:
    """The rendered value in the template's own key order (which decides the order of a form's fields)."""
    if shape.static is _NOTHING:
        return dynamic
    merged = {}
    for key in shape.keys:
        child = shape.children[key]
        if child.dynamic is _NOTHING:
            merged[key] = static[key]
        elif child.static is _NOTHING:
            merged[key] = dynamic[key]
        else:
            merged[key] = _merge(child, static[key], dynamic[key])
    return merged


def _prepare_raw(task: Task, raw: RawRequest, redactor: Redactor, key: str | None) -> Prepared:
    try:
        request, issues = build_raw_request(raw, idempotency_key=key)
    except UnicodeEncodeError:
        raise RequestInvalid(task.id, _unencodable(raw.body, "$.httpRequest.body")) from None
    if issues:
        raise RequestInvalid(task.id, issues)
    key_header = idempotency_header(None) if key else None
    return Prepared(task, None, request, None, is_idempotent(raw.method, key_header), key, redactor)


def _key(
    task: Task, rendered: Mapping[str, Any], idempotency_key: str | None, redactor: Redactor
) -> str | None:
    """The key given for an earlier attempt, else the task's own `idempotencyKey`, if any. The task's own is
    journaled as it is, and a resume sends it again from there, so it cannot be masked: one that holds a
    secret's value (an input or item equal to a secret) is refused before anything is sent."""
    if idempotency_key:
        return idempotency_key
    own_key = rendered.get("idempotencyKey")
    if not own_key:
        return None
    key = str(own_key)
    if redactor.redact(key) != key:
        raise RequestInvalid(task.id, [Issue("$.idempotencyKey", _SECRET_KEY)])
    return key


def _body(
    op: Operation,
    values: RequestValues,
    media_type: Callable[[Operation, str | None], MediaType | None] = body_media_type,
) -> tuple[dict[str, str], bytes]:
    """The body's headers (names lower-cased) and bytes, encoded as its media type; none without a body."""
    media = media_type(op, values.headers.get("content-type")) if values.has_body else None
    if media is None:
        return {}, b""
    headers, content = encode_body(values.body, media.content_type, form_style=media.form_style)
    return {name.lower(): value for name, value in headers.items()}, content


def _unencodable_request(op: Operation, values: RequestValues) -> RequestInvalid:
    return RequestInvalid(op.id, _unencodable(values.to_dict(), "$"))


def _unencodable(value: Any, path: str) -> list[Issue]:
    """Where `value` holds a lone surrogate (JSON's `\\ud800` gives one), which UTF-8 cannot carry."""
    if isinstance(value, str):
        bad = next((ch for ch in value if "\ud800" <= ch <= "\udfff"), None)
        if bad is None:
            return []
        problem = (
            f"holds {bad!r}, half of a UTF-16 surrogate pair, which cannot be sent as UTF-8; "
            "fix the value it comes from"
        )
        return [Issue(path, problem)]
    if isinstance(value, Mapping):
        return [
            issue
            for key, item in value.items()
            for issue in _unencodable(key, path) + _unencodable(item, child_path(path, str(key)))
        ]
    if isinstance(value, list | tuple):
        return [issue for n, item in enumerate(value) for issue in _unencodable(item, child_path(path, n))]
    return []


async def send_prepared(
    prepared: Prepared,
    sender: Sender,
    *,
    on_attempt: Callable[[Attempt], None] | None = None,
    sleep: Callable[[float], Any] | None = None,
    before_attempt: Callable[[], None] | None = None,
) -> tuple[HttpResponse, int]:
    """Send with the task's retries; the same request (and idempotency key) on every attempt.
    `before_attempt` runs before each attempt and may refuse it by raising `NotSent` (an engine checks there
    that it still owns its run)."""
    task = prepared.task
    timeouts = _timeouts(task.connection_timeout_seconds, task.read_timeout_seconds)

    async def attempt() -> HttpResponse:
        if before_attempt is not None:
            before_attempt()
        return await sender.send(
            prepared.request,
            timeouts=timeouts,
            max_response_bytes=task.max_response_bytes,
            follow_redirects=task.follow_redirects,
        )

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return await send_with_retries(
        attempt,
        task.retry,
        idempotent=prepared.idempotent,
        what=prepared.label,
        on_attempt=on_attempt,
        **kwargs,
    )


# Every item of a forEach sends with its task's timeouts: one value for them all.
_timeouts = functools.lru_cache(maxsize=64)(Timeouts)


def response_issues(prepared: Prepared, response: HttpResponse) -> list[Issue]:
    """Where the response breaks the operation's spec (see `responses`); none for a raw `httpRequest`."""
    return check_response(prepared.operation, response) if prepared.operation is not None else []


def issue_records(issues: list[Issue], redactor: Redactor) -> list[dict[str, Any]]:
    """A response's issues as reported and journaled, redacted (a response may quote a secret back). The
    value an issue is about is kept only when a message could quote it whole (`validation.QUOTE_CHARS`): a
    body may be 10 MB, or nested hundreds deep; what the spec expects only when it is flat."""
    records = []
    for issue in issues:
        record: dict[str, Any] = {"path": issue.path, "message": redactor.redact(issue.message)}
        if _flat(issue.expected):
            record["expected"] = redactor.redact_value(issue.expected)
        if _flat(issue.actual) and not isinstance(issue.actual, list):
            record["actual"] = redactor.redact_value(issue.actual)
        records.append(record)
    return records


def _flat(value: Any) -> bool:
    """A value short enough to quote: a scalar, a short text, or a short list of them."""
    if isinstance(value, list):
        return len(value) <= 20 and all(not isinstance(item, (list, dict)) and _flat(item) for item in value)
    if isinstance(value, str):
        return len(value) <= QUOTE_CHARS
    return value is not None and isinstance(value, (int, float, bool))


def answer_record(
    prepared: Prepared, response: HttpResponse, *, strict: bool = False
) -> tuple[dict[str, Any], str | None]:
    """An engine's view of an answer: the response as journaled, with its `issues` (redacted) where it breaks
    the operation's spec, and why the step failed, if it did: a status that is not 2xx, or, under strict
    responses (`strict`, or the task's `strictResponses`), a mismatch. Either way the request was answered."""
    redactor = prepared.redactor
    record = response_record(response, redactor)
    issues = issue_records(response_issues(prepared, response), redactor)
    if issues:
        record["issues"] = issues
    if not response.ok:
        return record, f"{prepared.label} answered {response.status} {record['reason']}".rstrip()
    if issues and (strict or prepared.task.strict_responses):
        shown = [Issue(issue["path"], issue["message"]) for issue in issues]
        return record, str(ResponseInvalid(prepared.label, response.status, shown))
    return record, None


def response_record(response: HttpResponse, redactor: Redactor) -> dict[str, Any]:
    """A response as reported and journaled: status, headers and body, redacted."""
    body = response.body()
    # Every string of the body comes from its text: a text the redactor leaves alone holds no secret, and the
    # body is kept as parsed, unless it holds an escape (JSON's `\u0063` is a letter the text search misses).
    text = response.text
    clean = "\\" not in text and redactor.redact(text) == text
    return {
        "status": response.status,
        "reason": redactor.redact(response.reason),  # a server may echo a request's credentials in it
        "headers": redactor.redact_header_pairs(response.headers),
        "body": body if clean else redactor.redact_value(body),
        "elapsed_ms": response.elapsed_ms,
    }
