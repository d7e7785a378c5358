"""Task files: parsed against the shipped schema with every problem and its line; the schema ships as a
command; the defaults have one source, which the schema states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from httptask.errors import TaskError
from httptask.requests import RawRequest
from httptask.tasks import RetryPolicy, load_task, parse_task, schema, task_defaults
from httptask.transport import Timeouts


def test_a_task_file_with_several_mistakes_reports_each_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "id: refund\noperation: chargebee.record_refund\nretry:\n  maxAttempts: 0\n"
        "readTimeoutSeconds: -1\ncredentials: ''\n",
        encoding="utf-8",
    )
    with pytest.raises(TaskError) as caught:
        load_task(path)
    assert [(i.path, i.line) for i in caught.value.issues] == [
        ("$.credentials", 6),
        ("$.readTimeoutSeconds", 5),
        ("$.retry.maxAttempts", 4),
    ]
    assert str(caught.value).startswith(f"{path}: task refund is not valid:\n  line 6, $.credentials: ")


def test_a_task_needs_exactly_one_of_operation_or_http_request(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"id": "x"}), encoding="utf-8")
    with pytest.raises(TaskError) as caught:
        load_task(path)
    assert str(caught.value) == (
        f"{path}: task x is not valid:\n  line 1, $: needs exactly one of 'operation' "
        "(a catalog id) or 'httpRequest' (a raw request)"
    )


def test_defaults_and_retry_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "id: t\nhttpRequest: {url: 'https://example.com'}\n"
        "retry: {maxAttempts: 5, intervalSeconds: 2, backoffRate: 3, maxIntervalSeconds: 10}\n",
        encoding="utf-8",
    )
    task = load_task(path)
    assert (task.connection_timeout_seconds, task.read_timeout_seconds) == (5.0, 10.0)
    assert task.max_response_bytes == 10 * 1024 * 1024
    assert task.retry == RetryPolicy(
        max_attempts=5, interval_seconds=2, backoff_rate=3, max_interval_seconds=10
    )
    assert [task.retry.delay(n) for n in (1, 2, 3)] == [2, 6, 10]


def test_the_schema_command_prints_the_shipped_schema() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("httptask")), "schema", "task"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and json.loads(done.stdout) == schema("task")


def test_the_shipped_schema_states_the_defaults_the_code_uses() -> None:
    properties = schema("task")["properties"]
    defaults = task_defaults()
    retry = properties["retry"]["properties"]
    assert {name: retry[name]["default"] for name in retry} == defaults["retry"]
    for name in ("connectionTimeoutSeconds", "readTimeoutSeconds", "followRedirects", "maxResponseBytes",
                 "strictResponses"):
        assert properties[name]["default"] == defaults[name], name
    raw = properties["httpRequest"]["properties"]
    assert (raw["method"]["default"], raw["contentType"]["default"]) == ("GET", "application/json")
    assert RawRequest.of({"url": "u"}) == RawRequest("GET", "u", {}, None, "application/json")


def test_a_task_that_sets_nothing_gets_those_defaults_everywhere() -> None:
    task = parse_task({"id": "t", "httpRequest": {"url": "http://127.0.0.1:9/"}})
    defaults = task_defaults()
    assert task.retry == RetryPolicy()
    assert (task.connection_timeout_seconds, task.read_timeout_seconds) == (
        defaults["connectionTimeoutSeconds"],
        defaults["readTimeoutSeconds"],
    )
    assert (task.follow_redirects, task.max_response_bytes) == (False, defaults["maxResponseBytes"])
    assert Timeouts() == Timeouts(connect=task.connection_timeout_seconds, read=task.read_timeout_seconds)
    given = parse_task({"id": "t", "operation": "x.y", "retry": {"maxAttempts": 5, "backoffRate": 1}})
    assert given.retry == RetryPolicy(max_attempts=5, backoff_rate=1)
