"""The sandboxed Jinja2 environment that renders task fields, and the only module that imports jinja2.

Inputs reach templates through read-only views that know their path, so a missing value is reported as the
author wrote it (``'input.customer' has no attribute 'email'``) and no template can change what it was given.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable
from markupsafe import Markup

from httptask.errors import HttptaskError, TemplateError, UsageError
from httptask.secrets import SecretStore

__all__ = [
    "base_context",
    "check_template",
    "expression_path",
    "is_template",
    "references",
    "render_value",
    "secret_call",
    "secret_names",
]

Path = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_EXPRESSION = re.compile(r"\s*\{\{-?(.*?)-?\}\}\s*", re.DOTALL)
_CACHE_SIZE = 4096
_FUNCTIONS = frozenset({"now", "uuid", "secret"})
_RESERVED = frozenset({"input", "tasks"}) | _FUNCTIONS
_MAPPING_METHODS = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS = frozenset({"index", "count"})
_MUTATORS = frozenset(
    {
        "append", "clear", "extend", "insert", "pop", "popitem", "remove",
        "reverse", "setdefault", "sort", "update", "add", "discard",
    }
)  # fmt: skip


class _Problem(Exception):
    """A problem found while rendering, worded for the template's author; becomes a `TemplateError`."""


class _View:
    """Base of the read-only views: holds the wrapped data and the path it was reached by."""

    __slots__ = ("_data", "_path")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, data: Any, path: Path) -> None:
        self._data = data
        self._path = path

    def _child(self, key: Any, value: Any) -> Any:
        return _view(value, (*self._path, key))

    def __eq__(self, other: object) -> bool:
        return bool(_plain(self) == _plain(other))

    def __repr__(self) -> str:
        return repr(_plain(self))

    __str__ = __repr__


class _MappingView(_View, Mapping[Any, Any]):
    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        return self._child(key, self._data[key])

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class _SequenceView(_View, Sequence[Any]):
    __slots__ = ()

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self._child(i, self._data[i]) for i in range(*index.indices(len(self._data))))
        if isinstance(index, int) and index < 0:
            index += len(self._data)
        if not isinstance(index, int) or not 0 <= index < len(self._data):
            raise IndexError(index)
        return self._child(index, self._data[index])

    def __iter__(self) -> Iterator[Any]:
        return (self._child(i, value) for i, value in enumerate(self._data))

    def __len__(self) -> int:
        return len(self._data)


def _view(value: Any, path: Path) -> Any:
    if isinstance(value, Mapping):
        return _MappingView(value, path)
    if isinstance(value, list | tuple):
        return _SequenceView(value, path)
    return value


def _plain(value: Any) -> Any:
    """A plain, independent copy of ``value``: views and containers copied, Markup back to str."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, _View):
        value = value._data
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Markup):
        return str(value)
    return value


def _describe(path: Path) -> str:
    text = str(path[0])
    for key in path[1:]:
        if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
            text += f".{key}"
        else:
            text += f"[{key!r}]"
    return text


class _Undefined(StrictUndefined):
    """Strict undefined whose message names the value by the path the template reached it by."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if not self._undefined_hint and isinstance(obj, _View):
            return _missing(obj, self._undefined_name)
        return str(super()._undefined_message)


def _missing(view: _View, key: Any) -> str:
    if isinstance(key, str):
        return f"'{_describe(view._path)}' has no attribute {key!r}"
    return f"'{_describe(view._path)}' has no item {key!r}"


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with views resolving keys before methods and refusals worded for template authors."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _View):
            return self._view_lookup(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _View):
            return self._view_lookup(obj, argument)
        return super().getitem(obj, argument)

    def _view_lookup(self, view: _View, key: Any) -> Any:
        try:
            return view[key]  # type: ignore[index]
        except (LookupError, TypeError):
            pass
        if isinstance(key, str):
            if key.startswith("_"):
                self.unsafe_undefined(view, key)
            if key in _MUTATORS:
                raise SecurityError("templates cannot change their inputs")
            allowed = _MAPPING_METHODS if isinstance(view, _MappingView) else _SEQUENCE_METHODS
            if key in allowed:
                return getattr(view, key)
        return self.undefined(obj=view, name=key, hint=_missing(view, key))

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        if modifies_known_mutable(obj, attribute):
            raise SecurityError(f"templates cannot change values; {attribute!r} is not allowed")
        raise SecurityError(f"access to {attribute!r} is not allowed in templates")


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(_plain(value), **kwargs)


_ENV = _Environment(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
_ENV.policies["json.dumps_function"] = _dumps


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str) -> Callable[[Mapping[str, Any]], Any]:
    """The renderer for ``source``: one whole expression keeps its type, anything else renders to text."""
    ast = _ENV.parse(source)
    match = _WHOLE_EXPRESSION.fullmatch(source) if _single_expression(ast) is not None else None
    if match is not None:
        expression = _ENV.compile_expression(match.group(1), undefined_to_none=False)
        return lambda scope: _plain(expression(scope))
    return _ENV.from_string(ast).render


def _single_expression(ast: nodes.Template) -> nodes.Expr | None:
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    found = [node for node in ast.body[0].nodes if not _is_blank(node)]
    if len(found) != 1 or isinstance(found[0], nodes.TemplateData):
        return None
    return found[0]


def _is_blank(node: nodes.Node) -> bool:
    return isinstance(node, nodes.TemplateData) and not node.data.strip()


def is_template(value: str) -> bool:
    """Whether ``value`` holds Jinja markup (``{{`` or ``{%``) and so must be rendered."""
    return "{{" in value or "{%" in value


def check_template(source: str, *, task_id: str, field_path: str) -> None:
    """Raise `TemplateError` if ``source`` does not parse; nothing is rendered."""
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, task_id, field_path) from exc


def render_value(value: Any, context: Mapping[str, Any], *, task_id: str, field_path: str = "") -> Any:
    """Render every template string inside ``value``, walking dicts and lists; returns a new value.

    A string that is one whole expression, such as ``"{{ input.amount }}"`` (whitespace around it
    ignored), keeps the expression's type; mixed text renders to a string. Dict keys are not rendered.
    """
    scope = {
        name: item if isinstance(item, _View) else _view(item, (name,)) for name, item in context.items()
    }
    return _render(value, scope, task_id, field_path)


def _render(value: Any, scope: Mapping[str, Any], task_id: str, field_path: str) -> Any:
    if isinstance(value, str):
        return _render_string(value, scope, task_id, field_path) if is_template(value) else value
    if isinstance(value, Mapping):
        return {
            key: _render(item, scope, task_id, f"{field_path}.{key}" if field_path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        rendered = [_render(item, scope, task_id, f"{field_path}[{i}]") for i, item in enumerate(value)]
        return rendered if isinstance(value, list) else tuple(rendered)
    return value


def _render_string(source: str, scope: Mapping[str, Any], task_id: str, field_path: str) -> Any:
    try:
        compiled = _compile(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, task_id, field_path) from exc
    try:
        return compiled(scope)
    except HttptaskError as exc:
        raise TemplateError(task_id, field_path, exc.message) from exc
    except (_Problem, UndefinedError, SecurityError) as exc:
        raise TemplateError(task_id, field_path, str(exc)) from exc
    except (JinjaError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise TemplateError(task_id, field_path, f"rendering failed: {exc}") from exc


def _syntax_error(exc: TemplateSyntaxError, task_id: str, field_path: str) -> TemplateError:
    return TemplateError(task_id, field_path, f"template syntax error at line {exc.lineno}: {exc.message}")


def base_context(
    *,
    inputs: Mapping[str, Any],
    tasks: Mapping[str, Any] | None = None,
    secrets: SecretStore | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names templates see: ``input``, ``tasks``, ``now()``, ``uuid()``, ``secret(NAME)`` and ``extra``.

    Values are wrapped, not copied, so building a context per task is cheap and the data stays untouched.
    """

    def secret(name: str) -> str:
        if secrets is None:
            raise _Problem(f"secret({name!r}) cannot be used here because no secret store was configured")
        return secrets.get(name)

    context: dict[str, Any] = {
        "input": _view(inputs, ("input",)),
        "tasks": _view(tasks if tasks is not None else {}, ("tasks",)),
        "now": _now,
        "uuid": _uuid,
        "secret": secret,
    }
    for name, value in (extra or {}).items():
        if name in _RESERVED:
            raise UsageError(f"The template name {name!r} is reserved; give the extra value another name.")
        context[name] = _view(value, (name,))
    return context


def _now(style: str = "iso") -> str | int:
    if style == "unix":
        return int(time.time())
    if style == "iso":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise _Problem(f"now() takes 'iso' or 'unix', not {style!r}")


def _uuid() -> str:
    return str(uuid.uuid4())


def references(source: str) -> list[Path]:
    """The variable paths ``source`` reads, such as ``("tasks", "t1", "response", "body", "id")``.

    A path stops at the first subscript that is not a constant; names bound inside the template (loop
    variables, ``set``) and built-in functions are not reported. A source that does not parse has none;
    `check_template` reports why.
    """
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError:
        return []
    found: list[Path] = []
    _walk_body(ast.body, _builtins(), found)
    return list(dict.fromkeys(found))


def expression_path(source: str) -> Path | None:
    """The path of ``source`` if it is exactly one reference such as ``"{{ a.b[0].c }}"``, else None."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError:
        return None
    expression = _single_expression(ast)
    if expression is None:
        return None
    base, path, dynamic = _chain(expression)
    if dynamic or not isinstance(base, nodes.Name) or base.name in _builtins():
        return None
    return (base.name, *path)


def secret_names(source: str) -> list[str]:
    """The names ``source`` reads with ``secret('NAME')``, in order; a name computed at run time is not
    known here. A source that does not parse has none; `check_template` reports why."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError:
        return []
    found = (_secret_name(call) for call in ast.find_all(nodes.Call))
    return list(dict.fromkeys(name for name in found if name is not None))


def secret_call(source: str) -> str | None:
    """NAME if ``source`` is exactly one ``{{ secret('NAME') }}`` (whitespace around it ignored), else
    None."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError:
        return None
    expression = _single_expression(ast)
    return _secret_name(expression) if isinstance(expression, nodes.Call) else None


def _secret_name(call: nodes.Call) -> str | None:
    is_secret = isinstance(call.node, nodes.Name) and call.node.name == "secret"
    if not is_secret or len(call.args) != 1 or call.kwargs or call.dyn_args or call.dyn_kwargs:
        return None
    argument = call.args[0]
    if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
        return argument.value
    return None


def _builtins() -> set[str]:
    return set(_ENV.globals) | _FUNCTIONS


def _walk_body(body: Sequence[nodes.Node], bound: set[str], found: list[Path]) -> None:
    bound = set(bound)  # names set in this block are visible to the statements after them only
    for node in body:
        _walk(node, bound, found)
        if isinstance(node, nodes.Assign | nodes.AssignBlock):
            bound |= _targets(node.target)
        elif isinstance(node, nodes.Macro):
            bound.add(node.name)


def _walk(node: nodes.Node, bound: set[str], found: list[Path]) -> None:
    if isinstance(node, nodes.For):
        _walk(node.iter, bound, found)
        inner = bound | _targets(node.target) | {"loop"}
        if node.test is not None:
            _walk(node.test, inner, found)
        _walk_body(node.body, inner, found)
        _walk_body(node.else_, bound, found)
    elif isinstance(node, nodes.With):
        for value in node.values:
            _walk(value, bound, found)
        _walk_body(node.body, bound | set().union(*(_targets(t) for t in node.targets)), found)
    elif isinstance(node, nodes.Macro):
        for default in node.defaults:
            _walk(default, bound, found)
        _walk_body(
            node.body, bound | {arg.name for arg in node.args} | {"varargs", "kwargs", "caller"}, found
        )
    elif isinstance(node, nodes.Assign):
        _walk(node.node, bound, found)
    elif isinstance(node, nodes.AssignBlock):
        _walk_body(node.body, bound, found)
    elif isinstance(node, nodes.Call) and _is_mapping_get(node):
        # input.get('x') reads input.x, as a validator should see it.
        getter = node.node
        assert isinstance(getter, nodes.Getattr)
        key = node.args[0]
        assert isinstance(key, nodes.Const)
        _walk_chain(getter.node, bound, found, suffix=(key.value,))
        for child in [*node.args[1:], *node.kwargs]:
            _walk(child, bound, found)
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        # A method call reads the object it is called on, not a field named after the method.
        _walk_chain(node.node.node, bound, found)
        for child in [*node.args, *node.kwargs]:
            _walk(child, bound, found)
    elif isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
        _walk_chain(node, bound, found)
    else:
        for child in node.iter_child_nodes():
            _walk(child, bound, found)


def _walk_chain(node: nodes.Node, bound: set[str], found: list[Path], suffix: Path = ()) -> None:
    base, path, dynamic = _chain(node)
    if isinstance(base, nodes.Name):
        if base.name not in bound and base.ctx == "load":
            found.append((base.name, *path) if dynamic else (base.name, *path, *suffix))
    else:
        _walk(base, bound, found)
    for argument in dynamic:
        _walk(argument, bound, found)


def _chain(node: nodes.Node) -> tuple[nodes.Node, Path, list[nodes.Node]]:
    """Split ``a.b[0][i].c`` into its base node, the constant path up to the first dynamic key, and the
    dynamic subscript expressions."""
    keys: list[str | int | None] = []
    dynamic: list[nodes.Node] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif _constant_key(node.arg):
            assert isinstance(node.arg, nodes.Const)
            keys.append(node.arg.value)
        else:
            keys.append(None)
            dynamic.append(node.arg)
        node = node.node
    keys.reverse()
    dynamic.reverse()
    constant: list[str | int] = []
    for key in keys:
        if key is None:
            break
        constant.append(key)
    return node, tuple(constant), dynamic


def _constant_key(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Const)
        and isinstance(node.value, str | int)
        and not isinstance(node.value, bool)
    )


def _is_mapping_get(node: nodes.Call) -> bool:
    return (
        isinstance(node.node, nodes.Getattr)
        and node.node.attr == "get"
        and bool(node.args)
        and _constant_key(node.args[0])
    )


def _targets(target: nodes.Node) -> set[str]:
    return {name.name for name in target.find_all(nodes.Name)} | (
        {target.name} if isinstance(target, nodes.Name) else set()
    )
