"""A bounded log of the REST requests simex answered: who asked what, when, and the answer.

The chaos suite reads it (``GET /_simex/requests``) to check the bot's own request rate against
the venue's documented limits and that it backed off after a rate-limit answer. Each entry is
``[arrived_ns, client_ts_ms, who, path, code, reduce_only]``: ``arrived_ns`` simex's
``time.time_ns()`` on arrival, ``client_ts_ms`` the request's signed ``timestamp`` header (0 when
absent or not digits: when the client sent it, after its own rate limiter), ``who`` the api-key
(private) or ``ip:<address>`` (public), ``code`` the venue code answered (0 success, 10005 rate
limit, ...) or the HTTP status of a non-envelope answer (5xx, 404, 405), ``reduce_only`` 1 for a
``place_order`` with ``reduceOnly`` true.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["MAX_ENTRIES", "RequestLog"]

MAX_ENTRIES: Final = 500_000  # ~40 MiB at most; a 300 s chaos run makes ~20 000

Entry = tuple[int, int, str, str, int, int]


class RequestLog:
    """Newest ``max_entries`` requests, oldest dropped first (``dropped_total`` counts them)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: deque[Entry] = deque(maxlen=max_entries)
        self.dropped_total = 0

    def add(
        self, arrived_ns: int, client_ts: str, who: str, path: str, code: int, reduce_only: bool
    ) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped_total += 1
        digits = client_ts.isascii() and client_ts.isdigit() and len(client_ts) <= 19
        ts_ms = int(client_ts) if digits else 0
        self._entries.append((arrived_ns, ts_ms, who, path, code, int(reduce_only)))

    def since(self, arrived_ns: int = 0) -> list[Entry]:
        """Every kept entry that arrived at or after ``arrived_ns``, oldest first."""
        return [e for e in self._entries if e[0] >= arrived_ns]

    def __len__(self) -> int:
        return len(self._entries)
