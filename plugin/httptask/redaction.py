"""The one redactor every output channel passes through, and what a secret looks like there.

A secret reaches output only in forms the redactor knows, because templates cannot transform one: as it
is, JSON-escaped (once or nested, `\\u00e9` or `é`), percent-encoded (wholly or in part, `+` for a space),
escaped as Python's repr writes a str or bytes (`\\'`, `\\xc3\\xa9`), as HTML entities, base64 (alone, and
as an HTTP basic `user:` pair), and the derived values the auth layer registers. Each form is matched
character by character, so a mixture of them is masked too; so is a secret with every character escaped,
letters and digits too (`%73%6B`, `\\u0073\\u006b`, `&#115;&#107;`). What a server echoes may be changed in
ways no list of forms foresees, so a secret is also found in any case, and in part (see `Redactor`).

The console is guarded by `guard_stdio`; the journal, the editor's responses and the sandbox's log redact
with the same `Redactor` before they write.
"""

from __future__ import annotations

import base64
import bisect
import functools
import html
import io
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from .auth import is_credential_name, wire_forms

__all__ = ["MASK", "RedactingStream", "Redactor", "guard_stdio", "process_redactor", "redact_for_process"]

MASK = "***"

# JSON inside JSON (a journaled body printed with --json) escapes again: up to 7 backslashes cover it.
_ESCAPES = r"\\\\{0,6}"
# Backslash escapes that stand for one character: JSON's, and Python's `\'` in the repr of a str or bytes.
_SHORT_ESCAPES = {'"': '"', "'": "'", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
_HTML_NAMES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
# What opens, closes or escapes a string or an element in the texts we write (JSON, repr, HTML, URLs).
_MARKS = frozenset("\"'\\`<>()[]{}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# The most text one character of a secret can become: four UTF-8 bytes, each `\xNN` escaped 7 times.
_LONGEST_CHARACTER = 4 * (7 + 3)
# A secret of at least _PARTIAL characters is cut into blocks of _BLOCK characters (more for a long one, so
# that it has at most _MAX_BLOCKS): wherever a block appears, the run of the secret around it is masked. A
# shorter secret (`test_key`) is masked whole only: its blocks would be words found everywhere.
_PARTIAL = 16
_BLOCK = 6
_MAX_BLOCKS = 32
# Letters of one case, perhaps with `_-. `: a block like this is a word more often than a key's.
_WORDLIKE = re.compile(r"[a-z_.\- ]+|[A-Z_.\- ]+")
# What every escaped form of a character in the pattern starts with (`_forms`): in a text with none of them,
# the pattern finds a secret's forms only as they are written. A test reads the pattern to hold any new form
# to this.
_ESCAPE_STARTS = ("\\", "%", "&", "+")
# Short texts recur in every request of a run (header values, field names): their redaction is remembered,
# up to _MEMO_TEXTS of at most _MEMO_CHARS characters, until the redactor learns another secret.
_MEMO_CHARS = 256
_MEMO_TEXTS = 4096
# Values with no text in them, kept as they are.
_NUMBERS = frozenset({int, float, bool, type(None)})
# A server's answers repeat their headers: the redaction of a whole set is remembered too, for this many sets
# (a head is at most `http1.MAX_HEAD_BYTES`).
_MEMO_HEADER_SETS = 64


def _forms(char: str) -> list[str]:
    """Patterns for one character of a secret in each of its forms: itself, JSON-escaped (once or nested),
    percent-encoded, escaped as Python's repr writes a str or bytes (`\\'`, `\\xe9`, `\\xc3\\xa9`), and as
    an HTML entity. Each pattern starts with a literal character, which lets the regex engine skip ahead to
    where a match can begin: this is what keeps redaction fast on large outputs.

    Letters, digits and `-._~` are never escaped by JSON nor percent-encoded, so they stay as they are.
    """
    if char in _UNRESERVED:
        return [re.escape(char)]
    if char == "\\":
        # A backslash is its own escape: one, two (JSON), four (JSON in JSON) and so on.
        return [r"\\\\{0,14}", "%5[cC]", "&#0{0,4}92;", "&#[xX]0{0,4}5[cC];"]
    code = ord(char)
    forms = [re.escape(char), "".join("%" + _hex(byte, 2) for byte in char.encode("utf-8"))]
    if char == " ":
        forms.append(r"\+")
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
    forms.append("".join(_ESCAPES + "u" + _hex(unit, 4) for unit in units))
    if char in _SHORT_ESCAPES:
        forms.append(_ESCAPES + re.escape(_SHORT_ESCAPES[char]))
    if code < 0x100:
        forms.append(_ESCAPES + "x" + _hex(code, 2))
    if code >= 0x80:
        forms.append("".join(_ESCAPES + "x" + _hex(byte, 2) for byte in char.encode("utf-8")))
    if code >= 0x10000:
        forms.append(_ESCAPES + "U" + _hex(code, 8))
    forms += [f"&#0{{0,4}}{code};", f"&#[xX]0{{0,4}}{_hex(code, 1)};"]
    if char in _HTML_NAMES:
        forms.append(f"&{_HTML_NAMES[char]};")
    return forms


def _spelled_out(secret: str) -> list[str]:
    """Patterns for ``secret`` with every character escaped, letters and digits too, as an encoder that
    escapes everything writes it (`_forms` escapes only what encoders must): percent-encoded UTF-8, JSON's
    `\\uXXXX` (UTF-16, once or nested), and decimal or hex HTML entities; hex digits in either case."""
    utf16 = secret.encode("utf-16-be")
    units = [utf16[at] << 8 | utf16[at + 1] for at in range(0, len(utf16), 2)]
    return [
        "".join("%" + _hex(byte, 2) for byte in secret.encode("utf-8")),
        "".join(_ESCAPES + "u" + _hex(unit, 4) for unit in units),
        "".join(f"&#0{{0,4}}{ord(char)};" for char in secret),
        "".join(f"&#[xX]0{{0,4}}{_hex(ord(char), 1)};" for char in secret),
    ]


def _hex(number: int, digits: int) -> str:
    """``number`` as hex digits matched in either case: ``[cC]3`` for 0xC3."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{number:0{digits}x}")


def _patterns(text: str) -> list[str]:
    """Patterns for ``text`` in every mixture of its characters' forms, one per form of its first one."""
    rest = "".join(_character(char).pattern for char in text[1:])
    return [first + rest for first in _forms(text[0])]


@functools.lru_cache(maxsize=4096)
def _character(char: str) -> re.Pattern[str]:
    """One character in any of its forms."""
    forms = _forms(char)
    return re.compile(forms[0] if len(forms) == 1 else "(?:" + "|".join(forms) + ")")


def _b64_forms(text: str) -> set[str]:
    raw = text.encode("utf-8")
    encoded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return encoded | {form.rstrip("=") for form in encoded}


def _lower(text: str) -> str:
    """``text`` in lower case, each character in place: U+0130, the one whose lower case is two characters
    (`i` and a dot above), becomes `i`."""
    return text.replace("\u0130", "i").lower()


def _written(text: str) -> set[str]:
    """``text`` as the usual encoders write it, each whole: JSON, percent-encoding, repr, HTML."""
    return {
        text,
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        quote(text, safe=""),
        quote_plus(text, safe=""),
        repr(text)[1:-1],
        repr(text.encode("utf-8"))[2:-1],
        html.escape(text),
    }


class _Part:
    """The run of a secret a text to look for stands for: the secret, and where the run ends in it."""

    __slots__ = ("end", "secret")

    def __init__(self, secret: str, end: int) -> None:
        self.secret, self.end = secret, end

    def grown(self, text: str, lowered: str, start: int, end: int) -> tuple[int, int]:
        """The span of the run of the secret found at ``text[start:end]``, grown on through the characters of
        the secret that follow, in any of their forms and either case, but never ending on a quote, bracket
        or backslash in any form: that may be the text's own (the `"` or `\\"` that closes a JSON string),
        and masking it would break the text. Nor back, for the same reason (the `\\` of an escape)."""
        safe = end
        for char in self.secret[self.end :]:
            match = _character(char).match(text, end) or _character(char.lower()).match(lowered, end)
            if match is None:
                break
            end = match.end()
            if char not in _MARKS:
                safe = end
        return start, safe


def _escape_start(text: str, start: int) -> int:
    """``start``, or one before it where the backslash there escapes the character at ``start`` (a JSON
    needle found in JSON inside JSON, `\\\\u00e9`): a mask must take an escape whole."""
    before = start
    while before > 0 and text[before - 1] == "\\":
        before -= 1
    return start - 1 if (start - before) % 2 else start


def _parts(secret: str) -> Iterator[tuple[str, _Part]]:
    """What finds ``secret`` in any case and in part: (the lower-cased text to look for, the run it stands
    for), for the secret and, when it is long enough, each of its blocks as the usual encoders write it. A
    run of its characters one shorter than two blocks holds one whole block. A block's quotes, brackets and
    backslashes at either end are left out of it: they may be the text's own (the `"` that closes a
    JSON string), and a mask must not take them. A block that reads as a word (`nknown` of `test_unknown_key`)
    is not looked for: it would mask that word in every text."""
    size = max(_BLOCK, -(-len(secret) // _MAX_BLOCKS))
    runs = [(0, len(secret))]
    if len(secret) >= _PARTIAL:
        runs += [_inner(secret, start, start + size) for start in range(0, len(secret) - size + 1, size)]
    for start, end in runs:
        if start < end and not (end - start < len(secret) and _WORDLIKE.fullmatch(secret[start:end])):
            for text in _written(secret[start:end]):
                yield _lower(text), _Part(secret, end)


# Past this many texts, `_fewest` keeps them all rather than compare each pair.
_FEWEST_COMPARED = 256


def _fewest(texts: Iterable[str]) -> tuple[str, ...]:
    """The shortest of ``texts``, such that each of ``texts`` holds one of them: a text that holds none of
    these holds none of ``texts``. All of them when there are too many to compare."""
    ordered = sorted(set(texts), key=len)
    if len(ordered) > _FEWEST_COMPARED:
        return tuple(ordered)
    kept: list[str] = []
    for text in ordered:
        if not any(shorter in text for shorter in kept):
            kept.append(text)
    return tuple(kept)


def _inner(secret: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past the quotes, brackets and backslashes at the ends of the run."""
    while start < end and secret[start] in _MARKS:
        start += 1
    while end > start and secret[end - 1] in _MARKS:
        end -= 1
    return start, end


# The same few header names come with every request and response of a run.
_credential = functools.lru_cache(maxsize=1024)(is_credential_name)


class Redactor:
    """Remembers secret values and replaces every form of them in text with ``***``.

    Beyond the forms a secret takes, it is found in any case (a server may upper-case what it echoes) and in
    part: wherever one of its blocks appears (6 characters for most keys), it is masked with the rest of the
    secret that follows, so that a server echoing a prefix or a message cut short shows no run of 11
    characters of it (quotes, brackets and backslashes aside: a mask never starts or ends on one), and of
    a longer run only what comes before its first whole block. Every non-empty value is redacted whole,
    however short: a leaked three-letter PIN is still a leak, and an over-eager mask only costs readability.
    Safe to share between threads; pickles with its values.
    """

    def __init__(self, values: Iterable[str] = (), derived: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._derived: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # Forms as written that every form the pattern finds holds one of: what it can find in a text with no
        # `_ESCAPE_STARTS`. And texts that every text of `_parts` holds one of.
        self._literal: tuple[str, ...] = ()
        self._needles: tuple[str, ...] = ()
        # Each lower-cased text to look for, and the runs of secrets it stands for (a block may recur).
        self._parts: dict[str, list[_Part]] = {}
        self._memo: dict[str, str] = {}
        self._header_memo: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._lock = threading.Lock()
        self.longest = 0
        self.multiline = False
        for value in values:
            self.add(value)
        for value in derived:
            self.add_derived(value)

    def add(self, value: str) -> None:
        """Redact the secret ``value`` from now on: whole, in any case and in part, and in every form it takes
        on the wire (`auth.wire_forms`) and in base64 with either alphabet, padded or not."""
        if not value or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            self._compile()

    def add_derived(self, value: str) -> None:
        """Redact ``value``, made from a secret (a credential as sent: `Bearer` and the secret), whole only:
        a part of it may be its public prefix."""
        if not value or value in self._derived or value in self._values:
            return
        with self._lock:
            self._derived.add(value)
            self._compile()

    def _compile(self) -> None:
        forms = set(self._derived)
        parts: dict[str, list[_Part]] = {}
        for secret in sorted(self._values):
            encoded = _b64_forms(secret) | _b64_forms(secret + ":")
            forms |= wire_forms(secret) | encoded
            for needle, part in _parts(secret):
                parts.setdefault(needle, []).append(part)
            # A server that upper-cases what it echoes turns base64 into text from which the secret can be
            # guessed back (a few cases per group of four): it is found in any case too, whole.
            for form in encoded:
                parts.setdefault(_lower(form), []).append(_Part(form, len(form)))
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(forms, key=lambda text: (-len(text), text))
        spelled = [p for secret in sorted(self._values, key=len, reverse=True) for p in _spelled_out(secret)]
        self._pattern = re.compile("|".join([*spelled, *(p for text in ordered for p in _patterns(text))]))
        self._parts = parts
        self._literal, self._needles = _fewest(ordered), _fewest(parts)
        # New memos after everything `_clean` and `_spans` read: a text redacted meanwhile with the old ones
        # goes to the old memo.
        self._memo = {}
        self._header_memo = {}
        self.multiline = any("\n" in text or "\r" in text for text in forms)
        self.longest = len(ordered[0]) * _LONGEST_CHARACTER

    def merge(self, other: Redactor) -> None:
        """Redact everything ``other`` redacts too."""
        values, derived = other._known()
        for value in values:
            self.add(value)
        for value in derived:
            self.add_derived(value)

    def values(self) -> list[str]:
        """The secrets this redactor masks (not the values derived from them)."""
        return self._known()[0]

    def _known(self) -> tuple[list[str], list[str]]:
        with self._lock:
            return sorted(self._values), sorted(self._derived)

    def __getstate__(self) -> dict[str, Any]:
        values, derived = self._known()
        return {"values": values, "derived": derived}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["values"], state["derived"])  # type: ignore[misc]

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` holds a secret, in order, overlapping spans joined."""
        pattern, parts = self._pattern, self._parts
        if pattern is None or self._clean(text):
            return []
        whole = [match.span() for match in pattern.finditer(text)]
        ends = [end for _, end in whole]
        spans = list(whole)
        # Literal searches rather than one more regex: a regex of every block would try each block at every
        # position (the blocks of a key begin with most letters), and is ten times slower.
        lowered = _lower(text)
        for needle, runs in parts.items():
            found = lowered.find(needle)
            while found >= 0:
                inside = bisect.bisect_right(ends, found)
                # A block inside a secret already masked whole is no part of another run of it.
                if inside == len(whole) or found < whole[inside][0]:
                    start = _escape_start(text, found)
                    grown = (run.grown(text, lowered, start, found + len(needle)) for run in runs)
                    spans.append(max(grown, key=lambda span: span[1] - span[0]))
                found = lowered.find(needle, found + 1)
        spans.sort()
        joined: list[tuple[int, int]] = []
        for start, end in spans:
            if joined and start <= joined[-1][1]:
                joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
            else:
                joined.append((start, end))
        return joined

    def _clean(self, text: str) -> bool:
        """Whether ``text`` surely holds no secret, found with a few searches in C, as most texts are: no
        form the pattern finds (only as written, when no character in it starts another form) and no
        text that `_parts` finds (each holds one of `_needles`). False when it cannot tell: `_spans` then
        looks."""
        for start in _ESCAPE_STARTS:
            if start in text:
                if self._pattern is None or self._pattern.search(text) is not None:
                    return False
                break
        else:
            for form in self._literal:
                if form in text:
                    return False
        lowered = _lower(text)
        for needle in self._needles:  # noqa: SIM110  (a generator would cost about as much as the searches)
            if needle in lowered:
                return False
        return True

    def redact(self, text: str) -> str:
        """``text`` with every known secret form replaced by ``***``."""
        if len(text) > _MEMO_CHARS:
            return self._redacted(text)
        memo = self._memo  # read before the pattern `_spans` uses: see `_compile`
        found = memo.get(text)
        if found is None:
            found = self._redacted(text)
            if len(memo) >= _MEMO_TEXTS:
                memo.clear()
            memo[text] = found
        return found

    def _redacted(self, text: str) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        out: list[str] = []
        position = 0
        for start, end in spans:
            out += [text[position:start], MASK]
            position = end
        out.append(text[position:])
        return "".join(out)

    def redact_prefix(self, text: str, end: int) -> tuple[str, str]:
        """(``text[:end]`` redacted, the rest), cutting after ``end`` where a match runs past it."""
        out: list[str] = []
        position = 0
        for start, stop in self._spans(text):
            if start >= end:
                break
            out += [text[position:start], MASK]
            position = stop
        if position < end:
            out.append(text[position:end])
        return "".join(out), text[max(position, end) :]

    def redact_value(self, value: Any) -> Any:
        """A deep copy of dicts, lists and tuples in ``value`` with every string, keys too, redacted."""
        # JSON's own types first, by exact type: a check against `Mapping` costs more than the rest.
        kind = type(value)
        if kind is str:
            return self.redact(value)
        if kind is dict:
            return {self.redact_value(key): self.redact_value(item) for key, item in value.items()}
        if kind is list:
            return [self.redact_value(item) for item in value]
        if kind in _NUMBERS:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {self.redact_value(key): self.redact_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.redact_value(item) for item in value)
        return value

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with credentials masked whole and known secrets redacted from the rest."""
        return {name: MASK if _credential(name) else self.redact(value) for name, value in headers.items()}

    def redact_header_pairs(self, pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
        """`redact_headers` of ``pairs`` as a dict (the last of a repeated name wins), remembered for these
        exact pairs until the redactor learns another secret: a server's answers repeat their headers."""
        memo = self._header_memo  # read before the pattern `_spans` uses: see `_compile`
        try:
            found = memo.get(pairs)
        except TypeError:  # a library's own response may hold lists, which cannot be remembered
            return self.redact_headers(dict(pairs))
        if found is None:
            found = self.redact_headers(dict(pairs))
            if len(memo) >= _MEMO_HEADER_SETS:
                memo.clear()
            memo[pairs] = found
        return dict(found)  # the caller's own: a record may be changed after it is made


class RedactingStream(io.TextIOBase):
    """A text stream that redacts everything written to it before its underlying stream sees it.

    It holds back the last line until it ends (or, when a secret spans lines, the last few hundred
    characters) until the next write or flush, so that a secret written in two pieces is still seen whole.
    It has no binary ``buffer``: bytes could not be redacted.
    """

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        super().__init__()
        self._stream = stream
        self._redactor = redactor
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if self._redactor.multiline:
                end = len(self._pending) - self._redactor.longest
            else:
                # No secret spans lines: whole lines can go out at once, and a terminal sees each as it ends.
                end = self._pending.rfind("\n") + 1
            if end > 0:
                out, self._pending = self._redactor.redact_prefix(self._pending, end)
                self._stream.write(out)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            out, self._pending = self._redactor.redact(self._pending), ""
            self._stream.write(out)
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors


_process: Redactor | None = None


def guard_stdio(redactor: Redactor) -> None:
    """Send this process's stdout and stderr through ``redactor``; every `SecretStore` made after this
    registers with it (see `process_redactor`)."""
    global _process
    _process = redactor
    sys.stdout = RedactingStream(sys.stdout, redactor)
    sys.stderr = RedactingStream(sys.stderr, redactor)


def process_redactor() -> Redactor:
    """The redactor guarding this process's console, or a new one when nothing guards it (a library use)."""
    return _process if _process is not None else Redactor()


def redact_for_process(text: str) -> str:
    """`text` as the redactor guarding this process's console redacts it (unchanged when nothing guards it,
    as a new redactor would leave it)."""
    return text if _process is None else _process.redact(text)
