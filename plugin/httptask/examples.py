"""The example workflows shipped with httptask, each with the inputs to run it with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .authoring import sample_inputs
from .errors import UsageError
from .resources import bundled_dir
from .workflow import parse_workflow_text

__all__ = ["Example", "example", "examples"]


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    text: str
    inputs: dict[str, Any]


def _folder() -> Path:
    return bundled_dir("examples")


def examples() -> list[Example]:
    """Every example workflow, by name."""
    return [example(path.stem) for path in sorted(_folder().glob("*.yaml"))]


def example(name: str) -> Example:
    """The example workflow `name` with its inputs: the shipped inputs file, else samples from its schemas."""
    path = _folder() / f"{name}.yaml"
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(p.stem for p in sorted(_folder().glob("*.yaml"))) or "none"
        raise UsageError(f"No example workflow {name!r}; the examples are: {known}.")
    text = path.read_text(encoding="utf-8")
    workflow = parse_workflow_text(text, str(path))
    inputs_file = _folder() / "inputs" / f"{name}.json"
    inputs = json.loads(inputs_file.read_text(encoding="utf-8")) if inputs_file.is_file() else None
    description = " ".join(workflow.description.split())
    return Example(name, description, text, inputs if inputs is not None else sample_inputs(workflow))
