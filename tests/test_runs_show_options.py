"""`runs show` and `runs list` given out-of-range numbers by a user: a usage error naming the option, never a
traceback (SQLite takes integers of at most 64 bits) nor every row at once."""

from __future__ import annotations

import json
import sqlite3

import pytest

from faults import fault_server
from test_input_items_runs import _httptask, _setup


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    workflow, refunds, env = _setup(tmp_path_factory.mktemp("show"), 2)
    with fault_server() as server:
        api = json.dumps({"api_url": server.url})
        done = _httptask(env, "run", str(workflow), "--input", api, "--input-items", f"refunds={refunds}")
        assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(env["HTTPTASK_JOURNAL"]) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
    return run_id, env


@pytest.mark.parametrize(
    "args",
    [
        ["show", "{run}", "--limit", "99999999999999999999"],
        ["show", "{run}", "--json", "--limit", "9223372036854775808"],
        ["show", "{run}", "--limit", "10001"],
        ["list", "--limit", "99999999999999999999"],
        ["list", "--limit", "-1"],
    ],
)
def test_an_out_of_range_limit_is_a_usage_error(
    journaled: tuple[str, dict[str, str]], args: list[str]
) -> None:
    run_id, env = journaled
    done = _httptask(env, "runs", *(arg.format(run=run_id) for arg in args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Invalid value for '--limit'" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_largest_limit_shows_the_run(journaled: tuple[str, dict[str, str]]) -> None:
    run_id, env = journaled
    shown = _httptask(env, "runs", "show", run_id, "--json", "--limit", "10000")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["limit"] == 10000
