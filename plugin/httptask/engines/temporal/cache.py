"""A few recent values by key, each loaded once even when many activities ask for it at the same moment."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["OnceCache"]

T = TypeVar("T")


class OnceCache:
    """A few recent values by key; concurrent callers for one key share a single load."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._loads: OrderedDict[Any, asyncio.Task[Any]] = OrderedDict()

    async def get(self, key: Any, load: Callable[[], Awaitable[T]]) -> T:
        task = self._loads.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._loads[key] = task
            while len(self._loads) > self._size:
                self._loads.popitem(last=False)
        else:
            self._loads.move_to_end(key)
        try:
            result: T = await asyncio.shield(task)
        except BaseException:
            if self._loads.get(key) is task and task.done():
                del self._loads[key]
            raise
        return result
