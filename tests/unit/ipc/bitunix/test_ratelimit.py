"""Token bucket arithmetic with a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from ipc.bitunix.ratelimit import UNKNOWN_LIMIT_PER_S, TokenBucket, limit_for


def test_for_limit_window_bound_never_exceeds_limit():
    for limit in (5, 10, 3, 20):
        b = TokenBucket.for_limit(limit)

        assert b.burst + b.rate_per_s <= limit
        assert b.burst >= 1


def test_for_limit_burst_is_the_safety_share_not_a_float_rounding_below_it():
    # 10 * (1 - 0.8) == 1.9999999999999996: place_order's 10/s once got a burst of 1
    assert [TokenBucket.for_limit(n).burst for n in (5, 10, 20, 3)] == [1, 2, 4, 1]
    assert TokenBucket.for_limit(10).rate_per_s == pytest.approx(8.0)


def test_acquire_waits_when_empty_instead_of_rejecting():
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    async def main() -> int:
        b = TokenBucket(2.0, 1, clock=lambda: now[0], sleep=fake_sleep)
        for _ in range(3):
            await b.acquire()
        return b.waits_total

    waits = asyncio.run(main())

    assert waits == 2
    assert slept == pytest.approx([0.5, 0.5])


def test_limit_for_unknown_path_is_conservative():
    assert limit_for("/api/v1/futures/trade/cancel_orders") == 5
    assert limit_for("/api/v1/futures/trade/cancel_all_orders") == UNKNOWN_LIMIT_PER_S
