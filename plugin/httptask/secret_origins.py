"""Where the editor sends a secret: a request that carries one goes only to a server its operation documents,
or to an origin the editor's operator allowed (`httptask serve --secret-origin`).

The editor holds secrets its users never see. Without this rule, a user who names their own server in a
task's `server.url`, or puts `secret('NAME')` in a raw request's header, reads the secret from that server's
log. The rule is checked on the request as prepared, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from .errors import DestinationRefused
from .secrets import SecretStore
from .spec import Operation, Server
from .transport import wire_url

__all__ = ["ReadSecrets", "check_secret_destination", "normal_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A server variable without an enum stands for one DNS label (or a port): it cannot add a dot, so it cannot
# turn `{site}.chargebee.com` into another domain.
_LABEL = "[a-z0-9-]+"
_AUTHORITY = re.compile(r"([^:/?#]+)://([^/?#]*)")
_VARIABLE = re.compile(r"\{([^{}]*)\}")


class ReadSecrets(SecretStore):
    """A store that remembers the names read through it: the secrets one request carries."""

    def __init__(self, store: SecretStore) -> None:
        # No store of its own: every value comes from `store`, which registered it with its redactor.
        self._store = store
        self.redactor = store.redactor
        self.file = store.file
        self.names: list[str] = []

    def get(self, name: str) -> str:
        value = self._store.get(name)
        self.names.append(name)
        return value


def normal_origin(url: str) -> str | None:
    """scheme://host[:port] in lower case, without the scheme's default port, read from `url` as the client
    reads it to connect (`wire_url`); None for what is not an http(s) URL with a host."""
    try:
        parts = urlsplit(wire_url(url.strip()))
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")


def check_secret_destination(
    url: str, names: Sequence[str], operation: Operation | None, allowed: Iterable[str]
) -> None:
    """Refuse (`DestinationRefused`) to send the secrets `names` to `url` unless its origin is one of
    `allowed` or a server `operation` documents, with any value its variables may take."""
    if not names:
        return
    where = normal_origin(url)
    servers = operation.servers if operation is not None else ()
    if where is not None:
        if where in {normal_origin(origin) for origin in allowed}:
            return
        if any(_documents(server, where) for server in servers):
            return
    carried = ", ".join(dict.fromkeys(names))
    shown = where or url
    if operation is None:
        rule = "A raw request sends a secret only to an origin allowed with `httptask serve --secret-origin`"
    else:
        documented = ", ".join(server.url for server in servers) or "none"
        rule = (
            f"The editor sends a secret only to a server that {operation.id} documents ({documented}), or "
            "to an origin allowed with `httptask serve --secret-origin`"
        )
    raise DestinationRefused(
        f"Not sent: this request carries the secret {carried} and would go to {shown}. {rule}. Use a "
        f"documented server, or ask whoever runs the editor to allow {shown}."
    )


def _documents(server: Server, where: str) -> bool:
    """Whether `server`'s URL, its variables given any value the document allows, has the origin `where`."""
    found = _AUTHORITY.match(server.url.strip())
    if found is None:
        return False  # a relative server URL is on the document's own host, which says nothing here
    pattern = _pattern(f"{found.group(1)}://{found.group(2)}", server)
    if pattern is None:
        return False
    return any(pattern.fullmatch(candidate) for candidate in _spellings(where))


def _pattern(template: str, server: Server) -> re.Pattern[str] | None:
    parts: list[str] = []
    end = 0
    for variable in _VARIABLE.finditer(template):
        parts.append(re.escape(template[end : variable.start()].lower()))
        known = server.variable(variable.group(1))
        if known is not None and known.enum:
            parts.append("(?:" + "|".join(re.escape(value.lower()) for value in known.enum) + ")")
        else:
            parts.append(_LABEL)
        end = variable.end()
    parts.append(re.escape(template[end:].lower()))
    if "{" in template[end:] or "}" in template[end:]:
        return None  # an unclosed brace: a URL no request can take
    return re.compile("".join(parts))


def _spellings(where: str) -> tuple[str, ...]:
    """`where`, and with its default port written out, as a server URL may write it."""
    if re.search(r":\d+$", where):
        return (where,)
    return (where, f"{where}:{_DEFAULT_PORTS[where.split('://', 1)[0]]}")
