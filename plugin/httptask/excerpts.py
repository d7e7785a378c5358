"""Excerpts of a large OpenAPI document, cached on disk: one operation loads without the whole document.

A document is split into parts: each top-level key, each component (`/components/schemas/Pet`), each path
item's own keys (`/paths/~1pets`) and each of its operations (`/paths/~1pets/get`). For every operation the
cache keeps the parts its parse looked up: where it is written, the reference objects it was built from and
the schemas its schemas refer to, transitively (a `$ref` in an example is data, and reaches nothing). Loading
an operation reassembles those parts at their own pointers into a small document and parses that with
`parse_spec`, so its references and error pointers are those of the whole document; a part missing after all
makes that parse fail, and the catalog then parses the whole document.

The cache is an SQLite file per document, written whole to a temporary file and renamed into place (two
builders at once leave one complete file). It holds the document's file key (size, modification and change
times, inode): a cache whose key differs from the file's is never read, and one that cannot be read (a
checksum, a table or a JSON value is wrong) is reported as missing, so that the catalog parses the document
and writes it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import HttptaskError
from .spec import HTTP_METHODS, Operation, Spec, parse_spec

__all__ = ["MIN_BYTES", "load_operation", "write_excerpts"]

# Smaller documents parse whole about as fast as an excerpt loads (an 8 kB one in 1.4 ms, its excerpt in 1.6);
# a 100 kB document (the bundled Chargebee) takes 20-30 ms whole and 4.5 ms from its excerpt, which is a
# run's or a Test request's start-up.
MIN_BYTES = 16 * 1024
_VERSION = 1
_ABANDONED_SECONDS = 3600
# What parse_spec reads of every document besides its paths; any other top-level key only when referred to.
_HEAD = frozenset({"openapi", "swagger", "info", "servers", "security", "x-api-name", "jsonSchemaDialect"})

Tokens = tuple[str, ...]


def cache_file(cache: Path, path: Path, api: str) -> Path:
    """Where the excerpts of the document at `path`, catalogued as `api`, are kept."""
    name = hashlib.sha256(f"{api}\0{path.resolve()}".encode()).hexdigest()[:32]
    return cache / "excerpts" / f"{name}.sqlite"


def write_excerpts(document: dict[str, Any], spec: Spec, path: Path, key: Sequence[int], cache: Path) -> None:
    """Cache the excerpt of every operation of `spec`, parsed from `document` (the file at `path`, whose file
    key was `key` when it was read). A cache that cannot be written is left out: it is only a cache."""
    parts = _split(document)
    texts = [json.dumps(value, ensure_ascii=False) for _tokens, value in parts]
    where = {tokens: i for i, (tokens, _value) in enumerate(parts)}
    always = {i for i, (tokens, _value) in enumerate(parts) if _always(tokens)}
    always |= _parts_of(spec.references, where)
    schema_parts: dict[str, set[int]] = {}  # absolute URI of a schema -> its part, for every operation
    own = {op.operation_id: _own(op, where, schema_parts) for op in spec.operations}
    parsed_with = _parsed_with(spec, parts, where)
    excerpts = {op_id: sorted(_merged(op_id, own, parsed_with) | always) for op_id in own}
    target = cache_file(cache, path, spec.api)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(target.parent)
        handle, staged = tempfile.mkstemp(prefix=target.stem, suffix=".tmp", dir=target.parent)
        os.close(handle)
        try:
            _write_database(Path(staged), parts, texts, excerpts, meta=_meta(path, spec.api, key))
            os.replace(staged, target)
        finally:
            if os.path.exists(staged):
                os.unlink(staged)
    except (OSError, sqlite3.Error):
        pass


def load_operation(
    path: Path, api: str, operation_id: str, key: Sequence[int], cache: Path
) -> Operation | None:
    """The operation `operation_id` of the document at `path` (file key `key`) from its cached excerpt; None
    when there is no cache for this very file, or it cannot be read (the caller parses the document)."""
    target = cache_file(cache, path, api)
    if not target.exists():
        return None
    try:
        connection = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        document = _excerpt(connection, _meta(path, api, key), operation_id)
    except (sqlite3.Error, ValueError, TypeError, KeyError):
        return None  # corrupt: the caller parses the document and writes the cache again
    finally:
        connection.close()
    if document is None:
        return None
    try:
        spec = parse_spec(document, api=api, source=str(path))
    except HttptaskError:
        return None  # the whole document loaded; let it say what is wrong, if anything
    return spec.operation(operation_id)


def _remove_abandoned(directory: Path) -> None:
    """Remove what builders killed before their rename left: no build takes an hour."""
    for staged in directory.glob("*.tmp*"):  # and any journal SQLite left beside one
        with contextlib.suppress(OSError):
            if time.time() - staged.stat().st_mtime > _ABANDONED_SECONDS:
                staged.unlink()


def _meta(path: Path, api: str, key: Sequence[int]) -> dict[str, str]:
    return {"version": str(_VERSION), "source": str(path.resolve()), "api": api, "key": json.dumps(list(key))}


def _split(document: dict[str, Any]) -> list[tuple[Tokens, Any]]:
    """The document's parts, in document order, each with the pointer tokens where it sits."""
    parts: list[tuple[Tokens, Any]] = []
    for top, value in document.items():
        if top == "paths" and isinstance(value, dict):
            for path, item in value.items():
                if not isinstance(item, dict):
                    parts.append(((top, path), item))
                    continue
                parts.append(((top, path), {k: v for k, v in item.items() if k not in HTTP_METHODS}))
                parts.extend(((top, path, method), item[method]) for method in HTTP_METHODS if method in item)
        elif top == "components" and isinstance(value, dict):
            for kind, group in value.items():
                if isinstance(group, dict):
                    parts.extend(((top, kind, name), entry) for name, entry in group.items())
                else:
                    parts.append(((top, kind), group))
        else:
            parts.append(((top,), value))
    return parts


def _always(tokens: Tokens) -> bool:
    """Parts every operation needs: the head, and every security scheme (parse_spec reads them all)."""
    return (len(tokens) == 1 and tokens[0] in _HEAD) or tokens[:2] == ("components", "securitySchemes")


def _own(op: Operation, where: dict[Tokens, int], schema_parts: dict[str, set[int]]) -> set[int]:
    """The parts one operation's parse reads: where it is written, the reference objects it was built from,
    and every schema its schemas refer to."""
    found = {where.get(("paths", op.path)), where.get(("paths", op.path, op.method.lower()))}
    parts = {i for i in found if i is not None} | _parts_of(op.references, where)
    schemas = op.schemas
    if schemas is not None:
        for uri in schemas.reached(_linked_schemas(op)):
            known = schema_parts.get(uri)
            if known is None:
                known = schema_parts[uri] = _parts_at(_tokens(schemas.pointer(uri)), where)
            parts |= known
    return parts


def _linked_schemas(op: Operation) -> list[Any]:
    media = [m for r in op.responses for m in r.media_types]
    media += op.request_body.media_types if op.request_body is not None else ()
    return [p.linked_schema for p in op.parameters] + [m.linked_schema for m in media]


def _parsed_with(
    spec: Spec, parts: list[tuple[Tokens, Any]], where: dict[Tokens, int]
) -> dict[int, set[str]]:
    """For a part that is an operation, or a path item that is a `$ref` (whose target holds operations): the
    operations that a document holding it makes parse_spec parse, whose parts it must then hold too."""
    parsed: dict[int, set[str]] = {}
    for op in spec.operations:
        method = where.get(("paths", op.path, op.method.lower()))
        if method is not None:
            parsed.setdefault(method, set()).add(op.operation_id)
        item = where.get(("paths", op.path))
        if item is not None and isinstance(parts[item][1], dict) and "$ref" in parts[item][1]:
            parsed.setdefault(item, set()).add(op.operation_id)
    return parsed


def _merged(op_id: str, own: dict[str, set[int]], parsed_with: dict[int, set[str]]) -> set[int]:
    found = set(own[op_id])
    merged = {op_id}
    pending = list(found)
    while pending:
        for other in parsed_with.get(pending.pop(), set()) - merged:
            merged.add(other)
            pending.extend(own[other] - found)
            found |= own[other]
    return found


def _parts_of(pointers: Iterable[str], where: dict[Tokens, int]) -> set[int]:
    found: set[int] = set()
    for pointer in pointers:
        found |= _parts_at(_tokens(pointer), where)
    return found


def _tokens(pointer: str) -> Tokens:
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:])


def _parts_at(tokens: Tokens, where: dict[Tokens, int]) -> set[int]:
    """The parts that hold what a pointer names: the part it falls in (a whole path item with its
    operations), or every part inside it when it names a container of parts (`/components/schemas`)."""
    for length in range(min(len(tokens), 3), 0, -1):
        found = where.get(tokens[:length])
        if found is not None:
            if tokens[0] == "paths" and len(tokens) == 2:
                return {found, *(where[(*tokens, m)] for m in HTTP_METHODS if (*tokens, m) in where)}
            return {found}
    return {i for t, i in where.items() if t[: len(tokens)] == tokens}


def _write_database(
    file: Path, parts: list[tuple[Tokens, Any]], texts: list[str], excerpts: dict[str, list[int]],
    meta: dict[str, str],
) -> None:
    connection = sqlite3.connect(file)
    try:
        # Nobody reads the file until it is whole and renamed: no rollback journal; a failed build is removed.
        connection.execute("PRAGMA journal_mode = OFF")
        with connection:
            connection.executescript(
                "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE parts (id INTEGER PRIMARY KEY, tokens TEXT NOT NULL, body TEXT NOT NULL,"
                " crc INTEGER NOT NULL);"
                "CREATE TABLE operations (id TEXT PRIMARY KEY, parts TEXT NOT NULL, crc INTEGER NOT NULL);"
            )
            connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            connection.executemany(
                "INSERT INTO parts VALUES (?, ?, ?, ?)",
                (
                    (i, json.dumps(tokens, ensure_ascii=False), text, _crc(text))
                    for i, ((tokens, _value), text) in enumerate(zip(parts, texts, strict=True))
                ),
            )
            rows = ((op_id, json.dumps(ids), _crc(json.dumps(ids))) for op_id, ids in excerpts.items())
            connection.executemany("INSERT INTO operations VALUES (?, ?, ?)", rows)
    finally:
        connection.close()


def _excerpt(
    connection: sqlite3.Connection, meta: dict[str, str], operation_id: str
) -> dict[str, Any] | None:
    """The small document of one operation's parts; None when the cache is for another file or version, or
    does not know the operation. ValueError when a checksum or a value is wrong."""
    if dict(connection.execute("SELECT name, value FROM meta").fetchall()) != meta:
        return None
    row = connection.execute("SELECT parts, crc FROM operations WHERE id = ?", (operation_id,)).fetchone()
    if row is None:
        return None
    ids = json.loads(_checked(row[0], row[1]))
    rows = connection.execute(
        "SELECT id, tokens, body, crc FROM parts WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (json.dumps(ids),),
    ).fetchall()
    if len(rows) != len(ids):
        raise ValueError("an excerpt names a part the cache does not hold")
    document: dict[str, Any] = {}
    for _id, tokens, body, crc in rows:
        _place(document, tuple(json.loads(tokens)), json.loads(_checked(body, crc)))
    return document


def _checked(text: str, crc: int) -> str:
    if _crc(text) != crc:
        raise ValueError("a checksum of the cache does not match")
    return text


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _place(document: dict[str, Any], tokens: Tokens, value: Any) -> None:
    """Put a part back where it sits in the document; a path item's own keys and its operations merge."""
    *parents, last = tokens
    node = document
    for token in parents:
        node = node.setdefault(token, {})
    if tokens[0] == "paths" and len(tokens) == 2 and isinstance(value, dict):
        node.setdefault(last, {}).update(value)
    else:
        node[last] = value
