"""Seeded synthetic BOOK_V1/TRADE_V1 market with a learnable signal (tests, benches, fallback).

A latent AR(1) order-flow pressure per symbol tilts book quantities and the taker side of trades
and drifts the mid, so book and trade-flow imbalance carry real (weak) predictive information.
Pure and deterministic: the same arguments give the same records, byte for byte.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from procs.tickstore import concat_records
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_SNAPSHOT, TRADE_V1, Records

START_NS: Final = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
TICK: Final = 0.1
_LEVELS: Final = np.arange(BOOK_DEPTH)


def _symbol_path(
    rng: np.random.Generator, n: int, book_rate_hz: float, base_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dt_ns = rng.exponential(1e9 / book_rate_hz, size=n).astype(np.int64) + 1_000
    ts = START_NS + np.cumsum(dt_ns)
    shocks = rng.normal(0.0, 0.3, size=n)
    pressure = np.empty(n)
    acc = 0.0
    for i in range(n):  # AR(1); generation is offline, a Python loop is fine here
        acc = 0.97 * acc + shocks[i]
        pressure[i] = acc
    pressure = np.tanh(pressure / 2.0)
    # the mid drifts with pressure: what the features see now predicts the next moves
    log_ret = 2e-5 * pressure + rng.normal(0.0, 1.5e-5, size=n)
    mid = base_px * np.exp(np.cumsum(log_ret))
    return ts, mid, pressure


def synthetic_market(
    seed: int,
    n_books: int,
    n_symbols: int = 1,
    *,
    book_rate_hz: float = 20.0,
    trades_per_book: float = 0.6,
    base_px: float = 30_000.0,
) -> tuple[Records, Records]:
    """Return (books, trades) sorted by ``ts_recv_ns``, ``n_books`` books over all symbols."""
    if n_books <= 0 or n_symbols <= 0:
        raise ValueError(f"n_books and n_symbols must be positive, were {n_books}, {n_symbols}")
    rng = np.random.default_rng(seed)
    book_parts, trade_parts = [], []
    for s in range(n_symbols):
        n = n_books // n_symbols + (1 if s < n_books % n_symbols else 0)
        if n == 0:
            continue
        ts, mid, pressure = _symbol_path(rng, n, book_rate_hz, base_px * (1 + s))
        book_parts.append(_books(rng, s, ts, mid, pressure))
        trade_parts.append(_trades(rng, s, ts, mid, pressure, trades_per_book))
    books = concat_records(book_parts, BOOK_V1)
    trades = concat_records(trade_parts, TRADE_V1)
    books = books[np.argsort(books["ts_recv_ns"], kind="stable")]
    trades = trades[np.argsort(trades["ts_recv_ns"], kind="stable")]
    books["seq"] = np.arange(books.size)
    trades["seq"] = np.arange(trades.size)
    return books, trades


def _books(
    rng: np.random.Generator, sym: int, ts: np.ndarray, mid: np.ndarray, pressure: np.ndarray
) -> Records:
    n = ts.size
    b: Records = np.zeros(n, dtype=BOOK_V1)
    b["ts_recv_ns"] = ts
    b["ts_event_ns"] = ts - ts % 1_000_000 - 2_000_000  # ms venue stamps, a little earlier
    b["ts_pub_ns"] = ts + 5_000
    b["symbol_id"] = sym
    b["flags"][0] = FLAG_SNAPSHOT
    b["n_bids"] = BOOK_DEPTH
    b["n_asks"] = BOOK_DEPTH
    half_ticks = rng.integers(1, 4, size=n)
    best_bid = np.round(mid / TICK - half_ticks / 2) * TICK
    best_ask = best_bid + np.maximum(half_ticks, 1) * TICK
    b["bid_px"] = best_bid[:, None] - _LEVELS * TICK
    b["ask_px"] = best_ask[:, None] + _LEVELS * TICK
    base = rng.lognormal(0.0, 0.6, size=(n, 2, BOOK_DEPTH))
    tilt = np.exp(1.2 * pressure)[:, None]
    b["bid_qty"] = np.round(base[:, 0] * tilt, 3) + 0.001
    b["ask_qty"] = np.round(base[:, 1] / tilt, 3) + 0.001
    return b


def _trades(
    rng: np.random.Generator,
    sym: int,
    ts: np.ndarray,
    mid: np.ndarray,
    pressure: np.ndarray,
    per_book: float,
) -> Records:
    n = int(rng.poisson(per_book * ts.size))
    t_ts = np.sort(rng.integers(int(ts[0]), int(ts[-1]) + 1, size=n))
    at = np.clip(np.searchsorted(ts, t_ts, "right") - 1, 0, ts.size - 1)
    p_buy = 1.0 / (1.0 + np.exp(-2.5 * pressure[at]))
    side = np.where(rng.random(n) < p_buy, 1, -1)
    t: Records = np.zeros(n, dtype=TRADE_V1)
    t["ts_recv_ns"] = t_ts
    t["ts_event_ns"] = t_ts - t_ts % 1_000_000
    t["ts_pub_ns"] = t_ts + 5_000
    t["symbol_id"] = sym
    t["side"] = side
    t["px"] = np.round(mid[at] / TICK + side * 0.5) * TICK
    t["qty"] = np.round(rng.lognormal(-1.0, 1.0, size=n), 3) + 0.001
    return t
