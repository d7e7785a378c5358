"""`httptask plan`: what a run of a workflow would send, redacted, by task; nothing is sent."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_INVALID
from .console import input_items_option, parse_input, parse_input_items, plural, print_json

__all__ = ["plan_command"]


@click.command("plan")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--input", "input_text", metavar="JSON|@FILE", help="The workflow's inputs: JSON text, or @FILE."
)
@input_items_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--secrets-file", type=click.Path(path_type=Path), help="A YAML or JSON file of secrets by name."
)
def plan_command(
    file: Path, input_text: str | None, input_items: tuple[str, ...], as_json: bool, secrets_file: Path | None
) -> None:
    """Print every request a run would send (redacted), the totals of the amounts, the requests that are not
    idempotent and the tasks that depend on earlier responses; exit 3 if a request would not be valid."""
    from ..catalog import Catalog
    from ..plan import plan_workflow
    from ..runs import check_inputs
    from ..secrets import SecretStore
    from ..workflow import parse_workflow
    from ..yamlsource import load_source

    workflow = parse_workflow(load_source(file))
    inputs = check_inputs(workflow, parse_input(input_text), parse_input_items(input_items))
    secrets = SecretStore(file=secrets_file)
    plan = plan_workflow(workflow, inputs, catalog=Catalog.default(), secrets=secrets)
    if as_json:
        print_json(plan.to_dict())
        sys.exit(EXIT_INVALID if plan.problems else 0)
    data = plan.to_dict()
    click.echo(
        f"plan of {workflow.name}: {plural(data['requests'], 'request')}, "
        f"{data['not_idempotent']} not idempotent; nothing was sent"
    )
    for task in plan.tasks:
        if not task.plannable:
            click.echo(
                f"task {task.task_id}: not planned, it reads the responses of {', '.join(task.depends_on)}"
            )
            continue
        click.echo(f"task {task.task_id} ({task.operation or 'httpRequest'})")
        for request in task.requests:
            sent = request.request
            where = "" if request.item is None else f"[{request.item}] "
            flag = "" if request.idempotent else "  NOT IDEMPOTENT"
            key = f"  key {sent['idempotency_key']}" if sent.get("idempotency_key") else ""
            click.echo(f"  {where}{sent['method']} {sent['url']}{key}{flag}")
            if sent.get("body"):
                click.echo(f"      {sent['body']}")
    for total in data["totals"]:
        currency = total["currency"] or "in each resource's currency"
        click.echo(f"total: {total['value']} ({total['unit']} units) {currency}")
    for task_id, item, issue in plan.problems:
        where = f"task {task_id}" + ("" if item is None else f", item {item}")
        click.echo(f"invalid: {where}: {issue}", err=True)
    if plan.problems:
        click.echo(f"{plural(len(plan.problems), 'problem')}: a run would send nothing.", err=True)
    sys.exit(EXIT_INVALID if plan.problems else 0)
