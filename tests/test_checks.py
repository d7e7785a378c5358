"""Workflow checks: operations, templates, references and needs, literal values against the spec, lines."""

from __future__ import annotations

import json
import textwrap

import pytest

from httptask.catalog import Catalog
from httptask.checks import check_workflow, check_workflow_text
from httptask.workflow import parse_workflow_text


def problems(text: str, catalog: Catalog) -> list[tuple[int | None, str, str]]:
    return [
        (i.line, i.path, i.message)
        for i in check_workflow_text(textwrap.dedent(text), catalog, file="w.yaml")
    ]


ZOHO = """\
name: zoho
inputs:
  creditnote_id: {type: string}
  amount: {type: number}
  org: {type: string}
tasks:
  - id: refund
    operation: zoho-billing.refund_credit_note
    credentials: ZOHO
    request:
      path: {creditnote_id: "{{ input.creditnote_id }}"}
      headers: {X-com-zoho-subscriptions-organizationid: "{{ input.org }}"}
      body: {amount: "{{ input.amount }}"}
  - id: fetch
    needs: [refund]
    operation: zoho-billing.get_credit_note_refund
    credentials: ZOHO
    request:
      path: {refund_id: "{{ tasks.refund.response.body.refund.refund_id }}"}
      headers: {X-com-zoho-subscriptions-organizationid: "{{ input.org }}"}
outputs:
  status: "{{ tasks.fetch.response.status }}"
"""


def test_a_valid_workflow_has_no_issues(catalog: Catalog) -> None:
    assert problems(ZOHO, catalog) == []


CASES = [
    pytest.param(
        """\
    name: cb
    inputs:
      invoice: {type: string}
      amount: {type: integer}
    tasks:
      - id: record
        operation: chargebee.record_refund
        request:
          path: {invoice-id: "{{ input.invoice }}"}
          body:
            transaction:
              amount: "{{ input.amount }}"
              payment_method: cashh
              date: "{{ now('unix') }}"
              reference_number: 42
    """,
        [
            (10, "$.tasks[0].request.body.memo", "is required but missing"),
            (
                13,
                "$.tasks[0].request.body.transaction.payment_method",
                "must be one of 'cash', 'check', 'chargeback', 'bank_transfer', 'other', not 'cashh'",
            ),
            (
                15,
                "$.tasks[0].request.body.transaction.reference_number",
                "must be of type string, not integer 42",
            ),
        ],
        id="templated_values_are_not_validated_but_missing_and_wrong_literals_are",
    ),
    pytest.param(
        """\
    name: z
    tasks:
      - id: fetch
        operation: zoho-billing.get_credit_note_refund
        request:
          headers: {Content-Language: en}
    """,
        [
            (5, "$.tasks[0].request.path.refund_id", "is required but missing"),
            (
                6,
                "$.tasks[0].request.headers.x-com-zoho-subscriptions-organizationid",
                "is required but missing",
            ),
        ],
        id="a_missing_required_header_and_path_parameter_are_reported",
    ),
    pytest.param(
        """\
    name: z
    tasks:
      - id: fetch
        operation: zoho-billing.get_credit_note_refnd
    """,
        [
            (
                4,
                "$.tasks[0].operation",
                "names no operation in the catalog: 'zoho-billing.get_credit_note_refnd'. Did you mean "
                "zoho-billing.get_credit_note_refund, zoho-billing.list_credit_note_refunds, "
                "zoho-billing.refund_credit_note? "
                "Run 'httptask catalog search WORDS' to find one.",
            ),
        ],
        id="an_unknown_operation_suggests_close_ids",
    ),
    pytest.param(
        """\
    name: refs
    inputs:
      org: {type: string}
    tasks:
      - id: a
        httpRequest: {url: "https://example.com/{{ input.nope }}"}
      - id: b
        httpRequest: {url: "https://example.com/{{ tasks.c.response.body.id }}"}
      - id: c
        needs: [a]
        httpRequest:
          url: "https://example.com/{{ tasks.a.response.bdy }}/{{ tasks.a.output }}/{{ tasks.zz.response.body }}"
      - id: d
        needs: [c]
        httpRequest:
          url: "https://example.com/{{ tasks.a.response.body.id }}/{{ item.id }}/{{ foo }}"
    """,  # noqa: E501 (a template URL longer than a line)
        [
            (
                6,
                "$.tasks[0].httpRequest.url",
                "reads input.nope, which is not an input of this workflow (its inputs: org); "
                "declare it under inputs",
            ),
            (
                8,
                "$.tasks[1].httpRequest.url",
                "reads tasks.c, which may not have run yet; add 'c' to the needs of b",
            ),
            (
                12,
                "$.tasks[2].httpRequest.url",
                "reads tasks.a.response.bdy; a response has status, headers and body, e.g. "
                "tasks.a.response.body.bdy",
            ),
            (
                12,
                "$.tasks[2].httpRequest.url",
                "reads tasks.a.output; a task's result is tasks.a.response.status, .headers or .body",
            ),
            (
                12,
                "$.tasks[2].httpRequest.url",
                "reads tasks.zz, which is not a task of this workflow (its tasks: a, b, c, d)",
            ),
            (
                16,
                "$.tasks[3].httpRequest.url",
                "reads item, which only a task with forEach has; add forEach to the task or read "
                "input or tasks instead",
            ),
            (
                16,
                "$.tasks[3].httpRequest.url",
                "reads 'foo', which templates do not know; use input, tasks, item (in a forEach "
                "task), now(), uuid() "
                "or secret('NAME')",
            ),
        ],
        id="references_must_name_inputs_and_tasks_this_task_needs",
    ),
    pytest.param(
        """\
    name: fan
    inputs:
      ids: {type: array}
    tasks:
      - id: each
        forEach: "{{ input.ids }}"
        httpRequest: {url: "https://example.com/{{ item }}"}
      - id: bad
        forEach: "{{ item.list }}"
        httpRequest: {url: "https://example.com/{{ item }}"}
    outputs:
      first: "{{ tasks.each.response.body }}"
      wrong: "{{ item }}"
      one: "{{ tasks.each[0].response.status }} for {{ tasks.each[1].item }}"
      odd: "{{ tasks.each[0].output }}"
    """,
        [
            (
                9,
                "$.tasks[1].forEach",
                "reads item, which only a task with forEach has; add forEach to the task or read "
                "input or tasks instead",
            ),
            (
                13,
                "$.outputs.wrong",
                "reads item, which only a task with forEach has; add forEach to the task or read "
                "input or tasks instead",
            ),
            (
                15,
                "$.outputs.odd",
                "reads tasks.each.output; a task's result is tasks.each.response.status, .headers or .body",
            ),
        ],
        id="for_each_gives_item_and_reads_only_what_the_task_needs",
    ),
    pytest.param(
        """\
    name: s
    inputs:
      org: {type: string}
    tasks:
      - id: a
        httpRequest:
          url: https://example.com/
          headers: {X-Org: "{{ input.org | upper }"}
    """,
        [
            (8, "$.tasks[0].httpRequest.headers.X-Org", "template syntax error at line 1: unexpected '}'"),
        ],
        id="template_syntax_errors_name_the_field",
    ),
    pytest.param(
        """\
    name: chain
    tasks:
      - id: a
        httpRequest: {url: "https://example.com/"}
      - id: b
        needs: [a]
        httpRequest: {url: "https://example.com/"}
      - id: c
        needs: [b]
        httpRequest: {url: "https://example.com/{{ tasks.a.response.body.id }}"}
    """,
        [],
        id="transitive_needs_allow_the_reference",
    ),
    pytest.param(
        """\
    name: g
    tasks:
      - id: refund
        operation: geins.create_order_refund
        credentials: GEINS
        request:
          path: {orderId: 1}
          body: {RefundAmount: 1.5}
    """,
        [
            (
                5,
                "$.tasks[0].credentials",
                "geins.create_order_refund needs apiKey and basicAuth together; give credentials as a map, "
                "e.g. credentials: {apiKey: SECRET_NAME, basicAuth: SECRET_NAME}.",
            ),
        ],
        id="credentials_that_do_not_fit_the_security_schemes",
    ),
    pytest.param(
        """\
    name: d
    inputs:
      amount: {type: integer, default: ten}
    tasks:
      - id: a
        httpRequest: {url: "https://example.com/{{ input.amount }}"}
    """,
        [
            (3, "$.inputs.amount.default", "the default must be of type integer, not string 'ten'"),
        ],
        id="an_input_default_must_fit_its_schema",
    ),
    pytest.param(
        """\
    name: rules
    inputs:
      i: {type: integer}
    tasks:
      - id: dots
        operation: chargebee.refund_invoice
        server: {index: 3}
        request:
          path: {invoice-id: ".."}
          headers: {X-Note: "a\\r\\nX-Evil: 1"}
      - id: templated
        operation: chargebee.refund_invoice
        request:
          path: {invoice-id: "{{ input.i }}"}
    """,
        [
            (7, "$.tasks[0].server.index", "must be between 0 and 0"),
            (
                9,
                "$.tasks[0].request.path.invoice-id",
                "must not be empty, '.' or '..', not '..': it would change the request's path",
            ),
            (10, "$.tasks[0].request.headers.X-Note", "must not contain a line break (CR or LF) or NUL"),
        ],
        id="the_request_rules_apply_to_literal_values_as_test_request_applies_them",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_problem_is_found_at_its_line(
    text: str, expected: list[tuple[int | None, str, str]], catalog: Catalog
) -> None:
    assert problems(text, catalog) == expected


def test_needs_cycles_and_unknown_tasks(catalog: Catalog) -> None:
    text = """\
    name: cyc
    tasks:
      - id: a
        needs: [b]
        httpRequest: {url: "https://example.com/"}
      - id: b
        needs: [a]
        httpRequest: {url: "https://example.com/"}
    """
    assert problems(text, catalog) == [(4, "$.tasks[0].needs", "forms a cycle: a -> b -> a")]
    unknown = """\
    name: u
    tasks:
      - id: a
        needs: [ghost]
        httpRequest: {url: "https://example.com/"}
    """
    assert problems(unknown, catalog) == [
        (4, "$.tasks[0].needs[0]", "names no task of this workflow: 'ghost'")
    ]


def test_yaml_syntax_and_schema_errors_become_issues(catalog: Catalog) -> None:
    assert problems("name: [x\n", catalog) == [
        (2, "$", "invalid YAML: expected ',' or ']', but got '<stream end>'. Fix the syntax and try again."),
    ]
    text = """\
    name: s
    tasks:
      - id: a
        operation: zoho-billing.get_credit_note_refund
        retry: {maxAttempts: 0}
    """
    assert problems(text, catalog) == [(5, "$.tasks[0].retry.maxAttempts", "must be at least 1, not 0")]
    assert problems("tasks: []\n", catalog) == [
        (1, "$.name", "is required but missing"),
        (1, "$.tasks", "must have at least 1 items, not 0"),
    ]


def test_check_workflow_takes_a_parsed_workflow(catalog: Catalog) -> None:
    from httptask.workflow import parse_workflow_text

    workflow = parse_workflow_text(ZOHO.replace("tasks.fetch.response.status", "tasks.fetch.response.code"))
    issues = check_workflow(workflow, catalog)
    assert [issue.to_dict() for issue in issues] == [
        {
            "path": "$.outputs.status",
            "message": "reads tasks.fetch.response.code; a response has status, headers and body, "
            "e.g. tasks.fetch.response.body.code",
            "actual": "{{ tasks.fetch.response.code }}",
            "line": 22,
        }
    ]


@pytest.mark.parametrize(
    ("for_each", "message"),
    [
        ("{{ 5 }}", "gives int, not a list; forEach needs a list, e.g. '{{ input.refunds }}'"),
        ("{{ 'abc' }}", "gives str, not a list; forEach needs a list, e.g. '{{ input.refunds }}'"),
        ("{{ {'a': 1} }}", "gives dict, not a list; forEach needs a list, e.g. '{{ input.refunds }}'"),
        ("refunds", "must be a template giving a list, e.g. '{{ input.refunds }}'"),
        (
            "{{ input.count }}",
            "reads input.count, which is declared as integer, not a list (array); forEach needs a list",
        ),
    ],
)
def test_a_for_each_that_cannot_give_a_list_is_refused(for_each: str, message: str) -> None:
    workflow = parse_workflow_text(
        "name: w\n"
        "inputs: {count: {type: integer}, refunds: {type: array}}\n"
        "tasks:\n"
        "  - id: t\n"
        f"    forEach: {json.dumps(for_each)}\n"
        "    httpRequest: {url: 'https://example.com/{{ item }}'}\n"
    )
    issues = check_workflow(workflow, Catalog([]))
    assert [(i.path, i.message, i.line) for i in issues] == [("$.tasks[0].forEach", message, 5)]


@pytest.mark.parametrize("for_each", ["{{ [1, 2] }}", "{{ input.refunds }}", "{{ range(3) | list }}"])
def test_a_for_each_giving_a_list_passes(for_each: str) -> None:
    workflow = parse_workflow_text(
        "name: w\ninputs: {refunds: {type: array}}\ntasks:\n  - id: t\n"
        f"    forEach: {json.dumps(for_each)}\n"
        "    httpRequest: {url: 'https://example.com/{{ item }}'}\n"
    )
    assert check_workflow(workflow, Catalog([])) == []
