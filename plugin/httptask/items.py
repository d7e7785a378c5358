"""Items of a workflow input read lazily from a JSON Lines file (`--input-items NAME=FILE`): one JSON value
per line, never all in memory at once.

The file is read twice: once before the run, to count its items, check every one against the input's
schema and take its SHA-256 (so a resume can tell that the file changed), and once as the fan-out goes.
The journal keeps `{"$items": {file, count, sha256}}` in place of the items.
"""

from __future__ import annotations

import hashlib
import os
import stat
from abc import abstractmethod
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, overload

import orjson

from .errors import Issue, SourceError, UsageError
from .jsontext import orjson_exact
from .limits import LimitExceeded, check_depth
from .templating import expression_path
from .yamlsource import parse_json

__all__ = ["FileItems", "ItemsFile", "LazySequence", "direct_items", "scan_items", "stored_inputs"]

T = TypeVar("T")

# An item's line is at most this long: a file with no line ends (a link to /dev/zero) is an error, not all of
# memory.
_MAX_LINE = 16 << 20
# The file is checked in blocks of lines, each closed after this many lines or bytes: the fan-out reads a
# block, compares its hash with the scan's, and only then gives its items.
_BLOCK_LINES = 1024
_BLOCK_BYTES = 1 << 20
# The keywords of an input's schema that can be checked item by item as the file is read.
_CHECKED = frozenset({"type", "items", "minItems", "maxItems", "uniqueItems"})
_BOM = "\ufeff".encode()
_NOTES = frozenset({"description", "title", "examples", "$comment", "deprecated", "readOnly", "writeOnly"})


@dataclass(frozen=True)
class ItemsFile:
    """A JSON Lines file of items: where it is, how many items it holds, and the SHA-256 of its bytes; once
    read (`scan_items`, `verified`), the hash of each block of its lines, which the fan-out checks before it
    gives a block's items, so that an item changed after the check is never sent."""

    path: Path
    count: int
    sha256: str
    blocks: tuple[bytes, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What the journal keeps in place of the items themselves."""
        return {"$items": {"file": str(self.path), "count": self.count, "sha256": self.sha256}}

    @staticmethod
    def from_dict(value: Any) -> ItemsFile | None:
        """The file a journaled input refers to, or None when the input is a plain value."""
        if not isinstance(value, dict) or set(value) != {"$items"}:
            return None
        ref = value["$items"]
        return ItemsFile(Path(ref["file"]), int(ref["count"]), str(ref["sha256"]))

    def __iter__(self) -> Iterator[Any]:
        """The items in order, a block at a time: a block whose bytes are not those checked before the run
        (the file changed since) is an error before any of its items is given."""
        given = 0
        for number, block in enumerate(_blocks(self.path)):
            if number >= len(self.blocks) or _block_hash(block) != self.blocks[number]:
                raise self._changed()
            for line, raw in block:
                if raw.strip():
                    yield _parse(self.path, line, raw)
                    given += 1
        if given != self.count:
            raise self._changed()

    def verified(self) -> ItemsFile:
        """This file with the hash of each block, once its bytes are those the run started with; refused
        (to resume from) when they differ."""
        digest = hashlib.sha256()
        blocks = []
        for block in _blocks(self.path):
            for _, raw in block:
                digest.update(raw)
            blocks.append(_block_hash(block))
        if digest.hexdigest() != self.sha256:
            raise UsageError(
                f"The items file '{self.path}' has changed since the run started; a resume must read the "
                "same items (restore the file, or start a new run)."
            )
        return replace(self, blocks=tuple(blocks))

    def _changed(self) -> UsageError:
        return UsageError(
            f"The items file '{self.path}' changed while the run read it; no item changed since it was "
            "checked was sent, and what was sent is journaled ('httptask runs show' lists it). Keep the file "
            "as it is during a run."
        )


class LazySequence(Sequence[T]):
    """A read-only sequence whose values are read when asked for (`_at`), by index or slice."""

    @abstractmethod
    def _at(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._at(index)


class FileItems(LazySequence[Any]):
    """The items of an `ItemsFile` as a read-only sequence, which is how templates see the input: iterated
    lazily; reading one item by its index (`input.invoices[7]`) builds an index of where each block starts
    first, 24 bytes per block."""

    def __init__(self, source: ItemsFile) -> None:
        self.source = source
        self._index: tuple[array[int], array[int], array[int]] | None = None
        self._last: tuple[int, list[tuple[int, bytes]]] | None = None  # a block's number and its items

    def __len__(self) -> int:
        return self.source.count

    def __iter__(self) -> Iterator[Any]:
        return iter(self.source)

    def _at(self, index: int) -> Any:
        """Item `index`, read with the block that holds it once the block's bytes are those checked; the
        last block read is kept, so that reading items in order by index reads each block once."""
        if self._index is None:
            self._index = _block_index(self.source)
        firsts = self._index[1]
        number = bisect_right(firsts, index) - 1
        if self._last is None or self._last[0] != number:
            self._last = (number, self._items_of_block(number))
        line, raw = self._last[1][index - firsts[number]]
        return _parse(self.source.path, line, raw)

    def _items_of_block(self, number: int) -> list[tuple[int, bytes]]:
        assert self._index is not None
        offsets, _, lines = self._index
        try:
            with _open(self.source.path) as file:
                file.seek(offsets[number])
                block = _block(file, self.source.path, lines[number])
        except OSError as exc:
            raise UsageError(f"Cannot read the items file '{self.source.path}' ({exc.strerror}).") from None
        if _block_hash(block) != self.source.blocks[number]:
            raise self.source._changed()
        return [(line, raw) for line, raw in block if raw.strip()]

    def __repr__(self) -> str:
        return f"<{self.source.count} items of {self.source.path}>"


def direct_items(for_each: str, inputs: Mapping[str, Any]) -> Sequence[Any] | None:
    """The items of a forEach that is exactly `{{ input.NAME }}`, taken as the input holds them: read from
    its items file as the fan-out goes, or its list itself (rendering would copy a list of a million); None
    for any other forEach (rendered as a list)."""
    path = expression_path(for_each)
    if path is None or len(path) != 2 or path[0] != "input":
        return None
    value = inputs.get(str(path[1]))
    return value if isinstance(value, FileItems | list) else None


def stored_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as the journal keeps them: an input read from an items file as its `{"$items": ...}`."""
    return {
        name: value.source.to_dict() if isinstance(value, FileItems) else value
        for name, value in inputs.items()
    }


def check_items_schema(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of one item of the input `name`, once its own schema is one `--input-items` can check
    item by item (an array of items, with minItems, maxItems, uniqueItems)."""
    kind = schema.get("type")
    if kind != "array" and not (isinstance(kind, list) and "array" in kind):
        raise UsageError(
            f"--input-items {name}=FILE: the input {name!r} is not a list (its type is "
            f"{kind or 'not given'}); an items file gives the items of a list."
        )
    unchecked = sorted(set(schema) - _CHECKED - _NOTES - {"default"})
    if unchecked:
        raise UsageError(
            f"--input-items {name}=FILE: the schema of the input {name!r} uses {', '.join(unchecked)}, which "
            "cannot be checked one item at a time; give these items with --input instead."
        )
    items = schema.get("items", {})
    return items if isinstance(items, dict) else {}


def scan_items(
    path: Path,
    check: Callable[[Any, str], list[Issue]],
    *,
    name: str,
    schema: Mapping[str, Any] | None = None,
) -> ItemsFile:
    """Count and check every item of the JSON Lines file `path` for the input `name`; `check(item, root)`
    gives the item's issues, and `schema` (the input's own, checked by `check_items_schema`) bounds their
    count and uniqueness. A line that is not JSON, or an item that does not fit, is an error naming the file
    and line; blank lines are skipped."""
    schema = schema or {}
    unique = bool(schema.get("uniqueItems"))
    seen: dict[bytes, int] = {}
    count = 0
    issues: list[Issue] = []
    digest = hashlib.sha256()
    blocks: list[bytes] = []
    for block in _blocks(path):
        blocks.append(_block_hash(block))
        for line, raw in block:
            digest.update(raw)
            if not raw.strip():
                continue
            item = _parse(path, line, raw)
            try:
                check_depth(item, "the item")
            except LimitExceeded as exc:
                raise UsageError(f"{path}:{line}: {exc}.") from None
            root = f"$.input.{name}[{count}]"
            found = check(item, root)
            if unique:
                key = hashlib.blake2b(repr(_compared(item)).encode(), digest_size=16).digest()
                if key in seen:
                    found = [*found, Issue(root, f"repeats the item on line {seen[key]} (uniqueItems)")]
                seen.setdefault(key, line)
            issues += [Issue(i.path, i.message, i.expected, i.actual, line) for i in found]
            count += 1
        if len(issues) >= 20:
            break
    if issues:
        lines = "\n".join(f"  {path}:{issue.line}: {issue.path}: {issue.message}" for issue in issues)
        raise UsageError(f"The items in '{path}' do not fit the input {name!r}; nothing was sent:\n{lines}")
    least, most = schema.get("minItems"), schema.get("maxItems")
    if (isinstance(least, int) and count < least) or (isinstance(most, int) and count > most):
        bounds = f"at least {least}" if isinstance(least, int) and count < least else f"at most {most}"
        raise UsageError(
            f"The items file '{path}' holds {count} items; the input {name!r} takes {bounds}; nothing was "
            "sent."
        )
    return ItemsFile(path.resolve(), count, digest.hexdigest(), tuple(blocks))


def _blocks(path: Path) -> Iterator[list[tuple[int, bytes]]]:
    """The lines of a regular file, numbered from 1, in blocks (`_block`); `UsageError` for a file that
    cannot be read as one."""
    try:
        with _open(path) as file:
            number = 0
            while block := _block(file, path, number):
                yield block
                number = block[-1][0]
    except OSError as exc:
        raise UsageError(f"Cannot read the items file '{path}' ({exc.strerror}).") from None


def _open(path: Path) -> BinaryIO:
    """`path` open for reading, once it is a regular file (opened without waiting: a FIFO would wait for a
    writer)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UsageError(
            f"The items file '{path}' is not a regular file; give a JSON Lines file, which a run reads twice "
            "(to check, then to send)."
        )
    return os.fdopen(descriptor, "rb")


def _block(file: BinaryIO, path: Path, number: int) -> list[tuple[int, bytes]]:
    """The next block of lines from `file`'s position, numbered after `number`: at most `_BLOCK_LINES` lines,
    closed once it holds `_BLOCK_BYTES`; empty at the end. A line longer than `_MAX_LINE` is an error."""
    block: list[tuple[int, bytes]] = []
    size = 0
    while len(block) < _BLOCK_LINES and size < _BLOCK_BYTES and (raw := file.readline(_MAX_LINE + 1)):
        number += 1
        if len(raw) > _MAX_LINE:
            raise UsageError(
                f"{path}:{number}: the line is longer than {_MAX_LINE >> 20} MiB; each line of an items file "
                "holds one item."
            )
        block.append((number, raw))
        size += len(raw)
    return block


def _block_hash(block: list[tuple[int, bytes]]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for _, raw in block:
        digest.update(raw)
    return digest.digest()


def _parse(path: Path, number: int, raw: bytes) -> Any:
    """Line `number` of `path` read exactly as the same value in a JSON `--input` list is read
    (`yamlsource.parse_json`): by orjson, for speed, where the two agree; by that reader where they may not:
    an integer past 64 bits (orjson makes it a float), a lone surrogate, a byte order mark, a line that is not
    JSON or not UTF-8. A byte order mark is read only where a file may hold one: at its very start."""
    if number > 1 and raw.startswith(_BOM):
        raise UsageError(
            f"{path}:{number}: byte 1 of the line is a byte order mark (EF BB BF), which only the very start "
            "of a file may hold; files joined together often leave one. Remove it and try again."
        )
    if orjson_exact(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}:{number}: the line is not UTF-8 text (byte {exc.start + 1} is 0x{raw[exc.start]:02x}); "
            "an items file must be UTF-8: save it as UTF-8 and try again."
        ) from None
    try:
        return parse_json(text.rstrip("\r\n"), str(path))
    except SourceError as exc:
        column = f" at column {exc.column}" if exc.column is not None else ""
        raise UsageError(
            f"{path}:{number}: not a JSON value ({exc.problem}{column}); each line of an items file holds "
            'one JSON value, such as {"id": "inv_1", "amount": 100}.'
        ) from None


def _compared(value: Any) -> Any:
    """`value` as JSON Schema compares items for `uniqueItems`, and as `--input` lists are checked: numbers
    by value (1 and 1.0 are one number), never a boolean as a number, the keys of an object in any order."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_compared(item) for item in value]
    if isinstance(value, dict):
        return {key: _compared(value[key]) for key in sorted(value)}
    return value


def _block_index(source: ItemsFile) -> tuple[array[int], array[int], array[int]]:
    """Where each block of `source` starts: its byte offset, the number of its first item, and of the line
    before it."""
    offsets, firsts, lines = array("Q"), array("Q"), array("Q")
    position = items = 0
    for number, block in enumerate(_blocks(source.path)):
        if number >= len(source.blocks) or _block_hash(block) != source.blocks[number]:
            raise source._changed()
        offsets.append(position)
        firsts.append(items)
        lines.append(block[0][0] - 1)
        position += sum(len(raw) for _, raw in block)
        items += sum(1 for _, raw in block if raw.strip())
    return offsets, firsts, lines
