"""Items of a workflow input read lazily from a JSON Lines file (`--input-items NAME=FILE`): one JSON value
per line, never all in memory at once.

The file is read twice: once before the run, to count its items, check every one against the input's
schema and take its SHA-256 (so a resume can tell that the file changed), and once as the fan-out goes.
The journal keeps `{"$items": {file, count, sha256}}` in place of the items.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import orjson

from .errors import Issue, UsageError
from .templating import expression_path

__all__ = ["FileItems", "ItemsFile", "LazySequence", "lazy_for_each", "scan_items", "stored_inputs"]

T = TypeVar("T")

_READ_SIZE = 1 << 20
# The keywords of an input's schema that can be checked item by item as the file is read.
_CHECKED = frozenset({"type", "items", "minItems", "maxItems", "uniqueItems"})
_NOTES = frozenset({"description", "title", "examples", "$comment", "deprecated", "readOnly", "writeOnly"})


@dataclass(frozen=True)
class ItemsFile:
    """A JSON Lines file of items: where it is, how many items it holds, and the SHA-256 of its bytes."""

    path: Path
    count: int
    sha256: str

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
        """The items in order. The file's bytes are hashed as they are read: a file changed since it was
        scanned is an error once its end is reached."""
        digest = hashlib.sha256()
        for _, item in _lines(self.path, digest):
            yield item
        if digest.hexdigest() != self.sha256:
            raise UsageError(
                f"The items file '{self.path}' changed while the run read it; what was sent is journaled "
                f"('httptask runs show' lists it). Keep the file as it is during a run."
            )

    def check_unchanged(self) -> None:
        """Refuse to resume from a file whose bytes differ from those the run started with."""
        try:
            digest = _digest(self.path)
        except OSError as exc:
            raise UsageError(f"Cannot read the items file '{self.path}' ({exc.strerror}).") from None
        if digest != self.sha256:
            raise UsageError(
                f"The items file '{self.path}' has changed since the run started; a resume must read the "
                "same items (restore the file, or start a new run)."
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
    lazily; reading one item by its index (`input.invoices[7]`) builds an index of line offsets first, 8
    bytes per item."""

    def __init__(self, source: ItemsFile) -> None:
        self.source = source
        self._offsets: array[int] | None = None

    def __len__(self) -> int:
        return self.source.count

    def __iter__(self) -> Iterator[Any]:
        return iter(self.source)

    def _at(self, index: int) -> Any:
        if self._offsets is None:
            self._offsets = _offsets(self.source.path)
        with self.source.path.open("rb") as file:
            file.seek(self._offsets[index])
            return orjson.loads(file.readline())

    def __repr__(self) -> str:
        return f"<{self.source.count} items of {self.source.path}>"


def lazy_for_each(for_each: str, inputs: Mapping[str, Any]) -> FileItems | None:
    """The items of a forEach that is exactly `{{ input.NAME }}` over an input read from an items file, so
    that they are read as the fan-out goes; None for any other forEach (rendered as a list)."""
    path = expression_path(for_each)
    if path is None or len(path) != 2 or path[0] != "input":
        return None
    value = inputs.get(str(path[1]))
    return value if isinstance(value, FileItems) else None


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
    try:
        for line, item in _lines(path, digest):
            root = f"$.input.{name}[{count}]"
            found = check(item, root)
            if unique:
                canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
                key = hashlib.blake2b(canonical, digest_size=16).digest()
                if key in seen:
                    found = [*found, Issue(root, f"repeats the item on line {seen[key]} (uniqueItems)")]
                seen.setdefault(key, line)
            issues += [Issue(i.path, i.message, i.expected, i.actual, line) for i in found]
            if len(issues) >= 20:
                break
            count += 1
    except OSError as exc:
        raise UsageError(f"Cannot read the items file '{path}' ({exc.strerror}).") from None
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
    return ItemsFile(path.resolve(), count, digest.hexdigest())


def _lines(path: Path, digest: Any = None) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if digest is not None:
                digest.update(raw)
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise UsageError(
                    f"{path}:{number}: not a JSON value ({exc.msg}); each line of an items file holds one "
                    'JSON value, such as {"id": "inv_1", "amount": 100}.'
                ) from None


def _offsets(path: Path) -> array[int]:
    offsets = array("Q")
    position = 0
    with path.open("rb") as file:
        for raw in file:
            if raw.strip():
                offsets.append(position)
            position += len(raw)
    return offsets


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
