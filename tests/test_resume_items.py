"""A resume finds each forEach item where the run sent it. A list that reads the clock (`now()`) can give
other items on a resume, an hour later: item 1 is then another invoice, and a resume that trusted the index
would count one refund as another's and send the first one again. It refuses the task instead, sending
nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crashpoints import killed_run, later
from faults import fault_server

ITEMS = 12
WORKFLOW = """\
name: due
inputs:
  refunds: {type: array}
  api_url: {type: string}
  later: {type: integer}
tasks:
  - id: refund
    operation: chargebee.record_refund
    forEach: "%(for_each)s"
    server: {url: "{{ input.api_url }}"}
    credentials: CHARGEBEE_API_KEY
    retry: {maxAttempts: 1}
    request:
      path: {invoice-id: "{{ item }}"}
      body: {memo: due, transaction: {amount: 100, payment_method: check, date: 1700000000}}
"""
LISTS = {
    # the refunds due by now: half of them now, all of them an hour later
    "due": "{{ input.refunds | selectattr('due', 'le', now('unix')) | map(attribute='invoice') | list }}",
    # the same invoices, in another order an hour later
    "order": "{{ input.refunds | sort(attribute='invoice', reverse=now('unix') > input.later) "
    "| map(attribute='invoice') | list }}",
}
MESSAGES = {
    "due": "error: task refund: forEach gives 12 items now, 6 when run {run} sent them, so nothing of this "
    "task is sent: a resume must find each item where it was (does forEach read now() or uuid()?). "
    "'httptask runs show {run}' lists what was done; send the rest in a new run.",
    "order": "error: task refund: forEach gives other items now than when run {run} sent them: item 0 was "
    '"inv_00", now "inv_11", so nothing of this task is sent',
}


@pytest.mark.parametrize("change", sorted(LISTS))
def test_a_resume_whose_foreach_gives_other_items_sends_nothing_of_that_task(
    tmp_path: Path, change: str
) -> None:
    workflow = tmp_path / "due.yaml"
    workflow.write_text(WORKFLOW % {"for_each": LISTS[change]})
    journal = tmp_path / "journal.sqlite3"
    secret = {"HTTPTASK_SECRET_CHARGEBEE_API_KEY": "test_due_key"}
    env = {**os.environ, "HTTPTASK_JOURNAL": str(journal), **secret}
    with fault_server() as server:
        cut = int(time.time()) + 1800
        refunds = [{"invoice": f"inv_{n:02d}", "due": cut if n % 2 else cut - 3600} for n in range(ITEMS)]
        inputs = json.dumps({"refunds": refunds, "api_url": server.url, "later": cut})
        run_id = killed_run(env, "after-sent-before-write", 4, "run", str(workflow), "--input", inputs,
                            "--concurrency", "1")  # fmt: skip
        acted = server.acted()
        assert sum(acted.values()) == 3 and set(acted.values()) == {1}

        resumed = subprocess.run(
            [sys.executable, "-c", later(1), "run", "--resume", run_id],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert MESSAGES[change].format(run=run_id) in resumed.stderr
        assert server.acted() == acted, "a resume whose items moved sent something"
