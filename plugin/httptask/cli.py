"""The `httptask` command line: parses arguments, calls the library, maps errors to exit codes."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from .errors import HttptaskError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="httptask")
def cli() -> None:
    """A catalog of real API endpoints as ready-to-run HTTP tasks."""


def _catalog() -> Any:
    from .catalog import Catalog

    return Catalog.default()


# -- catalog -------------------------------------------------------------------------------------------------


@cli.group()
def catalog() -> None:
    """List, search and show the operations of the catalog."""


@catalog.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of operations.")
def catalog_list(as_json: bool) -> None:
    """List every operation."""
    _print_entries(_catalog().entries, as_json=as_json, scores=None)


@catalog.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of operations, best first.")
@click.option("--limit", default=20, show_default=True, help="How many results at most.")
def catalog_search(query: tuple[str, ...], as_json: bool, limit: int) -> None:
    """Search operations by API, operation id, summary, description and path; typos are forgiven."""
    hits = _catalog().search(" ".join(query), limit=limit)
    if not hits and not as_json:
        click.echo(f"No operation matches '{' '.join(query)}'. Try fewer or other words.", err=True)
        sys.exit(1)
    _print_entries([h.entry for h in hits], as_json=as_json, scores=[h.score for h in hits])


def _print_entries(entries: list[Any], *, as_json: bool, scores: list[float] | None) -> None:
    from .output import print_json, print_table

    if as_json:
        rows = []
        for i, entry in enumerate(entries):
            row = {k: v for k, v in entry.to_dict().items() if k not in ("description", "source")}
            if scores is not None:
                row["score"] = scores[i]
            rows.append(row)
        print_json(rows)
        return
    print_table(["id", "method", "path", "summary"], [[e.id, e.method, e.path, e.summary] for e in entries])


@catalog.command("show")
@click.argument("operation_id")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True)
def catalog_show(operation_id: str, fmt: str) -> None:
    """Show the reference page of one operation."""
    from .output import print_json
    from .reference import reference

    ref = reference(_catalog().operation(operation_id))
    if fmt == "json":
        print_json(ref)
        return
    from .pages import render_page

    click.echo(render_page("reference.md.j2" if fmt == "md" else "reference-page.html.j2", ref=ref), nl=False)


# -- specs ---------------------------------------------------------------------------------------------------


@cli.group()
def specs() -> None:
    """Import and check OpenAPI documents."""


@specs.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True))
@click.option("--name", help="The API name (catalog ids become NAME.operationId). Default: the file's stem.")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Keep only operations whose operationId, path or 'METHOD path' matches; repeatable.")
@click.option("--replace", is_flag=True, help="Overwrite an API of the same name in the user catalog.")
def specs_import(files: tuple[Path, ...], name: str | None, include: tuple[str, ...], replace: bool) -> None:
    """Add OpenAPI 3.0/3.1 documents (JSON or YAML; a folder imports all its files as one API)."""
    from .importer import import_specs
    from .resources import user_specs_dirs

    paths = _expand_files(files)
    if name is None and len(files) == 1 and files[0].is_dir():
        name = re.sub(r"[^a-z0-9]+", "-", files[0].resolve().name.lower()).strip("-")
    target = user_specs_dirs()[0]
    result = import_specs(paths, target=target, name=name, include=list(include), replace=replace)
    click.echo(f"Imported {_plural(result.operations, 'operation')} as '{result.api}' into {target}.")
    if result.warning_count:
        click.echo(
            f"{_plural(result.warning_count, 'strict OpenAPI finding')} (imported anyway; "
            f"run 'httptask specs check FILE' to see them all):", err=True
        )
        for finding in result.warnings[:5]:
            click.echo(f"  {finding}", err=True)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _expand_files(files: tuple[Path, ...]) -> list[Path]:
    from .catalog import SPEC_SUFFIXES
    from .errors import UsageError

    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES))
        elif path.is_file():
            paths.append(path)
        else:
            raise UsageError(f"No such file or folder: '{path}'.")
    return paths


@specs.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def specs_check(files: tuple[Path, ...]) -> None:
    """Check documents strictly (default: every spec in the catalog).

    Exits 1 when a finding is reported, 2 when a file cannot be loaded at all.
    """
    from .catalog import spec_files
    from .importer import check_document
    from .resources import bundled_dir, user_specs_dirs
    from .spec import load_document, parse_spec

    if files:
        paths = [(p.stem, p) for p in _expand_files(files)]
    else:
        paths = [pair for d in [bundled_dir("specs"), *user_specs_dirs()] for pair in spec_files(d)]
    total = 0
    unloadable = 0
    for api, path in paths:
        try:
            document = load_document(path)
            spec = parse_spec(document, api=api, source=str(path))
        except HttptaskError as exc:
            # One unloadable file is reported and the others are still checked.
            click.echo(f"error: {exc}", err=True)
            unloadable += 1
            continue
        findings, count = check_document(document, str(path))
        total += count
        status = "ok" if not count else _plural(count, "finding")
        click.echo(f"{path}: {_plural(len(spec.operations), 'operation')}, {status}")
        for finding in findings:
            click.echo(f"  {finding.pointer}: {finding.message}")
        if count > len(findings):
            click.echo(f"  ... and {count - len(findings)} more")
    sys.exit(2 if unloadable else 1 if total else 0)


# -- tasks and test requests ---------------------------------------------------------------------------------


@cli.command("schema")
@click.argument("name", type=click.Choice(["task", "workflow"]))
def schema_command(name: str) -> None:
    """Print the JSON Schema of task or workflow files (for editor autocompletion)."""
    from .output import print_json
    from .tasks import schema

    print_json(schema(name))


@cli.command("test-request")
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("--input", "input_text", metavar="JSON|@FILE", help="The task's input: JSON text, or @ and a file.")
@click.option("--dry-run", is_flag=True, help="Print the exact request (redacted) and a curl command; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print {request, response, errors} as JSON.")
@click.option("--sandbox", is_flag=True, help="Send to a local sandbox of the API instead of the real server.")
@click.option("--secrets-file", type=click.Path(path_type=Path), help="A YAML or JSON file of secrets by name.")
def test_request(task_file: Path, input_text: str | None, dry_run: bool, as_json: bool, sandbox: bool,
                 secrets_file: Path | None) -> None:
    """Render, validate and send one task; exit 0 on a 2xx, 1 on failure, 2 on bad usage, 3 when invalid."""
    from .testrequest import run_test_request

    code = run_test_request(task_file, input_text=input_text, dry_run=dry_run, as_json=as_json,
                            use_sandbox=sandbox, secrets_file=secrets_file)
    sys.exit(code)


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
def sandbox_command(host: str, port: int) -> None:
    """Serve every catalog operation locally: validates requests and answers from the spec."""
    from .sandbox import serve_forever

    serve_forever(_catalog(), host, port)


from .cli_tasks import task  # noqa: E402

cli.add_command(task)

from .cli_workflow import export_command, validate_command  # noqa: E402

cli.add_command(validate_command)
cli.add_command(export_command)

from .cli_runs import run_command, runs_group  # noqa: E402

cli.add_command(run_command)
cli.add_command(runs_group)

from .cli_serve import serve_command  # noqa: E402

cli.add_command(serve_command)


def main() -> None:
    """Entry point: user mistakes print one clear message and exit with their code, never a traceback."""
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
