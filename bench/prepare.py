"""The CPU cost of `prepare` (render, build, validate, encode; nothing sent) per request, in microseconds.

`python bench/prepare.py [--repeats 7] [--json]`:

- per item of a fan-out: `examples/refund-invoices.yaml`'s refund task, one invoice after another, as the
  local engine prepares each item (with the task's plan, compiled once per batch, when there is one);
- per Test request: `examples/tasks/chargebee-record-refund.yaml` with `examples/tasks/demo-input.json`, the
  whole `prepare` the editor and `httptask test-request` run;
- per item of the pre-send check: the same fan-out planned as `runs.check_new_run` plans it before a run
  sends anything (`plan_workflow` without keeping the requests), keeping what it makes of each item for the
  run (`drafts`) as a run does, and without;
- per item of the run, from its draft: what is left to make of an item the pre-send check drafted (its key).

Each figure is the median (min-max) over `repeats` timed batches, after one untimed batch that fills the
caches a long-running editor or engine has warm. Time is this process's CPU time, which other processes on a
busy machine disturb far less than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stats import spread, text

ROOT = Path(__file__).resolve().parents[1]


def per_call_us(batch: Callable[[], int], repeats: int) -> dict[str, Any]:
    batch()
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        calls = batch()
        samples.append((time.process_time() - started) / calls * 1e6)
    return spread(samples, 1)


def _refund_invoices(items: int) -> tuple[Any, dict[str, Any]]:
    """`examples/refund-invoices.yaml` and its inputs, with `items` invoices."""
    from httptask.workflow import parse_workflow_text

    example = ROOT / "examples" / "refund-invoices.yaml"
    workflow = parse_workflow_text(example.read_text(encoding="utf-8"), str(example))
    inputs = workflow.with_defaults(
        {
            "invoices": [{"id": f"inv_{n}", "amount": 100} for n in range(items)],
            "api_url": "http://127.0.0.1:9/api/v2",
        }
    )
    return workflow, inputs


def fanout_batch(items: int) -> Callable[[], int]:
    from httptask.catalog import Catalog
    from httptask.execute import prepare
    from httptask.secrets import SecretStore

    workflow, inputs = _refund_invoices(items)
    task = workflow.tasks[0]
    catalog, secrets = Catalog.default(), SecretStore()

    def batch() -> int:
        try:
            from httptask.execute import TaskPlan
        except ImportError:  # before compiled plans: everything per item
            for n, item in enumerate(inputs["invoices"]):
                prepare(task, inputs=inputs, catalog=catalog, secrets=secrets, tasks={}, extra={"item": item},
                        key_seed=f"run/refund/{n}")  # fmt: skip
            return items
        plan = TaskPlan(task, inputs=inputs, catalog=catalog, secrets=secrets, tasks={})
        for n, item in enumerate(inputs["invoices"]):
            plan.prepare({"item": item}, key_seed=f"run/refund/{n}")
        return items

    return batch


def check_batch(items: int, *, drafting: bool = False) -> Callable[[], int]:
    from httptask.catalog import Catalog
    from httptask.plan import plan_workflow
    from httptask.secrets import SecretStore

    workflow, inputs = _refund_invoices(items)
    catalog, secrets = Catalog.default(), SecretStore()

    def batch() -> int:
        kept: dict[str, Any] = {}
        if drafting:  # a checkout from before drafts checks without them
            from httptask.drafts import Drafts

            kept["drafts"] = Drafts()
        plan = plan_workflow(workflow, inputs, catalog=catalog, secrets=secrets, keep_requests=False, **kept)
        assert not plan.problems, plan.problems
        return items

    return batch


def drafted_batch(items: int) -> Callable[[], int]:
    from httptask.catalog import Catalog
    from httptask.execute import TaskPlan
    from httptask.secrets import SecretStore

    workflow, inputs = _refund_invoices(items)
    plan = TaskPlan(workflow.tasks[0], inputs=inputs, catalog=Catalog.default(), secrets=SecretStore())
    drafts = [plan.draft({"item": item}) for item in inputs["invoices"]]

    def batch() -> int:
        for n, draft in enumerate(drafts):
            plan.finish(draft, f"run/refund/{n}")
        return items

    return batch


def test_request_batch(calls: int) -> Callable[[], int]:
    from httptask.catalog import Catalog
    from httptask.execute import prepare
    from httptask.secrets import SecretStore
    from httptask.tasks import load_task

    task = load_task(ROOT / "examples" / "tasks" / "chargebee-record-refund.yaml")
    inputs = json.loads((ROOT / "examples" / "tasks" / "demo-input.json").read_text(encoding="utf-8"))
    catalog, secrets = Catalog.default(), SecretStore()

    def batch() -> int:
        for _ in range(calls):
            prepare(task, inputs=inputs, catalog=catalog, secrets=secrets)
        return calls

    return batch


def measure(repeats: int) -> dict[str, Any]:
    os.environ.setdefault("HTTPTASK_SECRET_CHARGEBEE_API_KEY", "bench_key")
    os.environ.setdefault("HTTPTASK_SECRET_CHARGEBEE", "bench_key")
    return {
        "fanout_item_us": per_call_us(fanout_batch(3000), repeats),
        "test_request_us": per_call_us(test_request_batch(1000), repeats),
        "check_item_us": per_call_us(check_batch(3000), repeats),
        **(
            {
                "check_drafting_item_us": per_call_us(check_batch(3000, drafting=True), repeats),
                "from_draft_item_us": per_call_us(drafted_batch(3000), repeats),
            }
            if _drafts()
            else {}
        ),
        "repeats": repeats,
    }


def _drafts() -> bool:
    """Whether the checkout measured keeps its pre-send check's drafts for the run."""
    try:
        from httptask.execute import TaskPlan
    except ImportError:
        return False
    return hasattr(TaskPlan, "draft")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.repeats)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


def table(figures: dict[str, Any]) -> str:
    fmt = ",.1f"
    drafting = figures.get("check_drafting_item_us")
    return "\n".join(
        [
            f"prepare, µs per request, median (min-max) of {figures['repeats']} batches:",
            f"  fan-out item (refund-invoices)            {text(figures['fanout_item_us'], ',.1f')}",
            f"  Test request (chargebee.record_refund)    {text(figures['test_request_us'], ',.1f')}",
            f"  pre-send check, per fan-out item          {text(figures['check_item_us'], ',.1f')}",
            *(
                [
                    f"  pre-send check keeping drafts, per item   {text(drafting, fmt)}",
                    f"  a run's item from its draft               {text(figures['from_draft_item_us'], fmt)}",
                ]
                if "from_draft_item_us" in figures
                else []
            ),
        ]
    )


if __name__ == "__main__":
    main()
