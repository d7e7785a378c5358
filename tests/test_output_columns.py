"""`{{ tasks.ID | map(attribute='response.status') | list }}` over a forEach's results is read as a column
(`templating.Columns`): SQLite reads the number out of every journaled response in one pass, and no response
is decoded. It must give exactly what reading every response does, or leave the template to Jinja, which
then gives its own value or error."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httptask import templating
from httptask.catalog import Catalog
from httptask.engines.local import ForEachResults, LocalEngine
from httptask.items import LazySequence
from httptask.journal import Journal
from httptask.limits import MAX_SIZE, time_limit
from httptask.runs import resume_run
from httptask.secrets import SecretStore
from httptask.templating import Columns, base_context
from local_runs import run_workflow
from servers import serving_handler
from test_templating_direct import jinja, outcome

STATUSES = "{{ t | map(attribute='response.status') | list }}"


class Rows(LazySequence[Any], Columns):
    """Results held in memory, with the column a journal would give: the int at `path` of every item."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def _at(self, index: int) -> Any:
        return self.rows[index]

    def column(self, path: tuple[str | int, ...]) -> list[int] | None:
        return integers_at(self.rows, path)


def integers_at(rows: list[Any], path: tuple[Any, ...]) -> list[int] | None:
    """The int at `path` in each of `rows`, read the plain way; None unless every row has one there."""
    values = []
    for row in rows:
        for key in path:
            if not isinstance(row, dict) or key not in row:
                return None
            row = row[key]
        if type(row) is not int:
            return None
        values.append(row)
    return values


def check(source: str, rows: list[Any], seconds: float = 1.0) -> Any:
    """What `source` gives over `rows`, the same with or without the column; that outcome."""
    scope = base_context(inputs={}, extra={"t": Rows(rows), "plain": rows})
    compiled = templating._compile(source)

    def given(render: Any) -> Any:
        return outcome(lambda scope, limit: render(scope, time_limit(seconds, cpu=True)), scope)

    found = given(compiled.render)
    assert found == given(jinja(compiled))
    return found


def column_only(source: str, rows: list[Any]) -> Any:
    """`source` over `rows` with Jinja out of reach: only the column can answer."""

    def no_jinja(scope: Any) -> Any:
        raise AssertionError(f"{source!r} was left to Jinja")

    compiled = dataclasses.replace(templating._compile(source), jinja=no_jinja)
    return compiled.render(base_context(inputs={}, extra={"t": Rows(rows)}), time_limit())


statuses = st.one_of(
    st.integers(-1000, 1000),
    st.integers(),
    st.sampled_from(["200", "", True, False, None, 200.0, [200], {"code": 200}]),
)
rows = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"item": st.integers(), "response": st.fixed_dictionaries({"status": statuses})}
        ),
        st.fixed_dictionaries({"item": st.integers(), "response": st.none()}),
        st.fixed_dictionaries({"item": st.integers(), "response": st.fixed_dictionaries({})}),
        st.just({"item": 1}),
    ),
    max_size=6,
)
attributes = st.sampled_from(
    ["response.status", "response", "item", "response.0", "response.status.code", "response.keys", "status"]
)
templates = st.sampled_from(
    [
        "{{ t | map(attribute='%s') | list }}",
        ' {{ t | map(attribute="%s") | list }}\n',
        "{{ plain | map(attribute='%s') | list }}",
        "{{ t | map(attribute='%s', default=0) | list }}",
        "{{ t | map(attribute='%s') | list | length }}",
        "n={{ t | map(attribute='%s') | list }}",
        "{{ t | map(attribute='%s') | sort }}",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=templates, attribute=attributes, results=rows)
def test_a_column_gives_what_jinja_gives(template: str, attribute: str, results: list[Any]) -> None:
    check(template % attribute, results)


def test_the_statuses_of_a_forEach_are_read_as_a_column_without_jinja() -> None:
    results = [{"item": n, "response": {"status": 200 + n % 3}} for n in range(5)]
    assert column_only(STATUSES, results) == [200, 201, 202, 200, 201]
    assert column_only(STATUSES, []) == []
    assert check(STATUSES, results) == ("value", ("list", [("int", repr(200 + n % 3)) for n in range(5)]))


@pytest.mark.parametrize(
    ("count", "status"),
    [(133_333, 2**40), (133_334, 2**40), (1, 2**6000), (3, -(2**40))],
)
def test_a_column_past_the_size_limit_is_left_to_jinja(count: int, status: int) -> None:
    """Jinja's list is refused past the size limit (an item and its digits each, 15 for 2**40): the column
    answers only where it is surely inside."""
    results = [{"item": 0, "response": {"status": status}}] * count
    given = check(STATUSES, results, seconds=120)
    assert given[0] == ("value" if count * (1 + status.bit_length() // 3 + 1) <= MAX_SIZE else "error")


def test_a_column_jinja_must_refuse_is_not_read() -> None:
    """Past half the size limit in items, Jinja's list is refused whatever the numbers: nothing is read."""

    class Unread(Rows):
        def column(self, path: tuple[str | int, ...]) -> list[int] | None:
            raise AssertionError("the column was read")

    compiled = templating._compile(STATUSES)
    assert compiled.direct is not None
    many = base_context(inputs={}, extra={"t": Unread([{}] * (MAX_SIZE // 2 + 1))})
    assert compiled.direct(many) is templating.UNSURE
    few = base_context(inputs={}, extra={"t": Rows([{"response": {"status": 1}}] * 3)})
    assert compiled.direct(few) == [1, 1, 1]


# -- the journal's column ------------------------------------------------------------------------------------

PLAIN = '{"status": 200, "body": {"code": 7, "id": "a"}}'
ODD = [
    '{"status": "200"}', '{"status": true}', '{"status": null}', "{}", None, '{"status": 200.0}',
    '{"status": 2e2}', '{"status": 123456789012345678901}', '{"status": 18446744073709551615}',
    '{"status": {"a": 1}}', '{"status": [200]}', '"text"', "[1, 2]", '{"status": -7}',
    '{"status": 9223372036854775807}', '{"status": "\\u0032"}', '{"stat\\u0075s": 5}', "not json",
]  # fmt: skip


def journal_with(path: Path, responses: dict[int, str | None], extra: str = "") -> Journal:
    journal = Journal(path)
    with sqlite3.connect(path) as db:
        rows = [("r", "f", item, "succeeded", text, 0.0) for item, text in responses.items()]
        rows += [("r", "f", -1, "succeeded", PLAIN, 0.0), ("r", "g", 0, "succeeded", PLAIN, 0.0)]
        if extra:
            rows.append(("r", "f", len(responses) + 5, "succeeded", extra, 0.0))
        db.executemany(
            "INSERT INTO steps (run_id, task, item, state, response, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    return journal


def read_one_by_one(journal: Journal, count: int, keys: tuple[str, ...]) -> list[Any] | None:
    """The column as the templates read it without one: every response decoded; None where one has no int."""
    try:
        responses = journal.responses("r", "f", 0, count)
    except ValueError:
        return None
    return integers_at([responses.get(item) for item in range(count)], keys)


@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("keys", [("status",), ("body", "code")])
def test_the_journal_gives_the_column_every_response_gives_or_none(
    tmp_path: Path, odd: str | None, keys: tuple[str, ...]
) -> None:
    plain = {0: PLAIN, 1: PLAIN.replace("200", "404").replace("7", "-3")}
    journal = journal_with(tmp_path / "j.sqlite3", {**plain, 2: odd, 3: PLAIN}, extra="not json")
    try:
        got = journal.response_integers("r", "f", 4, keys)
        slow = read_one_by_one(journal, 4, keys)
        assert got == slow or (got is None and slow is not None)  # None: Jinja reads them one by one
        assert journal.response_integers("r", "f", 2, keys) == read_one_by_one(journal, 2, keys)
        assert journal.response_integers("r", "f", 2, keys) == (
            [200, 404] if keys == ("status",) else [7, -3]
        )
    finally:
        journal.close()


def test_the_journal_gives_no_column_where_an_item_has_no_row_or_the_key_is_not_plain(tmp_path: Path) -> None:
    journal = journal_with(tmp_path / "j.sqlite3", {0: PLAIN, 2: PLAIN})
    try:
        assert journal.response_integers("r", "f", 1, ["status"]) == [200]
        assert journal.response_integers("r", "f", 3, ["status"]) is None  # item 1 has no row
        assert journal.response_integers("r", "f", 0, ["status"]) == []
        assert journal.response_integers("r", "f", 1, ["status') || ('x"]) is None
        assert journal.response_integers("r", "f", 1, ["body", "id"]) is None  # a string
    finally:
        journal.close()


# -- a real run's outputs, with the column and without -------------------------------------------------------


@dataclasses.dataclass
class Api:
    """Answers `/N` with `{id, n, tags}`, its status from `?status=`, or from `fail` (a 500) once."""

    url: str = ""
    fail: set[str] = dataclasses.field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        name = request.path.rsplit("/", 1)[-1]
        status = 500 if name in self.fail else int(request.query.get("status", "200"))
        self.fail.discard(name)
        body = {"id": name, "n": int(name), "tags": ["a", name]}
        return web.json_response(body, status=status, headers={"X-Seq": name})


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with serving_handler(Api()) as state:
        yield state


OUTPUTS = {
    "statuses": "{{ tasks.f | map(attribute='response.status') | list }}",
    "refunded": "{{ tasks.f | length }}",
    "numbers": "{{ tasks.f | map(attribute='response.body.n') | list }}",
    "ids": "{{ tasks.f | map(attribute='response.body.id') | list }}",
    "tags": "{{ tasks.f | map(attribute='response.body.tags') | list }}",
    "seqs": "{{ tasks.f | map(attribute='response.headers') | map(attribute='x-seq') | list }}",
    "text": "{{ tasks.f | map(attribute='response.status') | list | tojson }}",
    "created": "{{ tasks.f | selectattr('response.status', 'eq', 201) | list | length }}",
    "first": "{{ tasks.f[0].response }}",
}


def workflow(tmp_path: Path, api: Api, method: str) -> Path:
    file = tmp_path / "wf.yaml"
    outputs = "".join(f"\n  {name}: {json.dumps(source)}" for name, source in OUTPUTS.items())
    file.write_text(
        f"""name: columns
inputs:
  items: {{type: array}}
tasks:
  - id: f
    forEach: "{{{{ input.items }}}}"
    httpRequest: {{method: {method}, url: "{api.url}/{{{{ item.n }}}}?status={{{{ item.status }}}}"}}
    retry: {{maxAttempts: 1}}
outputs:{outputs}"""
    )
    return file


@pytest.fixture
def both_ways(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, int]]:
    """Each run's outputs rendered with the column and without it, and how many columns the journal gave."""
    seen: list[tuple[Any, Any, int]] = []
    render = LocalEngine._outputs
    read = Journal.response_integers
    columns: list[Any] = []

    def counted(self: Journal, *args: Any) -> Any:
        columns.append(read(self, *args))
        return columns[-1]

    def outputs(self: LocalEngine) -> Any:
        columns.clear()
        fast = render(self)
        answered = sum(column is not None for column in columns)
        with mock.patch.object(ForEachResults, "column", lambda self, path: None):
            slow = render(self)
        seen.append((fast[0], slow[0], answered))
        assert fast[1] == slow[1] == []
        return fast

    monkeypatch.setattr(Journal, "response_integers", counted)
    monkeypatch.setattr(LocalEngine, "_outputs", outputs)
    return seen


def test_a_runs_outputs_are_the_same_with_the_column(
    api: Api, tmp_path: Path, both_ways: list[tuple[Any, Any, int]]
) -> None:
    items = [{"n": n, "status": 201 if n % 3 else 200} for n in range(40)]
    result = run_workflow(workflow(tmp_path, api, "GET"), {"items": items}, journal_path=tmp_path / "j")
    assert result.status == "succeeded", result.errors
    [(fast, slow, answered)] = both_ways
    assert fast == slow == result.outputs
    assert answered == 2  # statuses and numbers
    assert fast["statuses"] == [item["status"] for item in items]
    assert fast["numbers"] == list(range(40))
    assert fast["seqs"] == [str(n) for n in range(40)]
    assert fast["created"] == 26


def test_a_resumed_runs_outputs_read_the_statuses_of_the_items_reused(
    api: Api, tmp_path: Path, both_ways: list[tuple[Any, Any, int]]
) -> None:
    """Item 2 is answered 500 and waits for a decision; marked done, its journaled answer is what a resume's
    outputs read, beside the items sent before."""
    items = [{"n": n, "status": 200} for n in range(6)]
    api.fail = {"2"}
    journal = Journal(tmp_path / "j")
    first = run_workflow(workflow(tmp_path, api, "POST"), {"items": items}, journal_path=journal.path)
    assert first.status == "failed" and first.outputs is None
    resumed = resume_run(
        first.run_id, catalog=Catalog.default(), journal=journal, secrets=SecretStore(), mark_done=("f[2]",)
    )
    journal.close()
    assert resumed.status == "succeeded", resumed.errors
    [(fast, slow, answered)] = both_ways
    assert fast == slow == resumed.outputs
    assert fast["statuses"] == [200, 200, 500, 200, 200, 200]
    assert answered == 2
