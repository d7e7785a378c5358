"""byte_budget.py: bytes reserved first come, first served, never more than the budget at once."""

from __future__ import annotations

import asyncio
import random

import pytest

from httptask.byte_budget import ByteBudget, NoRoom


def test_holders_never_hold_more_than_the_budget_and_every_byte_comes_back() -> None:
    async def main() -> tuple[int, int]:
        budget = ByteBudget(100)
        held = peak = 0

        async def holder(size: int) -> None:
            nonlocal held, peak
            async with budget.reserved(size, seconds=30):
                held += min(size, 100)
                peak = max(peak, held)
                await asyncio.sleep(random.random() / 200)
                held -= min(size, 100)

        sizes = [random.choice((1, 10, 40, 60, 100, 500)) for _ in range(300)]
        await asyncio.gather(*(holder(size) for size in sizes))
        return peak, budget._left

    peak, left = asyncio.run(main())
    assert peak <= 100
    assert left == 100


def test_a_large_reservation_is_not_overtaken_by_small_ones() -> None:
    async def main() -> list[str]:
        budget = ByteBudget(100)
        order: list[str] = []

        async def holder(name: str, size: int, hold: float) -> None:
            async with budget.reserved(size, seconds=30):
                order.append(name)
                await asyncio.sleep(hold)

        first = asyncio.create_task(holder("small-1", 10, 0.05))
        await asyncio.sleep(0)
        big = asyncio.create_task(holder("big", 100, 0))
        await asyncio.sleep(0)
        later = asyncio.create_task(holder("small-2", 10, 0))  # would fit at once, but waits its turn
        await asyncio.gather(first, big, later)
        return order

    assert asyncio.run(main()) == ["small-1", "big", "small-2"]


def test_no_room_in_time_is_no_room_and_takes_nothing() -> None:
    async def main() -> int:
        budget = ByteBudget(100)
        async with budget.reserved(80, seconds=1):
            with pytest.raises(NoRoom):
                async with budget.reserved(50, seconds=0.05):
                    raise AssertionError("the block ran without room")
            # The one that gave up left the queue: a reservation that fits goes ahead at once.
            async with budget.reserved(20, seconds=0.05):
                pass
        return budget._left

    assert asyncio.run(main()) == 100


def test_a_waiter_cancelled_while_it_waits_takes_nothing() -> None:
    async def main() -> int:
        budget = ByteBudget(100)
        async with budget.reserved(100, seconds=1):
            waiting = asyncio.create_task(budget.reserved(30, seconds=10).__aenter__())
            await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        return budget._left

    assert asyncio.run(main()) == 100
