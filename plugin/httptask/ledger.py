"""What the sandbox acted on, kept for the reads that settle a request of unknown outcome: each write of an
operation with `x-reconcile` is filed under the read it names, and that read answers with the writes received
(so `--reconcile` can be tried against the sandbox)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from .errors import TemplateError
from .messages import RequestValues
from .reconcile import Reconcile, iter_reads, placed, reconcile_of, sent_context
from .spec import Operation
from .templating import base_context, render_value

__all__ = ["MAX_WRITES", "Ledger"]

MAX_WRITES = 10_000  # per read: a sandbox serving for days forgets the oldest, as its request log does

_Filed = tuple[tuple[str, str, str], ...]


class Ledger:
    """Writes received, by the read that shows them; safe to share between threads."""

    def __init__(self, operations: Iterable[Operation]) -> None:
        self._reconciles: dict[str, Reconcile] = {}
        for op in operations:
            try:
                rec = reconcile_of(op)
            except ValueError:  # a malformed x-reconcile is reported by `specs check`, not by the sandbox
                continue
            if rec is not None:
                self._reconciles[op.id] = rec
        self._reads = {rec.operation: rec for rec in self._reconciles.values()}
        self._writes: dict[str, deque[tuple[_Filed, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def record(self, op: Operation, values: RequestValues) -> None:
        """File a write the sandbox acted on (a no-op for an operation without x-reconcile)."""
        rec = self._reconciles.get(op.id)
        if rec is None:
            return
        try:
            filed = tuple(
                (part, name, str(value)) for part, name, value in iter_reads(rec, values, task_id=op.id)
            )
        except TemplateError:
            return  # the read could not be addressed for this write, so no read will ever show it
        candidate = {}
        for field, template in rec.match.items():
            try:
                candidate[field] = _render_one(template, values, op.id, field)
            except TemplateError:
                continue
        with self._lock:
            self._writes.setdefault(rec.operation, deque(maxlen=MAX_WRITES)).append((filed, candidate))

    def answers(self, op: Operation) -> bool:
        """Whether `op` is a read that the ledger answers."""
        return op.id in self._reads

    def answer(self, op: Operation, values: RequestValues, sample: Any) -> Any:
        """The read's answer: `sample` with the writes it addresses in place of the sample's own."""
        rec = self._reads[op.id]
        given = {
            "path": {k: str(v) for k, v in values.path.items()},
            "query": {k: str(v) for k, v in values.query.items()},
            "headers": {k.lower(): str(v) for k, v in values.headers.items()},
        }
        with self._lock:
            writes = list(self._writes.get(op.id, []))
        candidates = [
            candidate
            for filed, candidate in writes
            if all(given[part].get(name) == value for part, name, value in filed)
        ]
        return placed(rec, sample, candidates)


def _render_one(template: Any, values: RequestValues, task_id: str, field: str) -> Any:
    context = base_context(inputs={}, extra=sent_context(values))
    return render_value(template, context, task_id=task_id, field_path=f"x-reconcile.match.{field}")
