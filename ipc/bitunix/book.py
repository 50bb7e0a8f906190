"""Local order book for the ``depth_books`` channel: a snapshot, then deltas (qty 0 deletes).

Prices and sizes are floats (market data, never booked). Each side keeps a sorted price list
(bisect, C-speed inserts) and a price → qty dict. The venue sends no sequence numbers, so a
crossed book is the only gap signal: the owner resets the book and resubscribes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

__all__ = ["LocalBook"]

_MIN: Final = 0.0
_MAX: Final = 1e15


class _Side:
    __slots__ = ("_keys", "_qty", "_sign")

    def __init__(self, descending: bool) -> None:
        self._sign = -1.0 if descending else 1.0  # keys are sign*price, kept ascending
        self._keys: list[float] = []
        self._qty: dict[float, float] = {}

    def clear(self) -> None:
        self._keys.clear()
        self._qty.clear()

    def set(self, price: float, qty: float) -> None:
        if not (_MIN < price < _MAX) or qty != qty:  # NaN/inf/absurd levels from a bad frame
            return
        key = self._sign * price
        if qty <= 0.0:
            if self._qty.pop(key, None) is not None:
                del self._keys[bisect_left(self._keys, key)]
            return
        if key not in self._qty:
            at = bisect_left(self._keys, key)
            self._keys.insert(at, key)
        self._qty[key] = qty

    def best(self) -> tuple[float, float] | None:
        if not self._keys:
            return None
        key = self._keys[0]
        return self._sign * key, self._qty[key]

    def top(self, n: int) -> list[tuple[float, float]]:
        s, q = self._sign, self._qty
        return [(s * k, q[k]) for k in self._keys[:n]]

    def __len__(self) -> int:
        return len(self._keys)


class LocalBook:
    """One symbol's full book; owned by one WS connection, updated from its callbacks only."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)
        self.synced = False
        self.held = False  # set by the owner while a resubscribe is under way
        self.held_pushes_total = 0
        self.updates_total = 0
        self.resyncs_total = 0

    def reset(self) -> None:
        """Forget every level; the next push is taken as a fresh snapshot."""
        self._bids.clear()
        self._asks.clear()
        self.synced = False

    def apply_snapshot(
        self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]
    ) -> None:
        """Replace the book with these levels."""
        self.reset()
        self.apply_delta(bids, asks)
        self.synced = True

    def apply_delta(
        self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]
    ) -> None:
        """Set each level's qty; qty 0 removes the level."""
        for p, q in bids:
            self._bids.set(p, q)
        for p, q in asks:
            self._asks.set(p, q)
        self.updates_total += 1

    @property
    def crossed(self) -> bool:
        """Return True when best bid >= best ask (the book is out of sync)."""
        b, a = self._bids.best(), self._asks.best()
        return b is not None and a is not None and b[0] >= a[0]

    def best_bid(self) -> tuple[float, float] | None:
        """Return ``(price, qty)`` of the best bid, or None."""
        return self._bids.best()

    def best_ask(self) -> tuple[float, float] | None:
        """Return ``(price, qty)`` of the best ask, or None."""
        return self._asks.best()

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Return the best ``n`` bids (descending) and asks (ascending)."""
        return self._bids.top(n), self._asks.top(n)

    @property
    def depth(self) -> tuple[int, int]:
        """Return the number of bid and ask levels."""
        return len(self._bids), len(self._asks)
