"""Pure per-symbol staleness watchdog: a symbol with no book update for ``stale_after_s`` is stale.

No clock of its own: every call takes ``now_ns`` (any monotonic ns clock, the same one
throughout), so tests drive it with plain integers.
"""

from __future__ import annotations

__all__ = ["StalenessWatchdog"]


class StalenessWatchdog:
    """Tracks the last book update per symbol id and turns silence into stale verdicts.

    A symbol never updated counts from ``start_ns``. ``check`` reports each symbol once when
    it goes stale and, while it stays stale, again every ``stale_after_s`` (``due``) so the
    owner can repeat its stale marker; ``touch`` clears the verdict.
    """

    def __init__(self, n_symbols: int, stale_after_s: float, start_ns: int) -> None:
        if n_symbols <= 0:
            raise ValueError(f"n_symbols must be positive, was {n_symbols}")
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be positive, was {stale_after_s}")
        self.stale_after_ns = int(stale_after_s * 1e9)
        self._last_ns = [start_ns] * n_symbols
        self._stale = [False] * n_symbols
        self._next_mark_ns = [0] * n_symbols
        self.stale_count = 0
        self.went_stale_total = 0
        self.recovered_total = 0

    def touch(self, symbol_id: int, now_ns: int) -> bool:
        """Record a book update; return True when this ends a stale period."""
        self._last_ns[symbol_id] = now_ns
        if self._stale[symbol_id]:
            self._stale[symbol_id] = False
            self.stale_count -= 1
            self.recovered_total += 1
            return True
        return False

    def is_stale(self, symbol_id: int) -> bool:
        """Return the current verdict for ``symbol_id``."""
        return self._stale[symbol_id]

    def check(self, now_ns: int) -> tuple[list[int], list[int]]:
        """Return ``(newly_stale, still_stale_due)`` symbol ids at ``now_ns``.

        ``newly_stale`` went stale since the last call; ``still_stale_due`` were already stale
        and another ``stale_after_s`` has passed since they were last reported.
        """
        newly: list[int] = []
        due: list[int] = []
        limit = self.stale_after_ns
        for sid, last in enumerate(self._last_ns):
            if self._stale[sid]:
                if now_ns >= self._next_mark_ns[sid]:
                    due.append(sid)
                    self._next_mark_ns[sid] = now_ns + limit
            elif now_ns - last >= limit:
                self._stale[sid] = True
                self.stale_count += 1
                self.went_stale_total += 1
                self._next_mark_ns[sid] = now_ns + limit
                newly.append(sid)
        return newly, due

    def ages_s(self, now_ns: int) -> list[float]:
        """Return seconds since each symbol's last book update (or since start)."""
        return [(now_ns - last) / 1e9 for last in self._last_ns]
