"""--mark-done and --resend name items, TASK[3,7,10-12], and are checked against the journal before anything
is decided: every mistake is one clear sentence that says what to write instead."""

from __future__ import annotations

import pytest

from httptask.decisions import awaiting, decisions_for, parse_selector
from httptask.errors import UsageError
from httptask.journal import StepRecord
from httptask.outcome import Outcome, final_state
from httptask.workflow import parse_workflow_text

WORKFLOW = parse_workflow_text(
    """\
name: w
inputs: {ids: {type: array}}
tasks:
  - id: refund
    operation: chargebee.record_refund
    forEach: "{{ input.ids }}"
    request:
      path: {invoice-id: "{{ item }}"}
      body: {memo: m, transaction: {payment_method: check, date: 1}}
  - id: notify
    httpRequest: {url: "https://example.test/done", method: POST}
""",
    "w.yaml",
)


@pytest.mark.parametrize(
    ("outcome", "status", "ok", "idempotent", "state"),
    [
        (Outcome.ANSWERED, 201, True, False, "succeeded"),
        (Outcome.NOT_SENT, None, False, False, "failed"),  # a refused connection: nothing reached the server
        (Outcome.UNKNOWN, None, False, False, "unknown"),  # a timeout or a reset after the write
        (Outcome.UNKNOWN, None, False, True, "failed"),  # the same, sent again safely with its key
        (Outcome.ANSWERED, 500, False, False, "unknown"),  # a 5xx may come after the work was done
        (Outcome.ANSWERED, 503, False, True, "failed"),
        (Outcome.ANSWERED, 200, False, False, "unknown"),  # a 2xx over the size cap
        (Outcome.ANSWERED, 302, False, False, "unknown"),  # a redirect refused after the server acted
        (Outcome.ANSWERED, 404, False, False, "failed"),  # a 4xx: the server did not act
        (Outcome.ANSWERED, 429, False, False, "failed"),
    ],
)
def test_which_requests_wait_for_a_decision(
    outcome: Outcome, status: int | None, ok: bool, idempotent: bool, state: str
) -> None:
    """The one rule both engines apply (`outcome.final_state`) when a request's sending ends."""
    assert final_state(outcome, status, ok=ok, idempotent=idempotent) == state


def _step(task: str, item: int, state: str, outcome: Outcome | None, idempotent: bool = False) -> StepRecord:
    return StepRecord(task, item, state, idempotent, None, 1, None, None, {}, None, None, outcome)


STEPS = [
    _step("refund", 0, "succeeded", Outcome.ANSWERED),
    _step("refund", 1, "sent", Outcome.UNKNOWN),
    _step("refund", 2, "failed", Outcome.UNKNOWN),
    _step("refund", 3, "failed", Outcome.NOT_SENT),
    _step("refund", 4, "sent", Outcome.UNKNOWN, idempotent=True),
    _step("refund", 5, "sent", Outcome.UNKNOWN),
    _step("notify", 0, "sent", Outcome.UNKNOWN),
]


def test_only_requests_that_are_not_idempotent_and_may_have_been_acted_on_wait() -> None:
    assert [(s.task, s.item) for s in awaiting(STEPS)] == [
        ("refund", 1),
        ("refund", 2),
        ("refund", 5),
        ("notify", 0),
    ]


def test_items_and_ranges() -> None:
    selector = parse_selector("refund[1, 5,7-9]", "--resend")
    assert (selector.task, sorted(selector.items or ())) == ("refund", [1, 5, 7, 8, 9])
    assert parse_selector("notify", "--resend").items is None


def test_decisions_are_made_for_the_items_named_and_no_others() -> None:
    decided = decisions_for(
        WORKFLOW, STEPS, mark_done=["refund[1]", "notify"], resend=["refund[2,5]"], evidence="x"
    )
    assert {key: d.action for key, d in decided.items()} == {
        ("refund", 1): "mark-done",
        ("notify", 0): "mark-done",
        ("refund", 2): "resend",
        ("refund", 5): "resend",
    }
    assert {d.evidence for d in decided.values()} == {"x"}
    assert all("(pid " in d.decided_by for d in decided.values())


WRONG = [
    (
        ["refund[a]"],
        [],
        "--mark-done 'refund[a]': 'a' is not an item number or range; items are numbered from 0, as "
        "'httptask runs show' lists them, e.g. refund[3,7,10-12].",
    ),
    (
        ["refund[\uff11]"],  # a full-width 1: int() reads it, a person may not have meant item 1
        [],
        "--mark-done 'refund[\uff11]': '\uff11' is not an item number or range; items are numbered from 0, "
        "as 'httptask runs show' lists them, e.g. refund[3,7,10-12].",
    ),
    (["refund[5-2]"], [], "--mark-done 'refund[5-2]': the range 5-2 runs backwards; write 2-5."),
    (["refund[1"], [], "--mark-done 'refund[1': give TASK, or TASK[ITEMS] such as refund[3,7,10-12]."),
    (
        ["refnd[1]"],
        [],
        "--mark-done 'refnd[1]': the workflow has no task 'refnd' (its tasks: refund, notify).",
    ),
    (
        ["refund"],
        [],
        "--mark-done 'refund': task refund sends one request per item; name the items, e.g. "
        "--mark-done 'refund[1]' (waiting for a decision: 1, 2, 5).",
    ),
    (
        [],
        ["refund[0,3,4,99]"],
        "--resend 'refund[0,3,4,99]': items 0, 3, 4, 99 of task refund are not waiting for a decision "
        "(those that are: 1, 2, 5); 'httptask runs show RUN_ID' lists them.",
    ),
    (
        ["refund[1-2]"],
        ["refund[2]"],
        "Item 2 of task refund is named by both --mark-done and --resend; decide once: done (it was "
        "received) or resend (it was not).",
    ),
]


@pytest.mark.parametrize(("mark_done", "resend", "message"), WRONG)
def test_a_wrong_decision_is_refused_before_anything_is_decided(
    mark_done: list[str], resend: list[str], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        decisions_for(WORKFLOW, STEPS, mark_done=mark_done, resend=resend)
    assert str(caught.value) == message


def test_a_range_too_large_to_be_meant_is_refused_before_it_is_expanded() -> None:
    with pytest.raises(UsageError) as caught:
        parse_selector("refund[0-999999999999]", "--resend")
    assert str(caught.value) == (
        "--resend 'refund[0-999999999999]' names more than 1,000,000 items; name the items that wait for a "
        "decision, as 'httptask runs show RUN_ID' lists them."
    )
