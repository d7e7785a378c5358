"""What every command shares: printing (rich tables on a terminal, plain aligned text when piped, JSON on
request), counted nouns, the `--input` and `--secrets-file` options and reading `--input`, and the optional
local sandbox."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import SourceError, UsageError

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = [
    "input_items_option",
    "input_option",
    "is_terminal",
    "optional_sandbox",
    "parse_input",
    "parse_input_items",
    "plural",
    "print_json",
    "print_response_issues",
    "print_table",
    "secrets_file_option",
    "strict_responses_option",
]

Command = TypeVar("Command", bound=Callable[..., Any])


def input_option(whose: str) -> Callable[[Command], Command]:
    """`--input JSON|@FILE` into the parameter `input_text`; `whose` names what it feeds, e.g. "The task's
    input"."""
    return click.option(
        "--input", "input_text", metavar="JSON|@FILE", help=f"{whose}: JSON text, or @ and a file."
    )


input_items_option = click.option(
    "--input-items",
    "input_items",
    multiple=True,
    metavar="NAME=FILE",
    help="Read the list input NAME from a JSON Lines file, one item per line, as the run goes (a million "
    "items in bounded memory); forEach reads it lazily when it is exactly '{{ input.NAME }}'.",
)


def parse_input_items(given: Sequence[str]) -> dict[str, Path]:
    """`--input-items NAME=FILE`, each given once."""
    files: dict[str, Path] = {}
    for text in given:
        name, equals, file = text.partition("=")
        if not equals or not name.strip() or not file:
            raise UsageError(
                f"--input-items {text!r}: give NAME=FILE, such as invoices=invoices.jsonl (one JSON value a "
                "line)."
            )
        if name.strip() in files:
            raise UsageError(f"--input-items gives the input {name.strip()!r} twice; give it once.")
        files[name.strip()] = Path(file)
    return files


secrets_file_option = click.option(
    "--secrets-file", type=click.Path(path_type=Path), help="A YAML or JSON file of secrets by name."
)


strict_responses_option = click.option(
    "--strict-responses",
    is_flag=True,
    help="Fail when a response does not fit the operation's spec, instead of warning.",
)


def print_response_issues(where: str, issues: Sequence[Mapping[str, Any]]) -> None:
    """A response's mismatches with the spec, on stderr: a warning line, then one line per JSON path."""
    count = plural(len(issues), "problem")
    sys.stderr.write(f"warning: the response does not fit the spec of {where} ({count}):\n")
    for issue in issues:
        sys.stderr.write(f"  {issue['path']}: {issue['message']}\n")


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout; what JSON cannot hold is printed as its text."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns, title=title, title_justify="left")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        Console().print(table)
        return
    cells = [[str(c) for c in columns], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if title:
        sys.stdout.write(title + "\n")
    for row in cells:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def plural(count: int, noun: str) -> str:
    """`1 operation`, `2 operations`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def parse_input(text: str | None) -> dict[str, Any]:
    """`--input` as JSON text, or `@FILE` holding JSON or YAML; it must be an object."""
    if not text:
        return {}
    if text.startswith("@"):
        from ..yamlsource import load_source

        path = Path(text[1:])
        data = load_source(path, as_json=path.suffix.lower() == ".json").data
        where = f"the file {text[1:]}"
    else:
        from ..yamlsource import parse_json

        try:
            data = parse_json(text, "--input")
        except SourceError as exc:
            where = f" at column {exc.column}" if exc.column is not None else ""
            raise UsageError(
                f"--input is not valid JSON ({exc.problem}{where}); pass a JSON object or @FILE."
            ) from None
        where = "--input"
    if not isinstance(data, dict):
        raise UsageError(f"{where} must hold an object of input names to values, not {type(data).__name__}.")
    return data


@contextlib.contextmanager
def optional_sandbox(catalog: Catalog, enabled: bool) -> Iterator[str | None]:
    """The URL of a local sandbox of `catalog` for the duration, or None when not `enabled`."""
    if not enabled:
        yield None
        return
    from ..sandbox import SandboxThread

    with SandboxThread(catalog) as sandbox:
        yield sandbox.url
