"""`httptask catalog`: list, search and show the operations of the catalog."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .console import print_json, print_table

if TYPE_CHECKING:
    from ..catalog import Catalog, Entry

__all__ = ["catalog_group"]


def _catalog() -> Catalog:
    from ..catalog import Catalog

    return Catalog.default()


@click.group("catalog")
def catalog_group() -> None:
    """List, search and show the operations of the catalog."""


@catalog_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of operations.")
def catalog_list(as_json: bool) -> None:
    """List every operation."""
    _print_entries(_catalog().entries, as_json=as_json, scores=None)


@catalog_group.command("search")
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


def _print_entries(entries: list[Entry], *, as_json: bool, scores: list[float] | None) -> None:
    if as_json:
        rows: list[dict[str, Any]] = []
        for i, entry in enumerate(entries):
            row = {k: v for k, v in entry.to_dict().items() if k not in ("description", "source")}
            if scores is not None:
                row["score"] = scores[i]
            rows.append(row)
        print_json(rows)
        return
    print_table(["id", "method", "path", "summary"], [[e.id, e.method, e.path, e.summary] for e in entries])


@catalog_group.command("show")
@click.argument("operation_id")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True)
def catalog_show(operation_id: str, fmt: str) -> None:
    """Show the reference page of one operation."""
    from ..reference import reference

    ref = reference(_catalog().operation(operation_id))
    if fmt == "json":
        print_json(ref)
        return
    from ..pages import render_page

    click.echo(render_page("reference.md.j2" if fmt == "md" else "reference-page.html.j2", ref=ref), nl=False)
