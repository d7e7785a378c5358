"""The journal: durable writes are committed before `durable` returns, many share one commit, and no secret
ever reaches the database or its write-ahead log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httptask.journal import Journal, fingerprint
from httptask.redaction import Redactor
from local_runs import run_workflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "refund-invoices.yaml"


def _states(path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as other:
        return other.execute("SELECT task, item, state FROM steps ORDER BY item").fetchall()


def test_durable_returns_once_the_record_is_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)

    async def main() -> list[tuple[str, int, str]]:
        journal.start(asyncio.get_running_loop())
        await journal.durable(
            [Journal.sent("r1", "t", 0, idempotent=False, key=None, request={"method": "POST"})]
        )
        seen = _states(path)
        journal.stop()
        return seen

    assert asyncio.run(main()) == [("t", 0, "sent")]
    journal.close()


def test_concurrent_durable_writes_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        await asyncio.gather(
            *(
                journal.durable([Journal.sent("r1", "t", n, idempotent=True, key=f"k{n}", request={})])
                for n in range(200)
            )
        )
        journal.stop()

    asyncio.run(main())
    journal.close()
    assert len(_states(path)) == 200
    assert journal.commits < 200


def test_queued_records_are_committed_by_stop(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)

    async def main() -> None:
        journal.start(asyncio.get_running_loop())
        journal.queue(Journal.schedule("r1", "t", [0, 1]))
        journal.queue(
            [Journal.finished("r1", "t", 1, "succeeded", attempts=1, http_status=200, response={"a": 1})]
        )
        journal.stop()

    asyncio.run(main())
    assert _states(path) == [("t", 0, "scheduled"), ("t", 1, "succeeded")]
    steps = journal.steps("r1")
    journal.close()
    assert (steps[1].response, steps[1].attempts, steps[1].outcome_unknown) == ({"a": 1}, 1, False)


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_rows_no_one_waits_for_ride_with_the_next_durable_write_or_are_committed_soon(
    tmp_path: Path, writer: str
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path, writer=writer)

    async def main() -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
        journal.start(asyncio.get_running_loop())
        await journal.durable(Journal.schedule("r1", "t", [0, 1, 2]))
        journal.queue([Journal.finished("r1", "t", 0, "succeeded", attempts=1, http_status=200)])
        await journal.durable([Journal.sent("r1", "t", 1, idempotent=True, key=None, request={})])
        with_the_next = _states(path)
        journal.queue([Journal.finished("r1", "t", 2, "failed", error="x")])  # nothing waits after it
        for _ in range(200):
            await asyncio.sleep(0.025)
            if _states(path)[2][2] == "failed":
                break
        soon = _states(path)
        journal.stop()
        return with_the_next, soon

    with_the_next, soon = asyncio.run(main())
    journal.close()
    assert with_the_next == [("t", 0, "succeeded"), ("t", 1, "sent"), ("t", 2, "scheduled")]
    assert soon == [("t", 0, "succeeded"), ("t", 1, "sent"), ("t", 2, "failed")]


def test_a_missing_run_names_the_journal_and_the_way_to_list_runs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(Exception) as caught:
        journal.run("nope")
    journal.close()
    assert str(caught.value) == (
        f"No run 'nope' in the journal '{tmp_path / 'j.sqlite3'}'; "
        "'httptask runs list' shows the runs it holds."
    )


def test_no_secret_reaches_the_journal_or_its_write_ahead_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "live_Zq8vSECRETwJ4m"
    path = tmp_path / "j.sqlite3"
    monkeypatch.setenv("HTTPTASK_JOURNAL", str(path))
    monkeypatch.setenv("HTTPTASK_SECRET_CHARGEBEE_API_KEY", secret)
    # An input that happens to hold the secret, and a comment sent in every request body.
    inputs = {"invoices": [{"id": f"inv_{n}", "amount": 10} for n in range(5)], "comment": f"note {secret}"}
    Journal(path).close()
    keeper = sqlite3.connect(
        path
    )  # holding the database open keeps the WAL file from being checkpointed away
    keeper.execute("SELECT count(*) FROM runs").fetchall()
    result = run_workflow(EXAMPLE, inputs, sandbox=True)
    assert result.status == "succeeded", result.errors
    files = [p for p in tmp_path.iterdir() if p.name.startswith("j.sqlite3")]
    assert {p.name for p in files} >= {"j.sqlite3", "j.sqlite3-wal"}
    data = b"".join(p.read_bytes() for p in files)
    keeper.close()
    forms = [
        secret,
        base64.b64encode(f"{secret}:".encode()).decode(),
        base64.b64encode(secret.encode()).decode(),
    ]
    assert b"inv_4" in data
    assert [form for form in forms if form.encode() in data] == []
    journal = Journal(path)
    record = journal.run(result.run_id)
    journal.close()
    assert record.inputs["comment"] == "note ***"
    assert record.inputs_redacted


def test_a_big_integer_reads_back_as_the_integer_it_was(tmp_path: Path) -> None:
    # An amount in a currency's smallest unit or an id beyond 64 bits: read back exactly, never as a float.
    big = 123456789012345678901234567890
    journal = Journal(tmp_path / "j.sqlite3")
    journal.queue(Journal.schedule("r1", "t", [0]))
    journal.queue([Journal.finished("r1", "t", 0, "succeeded", http_status=200, response={"amount": big})])
    response = journal.steps("r1")[0].response
    journal.close()
    assert response == {"amount": big}
    assert isinstance(response["amount"], int)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text())
def test_a_fingerprint_is_the_one_journals_of_earlier_versions_hold(method: str, url: str, body: str) -> None:
    # Keys journaled before must keep matching their payload after an upgrade, or a resume refuses them.
    earlier = hashlib.sha256(json.dumps([method.upper(), url, body]).encode()).hexdigest()
    assert fingerprint(method, url, body) == earlier


def test_a_secret_s_digits_masked_inside_a_number_leave_the_row_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A response's amount that holds a run of a secret's digits is masked in the file, and the row stays JSON:
    # outputs, `runs show` and a resume read it back without a traceback.
    monkeypatch.setattr("httptask.redaction._process", Redactor(["sk_te_123456_zebra_x"]))
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    journal.queue(Journal.schedule("r1", "t", [0]))
    response = {"body": {"amount": 91234567, "id": "re_123456", "ok": True, "fee": 1.5}}
    journal.queue([Journal.finished("r1", "t", 0, "succeeded", http_status=200, response=response)])
    read = journal.steps("r1")[0].response
    journal.close()
    assert read == {"body": {"amount": "9***7", "id": "re_***", "ok": True, "fee": 1.5}}
    assert b"123456" not in path.read_bytes()
