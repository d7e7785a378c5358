"""drafts and TaskPlan.draft/finish: what a run's pre-send check made of a forEach's items is sent as it made
it, byte for byte the request `prepare` gives each item, with the same derived key; within a budget, for the
very items the run acts on, and never for a task whose templates call now() or uuid()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import httptask.runs
from httptask.catalog import Catalog
from httptask.drafts import Drafts
from httptask.execute import TaskPlan
from httptask.requests import derive_key, step_seed
from httptask.secrets import SecretStore
from httptask.tasks import parse_task
from local_runs import run_workflow
from servers import recording_server
from test_task_plan import ENV, ITEMS
from test_task_plan import REFUND as PLANNED

# test_task_plan's refund task, with a header that each item renders too.
REFUND = {**PLANNED, "request": {**PLANNED["request"], "headers": {"x-note": "{{ item.amount }}"}}}
INPUTS = {"invoices": ITEMS, "api_url": "https://acme.test/api/v2", "comment": "ok"}


def _plan(task: dict[str, Any]) -> TaskPlan:
    return TaskPlan(
        parse_task(task), inputs=INPUTS, catalog=Catalog.default(), secrets=SecretStore(environ=ENV)
    )


@pytest.mark.parametrize(
    "task",
    [
        REFUND,
        {**REFUND, "idempotencyKey": "refund-{{ item.amount }}"},  # the task's own key, per item
        {  # an operation that takes no key
            "id": "record",
            "operation": "chargebee.record_refund",
            "forEach": "{{ input.invoices }}",
            "credentials": "api_key",
            "server": {"site": "acme-test"},
            "request": {
                "path": {"invoice-id": "{{ item.id }}"},
                "body": {
                    "transaction": {"amount": "{{ item.amount }}", "payment_method": "cash", "date": 1},
                    "memo": "{{ item.id }}",
                },
            },
        },
    ],
    ids=["derived key", "own key", "no key"],
)
def test_a_finished_draft_is_the_request_prepare_gives(task: dict[str, Any]) -> None:
    plan = _plan(task)
    assert plan.draftable
    for n, item in enumerate(ITEMS):
        seed = step_seed("run-1", "refund", n)
        made = plan.finish(plan.draft({"item": item}), seed)
        expected = plan.prepare({"item": item}, key_seed=seed)
        assert made.request == expected.request
        assert (made.idempotency_key, made.idempotent, made.operation) == (
            expected.idempotency_key,
            expected.idempotent,
            expected.operation,
        )
    if task is REFUND:
        assert made.idempotency_key == derive_key(seed)
        assert ("chargebee-idempotency-key", derive_key(seed)) in made.request.headers


@pytest.mark.parametrize(
    "change",
    [
        {"request": {"body": {"refund_amount": "{{ item.amount }}", "at": "{{ now() }}"}}},
        {"idempotencyKey": "{{ uuid() }}"},
        {"needs": ["earlier"]},
    ],
    ids=["now()", "uuid()", "needs"],
)
def test_a_task_whose_request_may_change_before_it_is_sent_is_not_drafted(change: dict[str, Any]) -> None:
    assert not _plan({**REFUND, **change}).draftable


def test_an_invalid_item_fails_its_draft_as_it_fails_prepare() -> None:
    plan = _plan(REFUND)
    bad = {"item": {"id": "..", "amount": 1}}
    with pytest.raises(Exception) as drafted:
        plan.draft(bad)
    with pytest.raises(Exception) as prepared:
        plan.prepare(bad, key_seed="s")
    assert str(drafted.value) == str(prepared.value)


def test_drafts_are_kept_within_their_budget_for_the_very_items_checked_and_taken_once() -> None:
    plan = _plan(REFUND)
    one = plan.draft({"item": ITEMS[0]})
    drafts = Drafts(budget=2 * (len(one.url) + len(one.content) + 200) + 2000)
    drafts.begin("refund", plan, ITEMS)
    kept = [drafts.keep("refund", plan.draft({"item": item})) for item in ITEMS]
    assert kept == [True, True, False]
    assert drafts.bind("refund", ITEMS)
    assert drafts.take("refund", 2, "s") is None  # past the budget: the run prepares it
    first = drafts.take("refund", 0, "s")
    assert first is not None and first.request == plan.prepare({"item": ITEMS[0]}, key_seed="s").request
    assert drafts.take("refund", 0, "s") is None  # sent once: its draft is gone
    assert not drafts.bind("refund", list(ITEMS))  # other items (a copy): every draft is dropped
    assert drafts.take("refund", 1, "s") is None


WORKFLOW = """
name: drafted
inputs:
  invoices: {type: array}
  api_url: {type: string}
tasks:
  - id: refund
    operation: chargebee.refund_invoice
    forEach: "{{ input.invoices }}"
    server: {url: "{{ input.api_url }}"}
    credentials: API_KEY
    retry: {maxAttempts: 1}
    request:
      path: {invoice-id: "{{ item.id }}"}
      body: {refund_amount: "{{ item.amount }}", comment: "c"}
"""


def test_a_run_sends_its_drafts_as_it_would_send_items_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_SECRET_API_KEY", "sk_test_drafts")
    file = tmp_path / "wf.yaml"
    file.write_text(WORKFLOW)
    invoices = [{"id": f"inv_{n}", "amount": n + 1} for n in range(40)]
    sent: dict[str, Any] = {}
    prepared: list[int] = []
    made_again = TaskPlan.prepare

    def counted(self: TaskPlan, *args: Any, **kwargs: Any) -> Any:
        prepared.append(1)
        return made_again(self, *args, **kwargs)

    monkeypatch.setattr(TaskPlan, "prepare", counted)
    with recording_server() as server:
        for name, budget in (("drafted", 1 << 20), ("made again", 0)):
            monkeypatch.setattr(httptask.runs, "Drafts", lambda budget=budget: Drafts(budget))
            prepared.clear()
            server.requests.clear()
            inputs = {"invoices": invoices, "api_url": f"{server.url}/api/v2"}
            result = run_workflow(file, inputs, journal_path=tmp_path / f"{budget}.sqlite3")
            assert result.status == "succeeded", result.errors
            assert len(prepared) == (0 if budget else len(invoices))
            by_path = {r.path: r for r in server.requests}
            for n in range(len(invoices)):
                key = by_path[f"/api/v2/invoices/inv_{n}/refund"].header("chargebee-idempotency-key")
                assert key == derive_key(step_seed(result.run_id, "refund", n))
            sent[name] = sorted(
                (r.method, r.path, r.body, tuple(h for h in r.headers if h[0] != "chargebee-idempotency-key"))
                for r in server.requests
            )
    assert len(sent["drafted"]) == len(invoices)
    assert sent["drafted"] == sent["made again"]
