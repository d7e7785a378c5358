"""The `httptask` command line: one module per command group, each parsing arguments, calling the library
and mapping errors to exit codes; `main` turns every user mistake into one message and its exit code."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from ..errors import HttptaskError
from .catalog import catalog_group
from .plan import plan_command
from .runs import run_command, runs_group
from .serve import sandbox_command, serve_command
from .specs import specs_group
from .tasks import schema_command, task_group
from .temporal import temporal_group, worker_command
from .testrequest import test_request_command
from .workflows import export_command, validate_command

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="httptask")
def cli() -> None:
    """A catalog of real API endpoints as ready-to-run HTTP tasks."""


for _command in (
    catalog_group,
    specs_group,
    schema_command,
    test_request_command,
    sandbox_command,
    task_group,
    validate_command,
    export_command,
    plan_command,
    run_command,
    runs_group,
    serve_command,
    worker_command,
    temporal_group,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point: user mistakes print one clear message and exit with their code, never a traceback.

    Everything printed passes the process's redactor, which knows every `HTTPTASK_SECRET_` value from the
    start and each secrets file as it is read.
    """
    from ..redaction import Redactor, guard_stdio
    from ..secrets import SecretStore

    guard_stdio(SecretStore(redactor=Redactor()).redactor)
    try:
        _dispatch()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _dispatch() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HttptaskError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _exit(code: str | int | None) -> NoReturn:
    """Exit with `code`; after the Temporal SDK was used, without the interpreter's teardown, which its Rust
    threads can abort with SIGABRT (temporalio/sdk-python#300)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if "temporalio.bridge" not in sys.modules:
        sys.exit(code)
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
