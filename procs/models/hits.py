"""Pure hit-rate tracking: did the sign of a score predict the sign of the mid move?

Each prediction waits in a small per-symbol buffer keyed by its time (``ts_recv_ns``, made
non-decreasing per symbol, the feature engine's clock) until the data reaches ``horizon`` past
it; its future mid is then the mid of the last record at or before t + horizon, as in the
trainer's label (procs.ml.labels). Zero scores, zero moves and non-positive mids are not counted.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["HitTracker"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

PENDING_MAX: Final = 4096  # predictions kept per symbol; the oldest are dropped past this


class _Symbol:
    def __init__(self, n_models: int, cap: int) -> None:
        self.ts: I64 = np.zeros(cap, np.int64)
        self.mid: F64 = np.zeros(cap, np.float64)
        self.sign: I8 = np.zeros((cap, n_models), np.int8)
        self.start = 0
        self.end = 0
        self.last_ts: int | None = None
        self.last_mid = 0.0


class HitTracker:
    """Per-symbol pending predictions of ``n_models`` models, resolved by later mids.

    ``hits[i] / counted[i]`` is model i's hit rate since the last ``reset``. One thread.
    """

    def __init__(self, horizon_ns: int, n_models: int = 2, *, pending_max: int = PENDING_MAX):
        if horizon_ns <= 0 or n_models < 1 or pending_max < 1:
            raise ValueError(
                f"need horizon_ns > 0, n_models >= 1, pending_max >= 1; "
                f"were {horizon_ns}, {n_models}, {pending_max}"
            )
        self.horizon_ns = horizon_ns
        self.n_models = n_models
        self._cap = pending_max
        self._syms: dict[int, _Symbol] = {}
        self.hits: I64 = np.zeros(n_models, np.int64)
        self.counted: I64 = np.zeros(n_models, np.int64)
        self.dropped_total = 0

    def reset(self, model: int | None = None) -> None:
        """Forget the counts of ``model`` (None: all), e.g. after a swap; pending rows stay."""
        sel = slice(None) if model is None else slice(model, model + 1)
        self.hits[sel] = 0
        self.counted[sel] = 0

    def rate(self, model: int) -> float:
        """Return model ``model``'s hit rate, NaN before anything was counted."""
        c = int(self.counted[model])
        return int(self.hits[model]) / c if c else float("nan")

    def pending(self) -> int:
        """Return the number of predictions waiting for their horizon."""
        return sum(s.end - s.start for s in self._syms.values())

    def update(self, symbol_id: npt.NDArray[np.int32], ts_ns: I64, mid: F64, signs: I8) -> None:
        """Add one batch: rows in arrival order, ``signs`` int8 [n, n_models] in {-1, 0, 1}."""
        n = symbol_id.shape[0]
        if n == 0:
            return
        first = symbol_id[0]
        if n == 1 or (symbol_id == first).all():
            self._update_symbol(int(first), ts_ns, mid, signs)
            return
        for s in np.unique(symbol_id):
            rows = symbol_id == s
            self._update_symbol(int(s), ts_ns[rows], mid[rows], signs[rows])

    def _update_symbol(self, sym: int, t_in: I64, m: F64, signs: I8) -> None:
        st = self._syms.get(sym)
        if st is None:
            st = self._syms[sym] = _Symbol(self.n_models, self._cap)
        t = np.maximum.accumulate(t_in if st.last_ts is None else np.maximum(t_in, st.last_ts))
        self._append(st, t, m, signs)
        if st.last_ts is None:
            t_all, m_all = t, m
        else:
            t_all = np.concatenate(([st.last_ts], t))
            m_all = np.concatenate(([st.last_mid], m))
        st.last_ts, st.last_mid = int(t[-1]), float(m[-1])
        if st.end > st.start:
            self._resolve(st, t_all, m_all)

    def _append(self, st: _Symbol, t: I64, m: F64, signs: I8) -> None:
        keep = signs.any(axis=1) & (m > 0.0)
        k = int(keep.sum())
        if k == 0:
            return
        if k >= self._cap:  # more than fits: only the newest cap survive
            self.dropped_total += st.end - st.start + k - self._cap
            st.start = st.end = 0
            t, m, signs = t[keep][-self._cap :], m[keep][-self._cap :], signs[keep][-self._cap :]
            k, keep = self._cap, np.ones(self._cap, bool)
        if st.end + k > self._cap:  # compact, dropping the oldest if still too many
            live = st.end - st.start
            drop = max(0, live + k - self._cap)
            self.dropped_total += drop
            a = st.start + drop
            live -= drop
            st.ts[:live] = st.ts[a : st.end]
            st.mid[:live] = st.mid[a : st.end]
            st.sign[:live] = st.sign[a : st.end]
            st.start, st.end = 0, live
        st.ts[st.end : st.end + k] = t[keep]
        st.mid[st.end : st.end + k] = m[keep]
        st.sign[st.end : st.end + k] = signs[keep]
        st.end += k

    def _resolve(self, st: _Symbol, t_all: I64, m_all: F64) -> None:
        p = st.ts[st.start : st.end]
        k = int(np.searchsorted(p, t_all[-1] - self.horizon_ns, "right"))
        if k == 0:
            return
        p = p[:k]
        j = np.searchsorted(t_all, p + self.horizon_ns, "right") - 1
        future = m_all[j]
        move = np.sign(future - st.mid[st.start : st.start + k]).astype(np.int8)
        move[future <= 0.0] = 0
        s = st.sign[st.start : st.start + k]
        counted = (s != 0) & (move != 0)[:, None]
        self.counted += counted.sum(axis=0)
        self.hits += (counted & (s == move[:, None])).sum(axis=0)
        st.start += k
