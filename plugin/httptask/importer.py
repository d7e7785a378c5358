"""Check OpenAPI documents and import vendor documents into the user's catalog directory.

Only what httptask itself cannot load refuses an import. openapi-spec-validator's strict check is not part of
an import: it dominated the import of real vendor documents and never finished (or overflowed the stack) on
large ones, so it runs in `httptask specs check`, which reports its findings with their JSON pointers. An
import is written to a temporary folder first and moved into place whole, so nothing half-written is ever
catalogued, and its operations go straight into the catalog's index cache.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import catalog_sources, index_specs, spec_files
from .errors import HttptaskError, SpecError, UsageError
from .resources import bundled_dir
from .schemas import escape
from .spec import HTTP_METHODS, Spec, derive_operation_id, load_document, parse_spec

__all__ = ["CheckResult", "Finding", "ImportResult", "check_document", "check_specs", "import_specs"]

_API_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_OPERATION_ID = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_FINDINGS = 50
# Counting every finding of a large vendor document takes seconds; past this many the count is "at least".
_MAX_COUNTED = 500


@dataclass(frozen=True)
class Finding:
    """One openapi-spec-validator complaint, at a JSON pointer."""

    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}#{self.pointer}: {self.message}"


@dataclass
class ImportResult:
    api: str
    written: list[Path]
    operations: int
    renamed: dict[str, str] = field(default_factory=dict)  # an operationId a task cannot name -> its new one


def check_document(document: dict[str, Any], source: str) -> tuple[list[Finding], int]:
    """Strict OpenAPI findings: the first fifty, and how many there are (counted up to `_MAX_COUNTED`)."""
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

    version = str(document.get("openapi", ""))
    validator_class = OpenAPIV31SpecValidator if version.startswith("3.1") else OpenAPIV30SpecValidator
    findings: list[Finding] = []
    count = 0
    try:
        for error in validator_class(document).iter_errors():
            count += 1
            if len(findings) < _MAX_FINDINGS:
                pointer = "/" + "/".join(escape(str(p)) for p in error.absolute_path)
                # The jsonschema-rs backend appends "Failed validating ... On instance ..." paragraphs.
                message = error.message.split("\n\n", 1)[0]
                findings.append(Finding(source, pointer, " ".join(message.split())[:300]))
            if count >= _MAX_COUNTED:
                break
    except RecursionError:
        # openapi-spec-validator follows references by recursion; deeply nested schemas overflow it.
        count += 1
        message = ("the strict check could not finish: its validator overflowed the stack following this "
                   "document's references (httptask loads the document all the same)")
        findings.append(Finding(source, "", message))
    return findings, count


@dataclass(frozen=True)
class CheckResult:
    """One file as `httptask specs check` reports it: its operations and strict findings, or why it cannot
    be loaded at all (`error`)."""

    path: Path
    operations: int = 0
    findings: list[Finding] = field(default_factory=list)
    count: int = 0
    error: HttptaskError | None = None


def check_specs(files: Iterable[tuple[str, Path]] | None = None) -> Iterator[CheckResult]:
    """Load and strictly check each (api, file), by default every spec of the catalog; a file that cannot be
    loaded is reported and the others are still checked."""
    for api, path in files if files is not None else ((a, p) for a, p, _ in catalog_sources()):
        try:
            document = load_document(path)
            spec = parse_spec(document, api=api, source=str(path))
        except HttptaskError as exc:
            yield CheckResult(path, error=exc)
            continue
        findings, count = check_document(document, str(path))
        yield CheckResult(path, len(spec.operations), findings, count)


def import_specs(
    files: list[Path], *, target: Path, name: str | None = None, include: list[str] | None = None,
    replace: bool = False,
) -> ImportResult:
    """Import one document as API `name` (default: its stem, dashed), or several as the parts of one API."""
    if not files:
        raise UsageError("Name at least one OpenAPI file to import.")
    # A file name such as chargebee_api_v1_spec.json makes a usable default: chargebee-api-v1-spec.
    api = name or re.sub(r"[^a-z0-9]+", "-", files[0].stem.lower()).strip("-")
    if not _API_NAME.match(api):
        raise UsageError(
            f"'{api}' cannot be an API name: use lower-case letters, digits and dashes, "
            "e.g. --name zoho-vendor."
        )
    bundled = {bundled_api for bundled_api, _ in spec_files(bundled_dir("specs"))}
    if api in bundled:
        raise UsageError(
            f"'{api}' is a bundled API; choose another name with --name, e.g. --name {api}-vendor."
        )
    existing = [path for path in (target / api, *(target / f"{api}{s}" for s in (".json", ".yaml", ".yml")))
                if path.exists()]
    if existing and not replace:
        raise UsageError(
            f"The catalog already has an API '{api}' ({existing[0]}); add --replace to overwrite it."
        )

    documents = []
    taken: dict[str, str] = {}  # operationId -> the file that uses it
    result = ImportResult(api=api, written=[], operations=0)
    for file in files:
        document = load_document(file)
        _name_operations(document, taken, str(file), result.renamed)
        if include:
            _keep_only(document, include)
        spec = parse_spec(document, api=api, source=str(file))  # raises SpecError for what we cannot load
        result.operations += len(spec.operations)
        if include and not spec.operations:
            continue  # --include left nothing of this part: an empty file would only clutter the catalog
        documents.append((file, document, spec))
    if include and result.operations == 0:
        raise UsageError(f"No operation matches --include {' '.join(include)}; nothing was imported.")
    _write_atomically(documents, target=target, api=api, existing=existing, result=result)
    return result


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found: list[tuple[str, str, dict[str, Any]]] = []
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return found  # parse_spec says what is wrong with it
    for path, item in paths.items():
        if isinstance(item, dict):
            found.extend((path, m, item[m]) for m in HTTP_METHODS if isinstance(item.get(m), dict))
    return found


def _name_operations(
    document: dict[str, Any], taken: dict[str, str], source: str, renamed: dict[str, str]
) -> None:
    """Give every operation an operationId unique in the API that a task can name (`renamed` gets the ones
    changed for that), deriving missing ones from the summary."""
    written = {str(op.get("operationId")) for _, _, op in _operations(document) if op.get("operationId")}
    for path, method, operation in _operations(document):
        given = operation.get("operationId")
        if isinstance(given, list | dict):
            raise SpecError(
                f"the operationId must be a string, found {json.dumps(given, default=str)[:60]}.",
                file=source,
                pointer=f"/paths/{escape(path)}/{method}/operationId",
            )
        if given and not _OPERATION_ID.fullmatch(str(given)):
            # A task names its operation as API.operationId in these characters ('réfund €' cannot be named)
            ascii_id = unicodedata.normalize("NFKD", str(given)).encode("ascii", "ignore").decode()
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_id).strip("_.") or derive_operation_id(method, path)
            while safe in taken or safe in written:
                safe += "_"
            renamed[str(given)] = operation["operationId"] = given = safe
        if given:
            # A clash inside one document is left to parse_spec, whose message names both operations.
            if taken.get(given, source) != source:
                raise SpecError(
                    f"the operationId '{given}' is already used by another imported document of this API.",
                    file=source,
                    pointer=f"/paths/{escape(path)}/{method}/operationId",
                )
            taken[given] = source
            continue
        candidate = derive_operation_id(method, path, str(operation.get("summary") or ""))
        if candidate in taken or candidate in written:
            candidate = derive_operation_id(method, path)
        while candidate in taken or candidate in written:
            candidate += "_"
        operation["operationId"] = candidate
        taken[candidate] = source


def _keep_only(document: dict[str, Any], patterns: list[str]) -> None:
    """Drop operations whose operationId, path and `METHOD path` match none of the glob patterns."""
    for path, method, operation in _operations(document):
        names = (str(operation.get("operationId", "")), path, f"{method.upper()} {path}")
        if not any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns):
            del document["paths"][path][method]
    document["paths"] = {
        path: item for path, item in (document.get("paths") or {}).items()
        if any(method in item for method in HTTP_METHODS)
    }


def _write_atomically(
    documents: list[tuple[Path, dict[str, Any], Spec]], *, target: Path, api: str, existing: list[Path],
    result: ImportResult,
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".import-{api}-", dir=target))
    try:
        if len(documents) == 1:
            staged = staging / f"{api}.json"
            staged.write_text(json.dumps(documents[0][1], ensure_ascii=False), encoding="utf-8")
            final = target / f"{api}.json"
            names = [final]
        else:
            staged = staging / api
            staged.mkdir()
            for file, document, _spec in documents:
                text = json.dumps(document, ensure_ascii=False)
                (staged / f"{file.stem}.json").write_text(text, encoding="utf-8")
            final = target / api
            names = [final / f"{file.stem}.json" for file, _document, _spec in documents]
        # The old copy moves aside into the staging folder, which is removed either way.
        for old in existing:
            old.rename(staging / f"replaced-{old.name}")
        staged.rename(final)
        result.written = sorted(final.iterdir()) if final.is_dir() else [final]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index_specs(
        (spec, name, document) for (_file, document, spec), name in zip(documents, names, strict=True)
    )
