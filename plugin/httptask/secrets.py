"""Credentials resolved by name, only from `HTTPTASK_SECRET_<NAME>` variables and the secrets file.

Every value is registered with a `Redactor` before anyone can use it, so output can be masked: at creation
for every `HTTPTASK_SECRET_` variable and every value of the secrets file. A world-readable
secrets file is accepted (refusing it would break shared CI runners); keep it mode 600.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from httptask.errors import SourceError, UsageError
from httptask.limits import MAX_FILE_BYTES, LimitExceeded, read_capped
from httptask.redaction import Redactor, process_redactor
from httptask.yamlsource import parse_document

__all__ = ["SECRETS_FILE_VAR", "SECRET_VAR_PREFIX", "SecretStore"]

SECRET_VAR_PREFIX = "HTTPTASK_SECRET_"
SECRETS_FILE_VAR = "HTTPTASK_SECRETS_FILE"


class SecretStore:
    """Resolves secrets by name: ``HTTPTASK_SECRET_<NAME>`` (upper-cased, ``-`` and ``.`` as ``_``), then
    the secrets file. Nothing else in the environment is reachable, so a shared workflow cannot read a cloud
    provider's keys. Empty variables count as unset.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        file: Path | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self._environ = {name: value for name, value in environ.items() if name.startswith(SECRET_VAR_PREFIX)}
        if file is None and environ.get(SECRETS_FILE_VAR):
            file = Path(environ[SECRETS_FILE_VAR])
        self.file = file
        self.redactor = redactor if redactor is not None else process_redactor()
        for value in self._environ.values():
            self.redactor.add(value)
        self._file_values: dict[str, Any] | None = None
        if file is not None:
            # Read now, so that every value in the file is masked before anything is written: a sandbox or an
            # answer may show one this process never asks for. A file that cannot be read is named at get().
            with contextlib.suppress(UsageError):
                self._load_file(file)

    @classmethod
    def of(cls, values: Mapping[str, str]) -> SecretStore:
        """A store of exactly `values` by name: nothing from the environment, no secrets file."""
        return cls(environ={_variable(name): value for name, value in values.items()})

    def variables(self) -> dict[str, str]:
        """The `HTTPTASK_SECRET_` variables this store reads: what a `--workers` process is handed, in memory
        (its environment holds none)."""
        return dict(self._environ)

    def get(self, name: str) -> str:
        """The secret called ``name``; `UsageError` naming where secrets come from if it is in neither."""
        if not name or not isinstance(name, str):
            raise UsageError(f"A secret name must be a non-empty string, not {name!r}.")
        value = self._environ.get(_variable(name))
        if value:
            return value
        if self.file is not None:
            values = self._load_file(self.file)
            if name in values:
                found = values[name]
                if not isinstance(found, str):
                    raise UsageError(
                        f"The secret {name!r} in the secrets file {str(self.file)!r} is not a string; "
                        "quote its value in the file."
                    )
                return found
        raise UsageError(self._missing_message(name))

    def _missing_message(self, name: str) -> str:
        variable = _variable(name)
        if self.file is None:
            where = f"the environment variable {variable} (no secrets file is set)"
            advice = f"Set {variable}, or name a secrets file holding {name!r} in {SECRETS_FILE_VAR}."
        else:
            where = f"the environment variable {variable} and the secrets file {str(self.file)!r}"
            advice = f"Set {variable}, or add {name!r} to that file."
        return (
            f"No secret named {name!r}: looked in {where}. Secrets come only from {SECRET_VAR_PREFIX}<NAME> "
            f"variables and the secrets file. {advice}"
        )

    def _load_file(self, path: Path) -> dict[str, Any]:
        if self._file_values is None:
            self._file_values = _read_secrets_file(path)
            for value in self._file_values.values():
                if isinstance(value, str):
                    self.redactor.add(value)
        return self._file_values


def _variable(name: str) -> str:
    return SECRET_VAR_PREFIX + re.sub(r"[-.]", "_", name.upper())


def _read_secrets_file(path: Path) -> dict[str, Any]:
    try:
        text = read_capped(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise UsageError(
            f"The secrets file {str(path)!r} cannot be read ({exc.strerror}); "
            f"check the path given in {SECRETS_FILE_VAR}."
        ) from exc
    except (LimitExceeded, UnicodeDecodeError) as exc:
        problem = exc if isinstance(exc, LimitExceeded) else "is not UTF-8 text"
        raise UsageError(f"The secrets file {str(path)!r} {problem}.") from None
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
