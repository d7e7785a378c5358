"""Items read lazily from a JSON Lines file: counted and checked before the run, each error naming its line,
and a changed file refused on resume."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from httptask.errors import Issue, UsageError
from httptask.items import FileItems, ItemsFile, scan_items
from httptask.validation import validate_instance

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
