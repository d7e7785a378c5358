"""The Python API that `httptask/__init__.py` exports: the catalog, tasks, `prepare`, `send`, workflows on the
local engine and a local sandbox, each a thin layer over what the command line and the engines use.

The same code path as `httptask test-request`: `prepare` renders, validates and encodes (nothing is sent),
`send` sends with the task's retry policy and checks the response against the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .engines.protocol import RunResult
from .errors import Issue, ResponseInvalid, UsageError
from .execute import Prepared, response_issues, send_prepared
from .messages import HttpResponse
from .secrets import SecretStore
from .tasks import Task
from .transport import Sender

__all__ = [
    "Answer",
    "load_catalog",
    "load_task",
    "local_sandbox",
    "parse_task",
    "prepare",
    "run_workflow",
    "send",
    "send_sync",
]

Secrets = Mapping[str, str] | None


@dataclass(frozen=True)
class Answer:
    """What came back for a prepared request: the response (any status; `response.ok` for a 2xx), the
    number of attempts it took, and where the response breaks the operation's spec (warnings, empty when
    it fits; always empty for a raw `httpRequest`)."""

    response: HttpResponse
    attempts: int
    response_issues: tuple[Issue, ...] = ()


def load_catalog() -> Catalog:
    """Every operation of the bundled specs and of the user's catalog (`$HTTPTASK_SPECS_PATH`)."""
    return Catalog.default()


def load_task(path: str | os.PathLike[str]) -> Task:
    """A task from a YAML or JSON file; `TaskError` lists every problem with its line."""
    from .tasks import load_task as load

    return load(Path(path))


def parse_task(data: Mapping[str, Any] | str) -> Task:
    """A task from a mapping (as a task file holds it) or from YAML text; `TaskError` lists every problem."""
    from .tasks import parse_task as parse

    if isinstance(data, str):
        from .yamlsource import parse_source

        source = parse_source(data, "<task>")
        return parse(source.data, source=source)
    return parse(dict(data))


def prepare(
    task: Task,
    inputs: Mapping[str, Any] | None = None,
    *,
    catalog: Catalog | None = None,
    secrets: Secrets = None,
    sandbox_url: str | None = None,
    idempotency_key: str | None = None,
) -> Prepared:
    """Render the task's templates with `inputs`, validate the request against the operation and encode it;
    nothing is sent. Raises `RequestInvalid` with every issue, `TemplateError`, or `UsageError` for a
    missing secret.

    `secrets` maps secret names to values; without it they come from `HTTPTASK_SECRET_<NAME>` variables and
    `$HTTPTASK_SECRETS_FILE`. `sandbox_url` sends to a local sandbox instead of the API's server. Give
    `idempotency_key` when your engine may prepare the same request again (a retry of its own): the key
    then stays the same, and the API acts once.
    """
    from .execute import prepare as prepare_request

    return prepare_request(
        task,
        inputs=inputs or {},
        catalog=catalog or Catalog.default(),
        secrets=_store(secrets),
        sandbox_url=sandbox_url,
        idempotency_key=idempotency_key,
    )


async def send(
    prepared: Prepared, *, sender: Sender | None = None, strict_responses: bool | None = None
) -> Answer:
    """Send a prepared request with its task's retry policy, and check the response against the spec.

    Retries happen only where they cannot act twice. Raises `NotSent` (nothing reached the server),
    `OutcomeUnknown` (it may have; never send it again without checking) or `AnswerRefused`. A response
    that breaks the spec is a warning in `Answer.response_issues`; with `strict_responses` (default: the
    task's `strictResponses`) it raises `ResponseInvalid`, an answer, so the server did act on a 2xx. Pass a
    `Sender` (`async with Sender() as sender`) to share one connection pool between requests.
    """
    if sender is None:
        async with Sender() as own:
            return await send(prepared, sender=own, strict_responses=strict_responses)
    response, attempts = await send_prepared(prepared, sender)
    issues = response_issues(prepared, response)
    strict = prepared.task.strict_responses if strict_responses is None else strict_responses
    if strict and issues:
        raise ResponseInvalid(prepared.label, response.status, issues)
    return Answer(response, attempts, tuple(issues))


def send_sync(prepared: Prepared, *, strict_responses: bool | None = None) -> Answer:
    """`send` for code without an event loop; from inside one, await `send` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(send(prepared, strict_responses=strict_responses))
    raise UsageError("send_sync was called inside a running event loop; use 'await httptask.send(...)'.")


def run_workflow(
    path: str | os.PathLike[str],
    inputs: Mapping[str, Any] | None = None,
    *,
    catalog: Catalog | None = None,
    secrets: Secrets = None,
    sandbox: bool = False,
    journal: str | os.PathLike[str] | None = None,
    concurrency: int = 16,
    strict_responses: bool = False,
) -> RunResult:
    """Run a YAML workflow file on the local engine, journaled (`journal`, default `$HTTPTASK_JOURNAL`), as
    `httptask run` does: every check is made before the first request, and a failed task skips what needs
    it. Blocks until the run ends; `RunResult.status` is "succeeded" or "failed". `sandbox` sends every
    request to a local sandbox of the APIs; `strict_responses` fails a task whose response breaks its
    operation's spec, as `--strict-responses` does. Raises `WorkflowInvalid`, `InputsInvalid` or another
    `TaskError` (nothing was sent) and `UsageError`.
    """
    from .journal import Journal, default_journal_path
    from .runs import start_run

    with contextlib.closing(Journal(Path(journal) if journal else default_journal_path())) as opened:
        return start_run(
            Path(path),
            inputs=inputs or {},
            catalog=catalog or Catalog.default(),
            secrets=_store(secrets),
            journal=opened,
            sandbox=sandbox,
            concurrency=concurrency,
            strict_responses=strict_responses,
        )


@contextlib.contextmanager
def local_sandbox(catalog: Catalog | None = None) -> Iterator[str]:
    """A sandbox of every catalog operation on 127.0.0.1 for the duration, as its base URL (for
    `prepare(..., sandbox_url=...)`): it validates each request and answers from the spec's examples."""
    from .sandbox import SandboxThread

    with SandboxThread(catalog or Catalog.default()) as running:
        yield running.url


def _store(secrets: Secrets) -> SecretStore:
    return SecretStore() if secrets is None else SecretStore.of(secrets)
