"""Items read lazily from a JSON Lines file: counted and checked before the run, each error naming its line,
and a changed file refused on resume."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from httptask.cli.console import parse_input
from httptask.errors import HttptaskError, Issue, UsageError
from httptask.items import FileItems, ItemsFile, scan_items
from httptask.runs import check_inputs
from httptask.validation import validate_instance
from httptask.workflow import parse_workflow_text

SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}


def _check(item: Any, root: str) -> list[Issue]:
    return validate_instance(item, SCHEMA, root=root)


def test_items_are_counted_checked_and_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n{"id": "c"}')
    items = scan_items(path, _check, name="invoices")
    assert (items.count, list(items)) == (3, [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    assert ItemsFile.from_dict(items.to_dict()) == items
    assert ItemsFile.from_dict([1, 2]) is None


def test_an_item_that_does_not_fit_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n{"id": 7}\n{}\n')
    with pytest.raises(UsageError) as caught:
        scan_items(path, _check, name="invoices")
    assert str(caught.value) == (
        f"The items in '{path}' do not fit the input 'invoices'; nothing was sent:\n"
        f"  {path}:2: $.input.invoices[1].id: must be of type string, not integer 7\n"
        f"  {path}:3: $.input.invoices[2].id: is required but missing"
    )


def test_a_line_that_is_not_json_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n')
    with pytest.raises(UsageError, match=rf"^{path}:2: not a JSON value \("):
        scan_items(path, _check, name="invoices")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    with pytest.raises(UsageError) as caught:
        scan_items(missing, _check, name="invoices")
    assert str(caught.value) == f"Cannot read the items file '{missing}' (No such file or directory)."


def test_a_changed_file_is_refused_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n')
    items = scan_items(path, _check, name="invoices")
    assert ItemsFile.from_dict(items.to_dict()).verified().blocks == items.blocks  # type: ignore[union-attr]
    path.write_text('{"id": "b"}\n')
    with pytest.raises(UsageError, match="has changed since the run started"):
        items.verified()


def test_what_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    zero, fifo = tmp_path / "zero.jsonl", tmp_path / "fifo.jsonl"
    zero.symlink_to("/dev/zero")
    os.mkfifo(fifo)  # opening it would wait for a writer: refused on its type before it is read
    for path in (zero, fifo, tmp_path):
        with pytest.raises(UsageError, match=f"^The items file '{path}' is not a regular file"):
            scan_items(path, _check, name="invoices")


def test_a_line_without_end_is_an_error_not_all_of_memory(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    with path.open("wb") as file:
        file.write(b'{"id": "a"}\n"')
        file.write(b"x" * (17 << 20))
    with pytest.raises(UsageError, match=rf"^{path}:2: the line is longer than 16 MiB"):
        scan_items(path, _check, name="invoices")


def test_items_changed_after_the_check_are_never_given(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    lines = [f'{{"id": "a{n}", "pad": "{"x" * 2000}"}}\n' for n in range(1100)]  # blocks of 1 MiB
    path.write_text("".join(lines))
    items = FileItems(scan_items(path, _check, name="invoices"))
    assert [items[0]["id"], items[1099]["id"], items[-1]["id"]] == ["a0", "a1099", "a1099"]
    path.write_text("".join([*lines, '{"id": "grown"}\n']))  # more items than were checked
    given = []
    with pytest.raises(UsageError, match="changed while the run read it"):
        given.extend(item["id"] for item in items)
    assert given == [f"a{n}" for n in range(len(given))] and len(given) < 1100
    path.write_text("".join([*lines[:600], '{"id": 7}\n', *lines[601:]]))  # one item that does not fit
    with pytest.raises(UsageError, match="changed while the run read it"):
        items[600]
    with pytest.raises(UsageError, match="changed while the run read it"):
        given = [item["id"] for item in items]
    path.write_text("".join(lines[:1000]))  # fewer
    with pytest.raises(UsageError, match="changed while the run read it"):
        given = [item["id"] for item in items]


# -- the same items as a JSON list -----------------------------------------------------------------------

PARITY_WORKFLOW = """\
name: parity
inputs:
  items: {type: array, uniqueItems: UNIQUE}
tasks:
  - id: t
    forEach: "{{ input.items }}"
    httpRequest: {url: "http://127.0.0.1:9/"}
"""


def _both_ways(tmp_path: Path, lines: list[str], unique: bool) -> tuple[str, str]:
    """What `--input @FILE.json` with `lines` as a JSON list and `--input-items` with `lines` as JSON Lines
    each make of the items: their exact repr (1 and 1.0 told apart), or "refused"."""
    workflow = parse_workflow_text(PARITY_WORKFLOW.replace("UNIQUE", str(unique).lower()))
    listed = tmp_path / "list.json"
    listed.write_text('{"items": [' + ", ".join(lines) + "]}", encoding="utf-8")
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    results = []
    for inputs, files in ((parse_input(f"@{listed}"), {}), ({}, {"items": jsonl})):
        try:
            results.append(repr(list(check_inputs(workflow, inputs, files)["items"])))
        except HttptaskError:
            results.append("refused")
    return results[0], results[1]


@pytest.mark.parametrize(
    ("lines", "unique", "expected"),
    [
        (["12345678901234567890", "123456789012345678901234567890"], False, None),
        (['{"refund": -99999999999999999999, "id": 18446744073709551616}'], False, None),
        (["0.1234567890123456789", "1e22", "1.0", "-0.0", "2"], False, None),
        (["1", "1.0"], True, "refused"),
        (["true", "1", "false", "0"], True, None),
        (['{"a": 1, "b": [2]}', '{"b": [2.0], "a": 1.0}'], True, "refused"),
        (["100000000000000000000", "1e20"], True, "refused"),
        (["12345678901234567890123", "1.2345678901234568e22"], True, None),
        (['"\\ud800"', '"caf\\u00e9"'], True, None),
    ],
    ids=["big ids", "past 64 bits", "floats", "1 and 1.0", "booleans", "objects", "1e20", "close",
         "surrogate"],
)  # fmt: skip
def test_items_from_a_file_are_the_items_of_the_same_json_list(
    tmp_path: Path, lines: list[str], unique: bool, expected: str | None
) -> None:
    as_list, from_file = _both_ways(tmp_path, lines, unique)
    assert from_file == as_list
    if expected is not None:
        assert from_file == expected
    else:  # read exactly as written: big integers stay integers, digit for digit
        assert from_file == repr([json.loads(line) for line in lines])


_NUMBERS = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70).map(lambda n: f"{n}.0"),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e20", "1E2", "-0", "-0.0", "0.1e1", "18446744073709551615", "-9223372036854775809"]),
).map(str)
_ITEMS = st.recursive(
    st.one_of(
        _NUMBERS,
        st.booleans().map(json.dumps),
        st.none().map(json.dumps),
        st.text(max_size=5).map(json.dumps),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(["a", "b", "id"]), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)


@settings(
    max_examples=int(os.environ.get("HTTPTASK_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(lines=st.lists(_ITEMS, max_size=5), unique=st.booleans())
def test_any_items_from_a_file_are_those_of_the_same_json_list(lines: list[str], unique: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        as_list, from_file = _both_ways(Path(folder), lines, unique)
    assert from_file == as_list


def test_a_line_that_is_not_utf8_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes('{"id": "a"}\n{"id": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(UsageError) as caught:
        scan_items(path, _check, name="invoices")
    assert str(caught.value) == (
        f"{path}:2: the line is not UTF-8 text (byte 12 is 0xe9); an items file must be UTF-8: save it as "
        "UTF-8 and try again."
    )


def test_an_item_nested_too_deep_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a"}\n' + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(UsageError) as caught:
        scan_items(path, lambda item, root: [], name="invoices")
    assert str(caught.value) == f"{path}:2: the item is nested more than 100 levels deep; flatten it."


def test_a_byte_order_mark_is_read_only_at_the_very_start_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')
    assert list(scan_items(path, _check, name="invoices")) == [{"id": "a"}, {"id": "b"}]
    # Two files joined: the second one's mark is now inside the file, where it is no part of any JSON.
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n\xef\xbb\xbf{"id": "b"}\n')
    with pytest.raises(UsageError) as caught:
        scan_items(path, _check, name="invoices")
    assert str(caught.value) == (
        f"{path}:2: byte 1 of the line is a byte order mark (EF BB BF), which only the very start of a file "
        "may hold; files joined together often leave one. Remove it and try again."
    )
