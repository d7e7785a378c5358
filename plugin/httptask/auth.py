"""Credentials on the wire, per the operation's security scheme: HTTP basic, bearer, or an API key header.

Chargebee's basic auth takes the API key as the user name with an empty password; a secret holding
`user:password` is used as both. Zoho's key header carries a prefix (`Zoho-oauthtoken `).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from .errors import UsageError
from .spec import Operation, SecurityScheme

__all__ = ["Credentials", "auth_parts"]

Credentials = str | Mapping[str, str] | None


def auth_parts(
    op: Operation, credentials: Credentials, resolve: Callable[[str], str], *, task_id: str
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(headers, query parameters, secret values as sent) for the first security option the credentials fit."""
    if credentials is None or not op.security:
        return {}, {}, []
    option = _choose_option(op, credentials, task_id)
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    sent: list[str] = []
    for scheme in option:
        name = credentials if isinstance(credentials, str) else credentials[scheme.name]
        secret = resolve(name)
        value = _credential_value(scheme, secret, task_id)
        sent.append(value)
        if scheme.type == "apiKey" and scheme.location == "query":
            query[scheme.parameter_name] = value
        elif scheme.type == "apiKey" and scheme.location == "header":
            headers[scheme.parameter_name.lower()] = value
        else:
            headers["authorization"] = value
    return headers, query, sent


def _choose_option(op: Operation, credentials: Credentials, task_id: str) -> tuple[SecurityScheme, ...]:
    if isinstance(credentials, str):
        # One secret name fits the options that need a single credential.
        for option in op.security:
            if len(option) == 1:
                return option
        names = " and ".join(s.name for s in op.security[0])
        raise UsageError(
            f"task {task_id}: {op.id} needs {names} together; give credentials as a map, "
            f"e.g. credentials: {{{', '.join(f'{s.name}: SECRET_NAME' for s in op.security[0])}}}."
        )
    for option in op.security:
        if all(s.name in credentials for s in option):
            return option
    wanted = " or ".join("{" + ", ".join(s.name for s in option) + "}" for option in op.security)
    raise UsageError(
        f"task {task_id}: the credentials name the schemes {sorted(credentials)}, but {op.id} accepts {wanted}."
    )


def _credential_value(scheme: SecurityScheme, secret: str, task_id: str) -> str:
    if scheme.type == "http" and scheme.scheme == "basic":
        user_password = secret if ":" in secret else f"{secret}:"
        return "Basic " + base64.b64encode(user_password.encode()).decode()
    if scheme.type == "http" and scheme.scheme == "bearer":
        return f"Bearer {secret}"
    if scheme.type in ("oauth2", "openIdConnect"):
        return f"Bearer {secret}"
    if scheme.type == "apiKey" and scheme.location in ("header", "query"):
        return f"{scheme.prefix}{secret}"
    raise UsageError(
        f"task {task_id}: the security scheme '{scheme.name}' ({scheme.type} {scheme.scheme or scheme.location}) "
        "is not supported yet; set the header yourself in request.headers with secret('NAME')."
    )
