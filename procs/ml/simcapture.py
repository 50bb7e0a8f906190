"""Offline captures from simex's seeded MarketGenerator: its events mapped to BOOK_V1/TRADE_V1.

The mapping is what ingest does to a venue frame, minus the wire: top-15 levels as floats,
taker side +1/-1, a first-book ``FLAG_SNAPSHOT`` per symbol, the venue's millisecond event stamp,
and a fixed receive latency (no jitter, so a seed always gives the same capture).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Final

import numpy as np

from procs.exchange.marketgen import BookSnapshot, GenSymbol, MarketGenerator
from procs.ml.synth import START_NS
from procs.tickstore import STREAM_BOOK, STREAM_TRADE
from procs.tickstore.store import CaptureWriter
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_SNAPSHOT, TRADE_V1, Records

RECV_LATENCY_NS: Final = 250_000  # venue -> our socket
PUB_LATENCY_NS: Final = 10_000  # ingest's normalisation
DEFAULT_SYMBOLS: Final = (
    GenSymbol(
        symbol="BTCUSDT",
        start_price=Decimal(30000),
        tick=Decimal("0.1"),
        min_qty=Decimal("0.001"),
        step=Decimal("0.001"),
    ),
    GenSymbol(
        symbol="ETHUSDT",
        start_price=Decimal(2000),
        tick=Decimal("0.01"),
        min_qty=Decimal("0.01"),
        step=Decimal("0.01"),
    ),
)


def _levels(levels: Sequence[tuple[Decimal, Decimal]]) -> tuple[list[float], list[float], int]:
    top = levels[:BOOK_DEPTH]
    return [float(p) for p, _ in top], [float(q) for _, q in top], len(top)


def sim_records(
    seed: int,
    duration_s: float,
    *,
    symbols: Sequence[GenSymbol] = DEFAULT_SYMBOLS,
    start_ns: int = START_NS,
) -> tuple[Records, Records]:
    """Run the generator offline for ``duration_s``; return (books, trades) in event order."""
    gen = MarketGenerator(symbols, seed, start_ns=start_ns)
    sym_id = {s.symbol: i for i, s in enumerate(symbols)}
    b_rows: list[tuple[int, int, list[float], list[float], list[float], list[float]]] = []
    b_meta: list[tuple[int, int, int, int]] = []
    t_rows: list[tuple[int, int, int, float, float]] = []
    for ev in gen.events_until(start_ns + int(duration_s * 1e9), depth=BOOK_DEPTH):
        if isinstance(ev, BookSnapshot):
            bp, bq, nb = _levels(ev.bids)
            ap, aq, na = _levels(ev.asks)
            b_rows.append((ev.ts_ns, sym_id[ev.symbol], bp, bq, ap, aq))
            b_meta.append((nb, na, 0, 0))
        else:
            side = 1 if ev.side == "buy" else -1
            t_rows.append((ev.ts_ns, sym_id[ev.symbol], side, float(ev.price), float(ev.qty)))
    return _books(b_rows, b_meta), _trades(t_rows)


def _stamp(recs: Records, ts: np.ndarray) -> None:
    recs["seq"] = np.arange(recs.size)
    recs["ts_event_ns"] = ts - ts % 1_000_000
    recs["ts_recv_ns"] = ts + RECV_LATENCY_NS
    recs["ts_pub_ns"] = ts + RECV_LATENCY_NS + PUB_LATENCY_NS


def _books(
    rows: list[tuple[int, int, list[float], list[float], list[float], list[float]]],
    meta: list[tuple[int, int, int, int]],
) -> Records:
    b: Records = np.zeros(len(rows), dtype=BOOK_V1)
    if not rows:
        return b
    _stamp(b, np.array([r[0] for r in rows], dtype=np.int64))
    b["symbol_id"] = [r[1] for r in rows]
    b["n_bids"] = [m[0] for m in meta]
    b["n_asks"] = [m[1] for m in meta]
    for i, (_, _, bp, bq, ap, aq) in enumerate(rows):
        b["bid_px"][i, : len(bp)] = bp
        b["bid_qty"][i, : len(bq)] = bq
        b["ask_px"][i, : len(ap)] = ap
        b["ask_qty"][i, : len(aq)] = aq
    _, first = np.unique(b["symbol_id"], return_index=True)
    b["flags"][first] |= FLAG_SNAPSHOT
    return b


def _trades(rows: list[tuple[int, int, int, float, float]]) -> Records:
    t: Records = np.zeros(len(rows), dtype=TRADE_V1)
    if not rows:
        return t
    cols = list(zip(*rows, strict=True))
    _stamp(t, np.array(cols[0], dtype=np.int64))
    t["symbol_id"], t["side"], t["px"], t["qty"] = cols[1], cols[2], cols[3], cols[4]
    return t


def write_sim_capture(
    directory: str | Path,
    seed: int,
    duration_s: float,
    *,
    symbols: Sequence[GenSymbol] = DEFAULT_SYMBOLS,
    start_ns: int = START_NS,
    batch_records: int = 8192,
) -> list[Path]:
    """Generate a capture with ``sim_records`` and write it with CaptureWriter; return its files."""
    books, trades = sim_records(seed, duration_s, symbols=symbols, start_ns=start_ns)
    params = {"seed": seed, "duration_s": duration_s, "symbols": [repr(s) for s in symbols]}
    attrs: dict[str, str | int | float | bool | list[str] | list[int]] = {
        "venue": "simex-marketgen",
        "symbols": [s.symbol for s in symbols],
        "config_hash": hashlib.sha256(json.dumps(params).encode()).hexdigest()[:16],
        "seed": seed,
        "duration_s": duration_s,
    }
    with CaptureWriter(
        directory,
        streams={STREAM_BOOK: BOOK_V1, STREAM_TRADE: TRADE_V1},
        attrs=attrs,
        prefix=f"sim-seed{seed}",
        clock_ns=lambda: start_ns,  # names the file after the simulated start, reproducibly
    ) as w:
        for name, recs in ((STREAM_BOOK, books), (STREAM_TRADE, trades)):
            for i in range(0, recs.size, batch_records):
                w.append(name, recs[i : i + batch_records])
    return w.paths
