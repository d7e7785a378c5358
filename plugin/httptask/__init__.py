"""httptask: a catalog of real API endpoints as ready-to-run HTTP tasks for workflow engines.

The public API is what `__all__` lists; every module of the package is private. Use it from any engine::

    import httptask

    catalog = httptask.load_catalog()
    hits = catalog.search("refund")                      # ranked SearchHit(entry, score)
    task = httptask.load_task("record-refund.yaml")      # or parse_task({...}) / parse_task(yaml_text)
    prepared = httptask.prepare(task, {"invoice_id": "INV-1"}, secrets={"chargebee": "..."})
    answer = httptask.send_sync(prepared)                # or: await httptask.send(prepared)
    answer.response.status, answer.response.body(), answer.response_issues

Errors form one tree under `HttptaskError` (drawn in `httptask.errors`); each prints as one sentence.
What is imported here is imported on first use, so `import httptask` stays cheap.
"""

import importlib as _importlib
import typing as _typing

from .errors import (
    AnswerRefused,
    CredentialsError,
    DestinationRefused,
    HttptaskError,
    InputsInvalid,
    Issue,
    KeyReused,
    NotSent,
    OutcomeUnknown,
    OverLimit,
    RequestInvalid,
    ResponseInvalid,
    ResponseTooLarge,
    RunBusy,
    RunTakenOver,
    SendError,
    SourceError,
    SpecError,
    TaskError,
    TemplateError,
    UnknownOperation,
    UsageError,
    WorkflowInvalid,
)
from .outcome import Outcome

if _typing.TYPE_CHECKING:
    from .api import (
        Answer,
        load_catalog,
        load_task,
        local_sandbox,
        parse_task,
        prepare,
        run_workflow,
        send,
        send_sync,
    )
    from .catalog import Catalog, Entry, SearchHit
    from .engines.protocol import RunResult
    from .execute import Prepared
    from .messages import HttpRequest, HttpResponse
    from .responses import check_response
    from .spec import Operation
    from .tasks import Task
    from .transport import Sender

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AnswerRefused",
    "Catalog",
    "CredentialsError",
    "DestinationRefused",
    "Entry",
    "HttpRequest",
    "HttpResponse",
    "HttptaskError",
    "InputsInvalid",
    "Issue",
    "KeyReused",
    "NotSent",
    "Operation",
    "Outcome",
    "OutcomeUnknown",
    "OverLimit",
    "Prepared",
    "RequestInvalid",
    "ResponseInvalid",
    "ResponseTooLarge",
    "RunBusy",
    "RunResult",
    "RunTakenOver",
    "SearchHit",
    "SendError",
    "Sender",
    "SourceError",
    "SpecError",
    "Task",
    "TaskError",
    "TemplateError",
    "UnknownOperation",
    "UsageError",
    "WorkflowInvalid",
    "__version__",
    "check_response",
    "load_catalog",
    "load_task",
    "local_sandbox",
    "parse_task",
    "prepare",
    "run_workflow",
    "send",
    "send_sync",
]

# Where each name imported on first use lives: these modules pull in the HTTP client and jsonschema.
_LAZY = {
    "Answer": "api",
    "load_catalog": "api",
    "load_task": "api",
    "local_sandbox": "api",
    "parse_task": "api",
    "prepare": "api",
    "run_workflow": "api",
    "send": "api",
    "send_sync": "api",
    "Catalog": "catalog",
    "Entry": "catalog",
    "SearchHit": "catalog",
    "RunResult": "engines.protocol",
    "Prepared": "execute",
    "HttpRequest": "messages",
    "HttpResponse": "messages",
    "check_response": "responses",
    "Operation": "spec",
    "Task": "tasks",
    "Sender": "transport",
}


# Hidden from type checkers: a visible module `__getattr__` would make every misspelt or private name type
# check as `Any` for users, instead of "has no attribute".
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> _typing.Any:
        home = _LAZY.get(name)
        if home is None:
            raise AttributeError(f"module 'httptask' has no attribute {name!r}")
        value = getattr(_importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
