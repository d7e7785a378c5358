"""Bytes shared by concurrent holders: what the editor's Test requests reserve for their answers before they
are sent, so that the answers it holds at once (while they arrive, and while they wait for a worker to read
them) never pass its budget, however many requests come in together."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

__all__ = ["ByteBudget", "NoRoom"]


class NoRoom(Exception):
    """The bytes asked for were not free in time."""


class ByteBudget:
    """`total` bytes, reserved first come, first served: a large reservation is not overtaken for ever by
    small ones."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._left = total
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def reserved(self, size: int, seconds: float) -> AsyncIterator[None]:
        """Hold `size` bytes (at most the whole budget) while the block runs; `NoRoom` when they are not free
        within `seconds`."""
        size = min(size, self.total)
        await self._take(size, seconds)
        try:
            yield
        finally:
            self._left += size
            self._wake()

    async def _take(self, size: int, seconds: float) -> None:
        if not self._waiting and self._left >= size:
            self._left -= size
            return
        turn = asyncio.get_running_loop().create_future()
        entry = (size, turn)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(seconds):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._left += size  # given its bytes as it gave up: they go to the next in line
            else:
                self._waiting.remove(entry)
            self._wake()
            if isinstance(exc, TimeoutError):
                raise NoRoom from None
            raise

    def _wake(self) -> None:
        while self._waiting and self._left >= self._waiting[0][0]:
            size, turn = self._waiting.popleft()
            if not turn.done():
                self._left -= size
                turn.set_result(None)
