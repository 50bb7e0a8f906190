"""Naive pure-Python reference of every feature, straight from the definitions in the engine."""

from __future__ import annotations

import math

import numpy as np

from procs.featurecalc.engine import (
    COUNT_WINDOW_NS,
    FEATURES,
    RETURN_HORIZONS_NS,
    RV_WINDOWS_NS,
    TFI_WINDOWS_NS,
    VWAP_WINDOWS_NS,
)

S = 1_000_000_000


def _suffix(w: int) -> str:
    return f"{w // S}s"


def _book_static(b: np.void) -> dict[str, float]:
    nb, na = int(b["n_bids"]), int(b["n_asks"])
    bid0, ask0 = float(b["bid_px"][0]), float(b["ask_px"][0])

    def qty(side: str, n: int, k: int) -> float:
        return sum(max(float(q), 0.0) for q in list(b[side][: min(k, n)]))

    ok = nb > 0 and na > 0 and bid0 > 0 and ask0 > 0
    mid = (bid0 + ask0) / 2 if ok else 0.0
    out: dict[str, float] = {"ok": float(ok), "mid": mid}
    out["spread_bps"] = (ask0 - bid0) / mid * 1e4 if ok else 0.0
    for d in (1, 5, 15):
        bs, as_ = qty("bid_qty", nb, d), qty("ask_qty", na, d)
        out[f"imbalance_{d}"] = (bs - as_) / (bs + as_) if bs + as_ > 0 else 0.0
    bq0 = max(float(b["bid_qty"][0]), 0.0) if nb > 0 else 0.0
    aq0 = max(float(b["ask_qty"][0]), 0.0) if na > 0 else 0.0
    if ok and bq0 + aq0 > 0:
        micro = (bid0 * aq0 + ask0 * bq0) / (bq0 + aq0)
        out["microprice_dev_bps"] = (micro - mid) / mid * 1e4
    else:
        out["microprice_dev_bps"] = 0.0
    return out


def reference(books: np.ndarray, trades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (x[n_books, len(FEATURES)] float64, mid[n_books]) for the whole capture."""
    tr: dict[int, list[tuple[int, float, float, int]]] = {}
    last_tkey: dict[int, int] = {}
    for t in trades:
        s = int(t["symbol_id"])
        key = max(last_tkey.get(s, -(2**63)), int(t["ts_recv_ns"]))
        last_tkey[s] = key
        px, q = float(t["px"]), float(t["qty"])
        good = px > 0 and q > 0
        tr.setdefault(s, []).append((key, px if good else 0.0, q if good else 0.0, int(t["side"])))
    hist: dict[int, list[tuple[int, float, float]]] = {}  # key, mid, r2
    xs, mids = [], []
    for b in books:
        s = int(b["symbol_id"])
        h = hist.setdefault(s, [])
        st = _book_static(b)
        key = max(h[-1][0] if h else -(2**63), int(b["ts_recv_ns"]))
        last_mid = h[-1][1] if h else 0.0
        mid = st["mid"] if st["ok"] else last_mid
        r2 = math.log(mid / last_mid) ** 2 if mid > 0 and last_mid > 0 else 0.0
        h.append((key, mid, r2))
        f: dict[str, float] = {k: v for k, v in st.items() if k in FEATURES}
        f["book_ok"] = 1.0 if st["ok"] else 0.0
        ts_list = tr.get(s, [])
        for w in sorted(set(VWAP_WINDOWS_NS + TFI_WINDOWS_NS + (COUNT_WINDOW_NS,))):
            win = [x for x in ts_list if key - w < x[0] <= key]
            q = sum(x[2] for x in win)
            if w in VWAP_WINDOWS_NS:
                vwap = sum(x[1] * x[2] for x in win) / q if q > 0 else None
                dev = (vwap - mid) / mid * 1e4 if vwap is not None and mid > 0 else 0.0
                f[f"vwap_dev_bps_{_suffix(w)}"] = dev
            if w in TFI_WINDOWS_NS:
                sq = sum(x[3] * x[2] for x in win)
                f[f"trade_flow_imbalance_{_suffix(w)}"] = sq / q if q > 0 else 0.0
            if w == COUNT_WINDOW_NS:
                f[f"log1p_trades_{_suffix(w)}"] = math.log1p(len(win))
        for hz in RETURN_HORIZONS_NS:
            before = [m for (k, m, _) in h if k <= key - hz]
            m0 = before[-1] if before else 0.0
            f[f"return_bps_{_suffix(hz)}"] = math.log(mid / m0) * 1e4 if mid > 0 and m0 > 0 else 0.0
        for w in RV_WINDOWS_NS:
            var = sum(r for (k, _, r) in h if k > key - w)
            f[f"realised_vol_bps_{_suffix(w)}"] = math.sqrt(var) * 1e4
        xs.append([f[name] for name in FEATURES])
        mids.append(mid)
    return np.array(xs, dtype=np.float64).reshape(-1, len(FEATURES)), np.array(mids)
