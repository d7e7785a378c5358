"""Credentials on the wire, in one place: how each security scheme's credential looks (HTTP basic, bearer, an
API key with its prefix), which headers and parameters count as credentials, and every form a secret can
take in a request. The client, the sandbox and the redactor all use these definitions.

Chargebee's basic auth takes the API key as the user name with an empty password; a secret holding
`user:password` is used as both. Zoho's key header carries a prefix (`Zoho-oauthtoken `).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from .errors import CredentialsError

if TYPE_CHECKING:
    from .spec import Operation, SecurityScheme

__all__ = [
    "Credentials",
    "auth_parts",
    "authorization_word",
    "basic_credentials",
    "carries_credential",
    "credential_value",
    "is_credential_name",
    "wire_forms",
]

Credentials = str | Mapping[str, str] | None

# Names that always carry a credential, and words that mark one (`X-Auth-Token`, `client_secret`).
_CREDENTIAL_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-apikey", "x-api-key"}
)
_CREDENTIAL_WORDS = ("token", "secret", "key", "password", "auth")


def is_credential_name(name: str, op: Operation | None = None) -> bool:
    """Whether a header or query parameter called `name` carries a credential, so its value is masked whole:
    the usual names, the API key parameters of `op`'s security schemes, and any name with a word such as
    `token`, `secret` or `key` in it. An idempotency key is no credential and stays visible."""
    lowered = name.lower()
    if "idempotency" in lowered or (op is not None and lowered == (op.idempotency_header or "").lower()):
        return False
    if lowered in _CREDENTIAL_NAMES:
        return True
    if op is not None and any(
        s.type == "apiKey" and s.parameter_name.lower() == lowered for option in op.security for s in option
    ):
        return True
    return any(word in lowered for word in _CREDENTIAL_WORDS)


def basic_credentials(secret: str) -> str:
    """The base64 of HTTP basic's `user:password`; a secret without a colon is the user, with no password."""
    user_password = secret if ":" in secret else f"{secret}:"
    return base64.b64encode(user_password.encode("utf-8")).decode("ascii")


def wire_forms(secret: str) -> set[str]:
    """Every form `secret` can take in a request: as written, inside HTTP basic credentials (as the user
    alone, or as `user:password`), and URL-encoded in a path, query or form."""
    encoded = base64.b64encode(secret.encode("utf-8")).decode("ascii")
    return {secret, encoded, basic_credentials(secret), quote(secret, safe=""), quote_plus(secret, safe="")}


def authorization_word(scheme: SecurityScheme) -> str | None:
    """The word an `Authorization` header starts with for `scheme` (`Basic`, `Bearer`); None for API keys."""
    if scheme.type in ("oauth2", "openIdConnect") or (scheme.type == "http" and scheme.scheme == "bearer"):
        return "Bearer"
    if scheme.type == "http":
        return scheme.scheme.capitalize()
    return None


def credential_value(scheme: SecurityScheme, secret: str, *, task_id: str) -> str:
    """The credential as sent for `scheme`: `Basic <base64>`, `Bearer <secret>`, or the key and its prefix."""
    if scheme.type == "http" and scheme.scheme == "basic":
        return "Basic " + basic_credentials(secret)
    word = authorization_word(scheme)
    if word == "Bearer":
        return f"Bearer {secret}"
    if scheme.type == "apiKey" and scheme.location in ("header", "query"):
        return f"{scheme.prefix}{secret}"
    raise CredentialsError(
        task_id,
        f"the security scheme '{scheme.name}' ({scheme.type} {scheme.scheme or scheme.location}) is not "
        "supported yet; set the header yourself in request.headers with secret('NAME').",
    )


def carries_credential(scheme: SecurityScheme, value: str | None) -> bool:
    """Whether `value`, found where `scheme` puts its credential (the `Authorization` header, or the API key's
    header, query parameter or cookie), is a well-formed credential for it."""
    if value is None:
        return False
    word = authorization_word(scheme)
    if word is not None:
        given, _, credential = value.partition(" ")
        return given.lower() == word.lower() and bool(credential.strip())
    return value.startswith(scheme.prefix) and bool(value[len(scheme.prefix) :].strip())


def auth_parts(
    op: Operation, credentials: Credentials, resolve: Callable[[str], str], *, task_id: str
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(headers, query parameters, secret values as sent) for the first security option the credentials
    fit."""
    if credentials is None or not op.security:
        return {}, {}, []
    option = _choose_option(op, credentials, task_id)
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    sent: list[str] = []
    for scheme in option:
        name = credentials if isinstance(credentials, str) else credentials[scheme.name]
        value = credential_value(scheme, resolve(name), task_id=task_id)
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
        raise CredentialsError(
            task_id,
            f"{op.id} needs {names} together; give credentials as a map, "
            f"e.g. credentials: {{{', '.join(f'{s.name}: SECRET_NAME' for s in op.security[0])}}}.",
        )
    assert credentials is not None
    for option in op.security:
        if all(s.name in credentials for s in option):
            return option
    wanted = " or ".join("{" + ", ".join(s.name for s in option) + "}" for option in op.security)
    raise CredentialsError(
        task_id, f"the credentials name the schemes {sorted(credentials)}, but {op.id} accepts {wanted}."
    )
