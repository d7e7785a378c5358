"""The local engine against real loopback servers: concurrency, needs, forEach, outputs, failure isolation,
input checks, and the example workflow against the sandbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from httptask.engines import protocol
from httptask.engines.local import LocalEngine
from httptask.engines.protocol import RunResult, Wiring
from httptask.errors import InputsInvalid, WorkflowInvalid
from httptask.journal import Journal
from httptask.plan import PlanInvalid
from httptask.runs import check_inputs
from httptask.workflow import parse_workflow_text
from local_runs import run_workflow
from servers import serving_handler

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"


@dataclass
class Api:
    """A loopback JSON API: `?ms=N` answers after N ms, `?status=N` with that status; records every request
    and the most requests it ever had in flight at once."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.received.append(
            {"method": request.method, "path": request.path, "body": body, "headers": dict(request.headers)}
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(int(request.query.get("ms", "0")) / 1000)
        finally:
            self.in_flight -= 1
        status = int(request.query.get("status", "200"))
        return web.json_response(
            {"id": request.path.rsplit("/", 1)[-1], "n": len(self.received)}, status=status
        )


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with serving_handler(Api()) as state:
        yield state


@pytest.fixture(autouse=True)
def _journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.sqlite3"
    monkeypatch.setenv("HTTPTASK_JOURNAL", str(path))
    return path


def _run(tmp_path: Path, text: str, inputs: dict[str, Any] | None = None, **options: Any) -> Any:
    file = tmp_path / "wf.yaml"
    file.write_text(text)
    return run_workflow(file, inputs or {}, **options)


def _get(task_id: str, url: str, extra: str = "") -> str:
    return f"""
  - id: {task_id}
    httpRequest: {{url: "{url}"}}
    retry: {{maxAttempts: 1}}{extra}"""


def test_independent_tasks_run_at_the_same_time(api: Api, tmp_path: Path) -> None:
    api.max_in_flight = 0
    text = "name: two\ntasks:" + _get("a", f"{api.url}/a?ms=300") + _get("b", f"{api.url}/b?ms=300")
    result = _run(tmp_path, text)
    assert result.status == "succeeded"
    assert api.max_in_flight == 2


def test_for_each_keeps_at_most_concurrency_requests_in_flight(api: Api, tmp_path: Path) -> None:
    api.max_in_flight = 0
    text = (
        "name: fan\ninputs: {ids: {type: array}}\ntasks:"
        + _get("f", f"{api.url}/items/{{{{ item }}}}?ms=100", '\n    forEach: "{{ input.ids }}"')
        + "\noutputs:\n  ids: \"{{ tasks.f | map(attribute='response.body.id') | list }}\""
        + "\n  items: \"{{ tasks.f | map(attribute='item') | list }}\""
    )
    result = _run(tmp_path, text, {"ids": [f"i{n}" for n in range(10)]}, concurrency=3)
    assert result.status == "succeeded"
    assert api.max_in_flight == 3
    # Outputs list every item's response in item order, whatever order they finished in.
    assert result.outputs == {"ids": [f"i{n}" for n in range(10)], "items": [f"i{n}" for n in range(10)]}


def test_a_for_each_keeps_counts_and_reads_its_results_back_from_the_journal(
    api: Api, tmp_path: Path
) -> None:
    start = len(api.received)
    text = (
        "name: many\ninputs: {ids: {type: array}}\ntasks:"
        + _get("f", f"{api.url}/items/{{{{ item }}}}", '\n    forEach: "{{ input.ids }}"')
        + _get("after", f"{api.url}/after/{{{{ tasks.f | length }}}}-{{{{ (tasks.f | last).item }}}}")
        + "\n    needs: [f]"
        + "\noutputs:\n  ids: \"{{ tasks.f | map(attribute='response.body.id') | list }}\""
    )
    result = _run(tmp_path, text, {"ids": list(range(2600))}, concurrency=16)
    assert result.status == "succeeded", result.errors
    fan = result.tasks[0]
    # No result per item: counts only.
    assert fan.counts() == {"succeeded": 2600}
    assert fan.http_statuses == {200: 2600}
    assert fan.steps == []
    # What needs every result reads it from the journal, a page at a time, in item order.
    assert api.received[-1]["path"] == "/after/2600-2599"
    assert result.outputs == {"ids": [str(n) for n in range(2600)]}
    assert len(api.received) - start == 2601


def test_a_for_each_keeps_the_first_steps_that_failed_and_counts_the_rest(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "KEPT_STEPS", 3)
    text = "name: some\ninputs: {ids: {type: array}}\ntasks:" + _get(
        "f",
        f"{api.url}/items/{{{{ item }}}}?status={{{{ 404 if item % 4 == 0 else 200 }}}}",
        '\n    forEach: "{{ input.ids }}"',
    )
    result = _run(tmp_path, text, {"ids": list(range(40))}, concurrency=1)
    fan = result.tasks[0]
    assert fan.counts() == {"succeeded": 30, "failed": 10}
    assert fan.http_statuses == {200: 30, 404: 10}
    assert [(step.item, step.state) for step in fan.steps] == [(0, "failed"), (4, "failed"), (8, "failed")]
    assert [error["item"] for error in result.errors] == [0, 4, 8, None]
    assert result.errors[-1]["message"] == (
        f"and 7 more items that failed or wait for a decision; 'httptask runs show {result.run_id}' lists "
        "every item"
    )


def test_needs_orders_tasks_and_passes_responses_on(api: Api, tmp_path: Path) -> None:
    start = len(api.received)
    text = (
        "name: chain\ntasks:"
        + _get("first", f"{api.url}/first/abc?ms=100")
        + _get("fan", f"{api.url}/fan/{{{{ item }}}}", '\n    forEach: "{{ [1, 2] }}"')
        + _get(
            "last",
            f"{api.url}/last/{{{{ tasks.first.response.body.id }}}}-"
            "{{ tasks.fan | map(attribute='response.status') | join('-') }}",
            "\n    needs: [first, fan]",
        )
        + '\noutputs:\n  last: "{{ tasks.last.response.body.id }}"'
    )
    result = _run(tmp_path, text)
    paths = [r["path"] for r in api.received[start:]]
    assert paths[-1] == "/last/abc-200-200"
    assert sorted(paths[:-1]) == ["/fan/1", "/fan/2", "/first/abc"]
    assert result.outputs == {"last": "abc-200-200"}


def test_a_failure_skips_what_depends_on_it_and_lets_the_rest_finish(api: Api, tmp_path: Path) -> None:
    start = len(api.received)
    text = (
        "name: fail\ntasks:"
        + _get("broken", f"{api.url}/broken?status=404")
        + _get("after", f"{api.url}/after", "\n    needs: [broken]")
        + _get("later", f"{api.url}/later", "\n    needs: [after]")
        + _get("other", f"{api.url}/other?ms=200")
        + _get(
            "fan",
            f"{api.url}/fan/{{{{ item }}}}?status={{{{ 500 if item == 2 else 200 }}}}",
            '\n    forEach: "{{ [1, 2, 3] }}"',
        )
    )
    result = _run(tmp_path, text)
    states = {t.task_id: t.state for t in result.tasks}
    assert states == {
        "broken": "failed",
        "after": "skipped",
        "later": "skipped",
        "other": "succeeded",
        "fan": "failed",
    }
    assert {t.task_id: t.error for t in result.tasks}["later"] == "not run: it needs after (skipped)"
    assert result.status == "failed"
    assert result.outputs is None
    assert result.errors == [
        {
            "task": "broken",
            "item": None,
            "message": f"task broken ({api.url}/broken?status=404) answered 404 Not Found",
        },
        {
            "task": "fan",
            "item": 1,
            "message": f"task fan ({api.url}/fan/2?status=500) answered 500 Internal Server Error",
        },
    ]
    paths = sorted(r["path"] for r in api.received[start:])
    assert paths == ["/broken", "/fan/1", "/fan/2", "/fan/3", "/other"]


def test_a_for_each_that_is_not_a_list_fails_the_task(api: Api, tmp_path: Path) -> None:
    # Validate refuses a literal that is no list; one from an input is found by the plan of the run.
    for_each = '\n    forEach: "{{ input.items }}"'
    text = "name: bad\ninputs: {items: {}}\ntasks:" + _get("f", f"{api.url}/x", for_each)
    # Found by the check before the first send: the run does not start.
    with pytest.raises(PlanInvalid) as caught:
        _run(tmp_path, text, {"items": {"a": 1}})
    assert caught.value.message == (
        "1 request of the workflow 'bad' would not be valid, so nothing was sent:\n"
        '  task f: $.forEach: gives dict, not a list: {"a": 1}'
    )
    assert [r for r in api.received if r["path"] == "/x"] == []


def test_inputs_are_checked_against_the_input_schemas_before_anything_runs() -> None:
    workflow = parse_workflow_text(EXAMPLE.read_text(), "refund-invoices.yaml")
    with pytest.raises(InputsInvalid) as caught:
        check_inputs(workflow, {"invoices": [{"id": "inv_1", "amount": "5"}], "coment": "x"})
    assert caught.value.message == (
        "The inputs do not fit the workflow 'refund-invoices' (2 problems); nothing was sent:\n"
        "  $.input.invoices[0].amount: must be of type integer, not string '5'\n"
        "  $.input.coment: is not an input of the workflow (its inputs: invoices, comment, api_url)"
    )
    assert caught.value.exit_code == 3
    assert (
        check_inputs(workflow, {"invoices": [{"id": "a", "amount": 1}]})["comment"]
        == "Refund approved by support."
    )


def test_the_refund_example_runs_against_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _journal: Path
) -> None:
    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", "test_key_for_sandbox")
    invoices = [{"id": f"inv_{n}", "amount": 100 + n} for n in range(6)]
    result = run_workflow(EXAMPLE, {"invoices": invoices}, sandbox=True, concurrency=4)
    assert result.status == "succeeded", result.errors
    assert result.outputs == {"refunded": 6, "statuses": [200] * 6}
    journal = Journal(_journal)
    steps = [s for s in journal.steps(result.run_id) if s.item >= 0]
    journal.close()
    assert [s.state for s in steps] == ["succeeded"] * 6
    # Keys are derived from the run, the task and the item, so a resume sends the very same ones.
    namespace = uuid.UUID("6f1c1d52-8f0a-4d4e-9a57-1f3c2b8e7a10")
    assert [s.idempotency_key for s in steps] == [
        str(uuid.uuid5(namespace, f"{result.run_id}/refund/{n}")) for n in range(6)
    ]
    assert [s.request["url"].rsplit("/", 2)[-2] for s in steps] == [i["id"] for i in invoices]  # type: ignore[index]
    assert json.loads(json.dumps(steps[0].request))["headers"]["authorization"] == "***"  # type: ignore[index]


@pytest.mark.parametrize("resumed", [False, True])
def test_only_a_new_run_tells_the_journal_its_sends_are_first_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resumed: bool
) -> None:
    """A step of a run this process created has never been sent, so the journal's writer need not read its
    row; a resumed run (or a worker of one) may send a step that was sent before, so it reads it."""
    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", "test_key_for_sandbox")
    said: list[bool] = []
    begin_send = Journal.begin_send

    async def spying(self: Journal, *args: Any, **kwargs: Any) -> None:
        said.append(kwargs["first_send"])
        await begin_send(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "begin_send", spying)

    class Resumed(LocalEngine):
        async def run(self, run_id: str, inputs: Any, resumption: Any = None) -> RunResult:
            return await super().run(run_id, inputs, protocol.Resumption() if resumed else resumption)

    invoices = [{"id": f"inv_{n}", "amount": 100} for n in range(3)]
    result = run_workflow(EXAMPLE, {"invoices": invoices}, sandbox=True, engine=Resumed)
    assert result.status == "succeeded", result.errors
    assert said == [not resumed] * 3


def test_an_invalid_item_stops_the_run_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", "test_key_for_sandbox")
    text = EXAMPLE.read_text().replace(
        'refund_amount: "{{ item.amount }}"', 'refund_amount: "{{ item.amount - 5 }}"'
    )
    invoices = [{"id": "inv_1", "amount": 3}, {"id": "inv_2", "amount": 9}, {"id": "inv_3", "amount": 1}]
    with pytest.raises(PlanInvalid) as caught:
        _run(tmp_path, text, {"invoices": invoices}, sandbox=True)
    # Every invalid item is listed; the valid one (inv_2) was not sent either: the run never started.
    assert caught.value.message == (
        "2 requests of the workflow 'refund-invoices' would not be valid, so nothing was sent:\n"
        "  task refund, item 0: $.body.refund_amount: must be at least 1, not -2\n"
        "  task refund, item 2: $.body.refund_amount: must be at least 1, not -4"
    )
    journal = Journal(tmp_path / "journal.sqlite3")
    assert journal.runs() == []
    journal.close()


def test_a_run_makes_the_checks_of_validate_before_its_first_send(api: Api, tmp_path: Path) -> None:
    # The first task would be sent; the second names an operation the catalog does not have.
    text = (
        "name: half\ntasks:\n"
        f"  - id: refund\n    httpRequest: {{method: POST, url: '{api.url}/refund'}}\n"
        "  - id: later\n    needs: [refund]\n    operation: chargebee.refund_invoce\n"
        "    request: {path: {invoice-id: inv_1}}\n"
    )
    before = len(api.received)
    with pytest.raises(WorkflowInvalid) as caught:
        _run(tmp_path, text)
    assert len(api.received) == before
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (7, "$.tasks[1].operation")
    assert issue.message.startswith("names no operation in the catalog: 'chargebee.refund_invoce'.")
    assert str(caught.value).startswith(f"{tmp_path / 'wf.yaml'}: the workflow is not valid (1 problem):\n")
    validated = subprocess.run(
        [sys.executable, "-m", "httptask", "validate", str(tmp_path / "wf.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 3
    assert f"{tmp_path / 'wf.yaml'}:7: $.tasks[1].operation: {issue.message}" in validated.stdout


def test_the_lifecycle_drives_any_engine_with_the_wiring_it_checked(tmp_path: Path, _journal: Path) -> None:
    seen: list[Any] = []

    class Recording:
        def __init__(self, wiring: Wiring) -> None:
            self.wiring = wiring

        async def run(self, run_id: str, inputs: Any, resumption: Any = None) -> RunResult:
            seen.append((run_id, dict(inputs), self.wiring.workflow.name, self.wiring.sandbox_url))
            return RunResult(run_id, "succeeded", [], {"done": True}, [])

    file = tmp_path / "wf.yaml"
    file.write_text(
        "name: custom\ninputs: {n: {type: integer, default: 2}}\n"
        "tasks:\n  - id: a\n    httpRequest: {url: 'http://127.0.0.1:9/'}\n"
    )
    result = run_workflow(file, {}, engine=Recording)
    assert seen == [(result.run_id, {"n": 2}, "custom", None)]
    journal = Journal(_journal)
    try:
        record = journal.run(result.run_id)
    finally:
        journal.close()
    assert (record.status, record.outputs) == ("succeeded", {"done": True})
