"""Credentials resolved by name from the environment or a secrets file, and the redactor that masks them.

A world-readable secrets file is accepted (refusing it would break shared CI runners); keep it mode 600.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from httptask.auth import is_credential_name, wire_forms
from httptask.errors import SourceError, UsageError
from httptask.yamlsource import parse_document

__all__ = ["MASK", "SECRETS_FILE_VAR", "SECRET_VAR_PREFIX", "Redactor", "SecretStore"]

MASK = "***"
SECRET_VAR_PREFIX = "HTTPTASK_SECRET_"
SECRETS_FILE_VAR = "HTTPTASK_SECRETS_FILE"

class Redactor:
    """Remembers secret values and replaces them, and the forms they take on the wire, with ``***``.

    Every non-empty value is redacted, however short: a leaked three-letter PIN is still a leak, and an
    over-eager mask only costs readability.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        """Redact ``value`` from now on, in every form it can take on the wire (`auth.wire_forms`)."""
        if not value:
            return
        forms = wire_forms(value)
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._values, key=lambda text: (-len(text), text))
            self._pattern = re.compile("|".join(re.escape(text) for text in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every known secret form replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

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


class SecretStore:
    """Resolves secrets by name: ``HTTPTASK_SECRET_<NAME>``, then ``<NAME>`` if upper-case, then the file.

    Empty environment variables count as unset. Every value handed out is registered with ``redactor``.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        file: Path | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        if file is None and self._environ.get(SECRETS_FILE_VAR):
            file = Path(self._environ[SECRETS_FILE_VAR])
        self.file = file
        self.redactor = redactor if redactor is not None else Redactor()
        self._file_values: dict[str, Any] | None = None

    def get(self, name: str) -> str:
        """The secret called ``name``, registered with the redactor; `UsageError` if it is nowhere."""
        if not name or not isinstance(name, str):
            raise UsageError(f"A secret name must be a non-empty string, not {name!r}.")
        for var in self._variables(name):
            value = self._environ.get(var)
            if value:
                self.redactor.add(value)
                return value
        if self.file is not None:
            values = self._load_file(self.file)
            if name in values:
                value = values[name]
                if not isinstance(value, str):
                    raise UsageError(
                        f"The secret {name!r} in the secrets file {str(self.file)!r} is not a string; "
                        "quote its value in the file."
                    )
                self.redactor.add(value)
                return value
        raise UsageError(self._missing_message(name))

    def _variables(self, name: str) -> list[str]:
        names = [SECRET_VAR_PREFIX + re.sub(r"[-.]", "_", name.upper())]
        if name.isupper() and name not in names:
            names.append(name)
        return names

    def _missing_message(self, name: str) -> str:
        variables = self._variables(name)
        if len(variables) == 1:
            places = f"the environment variable {variables[0]}"
        else:
            places = f"the environment variables {' and '.join(variables)}"
        if self.file is None:
            where = f"{places} (no secrets file is set)"
            advice = f"Set {variables[0]}, or name a secrets file holding {name!r} in {SECRETS_FILE_VAR}."
        else:
            where = f"{places} and the secrets file {str(self.file)!r}"
            advice = f"Set {variables[0]}, or add {name!r} to that file."
        return f"No secret named {name!r}: looked in {where}. {advice}"

    def _load_file(self, path: Path) -> dict[str, Any]:
        if self._file_values is None:
            self._file_values = _read_secrets_file(path)
        return self._file_values


def _read_secrets_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"The secrets file {str(path)!r} cannot be read ({exc.strerror}); "
            f"check the path given in {SECRETS_FILE_VAR}."
        ) from exc
    try:
        data = parse_document(text, str(path))
    except SourceError as exc:
        # The parser's own words may quote the offending text, which may hold a secret: give only its line.
        where = f" at line {exc.line}" if exc.line is not None else ""
        raise UsageError(
            f"The secrets file {str(path)!r} is not valid YAML or JSON{where}; "
            "fix it so it maps names to values."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"The secrets file {str(path)!r} holds a {type(data).__name__}, not a mapping of names to "
            "values; write it as 'name: value' lines or a JSON object."
        )
    return data

