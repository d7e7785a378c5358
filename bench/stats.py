"""Medians with their range, the only summary the benchmarks report."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["spread", "text"]


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """The median, min and max of `values`, and how many there were."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def text(figure: dict[str, Any], fmt: str = ",.2f") -> str:
    """`0.81 (0.74-0.86)`: the median and its range."""
    return f"{figure['median']:{fmt}} ({figure['min']:{fmt}}-{figure['max']:{fmt}})"
