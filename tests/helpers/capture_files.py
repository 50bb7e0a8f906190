"""Capture files written by the real capture code (CaptureProc -> CountingWriter), for tests.

``write_demo_capture`` publishes a small synthetic market into real shared-memory rings, feeds
execution-style order events through a fake SUB, and lets ``CaptureProc`` write them: every
stream, the way the capture process writes them. ``write_schema1_capture`` writes a file the
way bitrader did before schema 2 (libver latest, ORDER_V1 unnamed, zero-filled book levels).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from pathlib import Path

import h5py
import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.orders import BreakerEvent, FillEvent, OrderEvent, PositionEvent, RiskEvent
from procs._config import RuntimeConfig
from procs.capture.orders import order_row
from procs.capture.proc import (
    RING_DTYPES,
    CaptureConfig,
    CaptureProc,
    CountingWriter,
    file_attrs,
    make_metrics,
    make_streams,
)
from procs.ml.synth import synthetic_market
from procs.tickstore.layout import ORDER_V1
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Records, dtype_crc
from shm.ring import RingSpec, RingWriter

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


class _Sub:
    def __init__(self, frames: list[tuple[bytes, bytes]]) -> None:
        self.queue = deque(frames)

    def recv(self, timeout_s: float) -> tuple[bytes, bytes] | None:
        return self.queue.popleft() if self.queue else None

    def close(self) -> None:
        pass


def order_frames(t0: int) -> list[tuple[bytes, bytes]]:
    d = Decimal
    st = (t0, t0 + 1, t0 + 2, t0 + 3, t0 + 4, t0 + 5)
    events = [
        (b"ord.BTCUSDT.", OrderEvent(1, *st, "c1", "o1", "BTCUSDT", "BUY", "LIMIT", "GTC",
                                     d("0.01"), d("3000.64"), "NEW", "NEW_INTENT", d(0), d(0),
                                     d(0), reason="signal")),
        (b"fill.BTCUSDT.", FillEvent(2, *st, "f1", "c1", "o1", "BTCUSDT", "BUY", "BOTH",
                                     d("0.01"), d("3000.64"), d("0.12"))),
        (b"pos.BTCUSDT.", PositionEvent(3, t0 + 9, "BTCUSDT", "BOTH", d("0.01"), d("3000.64"),
                                        d(0), d("0.1"), d("0.12"), d(0), d("3000.7"))),
        (b"risk.", RiskEvent(4, t0 + 10, "c2", "ETHUSDT", "max_position", "too big")),
        (b"brk.", BreakerEvent(5, t0 + 11, "ACTIVE", "REDUCING", "rejects", "3 in 10s")),
    ]  # fmt: skip
    enc = msgspec.msgpack.Encoder()
    return [(topic, enc.encode(ev)) for topic, ev in events]


def derived(books: Records) -> tuple[Records, Records]:
    """One feat per book and one sig per feat, stamps copied as features/inference do."""
    feat: Records = np.zeros(books.size, FEAT_V1)
    sig: Records = np.zeros(books.size, SIG_V1)
    for out in (feat, sig):
        for f in ("seq", "ts_event_ns", "ts_recv_ns", "symbol_id"):
            out[f] = books[f]
        out["ts_feat_ns"] = books["ts_pub_ns"] + 1000
        out["mid"] = (books["bid_px"][:, 0] + books["ask_px"][:, 0]) / 2
    sig["ts_sig_ns"] = sig["ts_feat_ns"] + 1000
    sig["score"] = 0.25
    sig["challenger"] = np.nan
    return feat, sig


def write_demo_capture(
    directory: Path, ns: str, n_books: int = 200, subdir: str = "cap", **kw: object
) -> CountingWriter:
    """Write every stream through ``CaptureProc``; return the (closed) writer."""
    books, trades = synthetic_market(seed=5, n_books=n_books)
    books["seq"] = np.arange(books.size)
    trades["seq"] = np.arange(trades.size)
    feat, sig = derived(books)
    runtime = RuntimeConfig(
        pub_endpoint=f"ipc://{directory}/c.pub", control_endpoint=f"ipc://{directory}/c.ctl"
    )
    cfg = CaptureConfig(
        runtime=runtime,
        directory=str(directory / subdir),
        book_ring=f"{ns}.ingest.md.book",
        trade_ring=f"{ns}.ingest.md.trade",
        feat_ring=f"{ns}.features.feat",
        sig_ring=f"{ns}.inference.sig",
        order_endpoints=["ipc://unused"],
        symbols=SYMBOLS,
        min_free_bytes=0,
        **kw,  # type: ignore[arg-type]
    )
    writer = CountingWriter(
        cfg.directory,
        streams=make_streams(cfg),
        attrs=file_attrs(cfg, "test"),
        chunk_bytes=cfg.chunk_bytes,
        rotate_bytes=cfg.rotate_bytes,
    )
    sub = _Sub(order_frames(int(books["ts_recv_ns"][0])))
    proc = CaptureProc(cfg, sink=writer, metrics=make_metrics(CollectorRegistry()), orders=sub)
    data = {"md.book": books, "md.trade": trades, "feat": feat, "sig": sig}
    rings = {
        s: RingWriter(RingSpec(name=n, dtype=RING_DTYPES[s], capacity=1 << 14))
        for s, n in cfg.ring_names().items()
    }
    try:
        for s, w in rings.items():
            w.publish(data[s])
        while proc.step():
            pass
    finally:
        proc.close()
        for w in rings.values():
            w.close()
    return writer


def write_schema1_capture(path: Path, books: Records, trades: Records, orders: Records) -> None:
    """Write a capture as bitrader did before schema 2 (what old files on disk look like)."""
    assert orders.dtype == ORDER_V1
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["schema_version"] = 1
        f.attrs["created_ns"] = int(books["ts_recv_ns"][0])
        f.attrs["symbols"] = '["BTCUSDT", "ETHUSDT"]'
        for name, recs, dtype_name in (
            ("md.book", books, "BOOK_V1"),
            ("md.trade", trades, "TRADE_V1"),
            ("orders", orders, ""),  # schema 1 left the orders dtype unnamed
        ):
            ds = f.create_dataset(name, data=recs, maxshape=(None,), chunks=(64,))
            ds.attrs["dtype_name"] = dtype_name
            ds.attrs["dtype_crc"] = dtype_crc(recs.dtype)


def old_orders(t0: int) -> Records:
    """ORDER_V1 rows as schema 1 wrote them (no symbol_id; position rows ts_recv_ns 0)."""
    dec = msgspec.msgpack.Decoder()
    from ipc.orders import ORDER_EVENT_DECODER

    out: Records = np.zeros(3, ORDER_V1)
    for i, (_, raw) in enumerate(order_frames(t0)[:3]):
        row = order_row(ORDER_EVENT_DECODER.decode(raw), t0 + 100 + i)
        for k, v in row.items():
            if k in (ORDER_V1.names or ()):
                out[i][k] = v
    out["ts_recv_ns"][2] = 0
    del dec
    return out


__all__ = [
    "BOOK_V1",
    "SYMBOLS",
    "TRADE_V1",
    "derived",
    "old_orders",
    "order_frames",
    "write_demo_capture",
    "write_schema1_capture",
]
