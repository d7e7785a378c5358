"""The editor's workflow routes against a real server on loopback: examples, inserting a task, sample inputs,
and runs on the local engine against the sandbox, followed as server-sent events."""

from __future__ import annotations

import difflib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_setup import SECRET, SECRET_NAME, running_editor
from httptask.catalog import Catalog
from httptask.checks import check_workflow_text
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig
from httptask.skeleton import sample_input, skeleton

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OP = "chargebee.record_refund"


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.sqlite3"
    monkeypatch.setenv("HTTPTASK_JOURNAL", str(path))
    return path


@pytest.fixture
def client(editor: str, journal: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=editor, timeout=30) as http:
        yield http


def events(client: httpx.Client, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every server-sent event of a run, until the stream closes after the `run` event."""
    found = []
    with client.stream("GET", f"/api/runs/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for block in response.read().decode().split("\n\n"):
            if not block.strip():
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def chargebee_workflow(memo: str = "{{ input.memo }}") -> str:
    return (
        "name: one-refund\n"
        "inputs:\n"
        "  memo: {type: string}\n"
        "tasks:\n"
        "  - id: record\n"
        "    operation: chargebee.record_refund\n"
        f"    credentials: {SECRET_NAME}\n"
        "    request:\n"
        "      path: {invoice-id: inv_1}\n"
        f'      body: {{memo: "{memo}"}}\n'
        "outputs:\n"
        "  status: '{{ tasks.record.response.status }}'\n"
    )


# -- examples ------------------------------------------------------------------------------------------------


def test_the_examples_are_listed_with_their_descriptions(client: httpx.Client) -> None:
    data = client.get("/api/examples").json()
    assert [e["name"] for e in data["examples"]] == sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    refund = next(e for e in data["examples"] if e["name"] == "refund-invoices")
    assert refund["description"].startswith("Refund a list of Chargebee invoices: one refund_invoice call")


def test_an_example_comes_as_shipped_with_its_inputs(client: httpx.Client) -> None:
    data = client.get("/api/examples/stripe-report-refund").json()
    assert data["workflow"] == (EXAMPLES / "stripe-report-refund.yaml").read_text(encoding="utf-8")
    assert data["input"] == json.loads((EXAMPLES / "inputs" / "stripe-report-refund.json").read_text())


@pytest.mark.parametrize("name", ["nope", "../pyproject", ".hidden", "inputs"])
def test_an_unknown_example_is_a_400_naming_the_examples(client: httpx.Client, name: str) -> None:
    response = client.get(f"/api/examples/{name}")
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert response.json()["error"] == (
            f"No example workflow {name!r}; the examples are: geins-refund-then-chargebee, refund-invoices, "
            "stripe-report-refund, zoho-refund-and-fetch."
        )


# -- validate and insert -------------------------------------------------------------------------------------


def test_validate_gives_sample_inputs_for_the_required_ones(client: httpx.Client) -> None:
    text = (EXAMPLES / "stripe-report-refund.yaml").read_text(encoding="utf-8")
    data = client.post("/api/validate", json={"workflow": text}).json()
    assert data["valid"] is True
    assert data["sample_input"] == {
        "payment_record": "example",
        "amount_cents": 1,
        "refund_reference": "example",
        "refunded_at": 1,
    }
    broken = client.post("/api/validate", json={"workflow": "name: [oops"}).json()
    assert (broken["valid"], broken["sample_input"]) == (False, None)


def test_a_task_inserted_into_an_example_keeps_every_line_and_validates(
    client: httpx.Client, catalog: Catalog
) -> None:
    original = (EXAMPLES / "refund-invoices.yaml").read_text(encoding="utf-8")
    task = skeleton(catalog.operation(OP))
    data = client.post("/api/workflows/insert-task", json={"workflow": original, "task": task}).json()
    assert (data["task_id"], data["declared"]) == ("record_refund", ["invoice_id", "memo"])
    diff = list(difflib.ndiff(original.splitlines(), data["workflow"].splitlines()))
    assert not [line for line in diff if line.startswith("- ")], "every line of the example is kept"
    added = [line[2:] for line in diff if line.startswith("+ ")]
    assert added[:2] == ['  invoice_id: {"type": "string"}', '  memo: {"type": "string", "maxLength": 65000}']
    assert added[2:4] == ["  - id: record_refund", "    operation: chargebee.record_refund"]
    assert data["workflow"].index("  - id: record_refund") > data["workflow"].index("  - id: refund\n")
    assert data["workflow"].index("  - id: record_refund") < data["workflow"].index("outputs:")
    assert check_workflow_text(data["workflow"], catalog) == []
    again = client.post(
        "/api/workflows/insert-task", json={"workflow": data["workflow"], "task": task}
    ).json()
    assert (again["task_id"], again["declared"]) == ("record_refund_2", [])


def test_inserting_into_nothing_starts_a_workflow_with_the_schema_line(
    client: httpx.Client, catalog: Catalog
) -> None:
    task = skeleton(catalog.operation("geins.create_order_refund"))
    data = client.post("/api/workflows/insert-task", json={"workflow": "", "task": task}).json()
    first, *rest = data["workflow"].splitlines()
    assert first.startswith("# yaml-language-server: $schema=/")
    assert first.endswith("/httptask/schemas/workflow.schema.json")
    assert Path(first.split("=", 1)[1]).is_file()
    assert rest[:3] == ["name: my-workflow", "inputs:", '  order_id: {"type": "integer", "format": "int32"}']
    assert check_workflow_text(data["workflow"], catalog) == []


def test_insert_refuses_what_it_cannot_edit_by_line(client: httpx.Client, catalog: Catalog) -> None:
    task = skeleton(catalog.operation(OP))
    flow = client.post(
        "/api/workflows/insert-task",
        json={"workflow": "name: w\ntasks: [{id: a, operation: chargebee.record_refund}]\n", "task": task},
    )
    assert flow.status_code == 400
    assert flow.json()["error"] == (
        "line 2: 'tasks:' is written in flow style, on one line; write it as a block (one entry per line) "
        "so the editor can add to it."
    )
    broken = client.post("/api/workflows/insert-task", json={"workflow": "name: [", "task": task})
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("the workflow:1:8: invalid YAML: ")
    bad_task = client.post("/api/workflows/insert-task", json={"workflow": "", "task": {"id": "x"}})
    assert bad_task.status_code == 400


# -- runs ----------------------------------------------------------------------------------------------------


def test_an_example_runs_on_the_sandbox_and_its_states_stream_live(
    client: httpx.Client, sandbox: SandboxThread, journal: Path
) -> None:
    example = client.get("/api/examples/refund-invoices").json()
    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    started = client.post("/api/runs", json={"workflow": example["workflow"], "input": example["input"]})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    assert started.json()["tasks"] == [{"task": "refund", "state": "scheduled", "for_each": True}]
    found = events(client, run_id)
    states = [data["state"] for kind, data in found if kind == "task"]
    assert states[0] == "running" and states[-1] == "succeeded"
    assert set(states) == {"running", "succeeded"}
    kind, result = found[-1]
    assert kind == "run"
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"refunded": 4, "statuses": [200, 200, 200, 200]}
    assert result["tasks"][0]["items"] == {"succeeded": 4}
    assert client.get(f"/api/runs/{run_id}").json() == result
    received = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert sorted(r["path"] for r in received) == [
        f"/chargebee/api/v2/invoices/INV-100{n}/refund" for n in range(1, 5)
    ]
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT status, file FROM runs WHERE run_id = ?", (run_id,)).fetchone() == (
            "succeeded",
            "<editor>",
        )


def test_a_follower_that_comes_late_gets_every_event(client: httpx.Client) -> None:
    started = client.post("/api/runs", json={"workflow": chargebee_workflow(), "input": {"memo": "late"}})
    run_id = started.json()["run_id"]
    first = events(client, run_id)
    assert events(client, run_id) == first
    assert first[-1][1]["outputs"] == {"status": 200}


def test_outputs_of_an_editor_run_are_limited_in_wall_time(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The editor renders a run's outputs on the event loop that answers everyone: their limit is wall time,
    not the CPU time a loaded machine hands out slowly (here the CPU clock stands still)."""
    monkeypatch.setattr(time, "thread_time", lambda: 0.0)
    spin = "{% for i in range(1000) %}{% for j in range(8000) %}{% endfor %}{% endfor %}"  # seconds of CPU
    text = chargebee_workflow() + f"  spin: '{spin}'\n"
    started = client.post("/api/runs", json={"workflow": text, "input": {"memo": "spin"}})
    assert started.status_code == 202, started.text
    final = events(client, started.json()["run_id"])[-1][1]
    assert "outputs.spin: the template ran longer than its limit of 1 s" in json.dumps(final), final


def test_an_invalid_workflow_sends_nothing(client: httpx.Client, sandbox: SandboxThread) -> None:
    httpx.delete(f"{sandbox.url}/_sandbox/requests")
    text = chargebee_workflow() + "  - id: second\n    operation: chargebee.no_such_thing\n"
    text = text.replace("outputs:\n  status: '{{ tasks.record.response.status }}'\n", "") + (
        "outputs:\n  status: '{{ tasks.record.response.status }}'\n"
    )
    response = client.post("/api/runs", json={"workflow": text, "input": {"memo": "m"}})
    assert response.status_code == 422
    data = response.json()
    assert data["error"] == "The workflow has 1 problem; nothing was sent."
    assert [(i["path"], i["line"]) for i in data["issues"]] == [("$.tasks[1].operation", 12)]
    assert httpx.get(f"{sandbox.url}/_sandbox/requests").json() == []


def test_inputs_that_do_not_fit_are_a_400_with_paths(client: httpx.Client) -> None:
    response = client.post("/api/runs", json={"workflow": chargebee_workflow(), "input": {"memo": 5}})
    assert response.status_code == 400
    assert [i["path"] for i in response.json()["issues"]] == ["$.input.memo"]


def test_an_unknown_run_is_a_400(client: httpx.Client) -> None:
    for path in ("/api/runs/nope", "/api/runs/nope/events"):
        response = client.get(path)
        assert response.status_code == 400
        assert response.json()["error"] == (
            "No run 'nope' was started from this editor since it started; see 'httptask runs show' for "
            "older runs."
        )


def test_runs_need_the_sandbox(catalog: Catalog, journal: Path) -> None:
    with running_editor(ServerConfig(), catalog) as url:
        response = httpx.post(f"{url}/api/runs", json={"workflow": chargebee_workflow(), "input": {}})
    assert response.status_code == 400
    assert response.json()["error"] == "Runs from the editor go to the sandbox: start it with --sandbox."


def test_a_secret_in_a_run_reaches_no_event_snapshot_or_journal(client: httpx.Client, journal: Path) -> None:
    text = chargebee_workflow(memo="{{ secret('" + SECRET_NAME + "') }}")
    started = client.post("/api/runs", json={"workflow": text, "input": {"memo": "x"}})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    with client.stream("GET", f"/api/runs/{run_id}/events") as response:
        stream = response.read().decode()
    snapshot = client.get(f"/api/runs/{run_id}").text
    assert '"status": "succeeded"' in stream
    assert SECRET not in stream and SECRET not in snapshot
    assert SECRET.encode() not in journal.read_bytes()


def test_an_inserted_skeleton_runs_with_its_sample_input(client: httpx.Client, catalog: Catalog) -> None:
    """A skeleton inserted into an empty workflow runs as it is with the operation's sample input."""
    statuses = {}
    for operation_id in ["chargebee.record_refund", "stripe.report_payment_record_refund"]:
        op = catalog.operation(operation_id)
        task = {**skeleton(op), "credentials": SECRET_NAME}
        text = client.post("/api/workflows/insert-task", json={"workflow": "", "task": task}).json()[
            "workflow"
        ]
        started = client.post("/api/runs", json={"workflow": text, "input": sample_input(op)})
        assert started.status_code == 202, started.text
        statuses[operation_id] = events(client, started.json()["run_id"])[-1][1]["status"]
    assert statuses == {
        "chargebee.record_refund": "succeeded",
        "stripe.report_payment_record_refund": "succeeded",
    }
