"""Where httptask finds its bundled data (specs, templates) and the user's own catalog and cache."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_dir", "cache_dir", "user_specs_dirs"]

_PACKAGE = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """`specs`, `templates` or `examples`: inside the wheel under `_data/`, else at the root of a checkout."""
    installed = _PACKAGE / "_data" / name
    return installed if installed.is_dir() else _PACKAGE.parents[1] / name


def user_specs_dirs() -> list[Path]:
    """The user catalog directories: `$HTTPTASK_SPECS_PATH` (os.pathsep-separated), else the user data dir."""
    configured = os.environ.get("HTTPTASK_SPECS_PATH")
    if configured:
        return [Path(part).expanduser() for part in configured.split(os.pathsep) if part]
    from platformdirs import user_data_dir

    return [Path(user_data_dir("httptask")) / "specs"]


def cache_dir() -> Path:
    configured = os.environ.get("HTTPTASK_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("httptask"))
