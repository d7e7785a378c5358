"""No column of the journal holds a secret, even where a value equal to one reaches a part of the request
the journal keeps apart from the request's redacted record: the host name (an idempotency key's scope) and the
idempotency key itself. Each run is a real `httptask run` process, or the library, with a real SQLite file
read back column by column and byte by byte."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_runs import run_workflow
from servers import RecordingServer, recording_server

CANARY = "zq7canaryhost"  # a value a host name can hold
HOST_WORKFLOW = """
name: host-leak
inputs:
  host: {type: string}
tasks:
  - id: pay
    httpRequest:
      method: POST
      url: "http://{{ input.host }}:9/pay"
      body: {amount: 1}
    idempotencyKey: "pay-{{ input.host | length }}"
    retry: {maxAttempts: 1}
"""
KEY_REFUSED = (
    "$.idempotencyKey: holds the value of a secret (or part of one); an idempotency key is stored in the "
    "journal and shown by 'httptask runs show' as it is, so build it from values that are not secret, e.g. "
    "the item's id"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("HTTPTASK_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.setenv("HTTPTASK_SECRET_CANARY", CANARY)
    return dict(os.environ)


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    with recording_server() as state:
        yield state


def _httptask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "httptask", *args], env=env, text=True, capture_output=True, timeout=60
    )


def _leaks(journal: Path) -> list[str]:
    """Every column value of every table holding the canary, and every file of the journal holding it."""
    found = []
    with sqlite3.connect(journal) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = connection.execute(f"SELECT * FROM {table}")
            names = [column[0] for column in cursor.description]
            for row in cursor:
                found += [f"{table}.{n}" for n, value in zip(names, row, strict=True) if CANARY in str(value)]
    for file in journal.parent.glob(journal.name + "*"):
        if CANARY.encode() in file.read_bytes():
            found.append(file.name)
    return found


def _columns(journal: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(journal) as connection:
        return connection.execute(sql).fetchall()


def test_a_secret_in_the_host_name_reaches_no_column_of_the_journal(
    env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text(HOST_WORKFLOW)
    done = _httptask(env, "run", str(file), "--input", json.dumps({"host": CANARY}))
    assert done.returncode == 1, done.stderr  # the host does not resolve: committed as sent, then not sent
    assert CANARY not in done.stdout + done.stderr
    journal = Path(env["HTTPTASK_JOURNAL"])
    assert _leaks(journal) == []
    # The key's scope is the origin of the request as journaled, the secret masked as in its URL.
    assert _columns(journal, "SELECT key_scope, idempotency_key FROM steps") == [("http://***:9", "pay-13")]
    assert _columns(journal, "SELECT scope, key FROM idempotency_keys") == [("http://***:9", "pay-13")]


def test_the_library_journals_the_scope_of_the_redacted_request_too(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Without the console's guard (a library use) nothing redacts the journal's columns but the engine."""
    file = tmp_path / "wf.yaml"
    file.write_text(HOST_WORKFLOW)
    result = run_workflow(file, {"host": CANARY})
    assert result.status == "failed"
    journal = Path(env["HTTPTASK_JOURNAL"])
    assert _leaks(journal) == []
    assert _columns(journal, "SELECT scope FROM idempotency_keys") == [("http://***:9",)]


def test_an_idempotency_key_holding_a_secret_s_value_is_refused_before_anything_is_sent(
    env: dict[str, str], tmp_path: Path, server: RecordingServer
) -> None:
    """A key cannot be masked (a resume sends the journaled key again), so an item whose key would hold a
    secret stops the run in its pre-send check, however late it comes in the items."""
    file = tmp_path / "wf.yaml"
    file.write_text(f"""
name: key-leak
inputs:
  codes: {{type: array}}
tasks:
  - id: pay
    forEach: "{{{{ input.codes }}}}"
    httpRequest:
      method: POST
      url: "{server.url}/pay"
      body: {{code: "{{{{ item }}}}"}}
    idempotencyKey: "pay-{{{{ item }}}}"
""")
    codes = [f"c{n}" for n in range(50)] + [CANARY]
    done = _httptask(env, "run", str(file), "--input", json.dumps({"codes": codes}))
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == f"  task pay, item 50: {KEY_REFUSED}"
    assert server.requests == []
    assert _leaks(Path(env["HTTPTASK_JOURNAL"])) == []
