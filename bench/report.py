"""What the benchmarks that compare clients side by side share: their command line, their interleaved
rounds, their paired ratios, and their table of clients (a row per client, then the ratios between them)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

from stats import spread, text

__all__ = ["arguments", "client_rows", "interleaved", "paired"]

_WIDTHS = (28, 24)  # of the columns after tasks/s


def arguments(description: str) -> argparse.ArgumentParser:
    """`--items`, `--concurrency`, `--rounds` and `--json`; a script adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    return parser


def interleaved(
    kinds: Sequence[str], rounds: int, run: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    """Each kind's figures, round by round: a round runs every kind once, in an order rotated from round to
    round, so no kind always runs first or last on a noisy machine. Also the load average at each round."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    loads: list[float] = []
    for number in range(rounds):
        shift = number % len(kinds)
        loads.append(os.getloadavg()[0])
        for kind in [*kinds[shift:], *kinds[:shift]]:
            runs[kind].append(run(kind))
    return runs, loads


def paired(over: Sequence[float], under: Sequence[float]) -> dict[str, Any]:
    """The ratio of two kinds' figures taken within each round, as median and range."""
    return spread([a / b for a, b in zip(over, under, strict=True)])


def client_rows(figures: dict[str, Any], columns: list[tuple[str, str, str]]) -> list[str]:
    """A header, one row per client of `figures['tasks_per_s']` with tasks/s and each (figure key, title,
    format) column, then a line per ratio."""
    header = f"  {'client':16}{'tasks/s':>30}"
    for (_, title, _), width in zip(columns, _WIDTHS, strict=False):
        header += f"{title:>{width}}"
    lines = [header]
    for kind in figures["tasks_per_s"]:
        row = f"  {kind:16}{text(figures['tasks_per_s'][kind], ',.0f'):>30}"
        for (key, _, fmt), width in zip(columns, _WIDTHS, strict=False):
            row += f"{text(figures[key][kind], fmt):>{width}}"
        lines.append(row)
    lines += [f"  {name:28} {text(ratio)}" for name, ratio in figures["ratios"].items()]
    return lines
