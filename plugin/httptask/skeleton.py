"""Task definitions made from a catalog operation: a skeleton with `{{ input.NAME }}` placeholders for every
required field (`httptask task new`), the same as YAML with the optional fields as comments, and a task filled
from an editor's field values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .reference import body_fields, merge_all_of, schema_type
from .samples import sample_value
from .spec import Operation, Parameter
from .tasks import schema_modeline, task_defaults
from .yamlsource import dump_yaml

__all__ = ["Placeholder", "placeholders", "sample_input", "skeleton", "skeleton_yaml", "task_definition"]

# The retry settings a skeleton spells out; maxElapsedSeconds stays implicit.
_SKELETON_RETRY = ("maxAttempts", "intervalSeconds", "backoffRate", "maxIntervalSeconds")
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class Placeholder:
    """One `{{ input.NAME }}` of a skeleton: the input's name, the field it fills, and that field's schema."""

    input: str
    field: str  # `path.invoice-id`, `headers.x-org`, `query.limit`, `body.transaction.date`
    schema: dict[str, Any]


def _identifier(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    text = _NOT_IDENTIFIER.sub("_", snake).strip("_").lower() or "value"
    return f"_{text}" if text[0].isdigit() else text


def _task_id(op: Operation) -> str:
    return _identifier(op.operation_id)


def _credentials(op: Operation) -> str | dict[str, str] | None:
    """Secret names to fill in: one name for a single scheme, a map when the API needs several together."""
    if not op.security:
        return None
    option = min(op.security, key=len)
    api = _identifier(op.api).upper()
    if len(option) == 1:
        return f"{api}_API_KEY"
    return {scheme.name: f"{api}_{_identifier(scheme.name).upper()}" for scheme in option}


def _required_body(schema: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """Dotted names and schemas of the required leaf fields, following required objects only."""
    out: list[tuple[str, dict[str, Any]]] = []
    schema = merge_all_of(schema)
    for name in dict.fromkeys(schema.get("required") or []):  # allOf parts may require a name twice
        child = (schema.get("properties") or {}).get(name)
        child = merge_all_of(child) if isinstance(child, dict) else {"type": "string"}
        dotted = f"{prefix}{name}"
        if "properties" in child and child.get("required"):
            out.extend(_required_body(child, f"{dotted}."))
        else:
            out.append((dotted, child))
    return out


def placeholders(op: Operation) -> list[Placeholder]:
    """Every input a skeleton of `op` asks for, in order; input names are unique identifiers.

    A leaf's own name is used when it is unique (`memo`, `refunded_at`); otherwise its dotted path joined by
    underscores (`amount_value`). Required headers with a default in the spec take the default instead.
    """
    fields: list[tuple[str, str, dict[str, Any]]] = []
    for param in op.parameters:
        if not param.required or param.location == "cookie":
            continue
        if param.location == "header" and param.schema.get("default") is not None:
            continue
        key = "headers" if param.location == "header" else param.location
        fields.append((param.name, f"{key}.{param.name}", param.schema))
    body = op.request_body.default.schema if op.request_body is not None else None
    if op.request_body is not None and op.request_body.required and isinstance(body, dict):
        fields.extend((dotted, f"body.{dotted}", schema) for dotted, schema in _required_body(body, ""))
    leaves = [_identifier(name.rsplit(".", 1)[-1]) for name, _, _ in fields]
    result = []
    for (name, field, schema), leaf in zip(fields, leaves, strict=True):
        input_name = leaf if leaves.count(leaf) == 1 else _identifier(name)
        result.append(Placeholder(input_name, field, schema))
    return result


def sample_input(op: Operation) -> dict[str, Any]:
    """A value for every input a skeleton of `op` asks for, so that it can be sent as it is: the body
    example's value for that field when the spec has one, else the sandbox's own sample for its schema."""
    example = op.request_body.default.example if op.request_body is not None else None
    values: dict[str, Any] = {}
    for item in placeholders(op):
        section, _, dotted = item.field.partition(".")
        given = _dotted_value(example, dotted) if section == "body" else None
        values[item.input] = given if given is not None else sample_value(item.schema)
    return values


def _dotted_value(data: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def skeleton(op: Operation) -> dict[str, Any]:
    """The task data of a skeleton for `op`: server variables with their defaults, credentials to name, every
    required field as a `{{ input.NAME }}` placeholder (body fields nested), header defaults, retry and
    timeouts with their defaults."""
    task: dict[str, Any] = {"id": _task_id(op), "operation": op.id}
    if op.summary:
        task["description"] = op.summary
    if op.servers and op.servers[0].variables:
        task["server"] = {v.name: v.default for v in op.servers[0].variables}
    credentials = _credentials(op)
    if credentials is not None:
        task["credentials"] = credentials
    request: dict[str, Any] = {}
    for param in op.parameters_in("header"):
        default = param.schema.get("default")
        if param.required and default is not None:
            request.setdefault("headers", {})[param.name] = default
    for item in placeholders(op):
        section, _, name = item.field.partition(".")
        value = "{{ input." + item.input + " }}"
        if section == "body":
            _set_dotted(request.setdefault("body", {}), name, value)
        else:
            request.setdefault(section, {})[name] = value
    if op.request_body is not None and op.request_body.required and "body" not in request:
        request["body"] = {}
    task["request"] = {key: request[key] for key in ("path", "query", "headers", "body") if key in request}
    defaults = task_defaults()
    task["retry"] = {name: defaults["retry"][name] for name in _SKELETON_RETRY}
    task["connectionTimeoutSeconds"] = defaults["connectionTimeoutSeconds"]
    task["readTimeoutSeconds"] = defaults["readTimeoutSeconds"]
    return task


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for name in parents:
        child = target.setdefault(name, {})
        if not isinstance(child, dict):
            raise UsageError(
                f"The field {dotted!r} is inside {name!r}, which already has the value {child!r}."
            )
        target = child
    target[leaf] = value


def task_definition(op: Operation, values: dict[str, Any]) -> dict[str, Any]:
    """A task for `op` with the editor's `values` filled in over the skeleton.

    Keys name what the operation's reference page names: a server variable (`site`), a path, query or header
    parameter (`invoice-id`, `X-com-zoho-subscriptions-organizationid`), or a body field by its dotted name
    (`transaction.amount`; a list of scalars as `expand[]` or `expand`). Values are literals or templates
    (`"{{ input.amount }}"`). Required fields left out keep their `{{ input.NAME }}` placeholder. When a name
    is both a parameter and a body field, the parameter wins; write `body.NAME` for the body field. A key
    that names nothing raises `UsageError` listing the valid names.
    """
    task = skeleton(op)
    request = task["request"]
    variables = {v.name for server in op.servers for v in server.variables}
    params: dict[str, Parameter] = {p.name: p for p in op.parameters if p.location != "cookie"}
    params.update({p.name.lower(): p for p in op.parameters_in("header")})
    body_schema = op.request_body.default.schema if op.request_body is not None else None
    body_names = {f.name.removesuffix("[]"): f.name for f in body_fields(body_schema)} if body_schema else {}
    unknown = []
    for key, value in values.items():
        if key in variables:
            task.setdefault("server", {})[key] = value
        elif key in params or key.lower() in params:
            param = params.get(key) or params[key.lower()]
            section = "headers" if param.location == "header" else param.location
            headers = request.setdefault(section, {})
            for existing in [k for k in headers if k.lower() == param.name.lower()]:
                del headers[existing]
            headers[param.name] = value
        elif key.removeprefix("body.").removesuffix("[]") in body_names:
            _set_dotted(request.setdefault("body", {}), key.removeprefix("body.").removesuffix("[]"), value)
        else:
            unknown.append(key)
    if unknown:
        parameter_names = {p.name for p in op.parameters if p.location != "cookie"}
        known = sorted(variables | parameter_names | set(body_names))
        raise UsageError(
            f"{op.id} has no field {', '.join(repr(k) for k in unknown)}; "
            f"use a server variable, parameter or dotted body field name: {', '.join(known)}."
        )
    task["request"] = {key: request[key] for key in ("path", "query", "headers", "body") if key in request}
    return task


def _valid_values(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    items = schema.get("items")
    if isinstance(items, dict) and "enum" in items:
        return "a list of " + ", ".join(json.dumps(v) for v in items["enum"])
    limits = [f"{key} {schema[key]}" for key in ("format", "minimum", "maximum", "minLength", "maxLength")
              if key in schema]
    return ", ".join(limits)


def _comment_line(name: str, schema: dict[str, Any], indent: str) -> str:
    valid = _valid_values(schema)
    text = f"    #   {indent}{name}: {schema_type(schema)}" + (f", {valid}" if valid else "")
    return " ".join(text.split("\n"))


def _optional_comments(op: Operation, data: dict[str, Any]) -> dict[str, list[str]]:
    """Comment lines per request section, listing the optional fields not in the skeleton."""
    request = data.get("request", {})
    out: dict[str, list[str]] = {}
    for location, section in (("path", "path"), ("query", "query"), ("header", "headers")):
        present = {k.lower() for k in request.get(section, {})}
        lines = [_comment_line(p.name, p.schema, "") for p in op.parameters_in(location)
                 if p.name.lower() not in present]
        if lines:
            out[section] = [f"    # optional {section}:", *lines]
    if op.request_body is not None:
        filled = [p.field.removeprefix("body.") for p in placeholders(op) if p.field.startswith("body.")]
        fields = [f for f in body_fields(op.request_body.default.schema)
                  if not any(name == f.name or name.startswith(f.name + ".") for name in filled)]
        lines = []
        for f in fields:
            schema = {"type": f.type, **({"enum": list(f.enum)} if f.enum else {}), **dict(f.limits)}
            lines.append(_comment_line(f.name, schema, "  " * f.depth))
        if lines:
            out["body"] = ["    # optional body fields (dotted names nest):", *lines]
    return out


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def skeleton_yaml(op: Operation) -> str:
    """The skeleton as YAML, with the schema modeline, the server choices, the idempotency key and every
    optional field as comments; it loads back with `tasks.parse_task`."""
    data = skeleton(op)
    lines = [schema_modeline("task"), f"# {op.id}: {op.method} {op.path}"]
    lines += ["# Fill the inputs with --input, e.g. "
             + json.dumps({p.input: "..." for p in placeholders(op)})]
    for key, value in data.items():
        if key == "server":
            lines.extend(_server_comments(op))
        if key == "credentials":
            lines.append("# the name of a secret (environment variable HTTPTASK_SECRET_<NAME> or a secrets "
                         "file), never the secret itself")
        if key == "request":
            lines.append("request:" if value else "request: {}")  # a bare 'request:' would be null
            comments = _optional_comments(op, data)
            for section in ("path", "query", "headers", "body"):
                if section in value:
                    lines.append(_indent(dump_yaml({section: value[section]}), "  ").rstrip("\n"))
                lines.extend(comments.get(section, []))
            if op.idempotency_header is not None:
                lines.append(f"# {op.idempotency_header}: generated once per run when idempotencyKey is not "
                             "set, and the same on every retry")
                lines.append("# idempotencyKey: \"{{ input.order_id }}-refund\"")
            continue
        lines.append(dump_yaml({key: value}).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _server_comments(op: Operation) -> list[str]:
    lines = []
    if len(op.servers) > 1:
        choices = ", ".join(f"{i}: {s.description or s.url}" for i, s in enumerate(op.servers))
        lines.append(f"# server.index chooses the server ({choices})")
    for variable in op.servers[0].variables if op.servers else ():
        valid = f" one of {', '.join(variable.enum)};" if variable.enum else ""
        lines.append(f"# server.{variable.name}:{valid} {variable.description}".rstrip())
    lines.append("# or set server.url to replace the base URL")
    return lines
