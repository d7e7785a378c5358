"""Load OpenAPI 3.0 and 3.1 documents into frozen models: reference objects resolved, schemas linked.

The models are named after OpenAPI's own terms. A parameter's or media type's schema is kept twice over:
`linked_schema`, normalised JSON Schema 2020-12 whose `$ref`s stay references into the document's `Schemas`
(what validation compiles), and `schema`, a bounded view with the references expanded (what pages, forms and
samples read), made the first time it is asked for.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import SourceError, SpecError
from .limits import MAX_SPEC_BYTES, LimitExceeded, read_capped
from .schemas import Schemas, escape, local_pointer, lookup, normalise_schema
from .yamlsource import parse_document

__all__ = [
    "HTTP_METHODS",
    "MediaType",
    "Operation",
    "Parameter",
    "RequestBody",
    "Response",
    "SecurityScheme",
    "Server",
    "ServerVariable",
    "Spec",
    "derive_operation_id",
    "load_document",
    "load_spec",
    "normalise_schema",
    "parse_spec",
]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = dict[str, Any]


@dataclass(frozen=True)
class ServerVariable:
    name: str
    default: str
    enum: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Server:
    url: str
    description: str = ""
    variables: tuple[ServerVariable, ...] = ()

    def variable(self, name: str) -> ServerVariable | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path, query, header or cookie (OpenAPI's `in`)
    required: bool
    linked_schema: JSON
    description: str = ""
    deprecated: bool = False
    style: str | None = None
    explode: bool | None = None
    schemas: Schemas | None = field(default=None, compare=False, repr=False)

    @cached_property
    def schema(self) -> JSON:
        """The schema with its references expanded to a bounded depth, for pages, forms and samples."""
        return _view(self.linked_schema, self.schemas)


@dataclass(frozen=True)
class MediaType:
    content_type: str
    linked_schema: JSON
    example: Any = None
    form_style: str = "brackets"  # x-form-style: how nested form fields are written
    schemas: Schemas | None = field(default=None, compare=False, repr=False)

    @cached_property
    def schema(self) -> JSON:
        """The schema with its references expanded to a bounded depth, for pages, forms and samples."""
        return _view(self.linked_schema, self.schemas)


def _view(schema: JSON, schemas: Schemas | None) -> JSON:
    view = schemas.view(schema) if schemas is not None else schema
    return view if isinstance(view, dict) else {}


@dataclass(frozen=True)
class RequestBody:
    required: bool
    media_types: tuple[MediaType, ...]
    description: str = ""

    @property
    def default(self) -> MediaType:
        return self.media_types[0]

    def media_type(self, content_type: str | None) -> MediaType | None:
        if content_type is None:
            return self.default
        wanted = content_type.split(";")[0].strip().lower()
        return next((m for m in self.media_types if m.content_type.lower() == wanted), None)


@dataclass(frozen=True)
class Response:
    status: str
    description: str
    media_types: tuple[MediaType, ...] = ()


@dataclass(frozen=True)
class SecurityScheme:
    name: str
    type: str  # http, apiKey, oauth2, openIdConnect, mutualTLS
    scheme: str = ""  # for http: basic or bearer
    location: str = ""  # for apiKey: header, query or cookie
    parameter_name: str = ""  # for apiKey: the header or query name
    prefix: str = ""  # x-auth-prefix, e.g. "Zoho-oauthtoken "
    description: str = ""


@dataclass(frozen=True)
class Operation:
    api: str
    operation_id: str
    method: str
    path: str
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    servers: tuple[Server, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    request_body: RequestBody | None = None
    responses: tuple[Response, ...] = ()
    # Each inner tuple is one way to authenticate; all its schemes apply together.
    security: tuple[tuple[SecurityScheme, ...], ...] = ()
    idempotency_header: str | None = None
    seed_notes: tuple[str, ...] = ()
    deprecated: bool = False
    api_name: str = ""
    # `x-reconcile`, as written: the read that settles a request of unknown outcome (see reconcile.py).
    reconcile: dict[str, Any] | None = None
    # `x-amount`, as written: where the request carries money (see plan.py).
    amount: dict[str, Any] | None = None
    # The document's schemas, which the `$ref`s of `linked_schema`s name; None when nothing refers to them.
    schemas: Schemas | None = field(default=None, compare=False, repr=False)
    # The JSON pointers of the reference objects (parameters, responses, path items...) it was built from.
    references: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.api}.{self.operation_id}"

    def parameters_in(self, location: str) -> tuple[Parameter, ...]:
        return self._by_location.get(location, ())

    @cached_property
    def _by_location(self) -> dict[str, tuple[Parameter, ...]]:
        """The parameters by location, sorted out once: every request of a run asks for its headers."""
        found: dict[str, list[Parameter]] = {}
        for parameter in self.parameters:
            found.setdefault(parameter.location, []).append(parameter)
        return {location: tuple(parameters) for location, parameters in found.items()}


@dataclass(frozen=True)
class Spec:
    api: str
    title: str
    version: str
    source: str
    description: str = ""
    api_name: str = ""
    operations: tuple[Operation, ...] = field(default=())
    # The JSON pointers of the reference objects every operation needs (the security schemes').
    references: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def operation(self, operation_id: str) -> Operation | None:
        return next((op for op in self.operations if op.operation_id == operation_id), None)


def load_document(path: Path) -> JSON:
    """Parse a JSON or YAML file into a dict, with errors that name the file and line."""
    try:
        text = read_capped(path, MAX_SPEC_BYTES)
    except OSError as exc:
        raise SpecError(f"cannot read the file ({exc.strerror}).", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise SpecError("is not UTF-8 text; save it as UTF-8 and try again.", file=str(path)) from exc
    except LimitExceeded as exc:
        raise SpecError(f"{exc}.", file=str(path)) from None
    try:
        with _collection_paused():
            document = parse_document(text, str(path), is_json=path.suffix.lower() == ".json")
    except SourceError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        raise SpecError(f"{where}invalid {exc.syntax}: {exc.problem}.", file=str(path)) from exc
    if not isinstance(document, dict):
        raise SpecError("is not an OpenAPI document: the top level must be a mapping.", file=str(path))
    return document


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document's objects are made: it would otherwise walk them
    all again and again, which tripled the time to load a 6 MB document (they hold no cycles to collect)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def load_spec(path: Path, api: str | None = None) -> Spec:
    """Load the OpenAPI document at `path`; the api name defaults to the file's stem."""
    return parse_spec(load_document(path), api=api or path.stem, source=str(path))


def check_version(document: JSON, source: str) -> None:
    """Refuse anything but OpenAPI 3.0 or 3.1 in one line, before any of the document is read."""
    if "swagger" in document and "openapi" not in document:
        raise SpecError(
            f"this is a Swagger {str(document['swagger'])!r} document; httptask reads OpenAPI 3.0 and 3.1: "
            "convert it to OpenAPI 3 first (e.g. with swagger2openapi), then import the result.",
            file=source,
            pointer="/swagger",
        )
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[01]\.\d+", version):
        found = f"'{version}'" if version else "no 'openapi' field"
        message = f"expected an OpenAPI 3.0 or 3.1 document, found {found}."
        raise SpecError(message, file=source, pointer="/openapi")


def parse_spec(document: JSON, *, api: str, source: str) -> Spec:
    """The operations of an OpenAPI document; `SpecError` names the pointer of what cannot be loaded."""
    check_version(document, source)
    with _collection_paused():
        return _parse(document, api=api, source=source)


def _parse(document: JSON, *, api: str, source: str) -> Spec:
    resolver = _Resolver(document, source)
    info = _mapping(document.get("info") or {}, resolver, "/info", "'info'")
    schemes = _security_schemes(resolver)
    top_servers = _servers(document.get("servers"), resolver, "/servers")
    top_security = document.get("security")
    shared = frozenset(resolver.trail)
    operations = []
    for path, path_item, pointer, item_trail in _path_items(resolver):
        for method in HTTP_METHODS:
            raw = path_item.get(method)
            if raw is None:
                continue
            op_pointer = f"{pointer}/{method}"
            resolver.trail = set(item_trail)
            op = _operation(
                    resolver,
                    api=api,
                    api_name=str(document.get("x-api-name") or info.get("title") or api),
                    method=method,
                    path=path,
                    raw=_mapping(resolver.deref(raw, op_pointer), resolver, op_pointer, "an operation"),
                    path_item=path_item,
                    pointer=op_pointer,
                    servers=top_servers,
                    schemes=schemes,
                    default_security=top_security,
                )
            operations.append(dataclasses.replace(op, references=frozenset(resolver.trail)))
    _check_unique_ids(operations, source)
    resolver.schemas.close()
    return Spec(
        api=api,
        title=str(info.get("title", api)),
        version=str(info.get("version", "")),
        source=source,
        description=str(info.get("description", "")),
        api_name=str(document.get("x-api-name") or info.get("title") or api),
        operations=tuple(operations),
        references=shared,
    )


_PATH_VARIABLE = re.compile(r"\{([^{}]+)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ANY_SCALAR = {"type": ["string", "integer", "number"]}  # the schema of a path variable the document omits


def derive_operation_id(method: str, path: str, summary: str = "") -> str:
    """An operationId for documents that have none: the summary in snake case, else method and path."""
    words = re.findall(r"[A-Za-z0-9]+", summary) or [method, *re.findall(r"[A-Za-z0-9]+", path)]
    return "_".join(word.lower() for word in words)



class _Resolver:
    """Resolves the local reference objects of one document (parameters, responses...); its `schemas` link
    the schemas."""

    def __init__(self, document: JSON, source: str) -> None:
        self.document = document
        self.source = source
        self.schemas = Schemas(document, source)
        self.trail: set[str] = set()  # the pointers looked up since it was last emptied

    def lookup(self, ref: str, pointer: str) -> Any:
        found = lookup(self.document, ref, source=self.source, at=pointer)
        self.trail.add(local_pointer(ref, source=self.source, at=pointer))
        return found

    def deref(self, node: Any, pointer: str) -> Any:
        """Follow a top-level `$ref` chain; sibling keys override the target (vendors put inline copies
        there)."""
        seen = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise SpecError(f"the reference '{ref}' refers to itself.", file=self.source, pointer=pointer)
            seen.add(ref)
            target = self.lookup(ref, pointer)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **siblings} if isinstance(target, dict) and siblings else target
        return node


def _mapping(node: Any, resolver: _Resolver, pointer: str, what: str) -> JSON:
    """`node` itself when it is a mapping; otherwise the SpecError that names where the document is wrong."""
    if not isinstance(node, dict):
        found = json.dumps(node, ensure_ascii=False, default=str)
        found = found if len(found) <= 60 else found[:57] + "..."
        raise SpecError(f"{what} must be a mapping, found {found}.", file=resolver.source, pointer=pointer)
    return node


def _path_items(resolver: _Resolver) -> Iterator[tuple[str, JSON, str, frozenset[str]]]:
    """Each path item, dereferenced, with the pointers looked up to do so."""
    paths = resolver.document.get("paths") or {}
    if not isinstance(paths, dict):
        message = "'paths' must be a mapping of paths to path items."
        raise SpecError(message, file=resolver.source, pointer="/paths")
    for path, item in paths.items():
        pointer = f"/paths/{escape(path)}"
        if _CONTROL.search(path):
            # A URL cannot carry it, and task files and pages that quote the path would break on it.
            message = f"the path {json.dumps(path)} holds a control character; remove it."
            shown = _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", pointer)  # as a URI fragment writes it
            raise SpecError(message, file=resolver.source, pointer=shown)
        resolver.trail = set()
        item = resolver.deref(item, pointer)
        if not isinstance(item, dict):
            raise SpecError("a path item must be a mapping.", file=resolver.source, pointer=pointer)
        yield path, item, pointer, frozenset(resolver.trail)


def _servers(raw: Any, resolver: _Resolver, pointer: str) -> tuple[Server, ...]:
    servers = []
    for i, server in enumerate(raw or []):
        if not isinstance(server, dict) or "url" not in server:
            raise SpecError("a server needs a 'url'.", file=resolver.source, pointer=f"{pointer}/{i}")
        variables = tuple(
            ServerVariable(
                name=name,
                default=str(var.get("default", "")),
                enum=tuple(str(v) for v in var.get("enum") or ()),
                description=str(var.get("description", "")),
            )
            for name, var in (server.get("variables") or {}).items()
        )
        description = str(server.get("description", ""))
        servers.append(Server(url=str(server["url"]), description=description, variables=variables))
    return tuple(servers)


def _security_schemes(resolver: _Resolver) -> dict[str, SecurityScheme]:
    components = _mapping(resolver.document.get("components") or {}, resolver, "/components", "'components'")
    raw = _mapping(components.get("securitySchemes") or {}, resolver, "/components/securitySchemes",
                   "'securitySchemes'")
    schemes = {}
    for name, scheme in raw.items():
        here = f"/components/securitySchemes/{escape(name)}"
        scheme = _mapping(resolver.deref(scheme, here), resolver, here, "a security scheme")
        schemes[name] = SecurityScheme(
            name=name,
            type=str(scheme.get("type", "")),
            scheme=str(scheme.get("scheme", "")).lower(),
            location=str(scheme.get("in", "")),
            parameter_name=str(scheme.get("name", "")),
            prefix=str(scheme.get("x-auth-prefix", "")),
            description=str(scheme.get("description", "")),
        )
    return schemes


def _operation(
    resolver: _Resolver,
    *,
    api: str,
    api_name: str,
    method: str,
    path: str,
    raw: JSON,
    path_item: JSON,
    pointer: str,
    servers: tuple[Server, ...],
    schemes: Mapping[str, SecurityScheme],
    default_security: Any,
) -> Operation:
    summary = str(raw.get("summary", "") or "")
    operation_id = str(raw.get("operationId") or derive_operation_id(method, path, summary))
    own_servers = raw.get("servers") or path_item.get("servers")
    idempotency = raw.get("x-idempotency-key")
    return Operation(
        api=api,
        api_name=api_name,
        operation_id=operation_id,
        method=method.upper(),
        path=path,
        summary=summary,
        description=str(raw.get("description", "") or ""),
        tags=tuple(str(t) for t in raw.get("tags") or ()),
        servers=_servers(own_servers, resolver, f"{pointer}/servers") if own_servers else servers,
        parameters=_parameters(resolver, path_item.get("parameters"), raw.get("parameters"), pointer, path),
        request_body=_request_body(resolver, raw.get("requestBody"), f"{pointer}/requestBody"),
        responses=_responses(resolver, raw.get("responses") or {}, f"{pointer}/responses"),
        security=_security(raw.get("security", default_security), schemes, resolver, pointer),
        idempotency_header=str(idempotency["header"]) if isinstance(idempotency, dict) else None,
        seed_notes=tuple(str(note) for note in raw.get("x-seed-notes") or ()),
        deprecated=bool(raw.get("deprecated", False)),
        reconcile=raw.get("x-reconcile"),
        amount=raw.get("x-amount"),
        schemas=resolver.schemas,
    )


def _parameters(
    resolver: _Resolver, shared: Any, own: Any, pointer: str, path: str
) -> tuple[Parameter, ...]:
    # Operation parameters override path-item parameters with the same name and location.
    merged: dict[tuple[str, str], Parameter] = {}
    for where, raw_list in ((pointer.rsplit("/", 1)[0], shared), (pointer, own)):
        for i, raw in enumerate(raw_list or []):
            here = f"{where}/parameters/{i}"
            param = resolver.deref(raw, here)
            if not isinstance(param, dict) or "name" not in param or "in" not in param:
                raise SpecError("a parameter needs 'name' and 'in'.", file=resolver.source, pointer=here)
            schema = param.get("schema")
            if schema is None and isinstance(param.get("content"), dict):
                first: Any = next(iter(param["content"].values()), {})
                schema = first.get("schema") if isinstance(first, dict) else None
            schema = resolver.schemas.schema(schema or {}, f"{here}/schema")
            if "example" in param and isinstance(schema, dict) and "examples" not in schema:
                # The parameter's own example overrides its schema's, as OpenAPI says.
                schema = {**schema, "examples": [param["example"]]}
            location = str(param["in"])
            merged[(location, str(param["name"]))] = Parameter(
                name=str(param["name"]),
                location=location,
                # A path parameter fills the URL: 'required: false' there would send a literal '{name}'.
                required=location == "path" or bool(param.get("required", False)),
                linked_schema=schema,
                description=str(param.get("description", "") or ""),
                deprecated=bool(param.get("deprecated", False)),
                style=param.get("style"),
                explode=param.get("explode"),
                schemas=resolver.schemas,
            )
    for name in _PATH_VARIABLE.findall(path):  # undeclared, yet the URL needs it all the same
        if ("path", name) not in merged:
            merged[("path", name)] = Parameter(
                name=name,
                location="path",
                required=True,
                linked_schema=resolver.schemas.schema(_ANY_SCALAR, f"{pointer}/parameters"),
                description="(not declared in the document: the path needs it)",
                schemas=resolver.schemas,
            )
    return tuple(merged.values())


def _media_types(resolver: _Resolver, content: Any, pointer: str) -> tuple[MediaType, ...]:
    media_types = []
    content = _mapping(content or {}, resolver, f"{pointer}/content", "'content'")
    for content_type, media in content.items():
        here = f"{pointer}/content/{escape(content_type)}"
        media = _mapping(resolver.deref(media or {}, here), resolver, here, "a media type")
        example = media.get("example")
        if example is None and isinstance(media.get("examples"), dict) and media["examples"]:
            first = resolver.deref(next(iter(media["examples"].values())), f"{here}/examples")
            example = first.get("value") if isinstance(first, dict) else None
        media_types.append(
            MediaType(
                content_type=content_type,
                linked_schema=resolver.schemas.schema(media.get("schema") or {}, f"{here}/schema"),
                example=example,
                form_style=str(media.get("x-form-style", "brackets")),
                schemas=resolver.schemas,
            )
        )
    return tuple(media_types)


def _request_body(resolver: _Resolver, raw: Any, pointer: str) -> RequestBody | None:
    if raw is None:
        return None
    body = _mapping(resolver.deref(raw, pointer), resolver, pointer, "a request body")
    media_types = _media_types(resolver, body.get("content"), pointer)
    if not media_types:
        return None
    return RequestBody(
        required=bool(body.get("required", False)),
        media_types=media_types,
        description=str(body.get("description", "") or ""),
    )


def _responses(resolver: _Resolver, raw: Any, pointer: str) -> tuple[Response, ...]:
    responses = []
    for status, response in _mapping(raw, resolver, pointer, "'responses'").items():
        here = f"{pointer}/{escape(str(status))}"
        response = _mapping(resolver.deref(response, here), resolver, here, "a response")
        responses.append(
            Response(
                status=str(status),
                description=str(response.get("description", "") or ""),
                media_types=_media_types(resolver, response.get("content"), here),
            )
        )
    return tuple(responses)


def _security(
    raw: Any, schemes: Mapping[str, SecurityScheme], resolver: _Resolver, pointer: str
) -> tuple[tuple[SecurityScheme, ...], ...]:
    options = []
    for requirement in raw or []:
        names = list(requirement or {})
        missing = [n for n in names if n not in schemes]
        if missing:
            raise SpecError(
                f"the security requirement names '{missing[0]}', which is not in components.securitySchemes.",
                file=resolver.source,
                pointer=f"{pointer}/security",
            )
        options.append(tuple(schemes[n] for n in names))
    return tuple(options)


def _check_unique_ids(operations: list[Operation], source: str) -> None:
    seen: dict[str, Operation] = {}
    for op in operations:
        if op.operation_id in seen:
            first = seen[op.operation_id]
            raise SpecError(
                f"the operationId '{op.operation_id}' is used by both {first.method} {first.path} "
                f"and {op.method} {op.path}; operationIds must be unique.",
                file=source,
                pointer=f"/paths/{escape(op.path)}/{op.method.lower()}/operationId",
            )
        seen[op.operation_id] = op
