"""How big, how deep and how slow untrusted input may get: the bounds that templates and parsers check.

A template can only make values of at most `MAX_SIZE` characters or items, numbers of at most `MAX_DIGITS`
digits, and runs for at most `RENDER_SECONDS`. The checks run before an operation that could grow past a
bound, so no single step allocates first and complains later. A spec's regular expression (`pattern`) gets
`PATTERN_SECONDS` for one value: a pattern that backtracks without end (`^(a|aa)+$`) is stopped. The only
import of `regex`, the engine that can stop. A file is read up to a cap (`read_capped`): `/dev/zero` ends
nowhere. `LimitExceeded` carries the sentence to show.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
import string
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeGuard

import regex

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_FILE_BYTES",
    "MAX_SIZE",
    "MAX_SPEC_BYTES",
    "MAX_TEMPLATE_CHARS",
    "PATTERN_SECONDS",
    "RENDER_SECONDS",
    "LimitExceeded",
    "check_binop",
    "check_call",
    "check_depth",
    "check_filter",
    "check_result",
    "check_time",
    "outputs_seconds",
    "read_capped",
    "search",
    "serving",
    "size",
    "ticking",
    "time_limit",
]

MAX_SIZE = 2_000_000
MAX_DIGITS = 4_000
MAX_DEPTH = 100
MAX_TEMPLATE_CHARS = 50_000
RENDER_SECONDS = 1.0
PATTERN_SECONDS = 0.25
_OUTPUT_SECONDS_PER_ITEM = 50e-6
# A task, workflow, input or secrets file; an OpenAPI document (Chargebee's whole API is 2 MB).
MAX_FILE_BYTES = 8_000_000
MAX_SPEC_BYTES = 64_000_000

_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# Filters that gather all their value's items before they give anything: a lazy value (a forEach's results
# read from the journal) is held to the size limit before they read it whole, not after.
_GATHERING = frozenset({"list", "sort", "groupby", "dictsort", "tojson", "pprint", "slice"})
# `%%`, or the name of a `%(name)s` field.
_PERCENT_NAME = re.compile(r"%%|%\(([^)]*)\)")
_SPEC_WIDTHS = re.compile(r"(\d+)?(?:\.(\d+))?[a-zA-Z%]?$")
# The argument that sizes what a string method or a filter makes: its position after the value, its keyword.
_WIDTHS = {
    "center": (0, "width"),
    "ljust": (0, "width"),
    "rjust": (0, "width"),
    "zfill": (0, "width"),
    "indent": (0, "width"),
    "batch": (0, "linecount"),
    "slice": (0, "slices"),
}


class _Limit:
    """A template's time limit. Checks read the cheap monotonic clock (`deadline`). A limit on CPU time reads
    its thread's CPU time (a system call) only when that deadline passes: on a loaded machine the template had
    less CPU than wall time, and the deadline moves by what it did not get."""

    __slots__ = ("cpu_started", "deadline", "seconds")

    def __init__(self, seconds: float, *, cpu: bool) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cpu_started = time.thread_time() if cpu else None

    def check(self, now: float) -> None:
        left = 0.0 if self.cpu_started is None else self.seconds - (time.thread_time() - self.cpu_started)
        if left <= 0:
            raise LimitExceeded(
                f"the template ran longer than its limit of {self.seconds:g} s and was stopped"
            )
        self.deadline = now + left


# The current limit: set by `time_limit`, read by `check_time`.
_deadline: ContextVar[_Limit | None] = ContextVar("httptask_render_deadline", default=None)
# Set (`serving`) where template code runs on an event loop that answers others: limits count wall time there.
_serving: ContextVar[bool] = ContextVar("httptask_serving", default=False)


class LimitExceeded(Exception):
    """An operation would pass a bound; the message says which."""


def size(value: Any, limit: int = MAX_SIZE) -> int:
    """About how many characters `value` takes written out, counting one per item of every container and
    each shared part every time it appears; stops counting once past `limit`."""
    kind = type(value)
    if kind is str:  # a single value, the usual one, told apart before the walk (which gives the same)
        return len(value) or 1
    if kind is int:
        bits: int = value.bit_length()
        return bits // 3 + 1
    if kind in _ONE_EACH:
        return 1
    total = 0
    stack = [value]
    for step in itertools.count():
        if not stack or total > limit:
            break
        if step % 65_536 == 65_535:
            check_time()
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) or 1
        elif isinstance(item, bool) or not isinstance(item, int | Mapping | Sequence):
            if type(item) is _Unread:
                following = list(itertools.islice(item.items, _UNREAD_CHUNK))
                if following:
                    stack.append(item)
                    stack += following
                continue
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Mapping):
            total += len(item) or 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | range):
            total += len(item) or 1
            stack.extend(item)
        else:
            # A sequence read as it is asked (a forEach's results from the journal, an items file): its
            # items are counted a few at a time, so that no more of them is read than the limit needs.
            total += len(item) or 1
            stack.append(_Unread(iter(item)))
    return total


# Values `size` counts as one, whatever their limit.
_ONE_EACH = frozenset({float, bool, type(None)})
# How many items of a lazy sequence `size` reads at once.
_UNREAD_CHUNK = 1024


class _Unread:
    """The items of a lazy sequence `size` has not counted yet."""

    __slots__ = ("items",)

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items


def _too_big(what: str) -> LimitExceeded:
    return LimitExceeded(
        f"{what} would make a value of more than {MAX_SIZE:,} characters or items, "
        "the limit for a value made in a template"
    )


def _too_many_digits(what: str) -> LimitExceeded:
    return LimitExceeded(
        f"{what} would have more than {MAX_DIGITS:,} digits, the limit for a number in a template"
    )


def check_result(value: Any, what: str) -> Any:
    """`value` when it is inside the bounds, else `LimitExceeded` saying `what` made it."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_BITS:
            raise _too_many_digits(what)
    elif size(value) > MAX_SIZE:
        raise _too_big(what)
    return value


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left operator right` before it runs when its result would pass a bound."""
    if operator == "**" and _is_int(left) and _is_int(right):
        if right > 0 and abs(left) > 1 and math.log2(abs(left)) * right > _MAX_BITS:
            raise _too_many_digits("the power")
    elif operator == "*" and _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > _MAX_BITS + 1:
            raise _too_many_digits("the product")
    elif operator == "*" and (_is_int(left) or _is_int(right)):
        count, repeated = (left, right) if _is_int(left) else (right, left)
        if count > 0 and size(repeated) * count > MAX_SIZE:
            raise _too_big(f"repeating a value {count:,} times")
    elif operator == "+" and not (_is_number(left) and _is_number(right)):
        if size(left) + size(right) > MAX_SIZE:
            raise _too_big("adding the two values")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)
        _check_named_fields(left, right)


def check_call(method: str, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The arguments to call the string method `owner.method` with (a one-pass iterable made a list), or
    `LimitExceeded` when its result would pass a bound."""
    if not isinstance(owner, str | bytes):
        return args
    _check_width(method, owner, args, kwargs)
    if method == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        if _is_int(tab) and tabs * tab > MAX_SIZE:
            raise _too_big(f"expandtabs({tab})")
    elif method == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif method == "join" and args:
        items = _listed(args[0])
        _check_join(owner, items)
        args = (items, *args[1:])
    elif method in ("format", "format_map") and isinstance(owner, str):
        _check_format(owner)
        named = args[0] if method == "format_map" and args else kwargs
        _check_fields(owner, args if method == "format" else (), named)
    elif method == "translate" and isinstance(owner, str) and args and isinstance(args[0], Mapping):
        _check_translate(owner, args[0])
    return args


def check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """The value to apply the filter `name` to (a one-pass iterable made a list for `join`), or
    `LimitExceeded` when its result would pass a bound."""
    _check_width(name, value, args, kwargs)
    if name in _GATHERING:
        value = _listed(value)
        if not isinstance(value, list | tuple | str) and size(value) > MAX_SIZE:
            raise _too_big(f"the filter {name}")
    if name == "replace" and len(args) >= 2 and isinstance(value, str):
        _check_replace(value, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    elif name == "join":
        value = _listed(value)
        _check_join(args[0] if args else kwargs.get("d", ""), value)
    elif name == "format" and isinstance(value, str):
        _check_format(value)
        _check_named_fields(value, kwargs or args)
    elif name == "wordwrap" and isinstance(value, str):
        _check_wrap(value, args, kwargs)
    elif name == "urlize" and isinstance(value, str):
        _check_links(value, args, kwargs)
    elif name == "tojson":
        indent = args[0] if args else kwargs.get("indent")
        if _is_int(indent) and indent * MAX_DEPTH > MAX_SIZE:
            raise _too_big(f"tojson(indent={indent})")
    elif name == "sum":
        start = args[1] if len(args) > 1 else kwargs.get("start", 0)
        if not _is_number(start):
            raise LimitExceeded("sum adds numbers; give it a number to start from")
    return value


def _check_width(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if name not in _WIDTHS:
        return
    position, keyword = _WIDTHS[name]
    width = args[position] if len(args) > position else kwargs.get(keyword)
    if isinstance(width, str):
        width = len(width)
    # `indent` pads every line of its text; the others make one value of about that width.
    lines = value.count("\n") + 1 if name == "indent" and isinstance(value, str) else 1
    if _is_int(width) and width * lines > MAX_SIZE - size(value):
        raise _too_big(f"{name}({width})")


def _check_format(text: str) -> None:
    """Refuse a `%` or `{}` format whose widths or precisions would make a string past the size limit."""
    numbers = [number for match in _PERCENT_FIELD.finditer(text) for number in match.groups()]
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        fields = []  # not a {} format: formatting it fails with its own message
    for _text, _name, spec, _conversion in fields:
        if spec and "{" in spec:
            raise LimitExceeded("a format width taken from another {} field is not allowed in templates")
        found = _SPEC_WIDTHS.search(spec or "")
        if found is not None:
            numbers += found.groups()
    for number in numbers:
        if number == "*":
            raise LimitExceeded("a format width given as '*' is not allowed in templates")
        if number is not None and (len(number) > 9 or int(number) > MAX_SIZE):
            raise _too_big(f"a format width of {number}")


def _check_fields(text: str, args: Sequence[Any], named: Any) -> None:
    """Refuse a `{}` format whose fields would pass the size limit, each counted as the size of the value it
    names: a field written many times repeats its value as many times."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # not a {} format: formatting it fails with its own message
    sizes: dict[int | str, int] = {}
    total, auto = len(text), 0
    for _text, name, _spec, _conversion in fields:
        if name is None:
            continue
        written = name.partition(".")[0].partition("[")[0]
        key: int | str = written
        if written == "":
            key, auto = auto, auto + 1
        elif written.isdigit():
            key = int(written)
        if key not in sizes:
            if isinstance(key, int):
                value = args[key] if key < len(args) else None
            else:
                value = named.get(key) if isinstance(named, Mapping) else None
            sizes[key] = size(value)
        total += sizes[key]
        if total > MAX_SIZE:
            raise _too_big("formatting the text")


def _check_named_fields(text: str, values: Any) -> None:
    """Refuse a `%` format with named fields (`%(name)s`) that would pass the size limit: a name written many
    times repeats its value as many times. Fields without a name each take the next value, once."""
    if not isinstance(values, Mapping):
        return
    sizes: dict[str, int] = {}
    total = len(text)
    for found in _PERCENT_NAME.finditer(text):
        name = found.group(1)
        if name is None:
            continue
        if name not in sizes:
            sizes[name] = size(values.get(name))
        total += sizes[name]
        if total > MAX_SIZE:
            raise _too_big("formatting the text")


def _check_translate(text: str, table: Mapping[Any, Any]) -> None:
    total = len(text)
    for character, count in collections.Counter(text).items():
        replacement = table.get(ord(character))
        if isinstance(replacement, str):
            total += count * (len(replacement) - 1)
    if total > MAX_SIZE:
        raise _too_big("the translation")


def _check_wrap(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse `wordwrap` when its lines, each ended by `wrapstring`, could pass the size limit: a line holds
    about `width` characters, at least half that with the space before the next word."""
    width = args[0] if args else kwargs.get("width", 79)
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring")
    if not _is_int(width) or not isinstance(wrap, str) or len(wrap) <= 1:
        return
    lines = 2 * len(text) // (max(width, 1) + 1) + text.count("\n") + 2
    if len(text) + lines * len(wrap) > MAX_SIZE:
        raise _too_big(f"wrapping the text in lines of {width}")


def _check_links(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse `urlize` when the `target` and `rel` written into every link could pass the size limit: a link
    is at least six characters with the space after it (`a.com `)."""
    target = args[2] if len(args) > 2 else kwargs.get("target")
    rel = args[3] if len(args) > 3 else kwargs.get("rel")
    extra = sum(len(part) for part in (target, rel) if isinstance(part, str))
    if len(text) + (len(text) // 6 + 1) * extra > MAX_SIZE:
        raise _too_big("the links")


def _check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    if type(old) is not type(text) or type(new) is not type(text) or len(new) <= len(old):
        return
    found = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > MAX_SIZE:
        raise _too_big("the replacement")


def _check_join(separator: Any, items: Any) -> None:
    if not isinstance(separator, str | bytes) or not isinstance(items, Sequence):
        return
    if len(items) * len(separator) + size(items) > MAX_SIZE:
        raise _too_big("joining the items")


def _listed(items: Any) -> Any:
    """A one-pass iterable (a generator from `map`, say) as a list, refused as soon as the items read so far
    are past the limit."""
    if isinstance(items, str | bytes | Mapping | Sequence) or not hasattr(items, "__iter__"):
        return items
    listed = []
    total = 0
    for item in items:
        listed.append(item)
        total += size(item, MAX_SIZE - total) + 1
        if total > MAX_SIZE:
            raise _too_big("the items")
    return listed


def check_depth(value: Any, where: str) -> None:
    """Refuse data nested more than `MAX_DEPTH` levels, before anything walks it recursively."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it")
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def check_time() -> None:
    """Stop here, with `LimitExceeded`, if the enclosing `time_limit` has run out."""
    limit = _deadline.get()
    if limit is not None and (now := time.monotonic()) > limit.deadline:
        limit.check(now)


class time_limit:
    """Let template code run for `seconds` (or until an enclosing limit ends, if sooner); `check_time` then
    stops it. The sandbox checks on every loop step, call, filter and operator. With `cpu`, the seconds are
    the thread's CPU time: for a run's own long work, which a busy machine must not fail; the editor, which
    answers others, keeps wall-clock limits (`serving`). The seconds count from the first time it is entered;
    entered again, it keeps that deadline (a render enters it only around what Jinja renders)."""

    __slots__ = ("_cpu", "_limit", "_seconds", "_token")

    def __init__(self, seconds: float = RENDER_SECONDS, *, cpu: bool = False) -> None:
        self._seconds = seconds
        self._cpu = cpu
        self._limit: _Limit | None = None

    def __enter__(self) -> None:
        if self._limit is None:
            self._limit = _Limit(self._seconds, cpu=self._cpu and not _serving.get())
        outer, limit = _deadline.get(), self._limit
        self._token = _deadline.set(limit if outer is None or limit.deadline < outer.deadline else outer)

    def __exit__(self, *exc_info: object) -> None:
        _deadline.reset(self._token)


@contextmanager
def serving() -> Iterator[None]:
    """Within (and in the tasks started within), `time_limit(cpu=True)` counts wall time: the editor's runs
    render their outputs on the event loop that answers everyone, which a loaded machine must not hold for
    many times the limit."""
    token = _serving.set(True)
    try:
        yield
    finally:
        _serving.reset(token)


def outputs_seconds(items: int) -> float:
    """The CPU-time limit of a workflow's outputs: they may read every item's result
    (`tasks.refund | map(attribute='response.status')`), so it grows with the results there are to read, not
    only with what the template does."""
    return RENDER_SECONDS + items * _OUTPUT_SECONDS_PER_ITEM


def ticking(items: Iterable[Any]) -> Iterator[Any]:
    """`items`, checking the time limit before each one: what a template's `for` loop iterates over."""
    for item in items:
        check_time()
        yield item


def read_capped(path: Path, cap: int) -> str:
    """The UTF-8 text of ``path``, reading no more than ``cap`` bytes: `LimitExceeded` past them. `OSError`
    and `UnicodeDecodeError` as `Path.read_text` raises them."""
    with path.open("rb") as file:
        data = file.read(cap + 1)
    if len(data) > cap:
        raise LimitExceeded(
            f"is larger than {cap:,} bytes, the most httptask reads from one file; split it, or check "
            "that it is the file you meant"
        )
    return data.decode("utf-8")


def search(pattern: str, text: str) -> bool:
    """Whether the regular expression ``pattern`` matches somewhere in ``text``, as `re.search` reads it;
    `LimitExceeded` when it has not decided within `PATTERN_SECONDS`."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_SECONDS) is not None
    except (regex.error, RecursionError):
        # What `re` reads and `regex` does not (groups nested hundreds deep): `re` has no timeout to offer.
        return re.search(pattern, text) is not None
    except TimeoutError:
        raise LimitExceeded(
            f"cannot be checked against the pattern {pattern} within {PATTERN_SECONDS:g} s: the pattern "
            "backtracks without end on this value; simplify the pattern in the spec"
        ) from None
