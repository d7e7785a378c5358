"""The sandboxed Jinja2 environment that renders task fields, and the only module that imports jinja2.

Inputs reach templates through read-only views that know their path, so a missing value is reported as the
author wrote it (``'input.customer' has no attribute 'email'``) and no template can change what it was given.
``secret('NAME')`` gives an opaque value that a template can only place whole into its output: a filter,
method, slice, comparison, loop or concatenation on it is refused, so every form of a secret that leaves a
template is one the redactor knows. Every operation is held to the bounds of `limits`. Simple templates
(``{{ item.id }}``, ``inv_{{ item }}``, ``{{ now('unix') }}``) are read without Jinja, to the same value, and
left to it wherever that might differ (tests/test_templating_direct.py compares the two).
"""

from __future__ import annotations

import functools
import json
import re
import time
import types
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn, TypeGuard

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, modifies_known_mutable
from jinja2.utils import _PassArg
from markupsafe import Markup

from httptask.errors import HttptaskError, TemplateError, UsageError
from httptask.limits import (
    MAX_SIZE,
    MAX_TEMPLATE_CHARS,
    RENDER_SECONDS,
    LimitExceeded,
    check_binop,
    check_call,
    check_filter,
    check_result,
    check_time,
    ticking,
    time_limit,
)
from httptask.secrets import SecretStore

__all__ = [
    "NOT_CONSTANT",
    "UNSURE",
    "Columns",
    "Scope",
    "base_context",
    "check_template",
    "constant",
    "direct_renderer",
    "expression_path",
    "is_template",
    "references",
    "render_value",
    "secret_call",
    "secret_names",
    "varies",
    "whole_lookup",
]

Path = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_EXPRESSION = re.compile(r"\s*\{\{-?(.*?)-?\}\}\s*", re.DOTALL)
_CACHE_SIZE = 4096
# Parsed trees kept for the checks that read a template (`references`, `varies`...): a workflow's templates.
_PARSED_KEPT = 256
# What every `for` loop of a template iterates through, so a loop checks the time limit at each step.
_TICKING = "_httptask_ticking"
_FUNCTIONS = frozenset({"now", "uuid", "secret"})
_RESERVED = frozenset({"input", "tasks"}) | _FUNCTIONS
_MAPPING_METHODS = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS = frozenset({"index", "count"})
_TRANSFORMED = (
    "a secret can only be inserted, not transformed: place secret('NAME') whole in a header, query, "
    "path or body value, as in \"Bearer {{ secret('NAME') }}\""
)
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


class Columns(ABC):
    """A sequence of mappings read as it is asked (a forEach's results, from the journal) that can also give
    the integer at one path of every item at once, without reading the items whole: what
    `{{ tasks.ID | map(attribute='response.status') | list }}` reads."""

    @abstractmethod
    def column(self, path: Path) -> list[int] | None:
        """The integer at `path` in every item, in item order; None unless every item has one there."""


# Values that are never containers: returned as they are without asking the slower abstract checks.
_LEAF_TYPES = frozenset({str, int, float, bool, type(None), types.FunctionType, types.MethodType})
# Of those, the ones that are plain data as they are (a Markup, a str subclass, is not one of them).
_PLAIN_LEAVES = frozenset({str, int, float, bool, type(None)})


def _view(value: Any, path: Path) -> Any:
    kind = type(value)
    if kind in _LEAF_TYPES:
        return value
    if kind is dict:  # the usual containers, told apart before the slower abstract checks
        return _MappingView(value, path)
    if kind is list:
        return _SequenceView(value, path)
    if isinstance(value, Mapping):
        return _MappingView(value, path)
    if _is_sequence(value):
        return _SequenceView(value, path)
    return value


def _is_sequence(value: Any) -> bool:
    """A list or tuple, or any other sequence but text (a forEach task's results read from the journal)."""
    if isinstance(value, list | tuple):
        return True
    return not isinstance(value, str | bytes | bytearray) and isinstance(value, Sequence)


def _plain(value: Any) -> Any:
    """A plain, independent copy of ``value``: views and containers copied, Markup back to str."""
    if type(value) in _PLAIN_LEAVES:
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, _Secret):
        raise _Problem(_TRANSFORMED)
    if isinstance(value, _View):
        value = value._data
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if _is_sequence(value):
        if not isinstance(value, list | tuple):  # a lazy one (a forEach's results): read no more than fits
            check_result(value, "reading the whole list")
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


class _Secret:
    """A secret as templates hold it: output places it whole into the text; every other use is refused, so
    no template can make a form of it (upper-cased, reversed, hex) that the redactor does not know."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Problem(_TRANSFORMED)

    __str__ = __repr__ = __format__ = __iter__ = __len__ = __bool__ = __hash__ = __contains__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __getattr__ = _refuse
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = _refuse


def _refuse_secrets(values: Iterable[Any]) -> None:
    if any(isinstance(value, _Secret) for value in values):
        raise _Problem(_TRANSFORMED)


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator with every list, tuple, dict and `~` a template builds passed through
    `environment.built`, so that a value made by nesting others (`[a, a, a]`) is bounded like any other."""

    def _bounded(self, visit: Callable[[Any, Frame], None], node: nodes.Expr, frame: Frame) -> None:
        if getattr(node, "ctx", "load") != "load":
            visit(node, frame)
            return
        self.write("environment.built(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._bounded(super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        self._bounded(super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._bounded(super().visit_Dict, node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._bounded(super().visit_Concat, node, frame)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with views resolving keys before methods, refusals worded for template authors, secrets
    kept opaque, and every operator, call and filter held to the bounds of `limits`."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self) -> None:
        super().__init__(
            undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
        )
        for name in ("namespace", "cycler", "joiner", "lipsum"):
            # Objects that change after they are made, or make text by the page: nothing a request needs.
            del self.globals[name]
        self.globals[_TICKING] = ticking
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.tests = {name: _opaque_test(test) for name, test in self.tests.items()}
        self.policies["json.dumps_function"] = _dumps

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _View):
            return self._view_lookup(obj, attribute)
        _refuse_secrets([obj])
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _View):
            return self._view_lookup(obj, argument)
        _refuse_secrets([obj, argument])
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_time()
        _refuse_secrets([__obj, *args, *kwargs.values()])
        method = getattr(__obj, "__wrapped__", __obj)
        args = check_call(getattr(__obj, "__name__", ""), getattr(method, "__self__", None), args, kwargs)
        return check_result(super().call(__context, __obj, *args, **kwargs), "the call")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_time()
        _refuse_secrets([left, right])
        check_binop(operator, left, right)
        return check_result(self.binop_table[operator](left, right), f"the operator {operator}")

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        _refuse_secrets([arg])
        return self.unop_table[operator](arg)

    def built(self, value: Any) -> Any:
        """A list, tuple, dict or text the template just built, if it is inside the size bound."""
        return check_result(value, "the value built")

    def _view_lookup(self, view: _View, key: Any) -> Any:
        if type(key) is not str:  # a name written in the template is no secret
            _refuse_secrets([key])
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


def _finalize(value: Any) -> Any:
    """What an output tag writes: a secret's own text (the only place it is revealed in a text template),
    marked safe so that `{% autoescape %}` cannot make an HTML-escaped form of it."""
    return Markup(value._value) if isinstance(value, _Secret) else check_result(value, "the output")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes = _PassArg.from_obj(function) is not None

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check_time()
        _refuse_secrets([*args, *kwargs.values()])
        leading, (value, *rest) = (args[:1], args[1:]) if passes else ((), args)
        value = check_filter(name, value, tuple(rest), kwargs)
        return check_result(function(*leading, value, *rest, **kwargs), f"the filter {name}")

    return bounded


def _opaque_test(function: Any) -> Callable[..., Any]:
    @functools.wraps(function)
    def opaque(*args: Any, **kwargs: Any) -> Any:
        _refuse_secrets([*args, *kwargs.values()])
        return function(*args, **kwargs)

    return opaque


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(_plain(value), **kwargs)


_ENV = _Environment()


_Names = Mapping[str, Any]
_Renderer = Callable[[_Names], Any]


@dataclass(frozen=True)
class _Compiled:
    """A parsed template: `jinja`, its renderer, and `direct`, a faster one for a simple template that gives
    `_UNSURE` wherever it might not give what `jinja` gives (`render` then asks `jinja`); and the names of
    the secrets it places (each checked to be whole)."""

    jinja: _Renderer
    secrets: tuple[str, ...]
    direct: _Renderer | None = None

    def render(self, scope: _Names, limit: time_limit) -> Any:
        """The value, rendered by Jinja within `limit` unless the direct renderer is sure of it."""
        if self.direct is not None:
            try:
                value = self.direct(scope)
            except Exception:  # what went wrong is for the sandbox to say, in its own words
                value = _UNSURE
            if value is not _UNSURE:
                return value
        with limit:
            return self.jinja(scope)


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str) -> _Compiled:
    """The renderer for ``source``: one whole expression keeps its type, anything else renders to text.

    Raises `_Problem` for a template too long or a secret used other than whole, `TemplateSyntaxError`
    for one that does not parse.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise _Problem(
            f"the template is {len(source):,} characters long; the limit is {MAX_TEMPLATE_CHARS:,}"
        )
    try:
        ast = _ENV.parse(source)
        secrets = _placed_secrets(ast)
        for loop in ast.find_all(nodes.For):
            ticking = nodes.Name(_TICKING, "load", lineno=loop.lineno)
            loop.iter = nodes.Call(ticking, [loop.iter], [], None, None, lineno=loop.lineno)
        single = _single_expression(ast)
        match = _WHOLE_EXPRESSION.fullmatch(source) if single is not None else None
        if match is not None:
            direct_whole = _direct_whole(single)
            # Names and constant keys, or `map(attribute=...) | list` of them: nothing to fail compiling.
            if direct_whole is not None:
                return _Compiled(_whole_renderer(match.group(1)), secrets, direct_whole)
            expression = _ENV.compile_expression(match.group(1), undefined_to_none=False)
            return _Compiled(lambda scope: _whole(expression(scope)), secrets, None)
        direct = _direct_text(ast)  # read before Jinja compiles the tree, which its optimizer may change
        template = _ENV.from_string(ast)
    except (RecursionError, MemoryError, SyntaxError) as exc:
        if isinstance(exc, TemplateSyntaxError):
            raise
        raise _Problem("the template is nested too deeply to read; write it more simply") from None
    except ValueError as exc:
        # The lexer turns an integer literal of more than 4,300 digits into this.
        raise _Problem(f"the template holds a number that cannot be read ({_first_sentence(exc)})") from None
    return _Compiled(
        lambda scope: _bounded_join(template.root_render_func(template.new_context(dict(scope)))),
        secrets,
        direct,
    )


def _whole_renderer(expression: str) -> _Renderer:
    """Jinja's renderer of one whole expression, compiled the first time it is needed: a simple one
    (`{{ item.id }}`) is read by its direct renderer, and Jinja is only asked where that is unsure."""
    compiled: list[Callable[..., Any]] = []

    def render(scope: _Names) -> Any:
        if not compiled:
            compiled.append(_ENV.compile_expression(expression, undefined_to_none=False))
        return _whole(compiled[0](scope))

    return render


def _lookup_path(expression: nodes.Node | None) -> Path | None:
    """`("item", "id")` for `{{ item.id }}`: a chain of constant keys on a name that is not a function."""
    if expression is None:
        return None
    base, path, dynamic = _chain(expression)
    if dynamic or not isinstance(base, nodes.Name) or base.name in _builtins():
        return None
    return (base.name, *path)


# -- simple templates, rendered without Jinja ----------------------------------------------------------------
# `{{ item.id }}`, `inv_{{ item }}`, `{{ now('unix') }}`: names with constant keys, and `now()` or `uuid()`
# with constant arguments, in text or alone. They are read as the sandbox reads them (a view's key before any
# method); anything else (a missing key, a value that is not a view, text past the size limit) is `_UNSURE`,
# and Jinja renders it, giving the same value or the error the author should see.

_UNSURE: Any = object()
# Names Jinja gives a meaning of its own at a template's top level, whatever the scope holds.
_JINJA_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})


def _direct_whole(expression: nodes.Expr | None) -> _Renderer | None:
    """`expression`'s value as a whole template gives it (`_whole`), where `_direct_value` or `_direct_column`
    can read it."""
    read = _direct_column(expression) if isinstance(expression, nodes.Filter) else _direct_value(expression)
    if read is None:
        return None

    def whole(scope: _Names) -> Any:
        value = read(scope)
        return value if value is _UNSURE else _whole(value)

    return whole


def _direct_text(ast: nodes.Template) -> _Renderer | None:
    """The text of a template of plain text and simple expressions, as Jinja writes it: each value finalized
    and made text, the whole held to the size limit; a value that is not a plain scalar is `_UNSURE`."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts: list[str | _Renderer] = []
    for node in ast.body[0].nodes:
        read = node.data if isinstance(node, nodes.TemplateData) else _direct_value(node)
        if read is None:
            return None
        parts.append(read)

    def text(scope: _Names) -> Any:
        chunks = []
        for part in parts:
            if isinstance(part, str):
                chunks.append(part)
                continue
            value = part(scope)
            if type(value) not in _PLAIN_LEAVES:
                return _UNSURE
            chunks.append(str(_finalize(value)))
        joined = "".join(chunks)
        return _UNSURE if len(joined) > MAX_SIZE else joined

    return text


def _direct_value(node: nodes.Node | None) -> _Renderer | None:
    """A reader of `node`'s value where it is a simple expression, else None."""
    if isinstance(node, nodes.Call):
        return _direct_call(node)
    if node is None:
        return None
    base, path, dynamic = _chain(node)
    if dynamic or not isinstance(base, nodes.Name) or base.name in _builtins() | _JINJA_NAMES:
        return None
    name = base.name

    def lookup(scope: _Names) -> Any:
        value = scope.get(name, _UNSURE)
        for key in path:
            if not isinstance(value, _View):
                return _UNSURE
            value = value[key]  # type: ignore[index]  # a missing key raises: `_Compiled.render` asks Jinja
        return value

    return lookup


def _direct_column(node: nodes.Filter) -> _Renderer | None:
    """A reader of `X | map(attribute='a.b') | list`, X a simple lookup, that asks a `Columns` X for the
    column instead of reading every item; `_UNSURE` unless X answers, with numbers small enough that Jinja's
    list would be inside the size limit."""
    inner = node.node
    if not (node.name == "list" and _no_arguments(node) and isinstance(inner, nodes.Filter)):
        return None
    if inner.name != "map" or inner.args or inner.dyn_args or inner.dyn_kwargs or len(inner.kwargs) != 1:
        return None
    keyword = inner.kwargs[0]
    if keyword.key != "attribute" or not isinstance(keyword.value, nodes.Const):
        return None
    attribute = keyword.value.value
    read = _direct_value(inner.node) if not isinstance(inner.node, nodes.Call) else None
    if read is None or not isinstance(attribute, str):
        return None
    path = tuple(int(part) if part.isdigit() else part for part in attribute.split("."))  # as Jinja splits it

    def column(scope: _Names) -> Any:
        value = read(scope)
        if not isinstance(value, _SequenceView) or not isinstance(value._data, Columns):
            return _UNSURE
        if 2 * len(value) > MAX_SIZE:  # an item and a digit each at least: Jinja refuses the list
            return _UNSURE
        values = value._data.column(path)
        if values is None:
            return _UNSURE
        # Jinja's list counts an item and its digits, each int's at most this many.
        digits = max(map(abs, values), default=0).bit_length() // 3 + 1
        return values if len(values) * (1 + digits) <= MAX_SIZE else _UNSURE

    return column


def _no_arguments(node: nodes.Filter) -> bool:
    return not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)


def _direct_call(call: nodes.Call) -> _Renderer | None:
    """A reader of `now(...)` or `uuid()` with constant arguments, called as the sandbox calls them."""
    functions: dict[str, Callable[..., Any]] = {"now": _now, "uuid": _uuid}
    if not isinstance(call.node, nodes.Name) or call.node.name not in functions:
        return None
    arguments = [*call.args, *(keyword.value for keyword in call.kwargs)]
    if call.dyn_args or call.dyn_kwargs or not all(isinstance(arg, nodes.Const) for arg in arguments):
        return None
    name = call.node.name
    function = functions[name]
    args = tuple(arg.value for arg in call.args)  # type: ignore[attr-defined]
    kwargs = {keyword.key: keyword.value.value for keyword in call.kwargs}  # type: ignore[attr-defined]

    def result(scope: _Names) -> Any:
        if scope.get(name) is not function:
            return _UNSURE
        check_time()
        return check_result(function(*args, **kwargs), "the call")

    return result


def _whole(value: Any) -> Any:
    return value._value if isinstance(value, _Secret) else _plain(value)


def _bounded_join(chunks: Iterable[str]) -> str:
    parts: list[str] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_SIZE:
            raise LimitExceeded(
                f"the rendered text would be longer than {MAX_SIZE:,} characters, the limit for a template"
            )
        parts.append(chunk)
    return "".join(parts)


def _first_sentence(exc: BaseException) -> str:
    return str(exc).split(";")[0].rstrip(".")


def _placed_secrets(ast: nodes.Template) -> tuple[str, ...]:
    """The names of the secrets ``ast`` places; `_Problem` if one is used other than whole in an output."""
    names: list[str] = []
    # (node, inside a macro, call, filter or set block: output there is text a template can change)
    stack: list[tuple[nodes.Node, bool]] = [(ast, False)]
    while stack:
        node, captured = stack.pop()
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if _is_secret_call(child) and not captured:
                    names.append(_placed_name(child))
                else:
                    stack.append((child, captured))
            continue
        if isinstance(node, nodes.Name) and node.name == "secret":
            raise _Problem(_TRANSFORMED)
        inner = captured or isinstance(
            node, nodes.Macro | nodes.CallBlock | nodes.FilterBlock | nodes.AssignBlock
        )
        stack.extend((child, inner) for child in node.iter_child_nodes())
    return tuple(dict.fromkeys(names))


def _is_secret_call(node: nodes.Node) -> TypeGuard[nodes.Call]:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "secret"


def _placed_name(call: nodes.Call) -> str:
    name = _secret_name(call)
    if name is None:
        raise _Problem(
            "secret() takes the name of the secret in quotes, e.g. secret('STRIPE_KEY'), "
            "not a value computed by the template"
        )
    return name


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


def check_template(source: str, *, task_id: str, field_path: str, secrets_allowed: bool = False) -> None:
    """Raise `TemplateError` if ``source`` does not parse, uses a secret other than whole, or uses one
    where ``secrets_allowed`` is False; nothing is rendered."""
    _checked(source, task_id, field_path, secrets_allowed)


def render_value(
    value: Any,
    context: Mapping[str, Any],
    *,
    task_id: str,
    field_path: str = "",
    secrets_allowed: bool = False,
    seconds: float = RENDER_SECONDS,
    cpu_seconds: bool = False,
) -> Any:
    """Render every template string inside ``value``, walking dicts and lists; returns a new value.

    A string that is one whole expression, such as ``"{{ input.amount }}"`` (whitespace around it
    ignored), keeps the expression's type; mixed text renders to a string. Dict keys are not rendered.
    ``secret('NAME')`` is only allowed where ``secrets_allowed``: in a request's headers, query, path and
    body, never in what is shown or stored (idempotency keys, outputs, forEach, the server). Rendering stops
    after ``seconds`` (of the thread's CPU time with ``cpu_seconds``, `limits.time_limit`).
    """
    scope = context if type(context) is Scope else Scope({k: _wrapped(k, v) for k, v in context.items()})
    limit = time_limit(seconds, cpu=cpu_seconds)  # shared by every template of `value`
    return _render(value, scope, limit, task_id, field_path, secrets_allowed)


def _render(
    value: Any, scope: Scope, limit: time_limit, task_id: str, field_path: str, secrets_allowed: bool
) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return value
        return _render_string(value, scope, limit, task_id, field_path, secrets_allowed)
    kind = type(value)
    if kind is dict or (kind not in _PLAIN_LEAVES and isinstance(value, Mapping)):  # the abc check is slow
        return {
            key: _render(
                item,
                scope,
                limit,
                task_id,
                f"{field_path}.{key}" if field_path else str(key),
                secrets_allowed,
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        rendered = [
            _render(item, scope, limit, task_id, f"{field_path}[{i}]", secrets_allowed)
            for i, item in enumerate(value)
        ]
        return rendered if isinstance(value, list) else tuple(rendered)
    return value


UNSURE: Any = _UNSURE


def direct_renderer(value: Any) -> Callable[[Scope], Any] | None:
    """A renderer of `value`, simple templates (`{{ item.id }}`) in nested dicts, that gives what
    `render_value` gives without its walk, or `UNSURE` wherever it may not (`render_value` must then render
    it, and say what went wrong); None when a part of `value` is not that simple (a list, a secret)."""
    try:
        render = _direct_tree(value)
    except (_Problem, TemplateSyntaxError, RecursionError, MemoryError, SyntaxError, ValueError):
        return None
    if render is None:
        return None

    def rendered(scope: Scope) -> Any:
        try:
            return render(scope)
        except Exception:  # what went wrong is for `render_value` to say, in its own words
            return _UNSURE

    return rendered


def _direct_tree(value: Any) -> _Renderer | None:
    if type(value) is str:
        if not is_template(value):
            return lambda scope: value
        compiled = _compile(value)
        return compiled.direct if not compiled.secrets else None
    if type(value) is dict:
        parts = [(key, _direct_tree(item)) for key, item in value.items()]
        if any(part is None for _, part in parts):
            return None
        readers = [(key, part) for key, part in parts if part is not None]

        def mapping(scope: _Names) -> Any:
            out = {}
            for key, read in readers:
                item = read(scope)
                if item is _UNSURE:
                    return _UNSURE
                out[key] = item
            return out

        return mapping
    if type(value) in _PLAIN_LEAVES:
        return lambda scope: value
    return None


def _checked(source: str, task_id: str, field_path: str, secrets_allowed: bool) -> _Compiled:
    try:
        compiled = _compile(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            task_id, field_path, f"template syntax error at line {exc.lineno}: {exc.message}"
        ) from exc
    except _Problem as exc:
        raise TemplateError(task_id, field_path, str(exc)) from exc
    if compiled.secrets and not secrets_allowed:
        raise TemplateError(task_id, field_path, _misplaced(compiled.secrets[0]))
    return compiled


def _misplaced(name: str) -> str:
    return (
        f"secret({name!r}) cannot be used here: a secret may only be placed in a request's headers, "
        "query, path or body, never in a value that is shown or stored (an idempotency key, an output, "
        "forEach or the server)"
    )


def _render_string(
    source: str, scope: Scope, limit: time_limit, task_id: str, field_path: str, secrets_allowed: bool
) -> Any:
    compiled = _checked(source, task_id, field_path, secrets_allowed)
    try:
        return compiled.render(scope, limit)
    except HttptaskError as exc:
        raise TemplateError(task_id, field_path, exc.message) from exc
    except (_Problem, LimitExceeded, UndefinedError, SecurityError) as exc:
        raise TemplateError(task_id, field_path, str(exc)) from exc
    except RecursionError:
        raise TemplateError(task_id, field_path, "the template calls itself or nests too deeply") from None
    except MemoryError:
        raise TemplateError(
            task_id, field_path, "rendering ran out of memory; the template makes too much"
        ) from None
    except OverflowError as exc:
        # Python's own words ("(34, 'Numerical result out of range')") say nothing to a template's author.
        message = (
            f"range() gives at most {MAX_RANGE:,} numbers in a template; loop over fewer"
            if "MAX_RANGE" in str(exc)
            else "a number is too large for a decimal number (over 1.8e308); use smaller numbers"
        )
        raise TemplateError(task_id, field_path, message) from None
    except ValueError as exc:
        raise TemplateError(task_id, field_path, f"rendering failed: {_first_sentence(exc)}") from exc
    except (JinjaError, ArithmeticError, AttributeError, LookupError, TypeError) as exc:
        raise TemplateError(task_id, field_path, f"rendering failed: {exc}") from exc


class Scope(dict[str, Any]):
    """The names templates see, each wrapped in its read-only view: what `base_context` makes, and
    `render_value` takes as it is (any other mapping is wrapped for each render)."""

    def extended(self, names: Mapping[str, Any]) -> Scope:
        """This scope with `names` too (a forEach's `item`), wrapped; a reserved name is a `UsageError`."""
        wrapped = Scope(self)
        for name, value in names.items():
            if name in _RESERVED:
                raise UsageError(
                    f"The template name {name!r} is reserved; give the extra value another name."
                )
            wrapped[name] = _wrapped(name, value)
        return wrapped


def _wrapped(name: str, value: Any) -> Any:
    return value if isinstance(value, _View) else _view(value, (name,))


def base_context(
    *,
    inputs: Mapping[str, Any],
    tasks: Mapping[str, Any] | None = None,
    secrets: SecretStore | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Scope:
    """The names templates see: ``input``, ``tasks``, ``now()``, ``uuid()``, ``secret(NAME)`` and ``extra``.

    Values are wrapped, not copied, so building a context per task is cheap and the data stays untouched.
    """

    def secret(name: str) -> _Secret:
        if secrets is None:
            raise _Problem(f"secret({name!r}) cannot be used here because no secret store was configured")
        return _Secret(secrets.get(name))

    context = Scope(
        input=_view(inputs, ("input",)),
        tasks=_view(tasks if tasks is not None else {}, ("tasks",)),
        now=_now,
        uuid=_uuid,
        secret=secret,
    )
    return context.extended(extra) if extra else context


def _now(style: str = "iso") -> str | int:
    if style == "unix":
        return int(time.time())
    if style == "iso":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise _Problem(f"now() takes 'iso' or 'unix', not {style!r}")


def _uuid() -> str:
    return str(uuid.uuid4())


@lru_cache(maxsize=_PARSED_KEPT)
def _parsed(source: str) -> nodes.Template:
    """Jinja's tree of `source`, parsed once for the functions below, which all read it and none changes it
    (`_compile` parses its own: it rewrites loops)."""
    return _ENV.parse(source)


def references(source: str) -> list[Path]:
    """The variable paths ``source`` reads, such as ``("tasks", "t1", "response", "body", "id")``.

    A path stops at the first subscript that is not a constant; names bound inside the template (loop
    variables, ``set``) and built-in functions are not reported. A source that does not parse has none;
    `check_template` reports why.
    """
    try:
        ast = _parsed(source)
    except TemplateSyntaxError:
        return []
    found: list[Path] = []
    _walk_body(ast.body, _builtins(), found)
    return list(dict.fromkeys(found))


NOT_CONSTANT = object()


def constant(source: str) -> Any:
    """The value of ``source`` when it is one whole expression needing no input (``{{ 5 }}``, ``{{ [1] }}``),
    else `NOT_CONSTANT`."""
    try:
        expression = _single_expression(_parsed(source))
        if expression is None:
            return NOT_CONSTANT
        return expression.as_const(EvalContext(_ENV))
    except (TemplateSyntaxError, nodes.Impossible, RecursionError, ValueError):
        return NOT_CONSTANT


def expression_path(source: str) -> Path | None:
    """The path of ``source`` if it is exactly one reference such as ``"{{ a.b[0].c }}"``, else None."""
    try:
        ast = _parsed(source)
    except TemplateSyntaxError:
        return None
    return _lookup_path(_single_expression(ast))


def whole_lookup(source: str) -> Path | None:
    """`("item", "id")` for `"{{ item.id }}"`: the path a template reads where it renders as the value found
    there, whole, read without Jinja (see `direct_renderer`): a chain of constant keys on a name, alone in
    the template; else None."""
    try:
        compiled = _compile(source)
        ast = _ENV.parse(source)
    except (_Problem, TemplateSyntaxError, RecursionError, MemoryError, SyntaxError, ValueError):
        return None
    expression = _single_expression(ast)
    if compiled.secrets or compiled.direct is None or expression is None:
        return None
    if not _WHOLE_EXPRESSION.fullmatch(source) or isinstance(expression, nodes.Call):
        return None
    base, path, dynamic = _chain(expression)
    if dynamic or not isinstance(base, nodes.Name) or base.name in _builtins() | _JINJA_NAMES:
        return None
    return (base.name, *path)


@lru_cache(maxsize=_CACHE_SIZE)
def varies(source: str, names: frozenset[str]) -> bool:
    """Whether ``source`` may render differently with the same inputs: it reads one of ``names`` (such as a
    forEach's ``item``) or calls ``now()``, ``uuid()`` or ``secret()``. A source that does not parse varies,
    so that its error is reported where it is rendered."""
    try:
        ast = _parsed(source)
    except TemplateSyntaxError:
        return True
    if any(name.name in names for name in ast.find_all(nodes.Name)):
        return True
    calls = ast.find_all(nodes.Call)
    return any(isinstance(call.node, nodes.Name) and call.node.name in _FUNCTIONS for call in calls)


def secret_names(source: str) -> list[str]:
    """The names ``source`` reads with ``secret('NAME')``, in order; a name computed at run time is not
    known here. A source that does not parse has none; `check_template` reports why."""
    try:
        ast = _parsed(source)
    except TemplateSyntaxError:
        return []
    found = (_secret_name(call) for call in ast.find_all(nodes.Call))
    return list(dict.fromkeys(name for name in found if name is not None))


def secret_call(source: str) -> str | None:
    """NAME if ``source`` is exactly one ``{{ secret('NAME') }}`` (whitespace around it ignored), else
    None."""
    try:
        ast = _parsed(source)
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
