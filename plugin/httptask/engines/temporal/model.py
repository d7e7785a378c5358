"""What travels through Temporal: workflow and activity arguments and results, as plain dataclasses.

Nothing here may hold a secret or a whole fan-out list: activities get a reference to the run (`RunRef`) and
item offsets, and read the inputs and earlier results from the history themselves (see `history`). This module
imports only the standard library, so the workflow sandbox can pass it through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVITY",
    "BatchArgs",
    "BatchResult",
    "ChunkInput",
    "ChunkSummary",
    "Decision",
    "DecisionRecord",
    "EncodedRecords",
    "Expanded",
    "ItemError",
    "ItemRecord",
    "OutputsResult",
    "Plan",
    "RunInput",
    "RunRef",
    "RunSummary",
    "Settings",
    "Source",
    "TaskPlan",
    "TaskState",
    "Wire",
]

RUN_WORKFLOW = "httptask.run"
CHUNK_WORKFLOW = "httptask.chunk"
DECIDE_SIGNAL = "decide"
STATE_QUERY = "state"
RECORDS_KIND = "httptask.records"


class ACTIVITY:
    """Activity names: the contract between the workflows and the workers, whatever their version."""

    PLAN = "httptask.plan"
    EXPAND = "httptask.expand"
    SEND_BATCH = "httptask.send_batch"
    SEND_ONE = "httptask.send_one"
    NOTE = "httptask.note"
    OUTPUTS = "httptask.outputs"


# Error types activities raise and workflows tell apart.
RUN_INVALID = "RunInvalid"
NOT_SENT = "NotSent"


@dataclass(frozen=True)
class Settings:
    """How a run uses Temporal, chosen when it starts (README: "Settings").

    A lost worker's activity is retried elsewhere `heartbeat_seconds` after its last heartbeat.
    """

    # Requests in flight at once, per chunk workflow: batches of idempotent items each send `batch_lanes` at
    # once, so `concurrency / batch_lanes` batches are in flight.
    concurrency: int = 16
    batch_size: int = 200
    batch_lanes: int = 4
    heartbeat_seconds: float = 5.0
    # A batch lost this many times without its heartbeats confirming an item is given up (at least the task's
    # own retry attempts). Its requests carry keys, so another attempt is safe, and a loaded machine or server
    # can miss a few heartbeat timeouts in a row.
    lost_batch_attempts: int = 10
    chunk_activities: int = 1000
    chunk_items: int = 10_000
    # A response that breaks its operation's spec fails its task (`run --strict-responses`).
    strict_responses: bool = False

    def lanes(self, batched: bool) -> int:
        """Requests a batch sends at once (one for a request that is not idempotent)."""
        return max(1, min(self.batch_lanes, self.concurrency)) if batched else 1

    def chunk_size(self, batched: bool) -> int:
        """Items per child workflow: bounded in activities (its history) and in items (its summary)."""
        per_activity = self.batch_size if batched else 1
        return max(1, min(self.chunk_items, self.chunk_activities * per_activity))


@dataclass(frozen=True)
class RunInput:
    """A run as started: the workflow text and its inputs (checked to hold no secret value)."""

    workflow_text: str
    file: str
    inputs: dict[str, Any]
    sandbox: bool = False
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True)
class RunRef:
    """Where a run's inputs and results are kept: the run workflow's id and its (only) run id."""

    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class TaskPlan:
    """What the workflow needs to know of a task to schedule it; the worker keeps the rest."""

    id: str
    needs: list[str]
    for_each: bool
    batched: bool
    """Idempotent (by method or idempotency key): sent K per activity, retried by Temporal. Otherwise one
    activity per request with a single attempt, and an unknown outcome waits for a decision."""
    item_seconds: float
    retry_interval_seconds: float = 1.0
    retry_backoff: float = 2.0
    retry_max_interval_seconds: float = 30.0
    retry_max_attempts: int = 3


@dataclass(frozen=True)
class Plan:
    name: str
    tasks: list[TaskPlan]
    outputs: bool


@dataclass(frozen=True)
class Source:
    """Where a finished task's records are: its chunk workflows (`chunks` of them), then the run workflow."""

    chunks: int = 0


@dataclass(frozen=True)
class BatchArgs:
    ref: RunRef
    task: str
    start: int
    stop: int
    sources: dict[str, Source]
    fingerprint: str | None = None
    lanes: int = 1
    """Items of a batch in flight at once."""


@dataclass(frozen=True)
class Expanded:
    count: int
    fingerprint: str


@dataclass
class ItemRecord:
    """One request's outcome: `succeeded`, `failed`, `unknown` (may have been received, no answer known) or
    `resolved` (an unknown outcome marked done by an operator). The response is redacted."""

    item: int
    state: str
    http_status: int | None = None
    elapsed_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    response: dict[str, Any] | None = None
    idempotency_key: str | None = None
    sent_at: float | None = None
    outcome: str | None = None
    """The last attempt's `outcome.Outcome`: `not_sent`, `answered` or `unknown`; None if none was made."""
    decision: dict[str, Any] | None = None


Wire = dict[str, Any]
"""A batch's records as activities return them: plain JSON, so a large batch costs one `json.dumps` and no
dataclass conversion (the hot path of a fan-out)."""


@dataclass
class BatchResult:
    """Records of one task's items, as an activity returns them: the history keeps every record here.

    `next` is set when a batch stopped early (its result would grow too large): the items from there on are
    still to send."""

    task: str
    records: list[ItemRecord]
    next: int | None = None

    def to_wire(self) -> Wire:
        return {
            "kind": RECORDS_KIND,
            "task": self.task,
            "next": self.next,
            "records": [dict(record.__dict__) for record in self.records],
        }

    @classmethod
    def from_wire(cls, wire: Wire) -> BatchResult:
        return cls(wire["task"], [ItemRecord(**record) for record in wire["records"]], wire.get("next"))

    @staticmethod
    def is_wire(value: Any) -> bool:
        return isinstance(value, dict) and value.get("kind") == RECORDS_KIND


class EncodedRecords:
    """A batch's records as JSON, each encoded once as it is added: a batch heartbeats all of them every
    second, and encoding them afresh each time cost more than sending them. `wire` is what `to_wire` would
    give, as JSON text."""

    def __init__(self, task: str, records: list[ItemRecord]) -> None:
        self._head = json.dumps({"kind": RECORDS_KIND, "task": task})[:-1].encode()
        self.records: list[ItemRecord] = []
        self._encoded: list[bytes] = []
        self.size = 0
        for record in records:
            self.add(record)

    def add(self, record: ItemRecord) -> None:
        encoded = json.dumps(record.__dict__, separators=(",", ":"), default=str).encode()
        self.records.append(record)
        self._encoded.append(encoded)
        self.size += len(encoded)

    def wire(self, next: int | None = None) -> bytes:
        return b"".join(
            (
                self._head,
                b',"next":',
                json.dumps(next).encode(),
                b',"records":[',
                b",".join(self._encoded),
                b"]}",
            )
        )


@dataclass(frozen=True)
class ChunkInput:
    ref: RunRef
    task: TaskPlan
    start: int
    stop: int
    sources: dict[str, Source]
    fingerprint: str | None
    settings: Settings


@dataclass
class ItemError:
    task: str
    item: int | None
    message: str


@dataclass
class ChunkSummary:
    counts: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    error_count: int = 0
    unknown: list[ItemRecord] = field(default_factory=list)
    elapsed_ms: float = 0.0
    # Responses that break their operation's spec: how many, and the first one's record.
    off_spec: int = 0
    first_off_spec: ItemRecord | None = None


@dataclass(frozen=True)
class Decision:
    """An operator's decision on items of unknown outcome, sent as the `decide` signal.

    `action` is `mark-done` (it was received: counted as resolved by hand, not sent) or `resend` (it was not:
    sent once more). `items` None means every item of `task` whose outcome is unknown when the signal arrives.
    """

    task: str
    action: str
    items: list[int] | None = None
    who: str = ""
    evidence: str | None = None
    at: float | None = None


@dataclass
class DecisionRecord:
    """A decision as the run applied it: the items it acted on, and those it ignored with the reason."""

    decision: Decision
    applied: list[int] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass
class TaskState:
    task: str
    for_each: bool
    state: str = "scheduled"
    error: str | None = None
    items: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    unknown: list[ItemRecord] = field(default_factory=list)
    chunks: int = 0
    elapsed_ms: float = 0.0
    http_status: int | None = None
    attempts: int = 0
    off_spec: int = 0
    first_off_spec: ItemRecord | None = None


@dataclass
class OutputsResult:
    outputs: dict[str, Any] | None
    errors: list[ItemError]


@dataclass
class RunSummary:
    """The run's state, from the `state` query while it runs, and as its result when it ends."""

    run_id: str
    workflow: str
    file: str
    status: str
    tasks: list[TaskState] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    errors: list[ItemError] = field(default_factory=list)
    error_count: int = 0
    decisions: list[DecisionRecord] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
