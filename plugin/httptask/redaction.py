"""The one redactor every output channel passes through, and what a secret looks like there.

A secret reaches output only in forms the redactor knows, because templates cannot transform one: as it
is, JSON-escaped (once or nested, `\\u00e9` or `é`), percent-encoded (wholly or in part, `+` for a space),
base64 (alone, and as an HTTP basic `user:` pair), and the derived values the auth layer registers. Each
form is matched character by character, so a mixture of them is masked too.

The console is guarded by `guard_stdio`; the journal, the editor's responses and the sandbox's log redact
with the same `Redactor` before they write.
"""

from __future__ import annotations

import base64
import io
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from .auth import is_credential_name, wire_forms

__all__ = ["MASK", "RedactingStream", "Redactor", "guard_stdio", "process_redactor"]

MASK = "***"

# JSON inside JSON (a journaled body printed with --json) escapes again: up to 7 backslashes cover it.
_ESCAPES = r"\\\\{0,6}"
_SHORT_ESCAPES = {'"': '"', "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# The most text one character of a secret can become: a surrogate pair, each half escaped 7 times.
_LONGEST_CHARACTER = 2 * (7 + 5)


def _forms(char: str) -> list[str]:
    """Patterns for one character of a secret in each of its forms: itself, JSON-escaped (once or nested),
    percent-encoded. Each pattern starts with a literal character, which lets the regex engine skip ahead to
    where a match can begin: this is what keeps redaction fast on large outputs.

    Letters, digits and `-._~` are never escaped by JSON nor percent-encoded, so they stay as they are.
    """
    if char in _UNRESERVED:
        return [re.escape(char)]
    if char == "\\":
        # A backslash is its own escape: one, two (JSON), four (JSON in JSON) and so on.
        return [r"\\\\{0,14}", "%5[cC]"]
    forms = [re.escape(char), "".join("%" + _hex(byte, 2) for byte in char.encode("utf-8"))]
    if char == " ":
        forms.append(r"\+")
    code = ord(char)
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
    forms.append("".join(_ESCAPES + "u" + _hex(unit, 4) for unit in units))
    if char in _SHORT_ESCAPES:
        forms.append(_ESCAPES + re.escape(_SHORT_ESCAPES[char]))
    return forms


def _hex(number: int, digits: int) -> str:
    """``number`` as hex digits matched in either case: ``[cC]3`` for 0xC3."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{number:0{digits}x}")


def _patterns(text: str) -> list[str]:
    """Patterns for ``text`` in every mixture of its characters' forms, one per form of its first one."""
    rest = "".join("(?:" + "|".join(_forms(char)) + ")" for char in text[1:])
    return [first + rest for first in _forms(text[0])]


def _b64_forms(text: str) -> set[str]:
    raw = text.encode("utf-8")
    encoded = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return encoded | {form.rstrip("=") for form in encoded}


class Redactor:
    """Remembers secret values and replaces every form of them in text with ``***``.

    Every non-empty value is redacted, however short: a leaked three-letter PIN is still a leak, and an
    over-eager mask only costs readability. Safe to share between threads; pickles with its values.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.longest = 0
        self.multiline = False
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Redact ``value`` from now on, in every form it takes on the wire (`auth.wire_forms`) and in
        base64 with either alphabet, padded or not."""
        if not value or value in self._values:
            return
        forms = wire_forms(value) | _b64_forms(value) | _b64_forms(value + ":")
        with self._lock:
            self._values.add(value)
            self._forms |= forms
            self.multiline = self.multiline or "\n" in value or "\r" in value
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._forms, key=lambda text: (-len(text), text))
            self._pattern = re.compile("|".join(p for text in ordered for p in _patterns(text)))
            self.longest = len(ordered[0]) * _LONGEST_CHARACTER

    def merge(self, other: Redactor) -> None:
        """Redact everything ``other`` redacts too."""
        for value in other.values():
            self.add(value)

    def values(self) -> list[str]:
        with self._lock:
            return sorted(self._values)

    def __getstate__(self) -> dict[str, Any]:
        return {"values": self.values()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["values"])  # type: ignore[misc]

    def redact(self, text: str) -> str:
        """``text`` with every known secret form replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def redact_prefix(self, text: str, end: int) -> tuple[str, str]:
        """(``text[:end]`` redacted, the rest), cutting after ``end`` where a match runs past it."""
        pattern = self._pattern
        if pattern is None:
            return text[:end], text[end:]
        out: list[str] = []
        position = 0
        for match in pattern.finditer(text):
            if match.start() >= end:
                break
            out += [text[position : match.start()], MASK]
            position = match.end()
        if position < end:
            out.append(text[position:end])
        return "".join(out), text[max(position, end) :]

    def redact_value(self, value: Any) -> Any:
        """A deep copy of dicts, lists and tuples in ``value`` with every string, keys too, redacted."""
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
        return {
            name: MASK if is_credential_name(name) else self.redact(value) for name, value in headers.items()
        }


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
