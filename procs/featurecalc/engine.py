"""Incremental feature engine: BOOK_V1 + TRADE_V1 batches in, one FEAT_V1 record per book out.

Pure: no sockets, segments, files or clocks. ``FEATURES`` (declared in ``procs.featurecalc.layout``,
re-exported here) names the features in their order in ``FEAT_V1.x``; model metadata, the trainer
and inference read it here.

Clock: every window and horizon is measured on ``ts_recv_ns`` (our receive stamp, the order in
which ingest saw things), made non-decreasing per symbol and stream by a running maximum. A book
at time t sees every trade of its symbol with key <= t that has been handed to the engine. The
streaming result equals ``compute_batch`` over the whole capture provided each trade is handed in
no later than the batch holding the first book with a key >= the trade's key (the features
process therefore polls trades before books).

The arithmetic is C (``procs/featurecalc/_featc.c``): each book is computed on its own, in
arrival order, by the same operations whatever the batch, so a stream cut into any batches gives
the same bytes as one batch over the whole capture; a batch of one book (the live case) is no
special case. Window sums come from absolute prefix sums carried across
batches (added in arrival order). This module keeps each symbol's history (``_SymbolState``: the
arrays the C code reads and appends to, grown here), checks the input, and cuts a batch that
mixes symbols into calls per symbol (each call takes its symbol's rows in place).

Windows (time, on the clock above): VWAP and trade-flow imbalance over 1 s, 10 s, 60 s; realised
volatility over 10 s, 60 s; mid log-returns over 1 s, 10 s, 60 s. Conventions (no NaN ever):
a value with nothing to measure is 0 (no trade in a window, no book ``horizon`` ago, a one-sided
book); a degenerate book carries the symbol's last valid mid forward (0 before the first one) and
gets ``book_ok = 0`` and, by default, ``FLAG_STALE``. Spread, imbalances and microprice follow
``procs.featurecalc.book`` (levels at or past a side's count, and quantities that are not
positive and finite, count as nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from procs.featurecalc import _featc
from procs.featurecalc.book import BPS, IMBALANCE_DEPTHS
from procs.featurecalc.layout import (
    _COUNT,
    _IMB,
    _INT64_MIN,
    _MICRO,
    _OK,
    _RET,
    _RV,
    _SPREAD,
    _TFI,
    _VWAP,
    COUNT_WINDOW_NS,
    F64,
    FEATURES,
    HORIZONS_NS,
    I64,
    N_FEATURES,
    RETURN_HORIZONS_NS,
    RV_WINDOWS_NS,
    TFI_WINDOWS_NS,
    VWAP_WINDOWS_NS,
    feature_index,
)
from shm.records import BOOK_DEPTH, BOOK_V1, FEAT_V1, FEATURE_SLOTS, FLAG_STALE, TRADE_V1, Records

__all__ = [  # the feature declaration lives in procs.featurecalc.layout; read it from here
    "COUNT_WINDOW_NS",
    "FEATURES",
    "HORIZONS_NS",
    "N_FEATURES",
    "RETURN_HORIZONS_NS",
    "RV_WINDOWS_NS",
    "TFI_WINDOWS_NS",
    "VWAP_WINDOWS_NS",
    "EngineConfig",
    "FeatureEngine",
    "compute_batch",
    "feature_index",
]


def _offsets(dtype: np.dtype, *names: str) -> tuple[int, ...]:
    fields = dtype.fields
    assert fields is not None
    return (dtype.itemsize, *(int(fields[n][1]) for n in names))


# the C code's layout is compiled in: it must be the one declared in Python
_L: Final = _featc.LAYOUT
assert _L["book"] == _offsets(
    BOOK_V1, "ts_recv_ns", "symbol_id", "flags", "n_bids", "n_asks",
    "bid_px", "bid_qty", "ask_px", "ask_qty",
)  # fmt: skip
assert _L["trade"] == _offsets(TRADE_V1, "ts_recv_ns", "symbol_id", "side", "px", "qty")
_FEAT_OFFSETS: Final = _offsets(FEAT_V1, "ts_feat_ns", "flags", "mid", "x")
assert _L["feat"] == (FEAT_V1.itemsize, 40, *_FEAT_OFFSETS[1:])  # 40: the head copied from the book
assert _L["slots"] == FEATURE_SLOTS
assert _L["depth"] == BOOK_DEPTH
assert _L["columns"] == (
    N_FEATURES, _SPREAD, _IMB[0], _MICRO, _VWAP.start, _TFI.start, _RET.start, _RV.start,
    _COUNT, _OK,
)  # fmt: skip
assert list(range(_IMB[0], _IMB[0] + 3)) == _IMB
assert _L["imbalance_depths"] == IMBALANCE_DEPTHS
assert _L["lookback_ns"] == VWAP_WINDOWS_NS == TFI_WINDOWS_NS == RETURN_HORIZONS_NS
assert _L["lookback_ns"][_L["rv_from"] :] == RV_WINDOWS_NS
assert _L["lookback_ns"][1] == COUNT_WINDOW_NS
assert _L["flag_stale"] == FLAG_STALE
assert BPS == 1e4
_SYMBOL_AT: Final = int(BOOK_V1.fields["symbol_id"][1])  # type: ignore[index]
_TRADE_SYMBOL_AT: Final = int(TRADE_V1.fields["symbol_id"][1])  # type: ignore[index]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Engine options that do not change what a feature means."""

    mark_degenerate_stale: bool = True  # one-sided/empty book -> FLAG_STALE on its feat record


class _Series:
    """Rows of (int64 key, float64 values) in a growable buffer; the first live row is a sentinel.

    ``vals`` is [capacity, width] (``by_row``) or [width, capacity]. Appends write in place
    (amortised: the live rows move to the front, or the buffer doubles, only when the end is
    reached); trimming moves ``start``. Views are valid until the next ``reserve``.
    """

    __slots__ = ("by_row", "end", "keys", "start", "vals")

    def __init__(self, width: int, *, by_row: bool, capacity: int = 1024) -> None:
        self.by_row = by_row
        self.keys: I64 = np.empty(capacity, dtype=np.int64)
        self.vals: F64 = np.zeros((capacity, width) if by_row else (width, capacity))
        self.keys[0] = _INT64_MIN
        self.start = 0
        self.end = 1

    def reserve(self, k: int) -> None:
        if self.end + k <= self.keys.size:
            return
        live = self.end - self.start
        old = self.vals if self.by_row else self.vals.T
        if live + k > self.keys.size // 2:
            cap = 2 * (live + k)
            keys, new = np.empty(cap, dtype=np.int64), np.empty((cap, old.shape[1]))
            vals = new if self.by_row else np.ascontiguousarray(new.T)
            new = vals if self.by_row else vals.T
        else:
            keys, vals, new = self.keys, self.vals, old
        keys[:live] = self.keys[self.start : self.end]  # numpy copes with the overlap
        new[:live] = old[self.start : self.end]
        self.keys, self.vals, self.start, self.end = keys, vals, 0, live


class _SymbolState:
    """History of one symbol's books (key; carried mid, prefix sum of r**2) and trades."""

    __slots__ = ("books", "trades")

    def __init__(self) -> None:
        self.books = _Series(2, by_row=False)  # carried mid (0 = none yet), prefix sum of r**2
        self.trades = _Series(3, by_row=True)  # prefix sums of px*qty, qty, side*qty


def _contiguous(records: Records) -> Records:
    return records if records.flags.c_contiguous else np.ascontiguousarray(records)


def _symbol_counts(records: Records, offset: int) -> list[tuple[int, int]]:
    """(symbol id, rows) of a contiguous batch, sorted by id (counted in C up to 16 ids)."""
    if not records.size:
        return []
    got = _featc.symbol_counts(records, records.dtype.itemsize, offset)
    if got is None:
        ids, counts = np.unique(records["symbol_id"], return_counts=True)
        got = list(zip(ids.tolist(), counts.tolist(), strict=True))
    return got


class FeatureEngine:
    """Per-symbol indicator state; one instance per stream of books, single-threaded."""

    def __init__(self, n_symbols: int, config: EngineConfig | None = None) -> None:
        if n_symbols <= 0:
            raise ValueError(f"n_symbols must be positive, was {n_symbols}")
        self._n_symbols = n_symbols
        self._stale = (config or EngineConfig()).mark_degenerate_stale
        self._states: list[_SymbolState | None] = [None] * n_symbols

    @property
    def n_symbols(self) -> int:
        return self._n_symbols

    def _state(self, symbol_id: int) -> _SymbolState:
        if not 0 <= symbol_id < self._n_symbols:
            raise ValueError(f"symbol_id must be in [0, {self._n_symbols}), was {symbol_id}")
        st = self._states[symbol_id]
        if st is None:
            st = self._states[symbol_id] = _SymbolState()
        return st

    def update(
        self, books: Records, trades: Records, *, ts_feat_ns: int = 0, out: Records | None = None
    ) -> Records:
        """Absorb ``trades`` (TRADE_V1), then return one FEAT_V1 record per book (BOOK_V1).

        ``out``: a FEAT_V1 buffer of at least as many rows to write them in (the first rows,
        returned as a view); every field of each row is written, the padding never, so a buffer
        made by ``np.zeros`` and reused carries no stale bytes. Without it, a new array.
        A symbol id out of range raises ValueError before any state changes.
        """
        if books.dtype != BOOK_V1 or trades.dtype != TRADE_V1:
            raise TypeError(f"expected BOOK_V1 and TRADE_V1 records, got {books.dtype}")
        if out is None:
            out = np.zeros(books.size, dtype=FEAT_V1)  # zeroed: no stale bytes in padding
        elif out.dtype != FEAT_V1 or out.size < books.size or not out.flags.c_contiguous:
            raise ValueError(f"out must be contiguous FEAT_V1 of >= {books.size} rows")
        else:
            out = out[: books.size]
        books, trades = _contiguous(books), _contiguous(trades)
        book_counts = _symbol_counts(books, _SYMBOL_AT)
        trade_counts = _symbol_counts(trades, _TRADE_SYMBOL_AT)
        # every id checked before any change
        book_states = [(s, k, self._state(s)) for s, k in book_counts]
        trade_states = [(s, k, self._state(s)) for s, k in trade_counts]
        for s, k, st in trade_states:
            ts = st.trades
            ts.reserve(k)  # the symbol's own rows: a many-symbol capture grows each by its share
            ts.end = _featc.append_trades(trades, s, ts.keys, ts.vals, ts.end)
        for s, k, st in book_states:
            bs, ts = st.books, st.trades
            bs.reserve(k)
            bs.start, bs.end, ts.start = _featc.books(
                books, s, bs.keys, bs.vals, bs.start, bs.end,
                ts.keys, ts.vals, ts.start, ts.end, out, ts_feat_ns, self._stale,
            )  # fmt: skip
        return out


def compute_batch(
    books: Records,
    trades: Records,
    *,
    n_symbols: int | None = None,
    config: EngineConfig | None = None,
) -> Records:
    """Compute the features of a whole capture at once (equal to streaming it; see module doc)."""
    if n_symbols is None:
        top = [int(a["symbol_id"].max()) for a in (books, trades) if a.size]
        n_symbols = max(top, default=0) + 1
    return FeatureEngine(n_symbols, config).update(books, trades)
