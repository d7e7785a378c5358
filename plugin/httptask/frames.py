"""Messages between httptask's processes over a pipe or socket: each a 4-byte little-endian length, then its
body, encoded by the caller (marshal for the journal writer's plain rows, pickle for `--workers`' steps)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = ["LENGTH", "frame", "unframe"]

LENGTH = struct.Struct("<I")


def frame(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body


def unframe(buffer: bytearray, loads: Callable[[bytearray], Any]) -> list[Any]:
    """The complete frames at the start of `buffer`, decoded with `loads` and taken out of it."""
    messages, at = [], 0
    while len(buffer) - at >= LENGTH.size:
        (size,) = LENGTH.unpack_from(buffer, at)
        start = at + LENGTH.size
        if len(buffer) - start < size:
            break
        messages.append(loads(buffer[start : start + size]))
        at = start + size
    del buffer[:at]
    return messages
