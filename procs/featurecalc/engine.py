"""Incremental feature engine: BOOK_V1 + TRADE_V1 batches in, one FEAT_V1 record per book out.

Pure: no sockets, segments, files or clocks. ``FEATURES`` (declared in ``procs.featurecalc.layout``,
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

from procs.featurecalc.book import (
    BOOK_VIEW,
    BPS,
    BookScratch,
    BoolArr,
    book_rows_into,
    positive_finite,
)
from procs.featurecalc.layout import (
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
from procs.featurecalc.single import ONE_BOOK_VIEW, _append_trade_one, _book_one
from shm.records import BOOK_V1, FEAT_V1, FEATURE_SLOTS, FLAG_STALE, TRADE_V1, Records

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


_PerBook = tuple[BoolArr | None, F64]  # book_rows_into's (ok, raw mid) of a batch


class _Scratch:
    """Per-batch-size work arrays and their views (see ``BookScratch``); x is feature-major."""

    __slots__ = (
        "book",
        "d_pq",
        "d_q",
        "d_sq",
        "diffs",
        "logs",
        "m0",
        "m0_back",
        "m0_prev",
        "n",
        "needles",
        "needles_back",
        "needles_flat",
        "ok_set",
        "r",
        "rets_vols",
        "rows",
        "rows_back",
        "rows_now",
        "rv_from",
        "scaled",
        "traded",
        "var",
        "vwap",
        "x",
        "x_count",
        "x_ok",
        "x_rets_vols",
        "x_t",
        "x_tfi",
        "x_vwap",
    )

    def __init__(self, n: int) -> None:
        self.n = n
        x = self.x = np.zeros((N_FEATURES, n))  # every step writes whole rows
        self.x_t = x.T
        self.x_ok, self.x_count = x[_OK], x[_COUNT]
        self.x_ok[...] = 1.0
        self.ok_set = True  # x_ok holds 1.0 for every book
        self.x_tfi, self.x_vwap, self.x_rets_vols = x[_TFI], x[_VWAP], x[_RET.start : _RV.stop]
        self.book = BookScratch(n, x)
        self.needles = np.empty((_N_OFF, n), dtype=np.int64)  # t - offset, row 0 = now
        self.needles_flat, self.needles_back = (
            self.needles.reshape(-1),
            self.needles[1:].reshape(-1),
        )
        m0 = self.m0 = np.empty((_N_OFF, n))  # mid of the previous book, then h back
        self.m0_prev, self.m0_back = m0[0], m0[1:].reshape(-1)
        # log-returns (r to the previous book, then each horizon's), then realised vols
        rets_vols = self.rets_vols = np.empty((_N_OFF + _N_RV, n))
        self.logs, self.r, self.var = rets_vols[:_N_OFF], rets_vols[0], rets_vols[_N_OFF:]
        self.scaled = rets_vols[1:]
        self.rv_from = np.empty(_N_RV * n)  # prefix sum of r**2 at each RV window's start
        rows = self.rows = np.empty((_N_OFF * n, 3))  # trade prefix sums: now, window starts
        self.rows_now, self.rows_back = rows[:n], rows[n:].reshape(_N_OFF - 1, n, 3)
        d = self.diffs = np.empty((_N_OFF - 1, n, 3))  # window sums (px*qty, qty, side*qty)
        self.d_pq, self.d_q, self.d_sq = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        self.traded = np.empty((_N_OFF - 1, n), dtype=np.bool_)
        self.vwap = np.empty((_N_OFF - 1, n))


_SCRATCH_SIZES: Final = 16  # batch sizes whose work arrays are kept (the oldest goes first;
# building one costs about the fixed cost of one batch, and 1024 books take about 0.9 MB)


class _SymbolState:
    """History of one symbol's books (key; carried mid, prefix sum of r**2) and trades."""

    __slots__ = ("books", "trades")

    def __init__(self) -> None:
        self.books = _Series(2, by_row=False)  # carried mid (0 = none yet), prefix sum of r**2
        self.trades = _Series(3, by_row=True)  # prefix sums of px*qty, qty, side*qty

    def append_trades(self, trades: Records) -> None:
        k = trades.size
        tv = trades.view(_TRADE_VIEW)
        px_qty = np.array(tv["px_qty"].T)  # a contiguous copy: whole-row numpy calls from here
        valid = positive_finite(px_qty)
        if np.count_nonzero(valid) != 2 * k:
            px_qty[:, ~(valid[0] & valid[1])] = 0.0  # an invalid trade counts as nothing
        px, qty = px_qty
        ts = self.trades
        if ts.end + k > ts.keys.size:
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

    def books_into(
        self, books: Records, sc: _Scratch, per_book: _PerBook | None = None
    ) -> tuple[BoolArr | None, F64]:
        """Features of ``books`` (seen through BOOK_VIEW) into ``sc.x``; return (ok, mid).

        ``ok`` is None when every book is two-sided. ``per_book``: ``book_rows_into``'s
        (ok, raw mid) for these books, already computed (its rows of ``sc.x`` filled too).
        """
        n = sc.n
        ok, mid_raw = book_rows_into(books, sc.book) if per_book is None else per_book
        if ok is not None and np.count_nonzero(ok) == n:
            ok = None
        if ok is not None:
            sc.x_ok[...] = ok
            sc.ok_set = False
        elif not sc.ok_set:
            sc.x_ok[...] = 1.0
            sc.ok_set = True
        bs = self.books
        if bs.end + n > bs.keys.size:
            bs.reserve(n)
        s, e = bs.start, bs.end
        keys = bs.keys[e - 1 : e + n]
        keys[1:] = books["ts_recv_ns"]
        np.maximum.accumulate(keys, out=keys)
        mids, c2 = bs.vals
        m = mids[e - 1 : e + n]  # the last carried mid, then the batch's
        m[1:] = mid_raw
        if ok is not None:  # carry the last valid mid forward over degenerate books
            pos = np.where(ok, np.arange(1, n + 1), 0)
            np.maximum.accumulate(pos, out=pos)
            m[1:] = m.take(pos)
        mid = m[1:]
        has_mid = None if ok is None else mid > 0.0  # None: every mid is valid (the common case)
        np.subtract(keys[1:], _OFFSETS_COL, out=sc.needles)
        # offset-major: for each horizon h, the last book at or before t - h, as a row from s
        back = bs.keys[s + 1 : e + n].searchsorted(sc.needles_back, "right")
        # log-return to the previous book (row 0) and over each horizon, in one call
        m0, logs = sc.m0, sc.logs
        sc.m0_prev[...] = m[:-1]
        mids[s : e + n].take(back, out=sc.m0_back, mode="clip")  # clip: in range; unbuffered
        # a carried mid stays positive once it is: if the oldest row looked up has one, all do
        if has_mid is None and mids[s + int(back[(_N_OFF - 2) * n])] > 0.0:
            np.divide(mid, m0, out=logs)
            np.log(logs, out=logs)
        else:
            both = m0 > 0.0 if has_mid is None else (m0 > 0.0) & has_mid
            logs.fill(0.0)
            np.log(mid / np.where(both, m0, 1.0), out=logs, where=both)
        c = c2[e - 1 : e + n]
        np.multiply(sc.r, sc.r, out=c[1:])
        np.add.accumulate(c, out=c)
        c2[s : e + n].take(back[_RV_FROM * n :], out=sc.rv_from, mode="clip")
        var = sc.var
        np.subtract(c[1:], sc.rv_from.reshape(_N_RV, n), out=var)
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        np.multiply(sc.scaled, BPS, out=sc.x_rets_vols)
        bs.end = e + n
        bs.start = s + int(back[-1])  # the oldest row any later lookup can land on
        self._trades_into(sc, mid, has_mid)
        return ok, mid

    def _trades_into(self, sc: _Scratch, mid: F64, has_mid: BoolArr | None) -> None:
        n = sc.n
        ts = self.trades
        s = ts.start
        at = ts.keys[s + 1 : ts.end].searchsorted(sc.needles_flat, "right")
        ts.vals[s : ts.end].take(at, axis=0, out=sc.rows, mode="clip")
        np.subtract(sc.rows_now, sc.rows_back, out=sc.diffs)
        q, traded, vwap = sc.d_q, sc.traded, sc.vwap
        np.greater(q, 0.0, out=traded)
        if np.count_nonzero(traded) == traded.size and has_mid is None:  # nothing to mask
            np.divide(sc.d_sq, q, out=sc.x_tfi)
            np.divide(sc.d_pq, q, out=vwap)
            np.subtract(vwap, mid, out=vwap)
            vwap *= BPS
            np.divide(vwap, mid, out=sc.x_vwap)
        else:
            sc.x_tfi.fill(0.0)
            np.divide(sc.d_sq, q, out=sc.x_tfi, where=traded)
            vwap.fill(0.0)
            np.divide(sc.d_pq, q, out=vwap, where=traded)
            np.subtract(vwap, mid, out=vwap)
            vwap *= BPS
            with_mid = traded if has_mid is None else traded & has_mid
            sc.x_vwap.fill(0.0)
            np.divide(vwap, mid, out=sc.x_vwap, where=with_mid)
        np.log1p(at[:n] - at[_COUNT_AT * n : (_COUNT_AT + 1) * n], out=sc.x_count)
        ts.start = s + int(at[-1])


_SMALL_TRADES: Final = 4  # up to this many trades are appended one by one in Python
# ... and up to this many per symbol when they mix symbols: the array path's cost is per symbol
# (~15 µs each, plus selecting its rows), a trade's in Python ~1.8 µs (measured, 2 symbols: 7
# trades 34 against 12 µs, 14 trades 32 against 23, 20 trades 32 against 34)
_SMALL_TRADES_PER_SYMBOL: Final = 8
_FEAT_RAW: Final = np.dtype((np.void, FEAT_V1.itemsize))
_BOOK_ROWS: Final = 5  # rows 0-4 of the work array x: what book_rows_into writes


def _rows(records: Records, rows: npt.NDArray[np.intp]) -> Records:
    """``records[rows]`` as whole records: numpy copies a structured array's rows field by
    field (~9 µs for a few rows of BOOK_V1), opaque records as bytes (~1 µs)."""
    dtype = records.dtype
    picked: Records = records.view((np.void, dtype.itemsize)).take(rows).view(dtype)
    return picked


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
            self._append_each(trades)
        else:
            sym = trades["symbol_id"]
            only = self._only_symbol(sym)
            if only >= 0:
                self._state(only).append_trades(trades)
            elif trades.size <= _SMALL_TRADES_PER_SYMBOL * len(symbols := set(sym.tolist())):
                self._append_each(trades)
            else:
                for s in sorted(symbols):
                    self._state(s).append_trades(_rows(trades, np.flatnonzero(sym == s)))
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
        out_raw = out.view(_FEAT_RAW)
        whole: tuple[BoolArr | None, F64, F64] | None = None
        for s in sorted(set(sym.tolist())):
            st = self._state(s)  # validate before selecting rows
            rows = np.flatnonzero(sym == s)
            mine = _rows(books, rows)
            if rows.size == 1:
                out_raw[rows] = self._update_one(mine, ts_feat_ns).view(_FEAT_RAW)
                continue
            if whole is None:  # a book's own features (no history): once for the whole batch
                sc = self._work(n)
                whole = (*book_rows_into(books.view(BOOK_VIEW), sc.book), sc.x[:_BOOK_ROWS])
            ok, mid, x = whole
            sc = self._work(rows.size)
            x.take(rows, axis=1, out=sc.x[:_BOOK_ROWS], mode="clip")
            per_book = (None if ok is None else ok.take(rows), mid.take(rows))
            out_raw[rows] = self._books(st, mine, ts_feat_ns, per_book).view(_FEAT_RAW)
        return out

    def _append_each(self, trades: Records) -> None:
        # (seq, ts_event, ts_recv, ts_pub, symbol, side, flags, px, qty)
        for t in trades.tolist():
            _append_trade_one(self._state(t[4]), t[2], t[7], t[8], t[5])

    def _work(self, n: int) -> _Scratch:
        sc = self._scratch.get(n)
        if sc is None:
            if len(self._scratch) >= _SCRATCH_SIZES:
                del self._scratch[next(iter(self._scratch))]
            sc = self._scratch[n] = _Scratch(n)
        return sc

    def _books(
        self, st: _SymbolState, books: Records, ts_feat_ns: int, per_book: _PerBook | None = None
    ) -> Records:
        n = books.size
        sc = self._work(n)
        view = books.view(BOOK_VIEW)
        ok, mid = st.books_into(view, sc, per_book)
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
        # one book, the live case: Python floats instead of ~60 numpy calls on 1-row arrays
        stamps, symbol_id, flags, counts, words = book.view(ONE_BOOK_VIEW).tolist()[0]
        st = self._state(symbol_id)
        seq, ts_event, ts_recv = stamps.tolist()
        x = [0.0] * FEATURE_SLOTS
        mid, ok = _book_one(st, ts_recv, counts.tolist(), words.tolist(), x)
        if not ok and self._config.mark_degenerate_stale:
            flags |= FLAG_STALE
        if not math.isfinite(sum(x)):  # a non-finite value makes the sum non-finite
            x = [v if math.isfinite(v) else 0.0 for v in x]
        out: Records = np.zeros(1, dtype=FEAT_V1)  # zeroed: no stale bytes in the padding
        out[0] = (seq, ts_event, ts_recv, ts_feat_ns, symbol_id, flags, mid, x)
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
