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

import struct
from collections.abc import Sequence
from typing import Final

import numpy as np

from ipc.bitunix.schemas_ws import DepthPush, TradePush
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


_STRUCT_CODES: Final = {
    ("i", 8): "q", ("i", 4): "i", ("i", 2): "h", ("i", 1): "b", ("u", 8): "Q", ("u", 4): "I",
    ("u", 2): "H", ("u", 1): "B", ("f", 8): "d", ("f", 4): "f",
}  # fmt: skip  # numpy (kind, bytes) → struct's standard-size code


def _row_packer(dtype: Dtype, first: str, names: Sequence[str]) -> tuple[struct.Struct, int]:
    """A ``struct`` writing ``names`` (``first`` to the last field named, in layout order) of one
    ``dtype`` row at once, and the offset of ``first``; bytes between them are written zero."""
    fields = dtype.fields
    assert fields is not None
    start = pos = fields[first][1]
    fmt = "<"
    for name in names:
        sub, off = fields[name][0], fields[name][1]
        assert off >= pos, f"{name} is out of layout order"
        fmt += f"{off - pos}x" if off > pos else ""
        base, count = (sub.base, sub.shape[0]) if sub.shape else (sub, 1)
        assert base.byteorder in "<=|", f"{name}: not little-endian"
        code = _STRUCT_CODES[base.kind, base.itemsize]
        fmt += f"{count}{code}" if count > 1 else code
        pos = off + sub.itemsize
    packer = struct.Struct(fmt)
    assert packer.size == pos - start
    return packer, start


# a book row but its seq and ts_pub_ns (both set at publish), in one call: ~10 numpy writes
# (~8 µs a book) become one struct pack (~1.5 µs); the ts_pub_ns bytes it passes are zeroed
_BOOK_ROW, _BOOK_ROW_AT = _row_packer(
    BOOK_V1,
    "ts_event_ns",
    ("ts_event_ns", "ts_recv_ns", "symbol_id", "flags", "n_bids", "n_asks", "bid_px",
     "bid_qty", "ask_px", "ask_qty"),
)  # fmt: skip
_NANS: Final = (float("nan"),) * BOOK_DEPTH
_NO_LEVELS: Final = (_NANS, _NANS)


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
        self.row_bytes = self.records.itemsize  # one struct pack per row (``_BOOK_ROW``)
        self.bytes = self.records.data.cast("B")  # the rows as bytes, for a copy
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
        at, d = self.row_bytes * i + _BOOK_ROW_AT, BOOK_DEPTH
        if len(bids) == d == len(asks):  # depth_book15: both sides full, one transpose
            px, qty = zip(*bids, *asks, strict=True)
            if px[0] >= px[d]:  # crossed()
                flags |= FLAG_CROSSED
            self.last_flags = flags
            _BOOK_ROW.pack_into(
                self.bytes, at, ts_event_ns, ts_recv_ns, symbol_id, flags, d, d,
                *px[:d], *qty[:d], *px[d:], *qty[d:],
            )  # fmt: skip
        else:
            nb, bp, bq = _side(bids)
            na, ap, aq = _side(asks)
            if nb and na and bids[0][0] >= asks[0][0]:  # crossed()
                flags |= FLAG_CROSSED
            self.last_flags = flags
            _BOOK_ROW.pack_into(
                self.bytes, at, ts_event_ns, ts_recv_ns, symbol_id, flags, nb, na,
                *bp, *bq, *ap, *aq,
            )  # fmt: skip
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


def _side(levels: Sequence[Level]) -> tuple[int, Sequence[float], Sequence[float]]:
    """(levels kept, their prices, their sizes), both NaN-padded to ``BOOK_DEPTH``."""
    n = len(levels)
    if n >= BOOK_DEPTH:
        if n > BOOK_DEPTH:
            levels = levels[:BOOK_DEPTH]
        prices, sizes = zip(*levels, strict=True)
        return BOOK_DEPTH, prices, sizes
    if not n:
        return 0, *_NO_LEVELS
    prices, sizes = zip(*levels, strict=True)
    pad = _NANS[n:]
    return n, prices + pad, sizes + pad


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
