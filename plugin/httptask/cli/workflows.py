"""`httptask validate` and `httptask export`: check a workflow file, or write it for another engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EXIT_INVALID, EXIT_USAGE, Issue, UsageError
from .console import plural, print_json

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..workflow import Workflow

__all__ = ["export_command", "validate_command"]


def _check(file: Path, catalog: Catalog) -> tuple[Workflow | None, list[Issue]]:
    """The workflow in `file` and every problem with it, as the editor checks it; a file that cannot be read
    or parsed is a `UsageError`."""
    from ..checks import check_source
    from ..yamlsource import load_source

    return check_source(load_source(file), catalog)


def _print_issues(file: Path, issues: list[Issue], *, err: bool) -> None:
    for issue in issues:
        click.echo(
            f"{file}:{issue.line if issue.line is not None else '?'}: {issue.path}: {issue.message}", err=err
        )


@click.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"valid": bool, "errors": [...]} as JSON.')
def validate_command(file: Path, as_json: bool) -> None:
    """Check a workflow without sending anything; exit 3 when it is invalid, 2 when it cannot be read."""
    from ..catalog import Catalog
    from ..checks import syntax_issue

    try:
        workflow, issues = _check(file, Catalog.default())
    except UsageError as exc:
        if not as_json:
            raise
        print_json({"valid": False, "errors": [syntax_issue(exc).to_dict()]})
        sys.exit(EXIT_USAGE)
    if as_json:
        print_json({"valid": not issues, "errors": [issue.to_dict() for issue in issues]})
    elif issues:
        _print_issues(file, issues, err=False)
        click.echo(f"{file}: the workflow is not valid ({plural(len(issues), 'problem')}).", err=True)
    else:
        assert workflow is not None
        click.echo(f"{file}: valid ({plural(len(workflow.tasks), 'task')}).")
    sys.exit(EXIT_INVALID if issues else 0)


@click.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--to", "target", type=click.Choice(["conductor"]), required=True, help="The engine to export to."
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of to stdout.")
def export_command(file: Path, target: str, output: Path | None) -> None:
    """Write the workflow as another engine's definition; exit 3, writing nothing, if not faithful."""
    from ..catalog import Catalog
    from ..export import export_workflow
    from ..redaction import process_redactor

    catalog = Catalog.default()
    workflow, issues = _check(file, catalog)
    if workflow is not None and not issues:
        definition, issues = export_workflow(workflow, catalog, target)
    if issues:
        _print_issues(file, issues, err=True)
        click.echo(
            f"{file}: not exported to {target} ({plural(len(issues), 'problem')}); nothing was written.",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    text = json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(process_redactor().redact(text), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write '{output}': {exc.strerror}.") from exc
    click.echo(f"Wrote {output}.", err=True)
