"""Exports of a workflow to other engines' definition formats, by target name."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog
from ..errors import Issue
from ..workflow import Workflow

__all__ = ["TARGETS", "export_workflow"]

TARGETS = ("conductor",)


def export_workflow(workflow: Workflow, catalog: Catalog, target: str) -> tuple[dict[str, Any], list[Issue]]:
    """The definition for `target`, and every issue that prevents a faithful export (empty when none)."""
    if target == "conductor":
        from .conductor import to_conductor

        return to_conductor(workflow, catalog)
    raise ValueError(f"unknown export target {target!r}")
