"""The workflow model on its own: parsing with file and line, every schema problem at once, repeated task ids,
input defaults and schema, and the order `needs` allows (unknown tasks and cycles as issues, long chains
without recursion)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from httptask.errors import Issue, TaskError, WorkflowInvalid
from httptask.workflow import Workflow, load_workflow, parse_workflow_text, topological_order


def _workflow(text: str) -> Workflow:
    return parse_workflow_text(textwrap.dedent(text), "w.yaml")


def _tasks(*specs: str) -> str:
    """A workflow whose tasks are `id` or `id:need,need`."""
    lines = ["name: w", "tasks:"]
    for spec in specs:
        task_id, _, needs = spec.partition(":")
        lines.append(f"  - id: {task_id}")
        lines.append("    httpRequest: {url: 'http://127.0.0.1:9/'}")
        if needs:
            lines.append(f"    needs: [{needs}]")
    return "\n".join(lines) + "\n"


def test_a_workflow_is_parsed_with_its_tasks_inputs_outputs_and_lines(tmp_path: Path) -> None:
    file = tmp_path / "refunds.yaml"
    file.write_text(
        textwrap.dedent(
            """\
            name: refunds
            description: Refund and fetch
            inputs:
              amount: {type: integer, default: 5}
              invoice: {type: string}
            tasks:
              - id: refund
                httpRequest: {method: POST, url: "http://127.0.0.1:9/{{ input.invoice }}"}
              - id: fetch
                needs: [refund]
                httpRequest: {url: "http://127.0.0.1:9/r"}
            outputs:
              status: "{{ tasks.fetch.response.status }}"
            """
        ),
        encoding="utf-8",
    )
    workflow = load_workflow(file)
    assert (workflow.name, workflow.description) == ("refunds", "Refund and fetch")
    assert [t.id for t in workflow.tasks] == ["refund", "fetch"]
    assert workflow.task("fetch") is workflow.tasks[1] and workflow.task("nope") is None
    assert workflow.tasks[1].needs == ("refund",)
    assert workflow.outputs == {"status": "{{ tasks.fetch.response.status }}"}
    assert workflow.line("$.tasks[1].needs") == 10
    assert workflow.line("$.tasks[1].needs[0]") == 10
    assert workflow.source is not None and workflow.source.file == str(file)


def test_inputs_without_a_default_are_required_and_defaults_fill_in() -> None:
    workflow = _workflow(
        """\
        name: w
        inputs:
          amount: {type: integer, default: 5}
          invoice: {type: string}
        tasks:
          - id: a
            httpRequest: {url: "http://127.0.0.1:9/"}
        """
    )
    assert workflow.inputs_schema() == {
        "type": "object",
        "properties": {"amount": {"type": "integer", "default": 5}, "invoice": {"type": "string"}},
        "required": ["invoice"],
    }
    assert workflow.with_defaults({"invoice": "i"}) == {"amount": 5, "invoice": "i"}
    assert workflow.with_defaults({"invoice": "i", "amount": 7}) == {"amount": 7, "invoice": "i"}


def test_every_problem_is_reported_at_once_with_its_line() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        _workflow(
            """\
            tasks:
              - id: a
                httpRequest: {url: "http://127.0.0.1:9/"}
                retry: {maxAttempts: 0}
              - id: b
                operation: x.y
                httpRequest: {url: "http://127.0.0.1:9/"}
            extra: 1
            """
        )
    error = caught.value
    assert isinstance(error, TaskError) and error.file == "w.yaml"
    assert str(error) == (
        "w.yaml: the workflow is not valid (4 problems):\n"
        "  w.yaml:8: $.extra: is not a field of this object "
        "(allowed: description, inputs, name, outputs, tasks)\n"
        "  w.yaml:1: $.name: is required but missing\n"
        "  w.yaml:4: $.tasks[0].retry.maxAttempts: must be at least 1, not 0\n"
        "  w.yaml:5: $.tasks[1]: needs exactly one of 'operation' (a catalog id) "
        "or 'httpRequest' (a raw request)"
    )
    assert [(i.line, i.path) for i in error.issues] == [
        (8, "$.extra"),
        (1, "$.name"),
        (4, "$.tasks[0].retry.maxAttempts"),
        (5, "$.tasks[1]"),
    ]


def test_a_repeated_task_id_names_the_first() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        _workflow(_tasks("a", "b", "a"))
    assert caught.value.issues == [
        Issue("$.tasks[2].id", "repeats the task id 'a' of tasks[0]", actual="a", line=7)
    ]


@pytest.mark.parametrize(
    ("specs", "order"),
    [
        (("a", "b"), ["a", "b"]),
        (("c:b", "b:a", "a"), ["a", "b", "c"]),
        (("d:b,c", "b:a", "c:a", "a"), ["a", "b", "c", "d"]),
    ],
)
def test_the_order_respects_needs(specs: tuple[str, ...], order: list[str]) -> None:
    assert topological_order(_workflow(_tasks(*specs))) == order


def test_an_unknown_need_and_a_cycle_are_issues_with_lines() -> None:
    unknown = topological_order(_workflow(_tasks("a:ghost")))
    assert unknown == [
        Issue("$.tasks[0].needs[0]", "names no task of this workflow: 'ghost'", actual="ghost", line=5)
    ]
    cycle = topological_order(_workflow(_tasks("a:c", "b:a", "c:b")))
    assert [(i.path, i.message, i.line) for i in cycle if isinstance(i, Issue)] == [
        ("$.tasks[0].needs", "forms a cycle: a -> c -> b -> a", 5)
    ]


def test_a_long_chain_of_needs_is_ordered_without_recursion() -> None:
    count = 5000  # far past Python's recursion limit
    specs = ["t0", *(f"t{n}:t{n - 1}" for n in range(1, count))]
    order = topological_order(_workflow(_tasks(*reversed(specs))))
    assert order == [f"t{n}" for n in range(count)]
