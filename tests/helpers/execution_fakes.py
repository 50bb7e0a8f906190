"""Fakes and builders for the execution process tests: a scriptable venue, records, a rig."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from prometheus_client import CollectorRegistry

from ipc.orders import ORDER_EVENT_DECODER
from procs.trading.compose import LoopWaiter
from procs.trading.config import ExecutionConfig, SymbolConfig
from procs.trading.engine import ExecutionProc
from procs.trading.instruments import Instrument
from procs.trading.intent_log import Sync
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import ExecutionMetrics, make_metrics
from procs.trading.model import ZERO, OrderRequest, VenueOrderUpdate
from procs.trading.paper import BookLevels
from procs.trading.reconcile import VenuePosition, VenueSnapshot
from procs.trading.venue import VenueRejected, VenueSink, VenueUnknown, configured_instrument
from shm.records import BOOK_V1, SIG_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter

T = TypeVar("T")
SYM = "BTCUSDT"
SID = 1
T0 = 1_700_000_000 * 1_000_000_000  # fake clock start, ns


def symbols() -> list[SymbolConfig]:
    return [
        SymbolConfig(
            symbol=SYM, symbol_id=SID, tick=Decimal("0.1"), step=Decimal("0.0001"),
            min_qty=Decimal("0.0001"),
        )
    ]  # fmt: skip


@dataclass
class FakeVenue:
    """Answers like a venue; ``mode`` scripts ``place``: ack, reject, unknown or hang."""

    mode: str = "ack"
    kind: str = "live"
    eager_sends: bool = True  # a remote venue's calls start as the step ends
    ws_connected: bool = True
    ws_frames_skipped_total: int = 0
    placed: list[OrderRequest] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    known: dict[str, VenueOrderUpdate] = field(default_factory=dict)  # what a query finds
    positions: list[VenuePosition] = field(default_factory=list)
    balance: Decimal | None = None
    sink: VenueSink | None = None
    calls: list[str] = field(default_factory=list)  # call order: "place:<cid>", "query:<cid>"

    async def start(self, sink: VenueSink) -> None:
        self.sink = sink

    async def instruments(self, syms: Sequence[SymbolConfig]) -> list[Instrument]:
        return [i for s in syms if (i := configured_instrument(s)) is not None]

    async def place(self, req: OrderRequest) -> str:
        self.placed.append(req)
        self.calls.append(f"place:{req.client_id}")
        if self.mode == "reject":
            raise VenueRejected("price out of range", "ParameterError")
        if self.mode == "ratelimit":
            raise VenueRejected("not sent: 10005 too many requests", "RateLimited")
        if self.mode == "unknown":
            self.known[req.client_id] = self._update(req, "NEW")  # it did arrive, after all
            raise VenueUnknown("timeout", "UnknownOutcome")
        if self.mode == "hang":
            await asyncio.get_running_loop().create_future()
        oid = f"O{len(self.placed)}"
        self.known[req.client_id] = self._update(req, "NEW", oid)
        return oid

    def _update(self, req: OrderRequest, status: str, oid: str = "") -> VenueOrderUpdate:
        return VenueOrderUpdate(
            client_id=req.client_id, order_id=oid or f"O-{req.client_id}", symbol=req.symbol,
            status=status, qty=req.qty, price=req.price, side=req.side,
        )  # fmt: skip

    def push(self, client_id: str, status: str, filled: str = "0", avg: str = "0") -> None:
        """Send an ``order`` push for a known order (and remember its new state)."""
        u = self.known[client_id]
        new = VenueOrderUpdate(
            client_id=client_id, order_id=u.order_id, symbol=u.symbol, status=status,
            filled_qty=Decimal(filled), avg_price=Decimal(avg), qty=u.qty, price=u.price,
            side=u.side,
        )  # fmt: skip
        self.known[client_id] = new
        assert self.sink is not None
        self.sink.on_order_update(new)

    async def cancel(self, symbol: str, client_id: str) -> None:
        self.cancels.append(client_id)
        u = self.known.get(client_id)
        if u is not None and u.status in ("NEW", "PART_FILLED"):
            self.push(client_id, "CANCELED", str(u.filled_qty), str(u.avg_price))

    async def query(self, client_id: str) -> VenueOrderUpdate | None:
        self.queries.append(client_id)
        self.calls.append(f"query:{client_id}")
        return self.known.get(client_id)

    async def snapshot(self) -> VenueSnapshot:
        open_ = [u for u in self.known.values() if u.status in ("NEW", "PART_FILLED")]
        return VenueSnapshot(open_orders=open_, positions=self.positions, balance=self.balance)

    async def marks(self, syms: Sequence[str]) -> dict[str, Decimal]:
        return {}

    def on_book(self, book: BookLevels) -> None:
        return None

    def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, topic: bytes, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return True

    def topics(self) -> list[bytes]:
        return [t for t, _ in self.sent]


def book_records(bid: float, ask: float, ts_recv_ns: int, *, flags: int = 0) -> Records:
    r = np.zeros(1, dtype=BOOK_V1)
    r["ts_event_ns"], r["ts_recv_ns"], r["ts_pub_ns"] = (
        ts_recv_ns - 500,
        ts_recv_ns,
        ts_recv_ns + 10_000,
    )
    r["symbol_id"], r["flags"], r["n_bids"], r["n_asks"] = SID, flags, 1, 1
    r["bid_px"][0, 0], r["ask_px"][0, 0] = bid, ask
    r["bid_qty"][0, 0], r["ask_qty"][0, 0] = 1.0, 1.0
    return r  # fmt: skip


def sig_records(score: float, mid: float, ts_recv_ns: int, *, flags: int = 0) -> Records:
    r = np.zeros(1, dtype=SIG_V1)
    r["ts_event_ns"], r["ts_recv_ns"] = ts_recv_ns - 500, ts_recv_ns
    r["ts_feat_ns"], r["ts_sig_ns"] = ts_recv_ns + 20_000, ts_recv_ns + 30_000
    r["symbol_id"], r["flags"], r["mid"], r["score"] = SID, flags, mid, score
    return r


@dataclass
class Rig:
    """An ExecutionProc on in-memory rings, a fake venue and a fake clock."""

    proc: ExecutionProc
    venue: FakeVenue
    pub: RecordingPublisher
    metrics: ExecutionMetrics
    registry: CollectorRegistry
    sig_w: RingWriter
    book_w: RingWriter
    waiter: LoopWaiter
    loop: asyncio.AbstractEventLoop
    clock: list[int]
    ks_path: Path

    def now(self) -> int:
        return self.clock[0]

    def advance(self, seconds: float) -> None:
        self.clock[0] += int(seconds * 1e9)

    def run(self, steps: int = 5) -> None:
        for _ in range(steps):
            self.proc.step()
            self.waiter.reset()

    def tick(self, score: float, bid: float = 59999.9, ask: float = 60000.1) -> None:
        """One market tick: a book, then the signal computed from it."""
        ts = self.clock[0] - 100_000
        self.book_w.publish(book_records(bid, ask, ts))
        self.sig_w.publish(sig_records(score, (bid + ask) / 2, ts))
        self.run()

    def close(self) -> None:
        self.proc.close()
        self.sig_w.close()
        self.book_w.close()
        self.loop.close()

    def events(self, kind: type[T]) -> list[T]:
        decoded = [ORDER_EVENT_DECODER.decode(p) for _, p in self.pub.sent]
        return [e for e in decoded if isinstance(e, kind)]

    def sample(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else v


def make_rig(
    tmp_path: Path, ns: str, venue: Any = None, intent_sync: Sync = "before_send", **cfg: Any
) -> Rig:
    config = ExecutionConfig(
        symbols=symbols(), journal_path=str(tmp_path / "j.sqlite"),
        killswitch_path=str(tmp_path / "ks.json"), **cfg,
    )  # fmt: skip
    sig_w = RingWriter(RingSpec(name=f"{ns}.inference.sig", dtype=SIG_V1, capacity=64))
    book_w = RingWriter(RingSpec(name=f"{ns}.ingest.md.book", dtype=BOOK_V1, capacity=64))
    loop = asyncio.new_event_loop()
    clock = [T0]
    registry = CollectorRegistry()
    metrics = make_metrics(registry)
    venue = venue or FakeVenue()
    pub = RecordingPublisher()
    proc = ExecutionProc(
        config,
        sig=RingReader(f"{ns}.inference.sig", SIG_V1),
        book=RingReader(f"{ns}.ingest.md.book", BOOK_V1),
        venue=venue,
        journal=Journal.open(config.journal_path, intent_sync=intent_sync),
        publisher=pub,
        killswitch=KillSwitch(FileStore(config.killswitch_path), config.killswitch_poll_s),
        metrics=metrics,
        loop=loop,
        clock=lambda: clock[0],
    )
    rig = Rig(
        proc, venue, pub, metrics, registry, sig_w, book_w, LoopWaiter(loop, 0.001), loop,
        clock, Path(config.killswitch_path),
    )  # fmt: skip
    loop.run_until_complete(proc.open())
    return rig


def reconciled(rig: Rig, steps: int = 10) -> bool:
    for _ in range(steps):
        rig.advance(0.06)  # past housekeeping_s
        rig.run(3)
        if rig.proc.reconciled:
            return True
    return False


__all__ = ["ZERO", "FakeVenue", "Rig", "make_rig", "reconciled"]
