"""Renders the trusted files in `templates/`: reference pages, task skeletons, code snippets, the editor page.

Task templates written by users never come here: they go through the sandbox in `templating`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2

from .resources import bundled_dir

__all__ = ["render_page"]


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(bundled_dir("templates")),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    env.filters["cell"] = _cell
    env.filters["shell_quote"] = _shell_quote
    return env


def _cell(value: Any) -> str:
    """Text fit for one Markdown table cell."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _shell_quote(value: Any) -> str:
    return "'" + str(value).replace("'", "'\\''") + "'"


def render_page(name: str, **data: Any) -> str:
    """Render `templates/NAME` with `data`."""
    return _environment().get_template(name).render(**data)
