"""Run a workflow file on the local engine as `httptask run` does: the default catalog, secrets from the
environment (or a file), and the journal at `journal_path` (default: $HTTPTASK_JOURNAL)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from httptask.catalog import Catalog
from httptask.engines.protocol import RunResult
from httptask.journal import Journal, default_journal_path
from httptask.runs import start_run
from httptask.secrets import SecretStore

__all__ = ["run_workflow"]


def run_workflow(
    file: Path,
    inputs: dict[str, Any],
    *,
    journal_path: Path | None = None,
    secrets_file: Path | None = None,
    **options: Any,
) -> RunResult:
    with contextlib.closing(Journal(journal_path or default_journal_path())) as journal:
        return start_run(
            file,
            inputs=inputs,
            catalog=Catalog.default(),
            secrets=SecretStore(file=secrets_file),
            journal=journal,
            **options,
        )
