"""Types of the book row's C writer (procs/marketdata/_bookrow.c)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LAYOUT: dict[str, Any]  # the BOOK_V1 offsets, depth and FLAG_CROSSED compiled in

def pack(
    row: memoryview,
    ts_event_ns: int,
    ts_recv_ns: int,
    symbol_id: int,
    flags: int,
    bids: Sequence[Sequence[float]],
    asks: Sequence[Sequence[float]],
    /,
) -> int: ...
