"""The request rules, in one place: which server a task's request goes to, how `{name}` templates in server
URLs and paths are filled, which requests are idempotent, which header carries an idempotency key and how a
key is derived, and how a task becomes a concrete request (operation or raw `httpRequest`). Pure functions.

Path parameters are percent-encoded so that a value like `a/b` can never change the path, and `.`, `..` or an
empty value is refused; header defaults come from the spec; a CR or LF in a header value is refused (it would
smuggle a second header or request), and so is a character HTTP cannot carry in a header; a URL that cannot be
sent as written (scheme, user info, host, port) is refused before anything is sent.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import idna

from .encoding import encode_body
from .errors import Issue, child_path
from .keys import derive_key, step_seed
from .messages import HttpRequest, RequestValues

if TYPE_CHECKING:
    from .spec import MediaType, Operation, Server

__all__ = [
    "IDEMPOTENT_METHODS",
    "RAW_IDEMPOTENCY_HEADER",
    "SAFE_METHODS",
    "SERVER_INDEX",
    "SERVER_URL",
    "TEMPLATE_VARIABLE",
    "RawRequest",
    "ServerChoice",
    "body_media_type",
    "build_raw_request",
    "build_request",
    "build_values",
    "choose_server",
    "derive_key",
    "expand_path",
    "expand_server",
    "fill_template",
    "header_defaults",
    "header_issues",
    "idempotency_header",
    "is_idempotent",
    "new_key",
    "path_issues",
    "query_items",
    "query_text",
    "request_headers",
    "request_url",
    "resolve_server",
    "sandbox_base_url",
    "scalar_text",
    "server_base_path",
    "server_variables",
    "step_seed",
    "url_issues",
]

TEMPLATE_VARIABLE = re.compile(r"\{([^{}]+)\}")
"""A `{name}` in a server URL or a path template."""

SERVER_URL = "url"
SERVER_INDEX = "index"
"""The reserved keys of a task's `server`: a whole base URL, or which of the operation's servers; every other
key is a server variable."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing on the server (RFC 9110 9.2.1)."""

IDEMPOTENT_METHODS = SAFE_METHODS | {"PUT", "DELETE"}
"""Methods whose repetition has the effect of one request (RFC 9110 9.2.2)."""

RAW_IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The header a raw `httpRequest` task's `idempotencyKey` is sent in (the IETF draft's name)."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


# -- templates -----------------------------------------------------------------------------------------------


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `{name}` that has a value replaced by it as given; other names stay as written."""
    return TEMPLATE_VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def scalar_text(value: Any) -> str:
    """A parameter value as text on the wire: booleans as JSON spells them, None as nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# -- servers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerChoice:
    """Where a request goes: the base URL, the server it came from, its filled variables, and any issues."""

    base_url: str
    server: Server | None
    variables: dict[str, str]
    issues: list[Issue]


def server_variables(task_server: Mapping[str, Any]) -> dict[str, Any]:
    """A task's `server` values without the reserved keys: the server variables alone."""
    return {k: v for k, v in task_server.items() if k not in (SERVER_URL, SERVER_INDEX)}


def choose_server(op: Operation, task_server: Mapping[str, Any]) -> tuple[Server | None, list[Issue]]:
    """The server `index` picks (the first by default); an index out of range is an issue, and picks the
    first."""
    if not op.servers:
        return None, []
    index = task_server.get(SERVER_INDEX, 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(op.servers):
        issue = Issue(
            f"$.server.{SERVER_INDEX}",
            f"must be between 0 and {len(op.servers) - 1}",
            expected=list(range(len(op.servers))),
            actual=index,
        )
        return op.servers[0], [issue]
    return op.servers[index], []


def expand_server(server: Server, values: Mapping[str, Any]) -> tuple[str, dict[str, str], list[Issue]]:
    """The base URL with every variable filled (the task's value, else the default), and any issues."""
    filled: dict[str, str] = {}
    issues = []
    for variable in server.variables:
        value = str(values[variable.name]) if variable.name in values else variable.default
        filled[variable.name] = value
    for name in values:
        if server.variable(name) is None:
            known = ", ".join(v.name for v in server.variables) or "none"
            issues.append(
                Issue(
                    f"$.server.{name}",
                    f"is not a variable of the server {server.url} (its variables: {known})",
                    actual=values[name],
                )
            )
    for name in TEMPLATE_VARIABLE.findall(server.url):
        if name not in filled:
            issues.append(
                Issue(
                    f"$.server.{name}",
                    "is used in the server URL but has no value or default",
                    expected="a value",
                )
            )
    for name, value in filled.items():
        if "/" in value or "?" in value or "#" in value or "@" in value:
            issues.append(
                Issue(
                    f"$.server.{name}", f"must not contain '/', '?', '#' or '@', not {value!r}", actual=value
                )
            )
    return fill_template(server.url, filled).rstrip("/"), filled, issues


def resolve_server(
    op: Operation, task_server: Mapping[str, Any], *, sandbox_url: str | None = None
) -> ServerChoice:
    """Where the request for `op` goes: the sandbox when given, else the task's `url`, else the chosen server
    with its variables filled. An operation without servers and a task without `url` is an issue. The same
    values give the same choice, made once (a Test request pressed again): never change what it holds."""
    key = _server_key(task_server)
    if key is None:
        return _resolve_server(op, task_server, sandbox_url)
    return _resolved(_Same(op), key, sandbox_url)


class _Same:
    """An object as a cache key equal only to itself: an `Operation` holds dicts, so it has no hash."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


# Values whose equal ones write the same text: not floats (-0.0 == 0.0), and each with its type (1 == True).
_KEY_TYPES = frozenset({str, int, bool, type(None)})


def _server_key(task_server: Mapping[str, Any]) -> tuple[tuple[str, type, Any], ...] | None:
    """A task's `server` values as a cache key, in their order, or None where one is not a plain value."""
    if not all(type(value) in _KEY_TYPES for value in task_server.values()):
        return None
    return tuple((name, type(value), value) for name, value in task_server.items())


@functools.lru_cache(maxsize=1024)
def _resolved(op: _Same, key: tuple[tuple[str, type, Any], ...], sandbox_url: str | None) -> ServerChoice:
    return _resolve_server(op.value, {name: value for name, _, value in key}, sandbox_url)


def _resolve_server(op: Operation, task_server: Mapping[str, Any], sandbox_url: str | None) -> ServerChoice:
    server, issues = choose_server(op, task_server)
    base_url, filled = "", dict[str, str]()
    if server is not None:
        base_url, filled, variable_issues = expand_server(server, server_variables(task_server))
        issues = [*issues, *variable_issues]
    if sandbox_url is not None:
        base_url = sandbox_base_url(op, sandbox_url)
    elif SERVER_URL in task_server:
        base_url = str(task_server[SERVER_URL]).rstrip("/")
    if not base_url:
        issues.append(
            Issue(
                "$.server",
                "has no URL: the operation lists no server; set server.url in the task",
                expected="a URL",
            )
        )
    elif sandbox_url is None and not issues:
        issues += url_issues(base_url, f"$.server.{SERVER_URL}" if SERVER_URL in task_server else "$.server")
    return ServerChoice(base_url, server, filled, issues)


def url_issues(url: str, path: str) -> list[Issue]:
    """Why ``url`` cannot be sent as written (its scheme, user info, host or port), as issues at ``path``."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return [Issue(path, f"is not a valid URL: {exc}; write it as https://host[:port]/path", actual=url)]
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https"):
        return [
            Issue(path, "must start with http:// or https://", expected="an http or https URL", actual=url)
        ]
    if "@" in parts.netloc:
        return [
            Issue(
                path,
                "must not carry a user name or password (user:password@host); give credentials in "
                "credentials or a header, where they are kept secret",
            )
        ]
    host = parts.hostname or ""
    if not host:
        return [Issue(path, "has no host; write it as https://host[:port]/path", actual=url)]
    if port == 0:
        return [
            Issue(
                path,
                f"has an invalid port in {parts.netloc!r}; a port is a number from 1 to 65535",
                actual=url,
            )
        ]
    if not _valid_host(host):
        return [
            Issue(
                path,
                f"has an invalid host name {host!r}; use letters, digits, '-' and '.', or an IP address",
                actual=url,
            )
        ]
    return []


def _valid_host(host: str) -> bool:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return False
        return True
    ascii_host = host
    if not host.isascii():
        # IDNA 2008 with the UTS 46 mapping, as browsers read names: `bücher.de`, not an emoji or a space.
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return False
    return all(_HOST_LABEL.fullmatch(label) for label in ascii_host.rstrip(".").split("."))


def server_base_path(server: Server) -> str:
    """The path part of a server URL with its defaults filled: `/api/v1` for Chargebee, '' for `https://x/`."""
    defaults = {variable.name: variable.default for variable in server.variables}
    url = TEMPLATE_VARIABLE.sub(lambda m: defaults.get(m.group(1)) or "x", server.url)
    return urlsplit(url).path.rstrip("/")


def sandbox_base_url(op: Operation, root: str) -> str:
    """Where the local sandbox serves `op`: the root, the API name, then the real server's base path."""
    base = server_base_path(op.servers[0]) if op.servers else ""
    return f"{root.rstrip('/')}/{op.api}{base}"


# -- paths, queries and headers ------------------------------------------------------------------------------


# What `quote(text, safe="")` leaves as it is, told apart without its encoding to bytes and back.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _encode_segment(value: Any) -> str:
    text = value if isinstance(value, str) else scalar_text(value)
    encoded = text if _UNRESERVED.fullmatch(text) else quote(text, safe="")
    # "." and ".." navigate even when percent-safe; encoding the dots keeps them one literal segment.
    return encoded.replace(".", "%2E") if text.strip(".") == "" else encoded


def expand_path(template: str, values: Mapping[str, Any]) -> str:
    """The operation path with each `{name}` replaced by its percent-encoded value."""
    pieces = _path_pieces(template)
    parts = [pieces[0]]
    for at in range(1, len(pieces), 2):
        name = pieces[at]
        parts.append(_encode_segment(values[name]) if name in values else f"{{{name}}}")
        parts.append(pieces[at + 1])
    return "".join(parts)


@functools.lru_cache(maxsize=1024)
def _path_pieces(template: str) -> tuple[str, ...]:
    """`template` split once at its `{name}`s: text, a name, text, and so on."""
    return tuple(TEMPLATE_VARIABLE.split(template))


def path_issues(path: Mapping[str, Any]) -> list[Issue]:
    """A path value that is empty, `.` or `..` cannot be one literal segment: URL normalisers (RFC 3986, and
    the client under httpx) decode `%2E%2E` back to `..` and remove it, so the request would reach another
    path."""
    issues = []
    for name, value in path.items():
        text = value if isinstance(value, str) else scalar_text(value)
        if text.strip(".") == "":
            issues.append(
                Issue(
                    child_path("$.path", name),
                    f"must not be empty, '.' or '..', not {text!r}: it would change the request's path",
                    actual=text,
                )
            )
    return issues


def query_items(query: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) pairs of a query in order; a list value repeats its name (`?id=1&id=2`)."""
    for name, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            yield name, item


def header_issues(headers: Mapping[str, str]) -> list[Issue]:
    """A header name or value with CR, LF or NUL would split the request, and a value that is not ASCII
    cannot be sent: refuse them."""
    issues = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            issues.append(Issue(f"$.headers[{name!r}]", "is not a valid header name", actual=name))
        text = str(value)
        if any(ch in text for ch in "\r\n\0"):
            issues.append(
                Issue(
                    f"$.headers.{name.lower()}",
                    "must not contain a line break (CR or LF) or NUL",
                    actual=text,
                )
            )
        elif not text.isascii():
            position = next(i for i, ch in enumerate(text) if not ch.isascii()) + 1
            issues.append(
                Issue(
                    f"$.headers.{name.lower()}",
                    f"holds a character that is not ASCII (at position {position}), which HTTP headers "
                    "cannot carry; send it in the body, or percent-encode it if the API expects that",
                )
            )
    return issues


def header_defaults(op: Operation) -> dict[str, Any]:
    """The spec's default for each header parameter that has one, by the name the spec spells."""
    defaults = {}
    for param in op.parameters_in("header"):
        default = param.schema.get("default")
        if default is not None:
            defaults[param.name] = default
    return defaults


def body_media_type(op: Operation, content_type: str | None) -> MediaType | None:
    """The media type a body is encoded as: the one `content_type` names, else the operation's first."""
    if op.request_body is None:
        return None
    return op.request_body.media_type(content_type) or op.request_body.default


# -- idempotency ---------------------------------------------------------------------------------------------


def is_idempotent(method: str, key_header: str | None) -> bool:
    """Whether sending the request again cannot act twice: by HTTP semantics, or because it carries an
    idempotency key in `key_header` that the server deduplicates on."""
    return method.upper() in IDEMPOTENT_METHODS or key_header is not None


def idempotency_header(op: Operation | None) -> str | None:
    """The header that carries an idempotency key: the operation's (its spec's `x-idempotency-key`), None when
    it takes none, and `Idempotency-Key` for a raw request (`op` None)."""
    return RAW_IDEMPOTENCY_HEADER if op is None else op.idempotency_header


def new_key() -> str:
    """A fresh random key, for a request sent once outside a run (Test request)."""
    return str(uuid.uuid4())


# -- whole requests ------------------------------------------------------------------------------------------


def build_values(
    op: Operation,
    *,
    server: Mapping[str, str],
    path: Mapping[str, Any],
    query: Mapping[str, Any],
    headers: Mapping[str, Any],
    body: Any = None,
    has_body: bool = False,
) -> RequestValues:
    """The request's values by location, with header defaults from the spec; header names lower-cased."""
    merged = {name.lower(): scalar_text(value) for name, value in headers.items()}
    for name, default in header_defaults(op).items():
        merged.setdefault(name.lower(), scalar_text(default))
    if op.request_body is not None and has_body and "content-type" not in merged:
        merged["content-type"] = op.request_body.default.content_type
    return RequestValues(
        server=dict(server), path=dict(path), query=dict(query), headers=merged, body=body, has_body=has_body
    )


def request_url(
    op: Operation, values: RequestValues, *, base_url: str, extra_query: Mapping[str, str] | None = None
) -> str:
    """The request's URL: the base, the path with its values, the query (the spec's, then auth's)."""
    return base_url.rstrip("/") + expand_path(op.path, values.path) + query_text(values.query, extra_query)


def query_text(query: Mapping[str, Any], extra_query: Mapping[str, str] | None = None) -> str:
    """A URL's query, `?` and all, of the spec's values and then `extra_query` (auth's); '' when empty."""
    pairs = [(name, scalar_text(item)) for name, item in query_items(query)]
    pairs += list((extra_query or {}).items())
    return "?" + urlencode(pairs) if pairs else ""


def request_headers(
    headers: Mapping[str, str], extra_headers: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """The headers on the wire: the spec's values, then `extra_headers` (auth, key, body) over them."""
    merged = dict(headers)
    for name, value in (extra_headers or {}).items():
        merged[name.lower()] = value
    return tuple(merged.items())


def build_request(
    op: Operation,
    values: RequestValues,
    *,
    base_url: str,
    content: bytes,
    extra_headers: Mapping[str, str] | None = None,
    extra_query: Mapping[str, str] | None = None,
) -> HttpRequest:
    """The request on the wire: URL, headers (spec values, then auth and idempotency), and encoded body."""
    url = request_url(op, values, base_url=base_url, extra_query=extra_query)
    headers = request_headers(values.headers, extra_headers)
    return HttpRequest(method=op.method, url=url, headers=headers, content=content)


@dataclass(frozen=True)
class RawRequest:
    """A task's `httpRequest` with its defaults filled: the values may still be templates."""

    method: str
    url: Any
    headers: dict[str, Any]
    body: Any
    content_type: str

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> RawRequest:
        return cls(
            method=str(raw.get("method", "GET")).upper(),
            url=raw["url"],
            headers=dict(raw.get("headers") or {}),
            body=raw.get("body"),
            content_type=str(raw.get("contentType", "application/json")),
        )

    @property
    def has_body(self) -> bool:
        return self.body is not None


def build_raw_request(raw: RawRequest, *, idempotency_key: str | None) -> tuple[HttpRequest, list[Issue]]:
    """A rendered raw request on the wire; the key, when there is one, in `Idempotency-Key`."""
    headers = {str(k).lower(): str(v) for k, v in raw.headers.items()}
    issues = url_issues(str(raw.url), "$.httpRequest.url") + header_issues(headers)
    if issues:
        return HttpRequest(raw.method, str(raw.url)), issues
    content = b""
    if raw.has_body:
        body_headers, content = encode_body(raw.body, raw.content_type)
        headers = {**{k.lower(): v for k, v in body_headers.items()}, **headers}
    if idempotency_key:
        headers[RAW_IDEMPOTENCY_HEADER.lower()] = idempotency_key
    return HttpRequest(raw.method, str(raw.url), tuple(headers.items()), content), []
