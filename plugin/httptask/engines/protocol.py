"""What the run lifecycle (`runs`) and an engine exchange: the wiring an engine runs a checked workflow with,
the `Engine` protocol the lifecycle drives, and the report of a run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..decisions import MARK_DONE

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..drafts import Drafts
    from ..journal import Decision, Journal, StepRecord
    from ..secrets import SecretStore
    from ..shards import Starter
    from ..transport import Sender
    from ..workflow import Workflow

__all__ = [
    "KEPT_STEPS",
    "Engine",
    "EngineFactory",
    "Progress",
    "Resumption",
    "RunResult",
    "StepLookup",
    "StepResult",
    "TaskResult",
    "TaskUpdate",
    "Wiring",
]

Progress = Callable[[int, int], None]
"""Called with (more steps to do, steps done) as the run goes."""
TaskUpdate = Callable[["TaskResult"], None]
"""Called with a task's result when the task starts running, when each of its forEach items ends (`tally`
counts them), and when it ends."""
# The steps that did not succeed a forEach task's result keeps (in `steps`, for the run's errors); the journal
# keeps every one, and the run's errors say how many more there are.
KEPT_STEPS = 1000


@dataclass(frozen=True)
class Wiring:
    """What an engine runs a checked workflow with."""

    workflow: Workflow
    catalog: Catalog
    secrets: SecretStore
    journal: Journal
    sender: Sender
    sandbox_url: str | None = None
    concurrency: int = 16
    on_progress: Progress | None = None
    on_task: TaskUpdate | None = None
    # Every task fails on a response that breaks its operation's spec, as if it had `strictResponses: true`.
    strict_responses: bool = False
    # What shares a forEach task's items out over `--workers` processes (`shards`), with `concurrency`.
    workers: Starter | None = None
    # The requests the run's pre-send check made of forEach items, to be sent as they are.
    drafts: Drafts | None = None


@dataclass
class StepResult:
    """One request: a task without forEach (item 0), or one item of a forEach task."""

    item: int
    state: str
    http_status: int | None = None
    elapsed_ms: float | None = None
    response: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    reused: bool = False
    decision: str | None = None

    @property
    def label(self) -> str:
        """The state as a summary counts it: 'resolved by hand' is never 'succeeded'."""
        if self.state != "resolved":
            return self.state
        return "resolved by hand" if self.decision == MARK_DONE else "resolved by reconciliation"

    @property
    def done(self) -> bool:
        """Succeeded, or resolved by a decision: what needs it may run."""
        return self.state in ("succeeded", "resolved")

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "state": self.state,
            "decision": self.decision,
            "http_status": self.http_status,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "reused": self.reused,
            "error": self.error,
        }


@dataclass
class TaskResult:
    """A task's outcome. A forEach task keeps counts and the first steps that did not succeed, not a result
    per item: its items' responses stay in the journal, and `context` reads them from there (`journaled`)."""

    task_id: str
    for_each: bool
    state: str = "scheduled"
    error: str | None = None
    items: Sequence[Any] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    elapsed_ms: float = 0.0
    tally: dict[str, int] = field(default_factory=dict)
    http_statuses: dict[int | None, int] = field(default_factory=dict)
    # Steps that did not succeed beyond the KEPT_STEPS kept in `steps`: the journal has them all.
    not_kept: int = 0
    journaled: Sequence[dict[str, Any]] | None = None
    # Responses that break their operation's spec (`response.issues`): how many, and the first one's step.
    odd_responses: int = 0
    first_odd: StepResult | None = None
    # Items of a forEach task taken up and not yet ended, for a live display.
    in_flight: int = 0
    # Why each worker process (`--workers`) that did not finish its items stopped.
    stopped: list[str] = field(default_factory=list)

    def context(self) -> Any:
        """What templates see as `tasks.ID`."""
        if self.for_each:
            return self.journaled if self.journaled is not None else []
        return {"response": self.steps[0].response if self.steps else None}

    def count(self, step: StepResult) -> None:
        """Count a forEach item's step; one not done is kept (for the run's errors), up to KEPT_STEPS."""
        self.tally[step.label] = self.tally.get(step.label, 0) + 1
        self.http_statuses[step.http_status] = self.http_statuses.get(step.http_status, 0) + 1
        self.note_response(step)
        if step.done:
            return
        if len(self.steps) < KEPT_STEPS:
            self.steps.append(step)
        else:
            self.not_kept += 1

    def note_response(self, step: StepResult) -> None:
        """Count `step`'s response if it breaks its spec, keeping the first such step for the report."""
        if step.response and step.response.get("issues"):
            self.odd_responses += 1
            self.first_odd = self.first_odd or step

    def off_spec(self) -> tuple[StepResult | None, int]:
        """The first step whose response breaks its operation's spec, and how many do."""
        if self.for_each:
            return self.first_odd, self.odd_responses
        first = next((step for step in self.steps if step.response and step.response.get("issues")), None)
        return first, int(first is not None)

    def counts(self) -> dict[str, int]:
        if self.for_each:
            return dict(self.tally)
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.label] = counts.get(step.label, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.task_id,
            "state": self.state,
            "for_each": self.for_each,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "error": self.error,
        }
        if self.for_each:
            data["items"] = self.counts()
        else:
            step = self.steps[0] if self.steps else None
            data["http_status"] = step.http_status if step else None
            data["attempts"] = step.attempts if step else 0
        first, count = self.off_spec()
        data["responses_off_spec"] = count
        if first is not None and first.response is not None:
            data["first_off_spec"] = {"item": first.item, "issues": first.response["issues"]}
        return data


@dataclass
class RunResult:
    run_id: str
    status: str
    tasks: list[TaskResult]
    outputs: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "tasks": [t.to_dict() for t in self.tasks],
            "outputs": self.outputs,
            "errors": self.errors,
        }


class StepLookup(Protocol):
    """Journaled steps by (task, item): a dict, or the journal read a page at a time (`steppages`)."""

    def get(self, key: tuple[str, int], /) -> StepRecord | None: ...


def _no_steps() -> StepLookup:
    steps: dict[tuple[str, int], StepRecord] = {}
    return steps


@dataclass(frozen=True)
class Resumption:
    """What a resumed run starts from: the journaled steps and what was decided about requests of unknown
    outcome, both by (task, item), and whether to settle the others by reading the server where it can."""

    previous: StepLookup = field(default_factory=_no_steps)
    decisions: Mapping[tuple[str, int], Decision] = field(default_factory=dict)
    reconcile: bool = False


class Engine(Protocol):
    """An engine the lifecycle drives through one run, a new one or (with `resumption`) a resumed one."""

    async def run(
        self, run_id: str, inputs: Mapping[str, Any], resumption: Resumption | None = None
    ) -> RunResult: ...


EngineFactory = Callable[[Wiring], Engine]
