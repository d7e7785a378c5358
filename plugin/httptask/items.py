"""Items of a workflow input read lazily from a JSON Lines file (`--input-items NAME=FILE`): one JSON value
per line, never all in memory at once.

The file is read twice: once before the run, to count its items, check every one against the input's
schema and take its SHA-256 (so a resume can tell that the file changed), and once as the fan-out goes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import Issue, UsageError

__all__ = ["ItemsFile", "scan_items"]

_READ_SIZE = 1 << 20


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
        for _, item in _lines(self.path):
            yield item

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


def scan_items(path: Path, check: Callable[[Any, str], list[Issue]], *, name: str) -> ItemsFile:
    """Count and check every item of the JSON Lines file `path` for the input `name`; `check(item, root)`
    gives the item's issues. A line that is not JSON, or an item that does not fit, is an error naming the
    file and line; blank lines are skipped."""
    count = 0
    issues: list[Issue] = []
    try:
        for line, item in _lines(path):
            found = check(item, f"$.input.{name}[{count}]")
            issues += [Issue(i.path, i.message, i.expected, i.actual, line) for i in found]
            if len(issues) >= 20:
                break
            count += 1
        digest = _digest(path)
    except OSError as exc:
        raise UsageError(f"Cannot read the items file '{path}' ({exc.strerror}).") from None
    if issues:
        lines = "\n".join(f"  {path}:{issue.line}: {issue.path}: {issue.message}" for issue in issues)
        raise UsageError(f"The items in '{path}' do not fit the input {name!r}; nothing was sent:\n{lines}")
    return ItemsFile(path.resolve(), count, digest)


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise UsageError(
                    f"{path}:{number}: not a JSON value ({exc.msg}); each line of an items file holds one "
                    'JSON value, such as {"id": "inv_1", "amount": 100}.'
                ) from None


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
