"""Task definitions: the shipped JSON Schema, parsing a task file into a frozen `Task`, and its defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import Issue, TaskError
from .yamlsource import Source, load_source

__all__ = [
    "CONNECTION_TIMEOUT_SECONDS",
    "MAX_RESPONSE_BYTES",
    "READ_TIMEOUT_SECONDS",
    "SECRET_PARTS",
    "RetryPolicy",
    "Task",
    "load_task",
    "parse_task",
    "schema",
    "schema_modeline",
    "task_defaults",
]

# The parts of a task that go on the wire and nowhere else: the only places `secret('NAME')` may be put.
SECRET_PARTS = frozenset({"request.path", "request.query", "request.headers", "request.body", "httpRequest"})


@cache
def schema(name: str) -> dict[str, Any]:
    """A shipped JSON Schema: `task` or `workflow`."""
    text = resources.files("httptask").joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_modeline(name: str) -> str:
    """The first line of a `task` or `workflow` YAML file that points VS Code's YAML extension (and any editor
    using yaml-language-server) at the shipped schema of this installation, for completion and checks."""
    # Resolved here, not at import: Temporal's workflow sandbox imports this module and refuses file access.
    path = Path(__file__).resolve().parent / "schemas" / f"{name}.schema.json"
    return f"# yaml-language-server: $schema={path.as_posix()}"


CONNECTION_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often to try again; attempts and total time are both bounded. The defaults here are the
    only ones: task files, skeletons, the transport and the shipped JSON Schema take them from this class."""

    max_attempts: int = 3
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_interval_seconds: float = 30.0
    max_elapsed_seconds: float = 120.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        grown = self.interval_seconds * self.backoff_rate ** (attempt - 1)
        return float(min(grown, self.max_interval_seconds))


# The task file's names for the retry fields, in the order a skeleton writes them.
_RETRY_FIELDS = {
    "maxAttempts": "max_attempts",
    "intervalSeconds": "interval_seconds",
    "backoffRate": "backoff_rate",
    "maxIntervalSeconds": "max_interval_seconds",
    "maxElapsedSeconds": "max_elapsed_seconds",
}


def task_defaults() -> dict[str, Any]:
    """The defaults of a task's optional settings, named and shaped as a task file writes them."""
    policy = RetryPolicy()
    return {
        "retry": {name: _number(getattr(policy, attribute)) for name, attribute in _RETRY_FIELDS.items()},
        "connectionTimeoutSeconds": _number(CONNECTION_TIMEOUT_SECONDS),
        "readTimeoutSeconds": _number(READ_TIMEOUT_SECONDS),
        "followRedirects": False,
        "maxResponseBytes": MAX_RESPONSE_BYTES,
        "strictResponses": False,
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Task:
    """One HTTP task as written: templates are kept as they are and rendered when the task runs."""

    id: str
    operation: str | None = None
    server: dict[str, Any] = field(default_factory=dict)
    credentials: str | dict[str, str] | None = None
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False
    http_request: dict[str, Any] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connection_timeout_seconds: float = CONNECTION_TIMEOUT_SECONDS
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS
    idempotency_key: str | None = None
    follow_redirects: bool = False
    max_response_bytes: int = MAX_RESPONSE_BYTES
    # A response that breaks the operation's spec fails the task instead of being a warning.
    strict_responses: bool = False
    needs: tuple[str, ...] = ()
    for_each: str | None = None
    description: str = ""
    file: str | None = None

    @property
    def templates(self) -> dict[str, Any]:
        """Every templated part of the task by field path, for rendering and checking."""
        parts: dict[str, Any] = {
            "server": self.server,
            "request.path": self.path,
            "request.query": self.query,
            "request.headers": self.headers,
        }
        if self.has_body:
            parts["request.body"] = self.body
        if self.idempotency_key is not None:
            parts["idempotencyKey"] = self.idempotency_key
        if self.http_request is not None:
            parts["httpRequest"] = self.http_request
        return parts


def parse_task(data: Any, *, source: Source | None = None, root: str = "$") -> Task:
    """Check `data` against the task schema and build a `Task`; all problems at once, with lines."""
    from .validation import validate_instance

    issues = validate_instance(data, schema("task"), root=root)
    if isinstance(data, dict) and ("operation" in data) == ("httpRequest" in data):
        one_of = "needs exactly one of 'operation' (a catalog id) or 'httpRequest' (a raw request)"
        issues.append(Issue(root, one_of))
    if issues:
        if source is not None:
            issues = [Issue(i.path, i.message, i.expected, i.actual, source.line(i.path)) for i in issues]
        file = source.file if source is not None else "the task"
        task_id = data.get("id") if isinstance(data, dict) else None
        name = f"task {task_id}" if isinstance(task_id, str) else "the task"
        lines = "\n".join(f"  {issue}" for issue in issues)
        raise TaskError(f"{file}: {name} is not valid:\n{lines}", issues=issues,
                        file=source.file if source else None)
    request = data.get("request") or {}
    retry = data.get("retry") or {}
    return Task(
        id=data["id"],
        operation=data.get("operation"),
        server=dict(data.get("server") or {}),
        credentials=data.get("credentials"),
        path=dict(request.get("path") or {}),
        query=dict(request.get("query") or {}),
        headers=dict(request.get("headers") or {}),
        body=request.get("body"),
        has_body="body" in request,
        http_request=data.get("httpRequest"),
        retry=RetryPolicy(**{_RETRY_FIELDS[name]: value for name, value in retry.items()}),
        connection_timeout_seconds=data.get("connectionTimeoutSeconds", CONNECTION_TIMEOUT_SECONDS),
        read_timeout_seconds=data.get("readTimeoutSeconds", READ_TIMEOUT_SECONDS),
        idempotency_key=data.get("idempotencyKey"),
        follow_redirects=data.get("followRedirects", False),
        max_response_bytes=data.get("maxResponseBytes", MAX_RESPONSE_BYTES),
        strict_responses=data.get("strictResponses", False),
        needs=tuple(data.get("needs") or ()),
        for_each=data.get("forEach"),
        description=data.get("description", ""),
        file=source.file if source is not None else None,
    )


def load_task(path: Path) -> Task:
    """Read a task from a YAML or JSON file."""
    source = load_source(path)
    return parse_task(source.data, source=source)
