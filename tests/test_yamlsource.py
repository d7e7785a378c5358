"""The one YAML reader: both entry points agree, dates stay the text that was written in every kind of file,
and a syntax error is data (file, line, column) in a sentence that says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from httptask.catalog import Catalog
from httptask.checks import check_workflow_text
from httptask.errors import SourceError, UsageError
from httptask.execute import prepare
from httptask.secrets import SecretStore
from httptask.spec import load_spec
from httptask.tasks import load_task
from httptask.workflow import load_workflow
from httptask.yamlsource import dump_yaml, load_source, parse_document, parse_source

DOCUMENTS = [
    "on: 2024-01-31\nat: 2024-01-31T10:00:00Z\nexplicit: !!timestamp 2024-02-01\n",
    "items:\n  - {id: 1, when: 2023-12-24}\n  - [a, 'b', 3.5, null, true]\nnested: {deep: {x: ~}}\n",
    '{"json": [1, 2, {"is": "yaml too"}], "date": "2024-01-31"}',
    "",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_both_entry_points_read_the_same_data(text: str) -> None:
    assert parse_source(text, "f.yaml").data == parse_document(text, "f.yaml")


@pytest.mark.parametrize("parse", [lambda t: parse_source(t, "f").data, lambda t: parse_document(t, "f")])
def test_dates_and_timestamps_stay_the_text_that_was_written(parse: Any) -> None:
    data = parse(DOCUMENTS[0])
    assert data == {"on": "2024-01-31", "at": "2024-01-31T10:00:00Z", "explicit": "2024-02-01"}


def test_the_fast_entry_point_falls_back_to_pure_python_without_libyaml() -> None:
    code = (
        "import yaml\n"
        "del yaml.CSafeLoader\n"
        "from httptask.yamlsource import parse_document\n"
        "print(parse_document('day: 2024-01-31', 'f'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "{'day': '2024-01-31'}\n", "")


def test_a_date_in_a_task_body_is_sent_as_the_string_written(tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text(
        "id: t\nhttpRequest:\n  method: POST\n  url: http://127.0.0.1:9/x\n  body: {on: 2024-01-31}\n",
        encoding="utf-8",
    )
    prepared = prepare(load_task(task), inputs={}, catalog=Catalog([]), secrets=SecretStore(environ={}))
    assert json.loads(prepared.request.content) == {"on": "2024-01-31"}


def test_a_date_stays_a_string_in_workflows_specs_and_the_secrets_file(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text(
        "name: w\ninputs:\n  since: {type: string, default: 2024-01-31}\n"
        "tasks:\n  - id: t\n    httpRequest: {url: 'http://127.0.0.1:9/'}\n",
        encoding="utf-8",
    )
    assert load_workflow(workflow).inputs["since"]["default"] == "2024-01-31"
    spec = tmp_path / "s.yaml"
    spec.write_text("openapi: 3.1.0\ninfo: {title: S, version: 2024-01-31}\npaths: {}\n", encoding="utf-8")
    assert load_spec(spec).version == "2024-01-31"
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("PIN: 2024-01-31\n", encoding="utf-8")
    assert SecretStore(environ={}, file=secrets).get("PIN") == "2024-01-31"


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("a: [1,\n", 2, 1, "expected the node content, but found '<stream end>'"),
        ("a: b: c\n", 1, 5, "mapping values are not allowed here"),
        ("ok: 1\nbad: \x01\n", 2, 6, "unacceptable character #x0001: special characters are not allowed"),
    ],
)
def test_a_syntax_error_carries_file_line_and_column(text: str, line: int, column: int, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_source(text, "task.yaml")
    error = caught.value
    assert (error.file, error.line, error.column, error.problem) == ("task.yaml", line, column, problem)
    assert str(error) == f"task.yaml:{line}:{column}: invalid YAML: {problem}. Fix the syntax and try again."
    assert error.detail == f"invalid YAML: {problem}. Fix the syntax and try again."
    assert error.exit_code == 2


@pytest.mark.parametrize(("text", "line"), [("a: [1,\n", 2), ("a: b: c\n", 1), ("ok: 1\nbad: \x01\n", 2)])
def test_the_fast_entry_point_reports_the_same_line(text: str, line: int) -> None:
    with pytest.raises(SourceError) as caught:
        parse_document(text, "spec.yaml")
    assert (caught.value.file, caught.value.line) == ("spec.yaml", line)


def test_a_json_syntax_error_names_json() -> None:
    with pytest.raises(SourceError) as caught:
        parse_document('{\n  "a": 1,,\n}', "spec.json", is_json=True)
    assert str(caught.value) == (
        "spec.json:2:10: invalid JSON: Expecting property name enclosed in double quotes. "
        "Fix the syntax and try again."
    )


def test_lines_are_kept_for_every_value_and_fall_back_to_the_nearest_parent() -> None:
    text = "name: w\ntasks:\n  - id: t\n    request:\n      body:\n        memo: x\n"
    source = parse_source(text, "w.yaml")
    assert source.line("$.tasks[0].request.body.memo") == 6
    assert source.line("$.tasks[0].request") == 4
    assert source.line("$.tasks[0].request.body.absent") == 5
    assert source.line("$") == 1


def test_load_source_says_which_file_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as missing:
        load_source(tmp_path / "absent.yaml")
    assert str(missing.value) == f"No such file: '{tmp_path / 'absent.yaml'}'."
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9".encode("latin-1"))
    with pytest.raises(UsageError) as caught:
        load_source(latin)
    assert str(caught.value) == f"'{latin}' is not UTF-8 text; save it as UTF-8 and try again."


def test_dump_yaml_keeps_key_order_and_readable_text() -> None:
    data = {"z": 1, "a": ["å", {"nested": "2024-01-31"}]}
    text = dump_yaml(data)
    assert text == "z: 1\na:\n- å\n- nested: '2024-01-31'\n"
    assert yaml.safe_load(text) == {"z": 1, "a": ["å", {"nested": "2024-01-31"}]}
    assert parse_document(text, "f") == data


BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)
EXPANDS = "uses aliases (*name) more than 100 times, or they expand past 100,000 values; write the values out"
TOO_DEEP = "nested more than 100 levels deep; flatten it"


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        (
            "id: t\namount: 5\nname: x\namount: 500\n",
            4,
            1,
            "the key 'amount' is given twice in one mapping, at lines 2 and 4; keep one",
        ),
        (
            "request:\n  body:\n    memo: a\n    memo: b\n",
            4,
            5,
            "the key 'memo' is given twice in one mapping, at lines 3 and 4; keep one",
        ),
        (BOMB, 6, 4, EXPANDS),
        ("a: &a [*a]\n", 1, 4, "an alias refers to a value that contains it; write the values out"),
        ("a: " + "[" * 10_000 + "]" * 10_000, 1, 104, TOO_DEEP),
        (
            "amount: " + "9" * 5000 + "\n",
            1,
            9,
            "an integer of more than 4,300 digits; quote it if it is text",
        ),
    ],
    ids=["duplicate", "nested duplicate", "alias bomb", "alias cycle", "deep", "long integer"],
)
def test_what_a_definition_never_needs_is_refused_with_its_line(
    text: str, line: int, column: int, problem: str
) -> None:
    with pytest.raises(SourceError) as caught:
        parse_source(text, "f.yaml")
    assert (caught.value.line, caught.value.column, caught.value.problem) == (line, column, problem)
    assert (
        str(caught.value) == f"f.yaml:{line}:{column}: invalid YAML: {problem}. Fix the syntax and try again."
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "id: t\namount: 5\namount: 500\n",
            "the key 'amount' is given twice in one mapping, at lines 2 and 3; keep one",
        ),
        (BOMB, EXPANDS),
        ("amount: " + "9" * 5000 + "\n", "an integer of more than 4,300 digits; quote it if it is text"),
        ("a: " + "[" * 500 + "]" * 500, TOO_DEEP),
    ],
)
def test_the_fast_entry_point_refuses_the_same(text: str, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_document(text, "spec.yaml")
    assert caught.value.problem == problem


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {x: 1, y: 2}\nmerged: {<<: *b, x: 3}\n",
        "a: &a {k: 1}\nb: *a\nc: [*a, *a]\n",
        "a: " + "[" * 99 + "]" * 99,
    ],
)
def test_merge_keys_a_few_aliases_and_reasonable_depth_pass(text: str) -> None:
    assert parse_source(text, "f.yaml").data == parse_document(text, "f.yaml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 10_000 + "]" * 10_000, TOO_DEEP),
        ("[" * 500 + "]" * 500, TOO_DEEP),
        ('{"a": ' + "9" * 5000 + "}", "an integer of more than 4,300 digits; quote it if it is text"),
    ],
)
def test_json_is_held_to_the_same_limits(text: str, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_document(text, "x.json", is_json=True)
    assert str(caught.value) == f"x.json: invalid JSON: {problem}. Fix the syntax and try again."


def test_a_yaml_file_of_too_many_values_is_refused_at_its_line_and_a_json_one_is_read_fast(
    tmp_path: Path,
) -> None:
    from httptask.yamlsource import MAX_VALUES

    big = tmp_path / "items.yaml"
    big.write_text("invoices:\n" + "- 1\n" * MAX_VALUES)
    with pytest.raises(SourceError) as refused:
        load_source(big)
    assert refused.value.line == MAX_VALUES - 1  # 250,001st value: the mapping, key and list count too
    assert "holds more than 250,000 values; write a file this large as JSON" in str(refused.value)
    as_json = tmp_path / "items.json"
    as_json.write_text(json.dumps({"invoices": [1] * MAX_VALUES}))
    assert len(load_source(as_json, as_json=True).data["invoices"]) == MAX_VALUES


KEYS = "200: ok\n~: a\nnull: b\non: c\n1.5: d\n0x10: e\n'quoted': f\n"


@pytest.mark.parametrize("parse", [lambda t: parse_source(t, "f").data, lambda t: parse_document(t, "f")])
def test_every_key_is_the_text_written_as_openapi_reads_yaml_keys(parse: Any) -> None:
    assert parse(KEYS) == {
        "200": "ok",
        "~": "a",
        "null": "b",
        "on": "c",
        "1.5": "d",
        "0x10": "e",
        "quoted": "f",
    }
    assert parse("base: &b {1: x}\nmerged: {<<: *b, ~: y}\n") == {
        "base": {"1": "x"},
        "merged": {"1": "x", "~": "y"},
    }


def test_the_line_of_a_key_is_found_by_its_text() -> None:
    source = parse_source(KEYS, "f.yaml")
    assert (source.line("$['~']"), source.line("$.null"), source.line("$['0x10']")) == (2, 3, 6)


def test_two_keys_are_the_same_key_when_their_text_is() -> None:
    with pytest.raises(SourceError) as caught:
        parse_source("1: a\n'1': b\n", "f.yaml")
    assert caught.value.problem == "the key '1' is given twice in one mapping, at lines 1 and 2; keep one"


@pytest.mark.parametrize("parse", [parse_source, parse_document])
@pytest.mark.parametrize("text", ["a: 1\n? [x]\n: 2\n", "a: 1\n{b: 1}: 2\n"])
def test_a_list_or_a_mapping_as_a_key_is_refused_at_its_line(parse: Any, text: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse(text, "f.yaml")
    assert (caught.value.line, caught.value.problem) == (
        2,
        "a key must be text, not a list or a mapping; quote it",
    )


@pytest.mark.parametrize(
    ("text", "issues"),
    [
        (
            "name: w\ntasks:\n  - id: a\n    ~: 1\n    httpRequest: {url: 'https://e.example/'}\n",
            [("$.tasks[0]['~']", 4)],
        ),
        (
            "name: w\ntasks:\n  - id: a\n    httpRequest: {url: 'https://e.example/', headers: {~: x, 1: y}}"
            "\n"
            "outputs: {~: '{{ tasks.a.response.status }}', null: '{{ 1 }}'}\n",
            [],
        ),
        (
            "name: w\ninputs: {n: {type: object, properties: {~: {type: string}}, default: {~: 1}}}\n"
            "tasks:\n  - id: a\n    httpRequest: {url: 'https://e.example/', body: {~: 1}}\n",
            [("$.inputs.n.default['~']", 2)],
        ),
        (
            "name: w\ntasks:\n  - id: a\n    operation: chargebee.record_refund\n"
            "    request: {query: {~: 1}, path: {~: 2, invoice-id: i}, headers: {~: 3}, body: {~: 4}}\n",
            [("$.tasks[0].request.body.memo", 5)],
        ),
    ],
    ids=["task field", "headers and outputs", "input schema and default", "operation request"],
)
def test_a_workflow_with_keys_yaml_reads_as_null_numbers_or_booleans_is_checked(
    text: str, issues: list[tuple[str, int]]
) -> None:
    found = check_workflow_text(text, Catalog.default(), "w.yaml")
    assert [(issue.path, issue.line) for issue in found] == issues
