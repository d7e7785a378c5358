"""The one exception tree of httptask, and the validation issue that errors carry as data.

    HttptaskError                 every error a user can cause; prints as one sentence, knows its exit code
    ├── UsageError                a bad command line, input file or argument (exit 2)
    │   ├── SourceError           YAML or JSON text that does not parse (file, line, column)
    │   ├── CredentialsError      a task's credentials that do not fit the operation's security (task id)
    │   ├── RunBusy               another live process owns the run being resumed
    │   └── OverLimit             input needing more time or memory than one request is given
    ├── RunTakenOver              another process took over the run this one was running (exit 1)
    ├── SpecError                 an OpenAPI document that cannot be loaded (file and JSON pointer)
    ├── UnknownOperation          a catalog id that does not exist (with the closest ids)
    ├── TaskError                 a task or workflow definition that is wrong (file, line, field path)
    │   ├── TemplateError         a template that does not parse or render (task id, field path)
    │   ├── WorkflowInvalid       a workflow with problems, as `httptask validate` finds them (file, issues)
    │   └── InputsInvalid         inputs that do not fit a workflow's input schemas; nothing was sent (exit 3)
    ├── RequestInvalid            the request breaks the operation's spec; nothing was sent (exit 3)
    └── SendError                 the request was not sent or not answered (exit 1); carries its `Outcome`
        ├── NotSent               nothing reached the server: bad URL, failed DNS lookup, refused connection
        │   ├── DestinationRefused  the SSRF guard refused the destination
        │   └── KeyReused         an idempotency key already sent with another payload
        ├── OutcomeUnknown        the request may have reached the server and no answer came back
        └── AnswerRefused         an answer came that is not used: a redirect elsewhere, too many redirects
            ├── ResponseTooLarge  the response passed the size cap
            └── ResponseInvalid   under strict responses, an answer that breaks the operation's spec
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from .outcome import Outcome, may_have_acted

__all__ = [
    "AnswerRefused",
    "CredentialsError",
    "DestinationRefused",
    "HttptaskError",
    "InputsInvalid",
    "Issue",
    "KeyReused",
    "NotSent",
    "OutcomeUnknown",
    "OverLimit",
    "RequestInvalid",
    "ResponseInvalid",
    "ResponseTooLarge",
    "RunBusy",
    "RunTakenOver",
    "SendError",
    "SourceError",
    "SpecError",
    "TaskError",
    "TemplateError",
    "UnknownOperation",
    "UsageError",
    "WorkflowInvalid",
    "child_path",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID = 3


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def child_path(parent: str, key: str | int) -> str:
    """The JSON path of a child: `$.body.memo`, `$.items[0]`, `$.headers['x y']`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{parent}[{key!r}]"


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a request or definition, addressed by a JSON path such as `$.body.memo`."""

    path: str
    message: str
    expected: Any = None
    actual: Any = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.expected is not None:
            data["expected"] = self.expected
        if self.actual is not None:
            data["actual"] = self.actual
        if self.line is not None:
            data["line"] = self.line
        return data

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line is not None else ""
        return f"{where}{self.path}: {self.message}"


class HttptaskError(Exception):
    """Base class: a user-facing error whose message is a full sentence."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(HttptaskError):
    """A bad argument, option or input file."""


class RunBusy(UsageError):
    """The run is owned by another live process (`purpose`: 'run' or 'resume'); nothing was done."""

    def __init__(self, run_id: str, pid: int, since: float, purpose: str) -> None:
        doing = "resumed" if purpose == "resume" else "run"
        super().__init__(
            f"Run {run_id} is being {doing} by process {pid} since {_when(since)}; wait for it to end, "
            "or stop that process, then resume again."
        )
        self.run_id = run_id
        self.pid = pid
        self.since = since


class EditorBusy(UsageError):
    """The editor has no room for one more request of this kind now; nothing was done, and later may do."""


class RunTakenOver(HttptaskError):
    """Another process took the run over (this one had not renewed its lease): this one sends nothing more."""

    exit_code = EXIT_FAILED

    def __init__(self, run_id: str, pid: int | None) -> None:
        by = f"process {pid}" if pid else "another process"
        super().__init__(
            f"Run {run_id} was taken over by {by} while this process ran it (its lease had lapsed); "
            "this process sent nothing more. 'httptask runs show' tells what each request became."
        )
        self.run_id = run_id
        self.pid = pid


class SourceError(UsageError):
    """YAML or JSON text that does not parse, e.g. `task.yaml:3:10: invalid YAML: mapping values are not
    allowed here. Fix the syntax and try again.`; line and column are 1-based, None when unknown."""

    def __init__(
        self,
        problem: str,
        *,
        file: str,
        line: int | None = None,
        column: int | None = None,
        syntax: str = "YAML",
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.column = column
        self.syntax = syntax
        where = file if line is None else f"{file}:{line}" if column is None else f"{file}:{line}:{column}"
        super().__init__(f"{where}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without its place: `invalid YAML: ... Fix the syntax and try again.`"""
        return f"invalid {self.syntax}: {self.problem}. Fix the syntax and try again."


class CredentialsError(UsageError):
    """A task's credentials that do not fit its operation's security schemes, e.g. `task t1: geins.x needs
    apiKey and basicAuth together; ...`; `problem` is the message without the task."""

    def __init__(self, task_id: str, problem: str) -> None:
        super().__init__(f"task {task_id}: {problem}")
        self.task_id = task_id
        self.problem = problem
class OverLimit(UsageError):
    """Input that needs more time or memory than one request is given; it was stopped, nothing was sent."""


class SpecError(HttptaskError):
    """An OpenAPI document that cannot be loaded; names the file and the JSON pointer."""

    def __init__(self, message: str, *, file: str, pointer: str = "") -> None:
        where = f"{file}#{pointer}" if pointer else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.pointer = pointer


class UnknownOperation(HttptaskError):
    """A catalog id that is not in the catalog."""

    def __init__(self, operation_id: str, suggestions: list[str]) -> None:
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"No operation '{operation_id}' in the catalog.{hint} "
            "Run 'httptask catalog search WORDS' to find one."
        )
        self.operation_id = operation_id
        self.suggestions = suggestions


class TaskError(HttptaskError):
    """A task or workflow definition that cannot be used as written."""

    def __init__(self, message: str, *, issues: list[Issue] | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []
        self.file = file


class WorkflowInvalid(TaskError):
    """A workflow with problems, e.g. `w.yaml: the workflow is not valid (2 problems):` and a
    `w.yaml:7: $.tasks[1].needs[0]: ...` line for each; the issues carry their lines."""

    def __init__(self, file: str, issues: list[Issue]) -> None:
        lines = "\n".join(f"  {file}:{i.line or '?'}: {i.path}: {i.message}" for i in issues)
        message = f"{file}: the workflow is not valid ({_problems(len(issues))}):\n{lines}"
        super().__init__(message, issues=issues, file=file)


class InputsInvalid(TaskError):
    """The inputs given to a workflow do not fit its input schemas; nothing was sent."""

    exit_code = EXIT_INVALID

    def __init__(self, workflow: str, issues: list[Issue]) -> None:
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(
            f"The inputs do not fit the workflow {workflow!r} ({_problems(len(issues))}); nothing was sent:\n"
            f"{lines}",
            issues=issues,
        )
        self.workflow = workflow


class TemplateError(TaskError):
    """A template that does not parse or render,
    e.g. `task t1, body.memo: 'input' has no attribute 'note'`."""

    def __init__(self, task_id: str, field_path: str, problem: str) -> None:
        super().__init__(
            f"task {task_id}, {field_path}: {problem}",
            issues=[Issue(path=_json_path(field_path), message=problem)],
        )
        self.task_id = task_id
        self.field_path = field_path
        self.problem = problem


class RequestInvalid(HttptaskError):
    """The request breaks the operation's spec; it was not sent."""

    exit_code = EXIT_INVALID

    def __init__(self, operation_id: str, issues: list[Issue]) -> None:
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"The request for {operation_id} was not sent: {_problems(len(issues))}.\n{lines}")
        self.operation_id = operation_id
        self.issues = issues


class SendError(HttptaskError):
    """The request could not be sent, or no usable answer came back.

    `outcome` says what the server may have seen; an error that cannot tell is `unknown`, the safe reading.
    `status` is the answer's status when there was one. `retryable` is False where the same request would
    fail the same way (a refused destination, an invalid URL, an answer too large).
    """

    exit_code = EXIT_FAILED
    outcome = Outcome.UNKNOWN
    retryable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def may_have_acted(self) -> bool:
        """Whether the server may have done what was asked; if so only an idempotent request is re-sent."""
        return may_have_acted(self.outcome, self.status)


class NotSent(SendError):
    """No byte reached the server; `retryable` when another try may go better (DNS, refused connection)."""

    outcome = Outcome.NOT_SENT

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class DestinationRefused(NotSent):
    """The SSRF guard refused to connect to the destination, or the editor to send a secret there
    (secret_origins.py); it would refuse again, so it is not retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class KeyReused(NotSent):
    """An idempotency key already sent with another payload: the server would answer with the first request's
    result and hide the change, so nothing is sent. `first` and `now` are the two requests, redacted."""

    def __init__(self, key: str, first: dict[str, Any], now: dict[str, Any], where: str) -> None:
        super().__init__(
            f"Not sent: the idempotency key {key} was sent before ({where}) with another payload, and the "
            "server would answer with the first request's result, hiding the change.\n"
            f"  first: {_shown(first)}\n"
            f"  now:   {_shown(now)}\n"
            "Send the first payload again, or give the new payload a key of its own.",
            retryable=False,
        )
        self.key = key
        self.first = first
        self.now = now


class OutcomeUnknown(SendError):
    """The request may have reached the server and no usable answer came back; a resend could act twice."""


class AnswerRefused(SendError):
    """An answer with `status` came back but is not used; unless it is a 4xx, the server acted on it."""

    outcome = Outcome.ANSWERED
    retryable = False

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status)


class ResponseTooLarge(AnswerRefused):
    """The response body passed the configured size cap."""


class ResponseInvalid(AnswerRefused):
    """Under strict responses (`--strict-responses`, `strictResponses: true`), an answer that breaks the
    operation's response schema. The server answered: a 2xx was acted on, so it is never sent again."""

    def __init__(self, label: str, status: int, issues: list[Issue]) -> None:
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(
            f"{label} answered {status}, but the response does not fit the spec "
            f"({_problems(len(issues))}); strict responses make that a failure:\n{lines}",
            status=status,
        )
        self.issues = issues


def _shown(request: dict[str, Any]) -> str:
    body = request.get("body") or ""
    return f"{request.get('method', '?')} {request.get('url', '?')}" + (f" {body}" if body else "")


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _json_path(dotted: str) -> str:
    return "$." + dotted if dotted and not dotted.startswith("$") else dotted or "$"


def _problems(count: int) -> str:
    return f"{count} problem{'s' if count != 1 else ''}"
