"""Async token buckets, one per REST endpoint, sized so a burst never passes the venue's limit.

A bucket of ``rate`` tokens/s and capacity ``burst`` lets at most ``burst + rate`` requests into
any 1-second window. ``for_limit(n)`` keeps that at or under ``n``: burst is the (1 - safety)
share of ``n`` (at least 1), rate what is left. Waiters queue FIFO behind one lock and sleep
instead of sending early.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["ENDPOINT_LIMITS_PER_S", "UNKNOWN_LIMIT_PER_S", "TokenBucket", "limit_for"]

_P: Final = "/api/v1/futures"
UNKNOWN_LIMIT_PER_S: Final = 5.0

# Reference §3.2; '?' in the table are held at UNKNOWN_LIMIT_PER_S
ENDPOINT_LIMITS_PER_S: Final[dict[str, float]] = {
    f"{_P}/market/trading_pairs": 10,
    f"{_P}/market/tickers": 10,
    f"{_P}/market/depth": 10,
    f"{_P}/market/kline": 10,
    f"{_P}/market/funding_rate": 10,
    f"{_P}/market/funding_rate/batch": 10,
    f"{_P}/market/get_funding_rate_history": 10,
    f"{_P}/account": 10,
    f"{_P}/account/change_leverage": 10,
    f"{_P}/account/change_margin_mode": 10,
    f"{_P}/account/change_position_mode": 10,
    f"{_P}/trade/place_order": 10,
    f"{_P}/trade/batch_order": 5,
    f"{_P}/trade/modify_order": 10,
    f"{_P}/trade/cancel_orders": 5,
    f"{_P}/trade/get_order_detail": 10,
    f"{_P}/trade/get_pending_orders": 10,
    f"{_P}/position/get_pending_positions": 10,
    f"{_P}/position/get_history_positions": 10,
    f"{_P}/tpsl/modify_order": 10,
    f"{_P}/tpsl/position/modify_order": 10,
    f"{_P}/tpsl/cancel_order": 10,
    f"{_P}/tpsl/get_pending_orders": 10,
}


def limit_for(path: str) -> float:
    """Return the documented requests/s for ``path``, or the conservative default."""
    return ENDPOINT_LIMITS_PER_S.get(path, UNKNOWN_LIMIT_PER_S)


class TokenBucket:
    """Async token bucket; ``acquire`` waits (never rejects). One event loop only."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"need rate_per_s > 0 and burst >= 1, was {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waits_total = 0
        self.waited_s_total = 0.0

    @classmethod
    def for_limit(cls, limit_per_s: float, *, safety: float = 0.8) -> TokenBucket:
        """Return a bucket letting at most ``limit_per_s`` requests into any 1 s window."""
        # rounded before the floor: 10 * (1 - 0.8) is 1.9999999999999996 in binary floating point,
        # which floor() took to a burst of 1 where 2 is meant (rate + burst still <= the limit)
        burst = max(1.0, math.floor(round(limit_per_s * (1 - safety), 9)))
        rate = min(limit_per_s * safety, limit_per_s - burst)
        return cls(rate if rate > 0 else limit_per_s * safety, burst)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token, sleeping until one is available."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                wait_s = (1 - self._tokens) / self.rate_per_s
                self.waits_total += 1
                self.waited_s_total += wait_s
                await self._sleep(wait_s)
                self._refill()
            self._tokens -= 1
