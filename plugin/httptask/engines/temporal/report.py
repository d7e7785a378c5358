"""A Temporal run's summary in the shape the local engine reports (`httptask run --json`), plus what only a
run on Temporal has: items waiting for a decision, and the decisions taken."""

from __future__ import annotations

from typing import Any

from .model import ItemError, RunSummary, TaskState

__all__ = ["summary_dict"]


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """`{run_id, status, tasks, outputs, errors}` as the local engine gives them; `waiting` and `decisions`
    when there are any. A run refused before it started gives its issues as the errors."""
    errors = [_error(e) for e in summary.errors]
    if summary.status == "invalid" and summary.issues:
        errors = summary.issues
    data: dict[str, Any] = {
        "run_id": summary.run_id,
        "status": summary.status,
        "tasks": [_task(t) for t in summary.tasks],
        "outputs": summary.outputs,
        "errors": errors,
    }
    if summary.error_count > len(summary.errors):
        data["errors_not_listed"] = summary.error_count - len(summary.errors)
    waiting = [
        {
            "task": t.task,
            "item": r.item if t.for_each else None,
            "idempotency_key": r.idempotency_key,
            "sent_at": r.sent_at,
            "error": r.error,
        }
        for t in summary.tasks
        for r in t.unknown
    ]
    if waiting:
        data["waiting"] = waiting
    if summary.decisions:
        data["decisions"] = [
            {**record.decision.__dict__, "applied": record.applied, "ignored": record.ignored}
            for record in summary.decisions
        ]
    return data


def _task(state: TaskState) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task": state.task,
        "state": state.state,
        "for_each": state.for_each,
        "elapsed_ms": round(state.elapsed_ms, 2),
        "error": state.error,
    }
    if state.for_each:
        data["items"] = dict(state.counts)
    else:
        data["http_status"] = state.http_status
        data["attempts"] = state.attempts
    data["responses_off_spec"] = state.off_spec
    first = state.first_off_spec
    if first is not None and first.response is not None:
        data["first_off_spec"] = {"item": first.item, "issues": first.response["issues"]}
    return data


def _error(error: ItemError) -> dict[str, Any]:
    return {"task": error.task or None, "item": error.item, "message": error.message}
