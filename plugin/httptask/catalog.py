"""Every operation of every spec, bundled or imported: listed from a cached index, looked up, and searched.

A spec file `DIR/NAME.yaml|yml|json` is the API `NAME`; a folder `DIR/NAME/` of spec files is one API `NAME`
made of several documents (an imported vendor API split into modules). The index of light entries is
cached on disk per file (keyed by size, modification and change times and inode) so that listing and searching
parse no spec at all; one operation of a large document loads from its cached excerpt (see excerpts.py).
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UnknownOperation
from .resources import bundled_dir, cache_dir, user_specs_dirs

if TYPE_CHECKING:  # a warm index parses no spec, so the spec loader (and yaml) is imported only on a miss
    from .spec import Operation, Spec

__all__ = ["SPEC_SUFFIXES", "Catalog", "Entry", "SearchHit", "catalog_sources", "index_specs", "spec_files"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_INDEX_VERSION = 2
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
        self._operations: dict[str, Operation] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The editor hands its catalog to each worker it starts: the sources and the index, not loaded specs.
        state = dict(self.__dict__)
        state.update(_specs={}, _operations={})
        return state

    @classmethod
    def of(cls, operations: Mapping[str, Operation]) -> Catalog:
        """A catalog of exactly these operations by catalog id, and no spec: what a `--workers` process is
        handed."""
        catalog = cls([])
        catalog._operations.update(operations)
        return catalog

    @classmethod
    def default(cls) -> Catalog:
        """The bundled specs, then the user's catalog directories (`$HTTPTASK_SPECS_PATH`)."""
        return cls(catalog_sources(), index_cache=cache_dir() / "index.json")

    @cached_property
    def entries(self) -> list[Entry]:
        cached = _read_index(self._index_cache)
        entries: list[Entry] = []
        fresh: dict[str, dict[str, object]] = {}
        for api, path, bundled in self._sources:
            key = _file_key(path)
            record = cached.get(str(path))
            if record is None or record.get("key") != key or record.get("api") != api:
                record = _record(self._load(api, path), path, key)
            fresh[str(path)] = record
            rows: list[dict[str, object]] = record["entries"]  # type: ignore[assignment]
            for row in rows:
                entries.append(Entry(**{**row, "tags": tuple(row["tags"]), "bundled": bundled}))  # type: ignore[arg-type]
        if any(cached.get(path) != record for path, record in fresh.items()):
            _write_index(self._index_cache, {**_others(cached, fresh), **fresh})
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
        op = self._operations.get(operation_id)
        if op is None:
            entry = self.entry(operation_id)
            path, name = Path(entry.source), operation_id.split(".", 1)[1]
            op = self._excerpt(entry.api, path, name)
            if op is None:
                op = self._load(entry.api, path).operation(name)
            if op is None:  # the file changed since the index was written
                raise UnknownOperation(operation_id, self.closest(operation_id))
            self._operations[operation_id] = op
        return op

    def operations(self) -> list[Operation]:
        """Every operation, in the catalog's order, each document parsed whole once (what a sandbox serves:
        excerpt by excerpt, a large document's would take ten times as long)."""
        found = []
        for entry in self.entries:
            op = self._operations.get(entry.id)
            if op is None:
                op = self._load(entry.api, Path(entry.source)).operation(entry.id.split(".", 1)[1])
                if op is None:  # the file changed since the index was written
                    raise UnknownOperation(entry.id, [])
                self._operations[entry.id] = op
            found.append(op)
        return found

    def warm(self) -> int:
        """Read the index and build the search's word index now (the editor does, while it starts); returns
        the number of words."""
        return len(self._index.vocabulary)

    def closest(self, operation_id: str, limit: int = 3) -> list[str]:
        from rapidfuzz import fuzz, process

        matches = process.extract(operation_id, self.ids(), scorer=fuzz.WRatio, limit=limit, score_cutoff=60)
        return [match for match, _score, _index in matches]

    def search(self, query: str, limit: int | None = 20) -> list[SearchHit]:
        """Operations ranked by how well they match every word of the query, typos forgiven."""
        words = _WORD.findall(query.lower())
        if not words:
            return [SearchHit(entry, 0.0) for entry in self.entries[:limit]]
        totals: dict[int, float] | None = None
        for word in dict.fromkeys(words):
            best = self._index.best(self._close_words(word))
            # An operation must match every word of the query somewhere.
            totals = best if totals is None else {i: t + best[i] for i, t in totals.items() if i in best}
        hits = [SearchHit(self.entries[i], round(score, 3)) for i, score in (totals or {}).items()]
        # Bundled, curated specs win ties over imported vendor documents.
        hits.sort(key=lambda hit: (-hit.score, not hit.entry.bundled, hit.entry.id))
        return hits[:limit] if limit else hits

    @cached_property
    def _index(self) -> _WordIndex:
        return _WordIndex(self.entries)

    def _close_words(self, word: str) -> dict[str, float]:
        """The word itself, plus vocabulary words within a typo of it, each with a similarity in 0..1."""
        from rapidfuzz import fuzz, process

        close = {word: 1.0}
        if len(word) >= 4:
            for match, similarity, _ in process.extract(
                word, self._index.vocabulary, scorer=fuzz.ratio, limit=8, score_cutoff=80
            ):
                close.setdefault(match, similarity / 100 * 0.8)
        return close

    def _excerpt(self, api: str, path: Path, name: str) -> Operation | None:
        """The operation from the cached excerpt of its large document; None when it must be parsed whole."""
        if self._index_cache is None or path in self._specs:
            return None
        try:
            key = _file_key(path)
        except OSError:
            return None  # loading the document says what is wrong
        if key[0] < _excerpt_bytes():
            return None
        from .excerpts import load_operation

        return load_operation(path, api, name, key, self._index_cache.parent)

    def _load(self, api: str, path: Path) -> Spec:
        if path not in self._specs:
            self._specs[path] = _load_spec(path, api, self._index_cache)
        return self._specs[path]


def _excerpt_bytes() -> int:
    from .excerpts import MIN_BYTES

    return MIN_BYTES


def _load_spec(path: Path, api: str, index_cache: Path | None) -> Spec:
    """Parse a whole document; a large one also gets its excerpts cached, when it did not change meanwhile."""
    from .spec import load_document, parse_spec

    key = _file_key(path) if path.exists() else None
    document = load_document(path)
    spec = parse_spec(document, api=api, source=str(path))
    if index_cache is not None and key is not None and key[0] >= _excerpt_bytes() and key == _file_key(path):
        from .excerpts import write_excerpts

        write_excerpts(document, spec, path, key, index_cache.parent)
    return spec


def index_specs(specs: Iterable[tuple[Spec, Path, dict[str, Any]]], index_cache: Path | None = None) -> None:
    """Put the operations of specs just loaded into the index cache, each under the catalog file it was
    written to, so that the next listing or search parses none of them; and the excerpts of large ones, so
    that loading one operation parses only what it needs. Each spec comes with the document it was parsed
    from, exactly as written to its file."""
    index_cache = index_cache or cache_dir() / "index.json"
    files = _read_index(index_cache)
    for spec, path, document in specs:
        key = _file_key(path)
        files[str(path)] = _record(spec, path, key)
        if key[0] >= _excerpt_bytes():
            from .excerpts import write_excerpts

            write_excerpts(document, spec, path, key, index_cache.parent)
    _write_index(index_cache, files)


def _record(spec: Spec, path: Path, key: list[int]) -> dict[str, object]:
    return {"key": key, "api": spec.api, "entries": [_entry(op, path) for op in spec.operations]}


def _read_index(index_cache: Path | None) -> dict[str, dict[str, object]]:
    if index_cache is None:
        return {}
    try:
        data = json.loads(index_cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _others(cached: dict[str, dict[str, object]], fresh: dict[str, dict[str, object]]) -> dict[str, Any]:
    """The cached records of files other than this catalog's that still exist: another checkout or virtualenv
    of httptask (another catalog directory) shares the index, and dropping its records would make each of them
    parse every spec again on its next start."""
    return {path: record for path, record in cached.items() if path not in fresh and Path(path).is_file()}


def _write_index(index_cache: Path | None, files: dict[str, dict[str, object]]) -> None:
    if index_cache is None:
        return
    import tempfile

    # The index is only a cache: failing to write it must never fail a command.
    try:
        index_cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=index_cache.parent, delete=False, suffix=".tmp", encoding="utf-8"
        ) as handle:
            json.dump({"version": _INDEX_VERSION, "files": files}, handle)
        os.replace(handle.name, index_cache)
    except OSError:
        pass


def _file_key(path: Path) -> list[int]:
    """What says a file is the one cached: its change time moves on any write, even one that restores the
    modification time, and its inode changes when another file is renamed over it."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _entry(op: Operation, path: Path) -> dict[str, object]:
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


class _WordIndex:
    """Which operations have which word in which field, built once per catalog, so that a search looks up
    its few words instead of reading every operation."""

    def __init__(self, entries: list[Entry]) -> None:
        # word -> {entry index: the highest weight of a field of that entry that has the word}
        self.postings: dict[str, dict[int, float]] = {}
        for i, entry in enumerate(entries):
            weights: dict[str, float] = {}
            # Lightest field first, so that a word's heaviest field is the one that stays.
            for name, text in sorted(_fields(entry).items(), key=lambda item: _WEIGHTS[item[0]]):
                weights.update(dict.fromkeys(_WORD.findall(text), _WEIGHTS[name]))
            for word, weight in weights.items():
                self.postings.setdefault(word, {})[i] = weight
        self.vocabulary = sorted(self.postings)

    def best(self, close: dict[str, float]) -> dict[int, float]:
        """Per operation, the best weighted match of any of the close words: a word itself, or a word it
        begins (at 0.7: "refund" finds "refunds")."""
        best: dict[int, float] = {}
        for candidate, similarity in close.items():
            matches = [(candidate, similarity)]
            if len(candidate) >= 3:
                at = bisect.bisect_right(self.vocabulary, candidate)
                while at < len(self.vocabulary) and self.vocabulary[at].startswith(candidate):
                    matches.append((self.vocabulary[at], similarity * 0.7))
                    at += 1
            for word, factor in matches:
                for i, weight in self.postings.get(word, {}).items():
                    if weight * factor > best.get(i, 0.0):
                        best[i] = weight * factor
        return best
