"""A prepared request as code (curl, Python, Node), rendered from `templates/snippets/`; secrets as `***`."""

from __future__ import annotations

from typing import Any

from .pages import render_page

__all__ = ["LANGUAGES", "snippet"]

LANGUAGES = ("curl", "python", "node")


def snippet(prepared: Any, lang: str) -> str:
    """The redacted request of `prepared` written as a `lang` program."""
    request = prepared.redacted_request()
    return render_page(f"snippets/{lang}.j2", request=request, task=prepared.task)
