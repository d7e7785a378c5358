"""`httptask specs`: import OpenAPI documents into the user's catalog, and check documents strictly."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from ..errors import UsageError
from .console import plural

__all__ = ["specs_group"]


@click.group("specs")
def specs_group() -> None:
    """Import and check OpenAPI documents."""


@specs_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True))
@click.option("--name", help="The API name (catalog ids become NAME.operationId). Default: the file's stem.")
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Keep only operations whose operationId, path or 'METHOD path' matches; repeatable.",
)
@click.option("--replace", is_flag=True, help="Overwrite an API of the same name in the user catalog.")
def specs_import(files: tuple[Path, ...], name: str | None, include: tuple[str, ...], replace: bool) -> None:
    """Add OpenAPI 3.0/3.1 documents (JSON or YAML; a folder imports all its files as one API)."""
    from ..importer import import_specs
    from ..resources import user_specs_dirs

    paths = _expand_files(files)
    if name is None and len(files) == 1 and files[0].is_dir():
        name = re.sub(r"[^a-z0-9]+", "-", files[0].resolve().name.lower()).strip("-")
    target = user_specs_dirs()[0]
    result = import_specs(paths, target=target, name=name, include=list(include), replace=replace)
    click.echo(f"Imported {plural(result.operations, 'operation')} as '{result.api}' into {target}.")
    if result.renamed:
        names = ", ".join(f"'{given}' as '{new}'" for given, new in list(result.renamed.items())[:10])
        more = f" and {len(result.renamed) - 10} more" if len(result.renamed) > 10 else ""
        click.echo(
            f"Renamed {plural(len(result.renamed), 'operationId')} that a task cannot name (letters, digits, "
            f"'_', '.' and '-' only): {names}{more}.",
            err=True,
        )
    click.echo("Not checked strictly: 'httptask specs check FILE' lists what the OpenAPI validator finds.",
               err=True)


def _expand_files(files: tuple[Path, ...]) -> list[Path]:
    from ..catalog import SPEC_SUFFIXES

    paths: list[Path] = []
    for path in files:
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES))
        elif path.is_file():
            paths.append(path)
        else:
            raise UsageError(f"No such file or folder: '{path}'.")
    return paths


@specs_group.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def specs_check(files: tuple[Path, ...]) -> None:
    """Check documents strictly (default: every spec in the catalog).

    Exits 1 when a finding is reported, 2 when a file cannot be loaded at all.
    """
    from ..importer import check_specs

    total = 0
    unloadable = 0
    for result in check_specs([(p.stem, p) for p in _expand_files(files)] if files else None):
        if result.error is not None:
            click.echo(f"error: {result.error}", err=True)
            unloadable += 1
            continue
        total += result.count
        status = "ok" if not result.count else plural(result.count, "finding")
        click.echo(f"{result.path}: {plural(result.operations, 'operation')}, {status}")
        for finding in result.findings:
            click.echo(f"  {finding.pointer}: {finding.message}")
        if result.count > len(result.findings):
            click.echo(f"  ... and {result.count - len(result.findings)} more")
    sys.exit(2 if unloadable else 1 if total else 0)
