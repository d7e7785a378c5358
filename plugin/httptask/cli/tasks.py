"""`httptask task` (a skeleton task for a catalog operation, a task's request as code) and `httptask schema`
(the JSON Schema of task and workflow files)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .console import input_option, parse_input, print_json, secrets_file_option

__all__ = ["schema_command", "task_group"]


@click.group("task")
def task_group() -> None:
    """Write task definitions and turn them into code."""


@task_group.command("new")
@click.argument("operation_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="YAML carries the optional fields and their valid values as comments.",
)
def task_new(operation_id: str, fmt: str) -> None:
    """Print a task skeleton for OPERATION_ID, with a {{ input.NAME }} placeholder for every required
    field."""
    from ..catalog import Catalog
    from ..skeleton import skeleton, skeleton_yaml

    op = Catalog.default().operation(operation_id)
    if fmt == "json":
        click.echo(json.dumps(skeleton(op), indent=2, ensure_ascii=False))
    else:
        click.echo(skeleton_yaml(op), nl=False)


@task_group.command("snippet")
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("--lang", type=click.Choice(["curl", "python", "node"]), default="curl", show_default=True)
@input_option("The task's input")
@secrets_file_option
def task_snippet(task_file: Path, lang: str, input_text: str | None, secrets_file: Path | None) -> None:
    """Print the task's request as a curl, Python or Node program; secrets are shown as ***."""
    from ..catalog import Catalog
    from ..execute import prepare
    from ..secrets import SecretStore
    from ..snippets import snippet
    from ..tasks import load_task

    loaded = load_task(task_file)
    inputs = parse_input(input_text)
    secrets = SecretStore(file=secrets_file)
    prepared = prepare(loaded, inputs=inputs, catalog=Catalog.default(), secrets=secrets)
    click.echo(snippet(prepared, lang), nl=False)


@click.command("schema")
@click.argument("name", type=click.Choice(["task", "workflow"]))
def schema_command(name: str) -> None:
    """Print the JSON Schema of task or workflow files (for editor autocompletion)."""
    from ..tasks import schema

    print_json(schema(name))
