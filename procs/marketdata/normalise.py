"""Pure normalisation: typed Bitunix pushes → BOOK_V1 / TRADE_V1 rows in preallocated batches.

No I/O and no clocks: every stamp is passed in. The decoders in ``ipc.bitunix`` already turn
the venue's quirks into floats (levels as strings or numbers), ms ints (ISO trade times) and
upper-case sides; this module maps them onto the fixed record layout. Unused levels (past
``n_bids``/``n_asks``) are NaN, so nothing mistakes them for a price of 0.

Event times: every record's ``ts_event_ns`` is the push's millisecond ``ts``. A trade tick's own
time ``t`` is an ISO string of whole seconds (shared/reference/bitunix-api.md, trade channel):
it is not kept (TRADE_V1 has no field for it), because the push's ``ts`` is the better stamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from ipc.bitunix.schemas_ws import DepthPush, TradePush
from procs.marketdata import _bookrow
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_CROSSED, TRADE_V1, Dtype, Records

__all__ = [
    "NS_PER_MS",
    "BookBatch",
    "SymbolMap",
    "TradeBatch",
    "add_depth",
    "add_trades",
    "crossed",
    "ms_to_ns",
    "side_code",
]

NS_PER_MS: Final = 1_000_000
Level = tuple[float, float]


def ms_to_ns(ms: int) -> int:
    """Return a venue millisecond stamp as int nanoseconds."""
    return int(ms) * NS_PER_MS


def side_code(side: str) -> int:
    """Return +1 for a taker buy, -1 for a taker sell (any case); raise ValueError otherwise."""
    s = side.upper()
    if s == "BUY":
        return 1
    if s == "SELL":
        return -1
    raise ValueError(f"unknown trade side {side!r}")


def crossed(bids: Sequence[Level], asks: Sequence[Level]) -> bool:
    """Return True when the best bid is at or above the best ask (both sides present)."""
    return bool(bids) and bool(asks) and bids[0][0] >= asks[0][0]


class SymbolMap:
    """Symbol ↔ ``symbol_id``: the id is the symbol's position in the configured list."""

    def __init__(self, symbols: Sequence[str]) -> None:
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols must be unique, were {list(symbols)}")
        self.symbols: tuple[str, ...] = tuple(symbols)
        self._ids = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def id(self, symbol: str) -> int:
        """Return the id of ``symbol``, or -1 when it is not configured."""
        return self._ids.get(symbol, -1)

    def name(self, symbol_id: int) -> str:
        """Return the symbol of ``symbol_id``; raise IndexError for an unknown id."""
        return self.symbols[symbol_id]


# the row's C writer (``_bookrow.pack``) has the layout compiled in: check it against BOOK_V1
def _check_layout() -> None:
    f = BOOK_V1.fields
    assert f is not None
    names = ("ts_event_ns", "ts_recv_ns", "ts_pub_ns", "symbol_id", "flags", "n_bids", "n_asks",
             "bid_px", "bid_qty", "ask_px", "ask_qty")  # fmt: skip
    want = {
        "size": BOOK_V1.itemsize,
        "offsets": tuple(f[n][1] for n in names),
        "depth": BOOK_DEPTH,
        "flag_crossed": FLAG_CROSSED,
    }
    if want != _bookrow.LAYOUT:
        raise ImportError(f"_bookrow.c's layout {_bookrow.LAYOUT} is not BOOK_V1's {want}")


_check_layout()


class _Batch:
    def __init__(self, dtype: Dtype, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, was {capacity}")
        self.records: Records = np.zeros(capacity, dtype=dtype)
        self.capacity = capacity
        self.n = 0
        r = self.records
        # field views made once: a structured-array field lookup costs more than a slice
        self.seq = r["seq"]
        self.ts_pub = r["ts_pub_ns"]
        self.flags = r["flags"]
        self.sid = r["symbol_id"]
        self._flags = self.flags
        self.first = r[:1]  # the one-row view ``take`` gives most often, made once

    @property
    def full(self) -> bool:
        """Return True when no row is left."""
        return self.n >= self.capacity

    @property
    def room(self) -> int:
        """Return how many rows are left."""
        return self.capacity - self.n

    def take(self) -> Records:
        """Return a view of the filled rows (valid until ``clear``)."""
        return self.first if self.n == 1 else self.records[: self.n]

    def clear(self) -> None:
        """Forget the filled rows; the buffer is reused."""
        self.n = 0

    def set_flags(self, row: int, flags: int) -> None:
        """OR ``flags`` into row ``row``."""
        self._flags[row] |= flags


class BookBatch(_Batch):
    """A preallocated batch of BOOK_V1 rows, filled in place; one writer."""

    def __init__(self, capacity: int) -> None:
        super().__init__(BOOK_V1, capacity)
        self._ts_recv = self.records["ts_recv_ns"]
        self.row_bytes = size = self.records.itemsize
        self.bytes = self.records.data.cast("B")  # the rows as bytes, for a copy
        self._rows = [self.bytes[k * size : (k + 1) * size] for k in range(capacity)]  # pack's
        self.last_flags = 0  # the flags ``add`` wrote in its row (FLAG_CROSSED included)

    def add(
        self,
        symbol_id: int,
        ts_event_ns: int,
        ts_recv_ns: int,
        bids: Sequence[Level],
        asks: Sequence[Level],
        flags: int = 0,
    ) -> int:
        """Append one book (best first, at most ``BOOK_DEPTH`` levels kept); return its row.

        ``FLAG_CROSSED`` is added when the best bid is at or above the best ask. The caller
        makes room first (``full``).
        """
        i = self.n
        if i >= self.capacity:
            raise IndexError(f"book batch full ({self.capacity} rows)")
        self.last_flags = _bookrow.pack(
            self._rows[i], ts_event_ns, ts_recv_ns, symbol_id, flags, bids, asks
        )
        self.n = i + 1
        return i

    def add_copy(self, row: Records, ts_recv_ns: int, flags: int) -> int:
        """Append a copy of one BOOK_V1 record with a new ``ts_recv_ns`` and ``flags``."""
        i = self.n
        if i >= self.capacity:
            raise IndexError(f"book batch full ({self.capacity} rows)")
        self.records[i] = row
        self._ts_recv[i] = ts_recv_ns
        self._flags[i] = self.last_flags = flags
        self.n = i + 1
        return i


class TradeBatch(_Batch):
    """A preallocated batch of TRADE_V1 rows, filled in place; one writer."""

    def __init__(self, capacity: int) -> None:
        super().__init__(TRADE_V1, capacity)
        r = self.records
        self._ts_event = r["ts_event_ns"]
        self._ts_recv = r["ts_recv_ns"]
        self._sid = r["symbol_id"]
        self._side = r["side"]
        self._px = r["px"]
        self._qty = r["qty"]

    def add(
        self,
        symbol_id: int,
        ts_event_ns: int,
        ts_recv_ns: int,
        side: int,
        px: float,
        qty: float,
        flags: int = 0,
    ) -> int:
        """Append one trade; return its row. The caller makes room first (``full``)."""
        i = self.n
        if i >= self.capacity:
            raise IndexError(f"trade batch full ({self.capacity} rows)")
        self._ts_event[i] = ts_event_ns
        self._ts_recv[i] = ts_recv_ns
        self._sid[i] = symbol_id
        self._side[i] = side
        self._px[i] = px
        self._qty[i] = qty
        self._flags[i] = flags
        self.n = i + 1
        return i


def add_depth(batch: BookBatch, symbol_id: int, push: DepthPush, flags: int = 0) -> int:
    """Append a ``depth_book*`` push (a full top-N book); return its row.

    ``ts_event_ns`` is the push's ``ts`` (ms) in ns, ``ts_recv_ns`` the client's frame stamp.
    """
    d = push.data
    return batch.add(symbol_id, push.ts * NS_PER_MS, push.ts_recv_ns, d.b, d.a, flags)


def add_trades(
    batch: TradeBatch, symbol_id: int, push: TradePush, start: int = 0, flags: int = 0
) -> int:
    """Append the push's ticks from index ``start`` until the batch is full; return the next index.

    Every tick's ``ts_event_ns`` is the push's ``ts`` (ms) in ns: the ticks' own ``t`` has only
    whole seconds. A push without ``ts`` (0) falls back to the tick's ``t``.
    """
    ticks = push.data
    ts_recv_ns = push.ts_recv_ns
    ts_push_ns = push.ts * NS_PER_MS
    end = min(len(ticks), start + batch.room)
    for k in range(start, end):
        t = ticks[k]
        ts_event = ts_push_ns or t.t * NS_PER_MS
        batch.add(symbol_id, ts_event, ts_recv_ns, side_code(t.s), t.p, t.v, flags)
    return end
