"""Every operation of every spec, bundled or imported: listed from a cached index, looked up, and searched.

A spec file `DIR/NAME.yaml|yml|json` is the API `NAME`; a folder `DIR/NAME/` of spec files is one API `NAME`
made of several documents (an imported vendor API split into modules). The index of light entries is
cached on disk per file (keyed by size and mtime) so that listing and searching parse no spec at all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UnknownOperation
from .resources import bundled_dir, cache_dir, user_specs_dirs

if TYPE_CHECKING:  # a warm index parses no spec, so the spec loader (and yaml) is imported only on a miss
    from .spec import Operation, Spec

__all__ = ["SPEC_SUFFIXES", "Catalog", "Entry", "SearchHit", "catalog_sources", "spec_files"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_INDEX_VERSION = 1
# Field weights for ranking: what an author types usually names the action or the API.
_WEIGHTS = {"operation_id": 3.0, "summary": 3.0, "api": 2.0, "path": 2.0, "tags": 1.0, "description": 1.0}
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Entry:
    """What listing and searching need of one operation, without loading its spec."""

    id: str
    api: str
    api_name: str
    method: str
    path: str
    summary: str
    description: str
    tags: tuple[str, ...]
    source: str
    bundled: bool

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True)
class SearchHit:
    entry: Entry
    score: float


def spec_files(directory: Path) -> list[tuple[str, Path]]:
    """(api, file) pairs for the spec files in one catalog directory, in a stable order."""
    if not directory.is_dir():
        return []
    found = []
    for child in sorted(directory.iterdir()):
        if child.is_file() and child.suffix in SPEC_SUFFIXES and not child.name.startswith("."):
            found.append((child.stem, child))
        elif child.is_dir() and not child.name.startswith("."):
            found.extend((child.name, f) for f in sorted(child.iterdir()) if f.suffix in SPEC_SUFFIXES)
    return found


def catalog_sources() -> list[tuple[str, Path, bool]]:
    """(api, file, bundled) for every spec file: the bundled specs, then the user's catalog directories."""
    sources = [(api, path, True) for api, path in spec_files(bundled_dir("specs"))]
    for directory in user_specs_dirs():
        sources.extend((api, path, False) for api, path in spec_files(directory))
    return sources


class Catalog:
    """The operations of the bundled specs and the user's catalog directories."""

    def __init__(self, sources: Iterable[tuple[str, Path, bool]], *, index_cache: Path | None = None) -> None:
        self._sources = list(sources)
        self._index_cache = index_cache
        self._specs: dict[Path, Spec] = {}

    @classmethod
    def default(cls) -> Catalog:
        """The bundled specs, then the user's catalog directories (`$HTTPTASK_SPECS_PATH`)."""
        return cls(catalog_sources(), index_cache=cache_dir() / "index.json")

    @cached_property
    def entries(self) -> list[Entry]:
        cached = self._read_index()
        entries: list[Entry] = []
        fresh: dict[str, dict[str, object]] = {}
        for api, path, bundled in self._sources:
            key = _file_key(path)
            record = cached.get(str(path))
            if record is None or record.get("key") != key or record.get("api") != api:
                spec = self._load(api, path)
                record = {"key": key, "api": api, "entries": [_entry(op, path, bundled) for op in spec.operations]}
            fresh[str(path)] = record
            entries.extend(Entry(**{**e, "tags": tuple(e["tags"]), "bundled": bundled}) for e in record["entries"])  # type: ignore[arg-type, attr-defined]
        if fresh != cached:
            self._write_index(fresh)
        return entries

    @cached_property
    def _by_id(self) -> dict[str, Entry]:
        return {entry.id: entry for entry in self.entries}

    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    def entry(self, operation_id: str) -> Entry:
        found = self._by_id.get(operation_id)
        if found is None:
            raise UnknownOperation(operation_id, self.closest(operation_id))
        return found

    def operation(self, operation_id: str) -> Operation:
        """The full operation for a catalog id such as `chargebee.record_refund`."""
        entry = self.entry(operation_id)
        spec = self._load(entry.api, Path(entry.source))
        op = spec.operation(operation_id.split(".", 1)[1])
        if op is None:  # the file changed since the index was written
            raise UnknownOperation(operation_id, self.closest(operation_id))
        return op

    def closest(self, operation_id: str, limit: int = 3) -> list[str]:
        from rapidfuzz import fuzz, process

        matches = process.extract(operation_id, self.ids(), scorer=fuzz.WRatio, limit=limit, score_cutoff=60)
        return [match for match, _score, _index in matches]

    def search(self, query: str, limit: int | None = 20) -> list[SearchHit]:
        """Operations ranked by how well they match every word of the query, typos forgiven."""
        words = _WORD.findall(query.lower())
        if not words:
            return [SearchHit(entry, 0.0) for entry in self.entries[:limit]]
        expansions = {word: self._close_words(word) for word in words}
        hits = []
        for entry in self.entries:
            score = _score(entry, expansions)
            if score > 0:
                hits.append(SearchHit(entry, round(score, 3)))
        # Bundled, curated specs win ties over imported vendor documents.
        hits.sort(key=lambda hit: (-hit.score, not hit.entry.bundled, hit.entry.id))
        return hits[:limit] if limit else hits

    @cached_property
    def _vocabulary(self) -> list[str]:
        words: set[str] = set()
        for entry in self.entries:
            for text in _fields(entry).values():
                words.update(_WORD.findall(text))
        return sorted(words)

    def _close_words(self, word: str) -> dict[str, float]:
        """The word itself, plus vocabulary words within a typo of it, each with a similarity in 0..1."""
        from rapidfuzz import fuzz, process

        close = {word: 1.0}
        if len(word) >= 4:
            for match, similarity, _ in process.extract(
                word, self._vocabulary, scorer=fuzz.ratio, limit=8, score_cutoff=80
            ):
                close.setdefault(match, similarity / 100 * 0.8)
        return close

    def _load(self, api: str, path: Path) -> Spec:
        from .spec import load_spec

        if path not in self._specs:
            self._specs[path] = load_spec(path, api=api)
        return self._specs[path]

    def _read_index(self) -> dict[str, dict[str, object]]:
        if self._index_cache is None:
            return {}
        try:
            data = json.loads(self._index_cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if data.get("version") != _INDEX_VERSION:
            return {}
        files = data.get("files")
        return files if isinstance(files, dict) else {}

    def _write_index(self, files: dict[str, dict[str, object]]) -> None:
        if self._index_cache is None:
            return
        import tempfile

        # The index is only a cache: failing to write it must never fail a command.
        try:
            self._index_cache.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self._index_cache.parent, delete=False, suffix=".tmp", encoding="utf-8"
            ) as handle:
                json.dump({"version": _INDEX_VERSION, "files": files}, handle)
            os.replace(handle.name, self._index_cache)
        except OSError:
            pass


def _file_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _entry(op: Operation, path: Path, bundled: bool) -> dict[str, object]:
    return {
        "id": op.id,
        "api": op.api,
        "api_name": op.api_name,
        "method": op.method,
        "path": op.path,
        "summary": op.summary,
        "description": op.description[:2000],
        "tags": list(op.tags),
        "source": str(path),
    }


def _fields(entry: Entry) -> dict[str, str]:
    return {
        "operation_id": entry.id.replace("_", " ").replace("-", " "),
        "summary": entry.summary.lower(),
        "api": f"{entry.api} {entry.api_name}".lower(),
        "path": entry.path.lower(),
        "tags": " ".join(entry.tags).lower(),
        "description": entry.description.lower(),
    }


def _score(entry: Entry, expansions: dict[str, dict[str, float]]) -> float:
    """Sum over query words of the best weighted match; zero unless every word matches somewhere."""
    field_words = {name: set(_WORD.findall(text)) for name, text in _fields(entry).items()}
    total = 0.0
    for word, close in expansions.items():
        best = 0.0
        for name, words in field_words.items():
            weight = _WEIGHTS[name]
            for candidate, similarity in close.items():
                if candidate in words:
                    best = max(best, weight * similarity)
                elif len(candidate) >= 3 and any(w.startswith(candidate) for w in words):
                    best = max(best, weight * similarity * 0.7)  # "refund" finds "refunds"
        if best == 0.0:
            return 0.0
        total += best
    return total
