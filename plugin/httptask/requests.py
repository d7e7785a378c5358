"""Turn rendered task values into a concrete request for an operation: pure functions, no I/O.

Server URLs come from the server variables (defaults filled, enums checked); path parameters are
percent-encoded so that a value like `../x` or `a/b` can never change the path; header defaults come from
the spec; a CR or LF in a header value is refused (it would smuggle a second header or request).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .errors import Issue, child_path
from .messages import HttpRequest, RequestValues
from .spec import Operation, Server

__all__ = [
    "build_request",
    "build_values",
    "expand_path",
    "expand_server",
    "header_issues",
    "path_issues",
    "sandbox_base_url",
    "server_base_path",
]

_VARIABLE = re.compile(r"\{([^{}]+)\}")


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
            issues.append(Issue(f"$.server.{name}", f"is not a variable of the server {server.url} (its variables: {known})",
                                actual=values[name]))
    for name in _VARIABLE.findall(server.url):
        if name not in filled:
            issues.append(Issue(f"$.server.{name}", "is used in the server URL but has no value or default",
                                expected="a value"))
    for name, value in filled.items():
        if "/" in value or "?" in value or "#" in value or "@" in value:
            issues.append(Issue(f"$.server.{name}", f"must not contain '/', '?', '#' or '@', not {value!r}",
                                actual=value))
    url = _VARIABLE.sub(lambda m: filled.get(m.group(1), m.group(0)), server.url)
    return url.rstrip("/"), filled, issues


def server_base_path(server: Server) -> str:
    """The path part of a server URL with its defaults filled: `/api/v1` for Chargebee, '' for `https://x/`."""
    defaults = {variable.name: variable.default for variable in server.variables}
    url = _VARIABLE.sub(lambda m: defaults.get(m.group(1)) or "x", server.url)
    return urlsplit(url).path.rstrip("/")


def sandbox_base_url(op: Operation, root: str) -> str:
    """Where the local sandbox serves `op`: the root, the API name, then the real server's base path."""
    base = server_base_path(op.servers[0]) if op.servers else ""
    return f"{root.rstrip('/')}/{op.api}{base}"


def _encode_segment(value: Any) -> str:
    text = value if isinstance(value, str) else _scalar_text(value)
    encoded = quote(text, safe="")
    # "." and ".." are path navigation even when percent-safe; encoding the dots keeps them one literal segment.
    return encoded.replace(".", "%2E") if text.strip(".") == "" else encoded


def expand_path(template: str, values: Mapping[str, Any]) -> str:
    """The operation path with each `{name}` replaced by its percent-encoded value."""
    return _VARIABLE.sub(lambda m: _encode_segment(values[m.group(1)]) if m.group(1) in values else m.group(0),
                         template)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def path_issues(path: Mapping[str, Any]) -> list[Issue]:
    """A path value that is empty, `.` or `..` cannot be one literal segment: URL normalisers (RFC 3986, and
    the client under httpx) decode `%2E%2E` back to `..` and remove it, so the request would reach another path."""
    issues = []
    for name, value in path.items():
        text = value if isinstance(value, str) else _scalar_text(value)
        if text.strip(".") == "":
            issues.append(Issue(child_path("$.path", name), f"must not be empty, '.' or '..', not {text!r}: "
                                "it would change the request's path", actual=text))
    return issues


def header_issues(headers: Mapping[str, str]) -> list[Issue]:
    """A header name or value with CR, LF or NUL would split the request: refuse it."""
    issues = []
    for name, value in headers.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            issues.append(Issue(f"$.headers[{name!r}]", "is not a valid header name", actual=name))
        if any(ch in str(value) for ch in "\r\n\0"):
            issues.append(Issue(f"$.headers.{name.lower()}", "must not contain a line break (CR or LF) or NUL",
                                actual=str(value)))
    return issues


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
    merged = {name.lower(): _scalar_text(value) for name, value in headers.items()}
    for param in op.parameters_in("header"):
        default = param.schema.get("default")
        if param.name.lower() not in merged and default is not None:
            merged[param.name.lower()] = _scalar_text(default)
    if op.request_body is not None and has_body and "content-type" not in merged:
        merged["content-type"] = op.request_body.default.content_type
    return RequestValues(
        server=dict(server), path=dict(path), query=dict(query), headers=merged, body=body, has_body=has_body
    )


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
    url = base_url.rstrip("/") + expand_path(op.path, values.path)
    query = [(k, _scalar_text(item)) for k, v in values.query.items()
             for item in (v if isinstance(v, list) else [v])]
    query += list((extra_query or {}).items())
    if query:
        url += "?" + urlencode(query)
    headers = dict(values.headers)
    for name, value in (extra_headers or {}).items():
        headers[name.lower()] = value
    return HttpRequest(method=op.method, url=url, headers=tuple(headers.items()), content=content)
