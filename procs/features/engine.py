"""Incremental feature engine: BOOK_V1 + TRADE_V1 batches in, one FEAT_V1 record per book out.

Pure: no sockets, segments, files or clocks. ``FEATURES`` (declared in ``procs.features.layout``,
re-exported here) names the features in their order in ``FEAT_V1.x``; model metadata, the trainer
and inference read it here.

Clock: every window and horizon is measured on ``ts_recv_ns`` (our receive stamp, the order in
which ingest saw things), made non-decreasing per symbol and stream by a running maximum. A book
at time t sees every trade of its symbol with key <= t that has been handed to the engine. The
streaming result equals ``compute_batch`` over the whole capture provided each trade is handed in
no later than the batch holding the first book with a key >= the trade's key (the features
process therefore polls trades before books). Window sums come from absolute prefix sums carried
across batches (added in the same order either way), so streaming and batch results are
bit-identical in practice (tested on seeded captures); at worst they could differ in the last bit
where numpy's vectorised ``log`` takes a different code path for a different array length.

The array path works feature-major (one row per feature, one column per book) so that each step
is one numpy call over every book and window at once: one ``searchsorted`` for all window starts
of a symbol's trades and one for its books, one gather of prefix sums, one ``log`` for every
return. Masks are skipped when nothing needs one (complete books, every window traded, no empty
lookback); the unmasked calls are the same operations, so the bytes do not change. Work arrays
are kept per batch size. A batch of exactly one book (the live case) takes a Python-float path
that performs the same floating-point operations in the same order (logs still go through numpy)
and is tested to give the same bytes as the array path; it costs about two thirds of the array
path's fixed overhead, so a batch of two or more books is cheaper through the array path.

Windows (time, on the clock above): VWAP and trade-flow imbalance over 1 s, 10 s, 60 s; realised
volatility over 10 s, 60 s; mid log-returns over 1 s, 10 s, 60 s. Conventions (no NaN ever):
a value with nothing to measure is 0 (no trade in a window, no book ``horizon`` ago, a one-sided
book); a degenerate book carries the symbol's last valid mid forward (0 before the first one) and
gets ``book_ok = 0`` and, by default, ``FLAG_STALE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from procs.features.book import (
    BOOK_VIEW,
    BPS,
    BookScratch,
    BoolArr,
    book_rows_into,
    positive_finite,
)
from procs.features.layout import (
    _COUNT,
    _COUNT_AT,
    _FEAT_VIEW,
    _INT64_MIN,
    _N_OFF,
    _N_RV,
    _OFFSETS_COL,
    _OK,
    _RET,
    _RV,
    _RV_FROM,
    _TFI,
    _TRADE_VIEW,
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
from procs.features.single import _append_trade_one, _book_one
from shm.records import BOOK_V1, FEAT_V1, FEATURE_SLOTS, FLAG_STALE, TRADE_V1, Records

__all__ = [  # the feature declaration lives in procs.features.layout; read it from here
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


class _Scratch:
    """Per-batch-size work arrays and their views (see ``BookScratch``); x is feature-major."""

    __slots__ = (
        "book",
        "d",
        "m0",
        "n",
        "needles",
        "out",
        "rows",
        "rv_from",
        "traded",
        "vwap",
        "x",
        "x_t",
    )

    def __init__(self, n: int) -> None:
        self.n = n
        self.x = np.zeros((N_FEATURES, n))  # every step writes whole rows
        self.x_t = self.x.T
        self.book = BookScratch(n, self.x)
        self.needles = np.empty((_N_OFF, n), dtype=np.int64)  # t - offset, row 0 = now
        self.m0 = np.empty((_N_OFF, n))  # mid of the previous book, then h back
        self.out = np.empty((_N_OFF + _N_RV, n))  # log-returns (r, then RET), realised vols
        self.rv_from = np.empty((_N_RV, n))  # prefix sum of r**2 at each RV window's start
        self.rows = np.empty((_N_OFF * n, 3))  # trade prefix sums at now and each window start
        self.d = np.empty((_N_OFF - 1, n, 3))  # window sums (px*qty, qty, side*qty)
        self.traded = np.empty((_N_OFF - 1, n), dtype=np.bool_)
        self.vwap = np.empty((_N_OFF - 1, n))


_SCRATCH_SIZES: Final = 8  # batch sizes whose work arrays are kept (the oldest goes first)


class _SymbolState:
    """History of one symbol's books (key; carried mid, prefix sum of r**2) and trades."""

    __slots__ = ("books", "trades")

    def __init__(self) -> None:
        self.books = _Series(2, by_row=False)  # carried mid (0 = none yet), prefix sum of r**2
        self.trades = _Series(3, by_row=True)  # prefix sums of px*qty, qty, side*qty

    def append_trades(self, trades: Records) -> None:
        k = trades.size
        tv = trades.view(_TRADE_VIEW)
        px, qty = np.array(tv["px_qty"].T)  # contiguous copies: whole-row numpy calls from here
        valid = positive_finite(px) & positive_finite(qty)
        if np.count_nonzero(valid) != k:
            invalid = ~valid
            px[invalid] = 0.0  # an invalid trade counts as nothing
            qty[invalid] = 0.0
        ts = self.trades
        ts.reserve(k)
        e = ts.end
        vals = ts.vals[e - 1 : e + k]  # the last prefix, then the new rows
        new = vals[1:]
        np.multiply(px, qty, out=new[:, 0])
        new[:, 1] = qty
        np.sign(tv["side"], out=new[:, 2])
        np.multiply(new[:, 2], qty, out=new[:, 2])
        # cumsum from the last prefix adds in the same order as one pass over the whole capture
        np.add.accumulate(vals, axis=0, out=vals)
        keys = ts.keys[e - 1 : e + k]
        keys[1:] = tv["ts_recv_ns"]
        np.maximum.accumulate(keys, out=keys)
        ts.end = e + k

    def books_into(self, books: Records, sc: _Scratch) -> tuple[BoolArr | None, F64]:
        """Features of ``books`` (seen through BOOK_VIEW) into ``sc.x``; return (ok, mid).

        ``ok`` is None when every book is two-sided.
        """
        n, x = sc.n, sc.x
        ok, mid_raw = book_rows_into(books, sc.book)
        if ok is not None and np.count_nonzero(ok) == n:
            ok = None
        x[_OK] = 1.0 if ok is None else ok
        bs = self.books
        bs.reserve(n)
        s, e = bs.start, bs.end
        keys = bs.keys[e - 1 : e + n]
        keys[1:] = books["ts_recv_ns"]
        np.maximum.accumulate(keys, out=keys)
        key = keys[1:]
        mids, c2 = bs.vals[0], bs.vals[1]
        m = mids[e - 1 : e + n]  # the last carried mid, then the batch's
        m[1:] = mid_raw
        if ok is not None:  # carry the last valid mid forward over degenerate books
            pos = np.where(ok, np.arange(1, n + 1), 0)
            np.maximum.accumulate(pos, out=pos)
            m[1:] = m.take(pos)
        mid = m[1:]
        has_mid = None if ok is None else mid > 0.0  # None: every mid is valid (the common case)
        needles = sc.needles
        np.subtract(key, _OFFSETS_COL, out=needles)
        back = bs.keys[s + 1 : e + n].searchsorted(needles[1:].ravel(), "right")
        back = back.reshape(_N_OFF - 1, n)  # rows from s: the last book at or before t - h
        # log-return to the previous book (row 0) and over each horizon, in one call
        m0, out = sc.m0, sc.out
        m0[0] = m[:-1]
        mids[s : e + n].take(back, out=m0[1:], mode="clip")  # clip: in range; unbuffered
        logs = out[:_N_OFF]
        # a carried mid stays positive once it is: if the oldest row looked up has one, all do
        if has_mid is None and mids[s + int(back[-1, 0])] > 0.0:
            np.divide(mid, m0, out=logs)
            np.log(logs, out=logs)
        else:
            both = m0 > 0.0 if has_mid is None else (m0 > 0.0) & has_mid
            logs.fill(0.0)
            np.log(mid / np.where(both, m0, 1.0), out=logs, where=both)
        c = c2[e - 1 : e + n]
        np.multiply(logs[0], logs[0], out=c[1:])
        np.add.accumulate(c, out=c)
        var = out[_N_OFF:]
        c2[s : e + n].take(back[_RV_FROM:], out=sc.rv_from, mode="clip")
        np.subtract(c[1:], sc.rv_from, out=var)
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        np.multiply(out[1:], BPS, out=x[_RET.start : _RV.stop])
        bs.end = e + n
        bs.start = s + int(back[-1, -1])  # the oldest row any later lookup can land on
        self._trades_into(sc, mid, has_mid)
        return ok, mid

    def _trades_into(self, sc: _Scratch, mid: F64, has_mid: BoolArr | None) -> None:
        n, x = sc.n, sc.x
        ts = self.trades
        s = ts.start
        at = ts.keys[s + 1 : ts.end].searchsorted(sc.needles.ravel(), "right")
        rows = sc.rows
        ts.vals[s : ts.end].take(at, axis=0, out=rows, mode="clip")
        rows4 = rows.reshape(_N_OFF, n, 3)
        d, traded, vwap = sc.d, sc.traded, sc.vwap
        np.subtract(rows4[0], rows4[1:], out=d)  # [window, n, (px*qty, qty, side*qty)]
        q = d[:, :, 1]
        np.greater(q, 0.0, out=traded)
        if np.count_nonzero(traded) == traded.size and has_mid is None:  # nothing to mask
            np.divide(d[:, :, 2], q, out=x[_TFI])
            np.divide(d[:, :, 0], q, out=vwap)
            np.subtract(vwap, mid, out=vwap)
            vwap *= BPS
            np.divide(vwap, mid, out=x[_VWAP])
        else:
            x[_TFI] = 0.0
            np.divide(d[:, :, 2], q, out=x[_TFI], where=traded)
            vwap.fill(0.0)
            np.divide(d[:, :, 0], q, out=vwap, where=traded)
            np.subtract(vwap, mid, out=vwap)
            vwap *= BPS
            with_mid = traded if has_mid is None else traded & has_mid
            x[_VWAP] = 0.0
            np.divide(vwap, mid, out=x[_VWAP], where=with_mid)
        at = at.reshape(_N_OFF, n)
        np.log1p(at[0] - at[_COUNT_AT], out=x[_COUNT])
        ts.start = s + int(at[-1, -1])


_SMALL_TRADES: Final = 4  # up to this many trades are appended one by one in Python


class FeatureEngine:
    """Per-symbol indicator state; one instance per stream of books, single-threaded."""

    def __init__(self, n_symbols: int, config: EngineConfig | None = None) -> None:
        if n_symbols <= 0:
            raise ValueError(f"n_symbols must be positive, was {n_symbols}")
        self._n_symbols = n_symbols
        self._config = config or EngineConfig()
        self._states: list[_SymbolState | None] = [None] * n_symbols
        self._scratch: dict[int, _Scratch] = {}  # by batch size

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

    def _only_symbol(self, sym: npt.NDArray[np.int32]) -> int:
        # the one symbol of a batch, or -1 when it mixes symbols (or holds an invalid one)
        if self._n_symbols == 1:
            return -1 if np.count_nonzero(sym) else 0
        first = int(sym[0])
        return -1 if np.count_nonzero(sym != first) else first

    def update(self, books: Records, trades: Records, *, ts_feat_ns: int = 0) -> Records:
        """Absorb ``trades`` (TRADE_V1), then return one FEAT_V1 record per book (BOOK_V1)."""
        if books.dtype != BOOK_V1 or trades.dtype != TRADE_V1:
            raise TypeError(f"expected BOOK_V1 and TRADE_V1 records, got {books.dtype}")
        if trades.size <= _SMALL_TRADES:
            for (
                t
            ) in trades.tolist():  # (seq, ts_event, ts_recv, ts_pub, symbol, side, flags, px, qty)
                _append_trade_one(self._state(t[4]), t[2], t[7], t[8], t[5])
        else:
            sym = trades["symbol_id"]
            only = self._only_symbol(sym)
            if only >= 0:
                self._state(only).append_trades(trades)
            else:
                for s in np.unique(sym).tolist():
                    self._state(s).append_trades(trades[sym == s])
        n = books.size
        if n == 1:
            return self._update_one(books, ts_feat_ns)
        if n == 0:
            return np.zeros(0, dtype=FEAT_V1)
        sym = books["symbol_id"]
        only = self._only_symbol(sym)
        if only >= 0:
            return self._books(self._state(only), books, ts_feat_ns)
        out: Records = np.zeros(n, dtype=FEAT_V1)
        for s in np.unique(sym).tolist():
            st = self._state(s)  # validate before selecting rows
            rows = np.flatnonzero(sym == s)
            if rows.size == 1:
                out[rows] = self._update_one(books[rows], ts_feat_ns)
            else:
                out[rows] = self._books(st, books[rows], ts_feat_ns)
        return out

    def _work(self, n: int) -> _Scratch:
        sc = self._scratch.get(n)
        if sc is None:
            if len(self._scratch) >= _SCRATCH_SIZES:
                del self._scratch[next(iter(self._scratch))]
            sc = self._scratch[n] = _Scratch(n)
        return sc

    def _books(self, st: _SymbolState, books: Records, ts_feat_ns: int) -> Records:
        n = books.size
        sc = self._work(n)
        view = books.view(BOOK_VIEW)
        ok, mid = st.books_into(view, sc)
        out: Records = np.zeros(n, dtype=FEAT_V1)  # zeroed: no stale bytes in the padding
        feat = out.view(_FEAT_VIEW)
        feat["head"] = view["head"]
        feat["ts_feat_ns"] = ts_feat_ns
        if ok is not None and self._config.mark_degenerate_stale:
            flags = feat["flags"]
            np.bitwise_or(flags, FLAG_STALE, out=flags, where=~ok)
        feat["mid"] = mid
        x = sc.x
        finite = np.isfinite(x)
        if np.count_nonzero(finite) != finite.size:
            x[~finite] = 0.0
        feat["x"] = sc.x_t  # float64 -> float32 once, at the end
        return out

    def _update_one(self, book: Records, ts_feat_ns: int) -> Records:
        # one book, the live case: Python floats instead of ~100 numpy calls on 1-row arrays
        rec = book[0]
        st = self._state(int(rec["symbol_id"]))
        x = [0.0] * FEATURE_SLOTS
        mid, ok = _book_one(st, book, x)
        flags = int(rec["flags"])
        if not ok and self._config.mark_degenerate_stale:
            flags |= FLAG_STALE
        row = (
            int(rec["seq"]),
            int(rec["ts_event_ns"]),
            int(rec["ts_recv_ns"]),
            ts_feat_ns,
            int(rec["symbol_id"]),
            flags,
            mid,
            [v if math.isfinite(v) else 0.0 for v in x],
        )
        out: Records = np.zeros(1, dtype=FEAT_V1)  # zeroed: no stale bytes in the padding
        out[0] = row
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
