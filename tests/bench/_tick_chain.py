"""tick_to_order's compute path in one process: the stages' own code, chained with no hop.

``Decider`` does what features, inference and execution do for one book: ``FeatureEngine.update``
→ ``OnnxModel.score`` → a SIG_V1 row → ``ExecutionProc.step`` (the execution process's own hot
path: ``Strategy.decide`` → ``RiskEngine.check`` → ``Journal.record_intent`` with fsync → order
out, stamped ``ts_order_ns``), with the paper venue answering on the same asyncio loop, so
orders are acknowledged, rest, fill and get replaced exactly as in the pipeline: the same order
cadence, the same journal writes. Baseline (a) (``chain_latencies``) feeds it frames through
``WsDispatcher`` + ``normalise``, as ingest does; baseline (b) (``tests.bench._tick_asyncio``)
feeds it from ``json.loads`` in an asyncio client. The journal proxy times each intent write, so
(a) is reported with and without it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.bitunix.schemas_ws import DepthPush, PricePush, TradePush
from ipc.bitunix.ws_dispatch import WsDispatcher
from ipc.orders import ORDER_EVENT_DECODER, OrderEvent
from procs.featurecalc.engine import FEATURES, FeatureEngine
from procs.group.supervise import ROOT
from procs.marketdata.normalise import BookBatch, SymbolMap, TradeBatch, add_depth, add_trades
from procs.models.model import OnnxModel
from procs.trading.config import ExecutionConfig
from procs.trading.engine import ExecutionProc
from procs.trading.guard import intent_sync
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics
from procs.trading.model import OrderRequest
from procs.trading.venue import PaperVenueAdapter
from shm.records import BOOK_V1, SIG_V1, Records

MODEL = ROOT / "configs" / "models" / "default.onnx"
# every journal of the bench (pipeline and baselines) lives on tmpfs: an fsync there costs
# microseconds, so the figures measure the design, not a disk other programs share
JOURNAL_FS = Path("/dev/shm")
# the in-process ExecutionProc logs like the real one (reconcile notes...): keep stderr readable
logging.getLogger("procs.execution").setLevel(logging.ERROR)
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def execution_config(config_text: str, directory: Path) -> ExecutionConfig:
    """The ``[execution]`` section of the bench config, without its process runtime, with its
    journal and kill-switch files in ``directory``."""
    section = dict(tomllib.loads(config_text)["execution"])
    section.pop("runtime", None)
    cfg = msgspec.convert(section, ExecutionConfig, strict=False)
    return msgspec.structs.replace(
        cfg,
        journal_path=str(directory / "journal.sqlite"),
        killswitch_path=str(directory / "killswitch.json"),
    )


@dataclass(frozen=True, slots=True)
class Stamps:
    """``time.time_ns`` stamps of one decided book (0 when the stage was not reached)."""

    ts_recv_ns: int
    ts_sig_ns: int
    ts_order_ns: int  # the order left (execution's own stamp, after the journal write)
    journal_ns: int  # perf_counter time of that order's intent write


class _Queue:
    """A record source for ``ExecutionProc``: what the chain handed it since the last step."""

    dropped_total = 0
    lag_records = 0

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self._empty: Records = np.zeros(0, dtype)
        self.pending: Records = self._empty

    def poll(self, max_records: int) -> Records:
        out, self.pending = self.pending, self._empty
        return out

    def close(self) -> None:
        return None


class _Events:
    """The execution PUB, in memory: keeps the newest SENT order event."""

    def __init__(self) -> None:
        self.sent: list[OrderEvent] = []

    def send(self, topic: bytes, payload: bytes) -> bool:
        if topic.startswith(b"ord."):
            ev = ORDER_EVENT_DECODER.decode(payload)
            if isinstance(ev, OrderEvent) and ev.status == "SENT":
                self.sent.append(ev)
        return True


class _TimedJournal:
    """The real journal; ``record_intent`` also keeps its duration (perf_counter ns)."""

    def __init__(self, journal: Journal) -> None:
        self._j = journal
        self.last_intent_ns = 0

    def record_intent(self, req: OrderRequest, ts_ns: int) -> bool:
        t0 = time.perf_counter_ns()
        written = self._j.record_intent(req, ts_ns)  # False: refused, the order must not leave
        self.last_intent_ns = time.perf_counter_ns() - t0
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._j, name)


class Decider:
    """Features → model → execution's step, one book at a time, on ``loop``.

    Build, then ``await open()`` (or ``loop.run_until_complete``); ``decide`` per book; when the
    loop is not running (baseline (a)), ``pump()`` after each ``decide`` gives it one pass.
    """

    def __init__(self, config: ExecutionConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.engine = FeatureEngine(len(SYMBOLS))
        self.model = OnnxModel.load(MODEL, FEATURES, batch_max=64)
        self.sig_q, self.book_q = _Queue(SIG_V1), _Queue(BOOK_V1)
        self.events = _Events()
        # synced as execution syncs it (``guard.intent_sync``: inline on tmpfs, after the send
        # on a disk in paper mode), so the disk-journal row measures what the demo runs
        self.journal = _TimedJournal(
            Journal.open(config.journal_path, intent_sync=intent_sync(config))
        )
        ref: list[ExecutionProc] = []
        venue = PaperVenueAdapter(
            config.paper,
            local=lambda cid: ref[0].tracker.get(cid) if cid in ref[0].tracker else None,
            positions=lambda: ref[0].positions.snapshots(),
            balance=lambda: ref[0].local_balance() or 0,  # type: ignore[arg-type,return-value]
        )
        self.proc = ExecutionProc(
            config,
            sig=self.sig_q,
            book=self.book_q,
            venue=venue,
            journal=self.journal,  # type: ignore[arg-type]
            publisher=self.events,
            killswitch=KillSwitch(FileStore(config.killswitch_path), config.killswitch_poll_s),
            metrics=make_metrics(CollectorRegistry()),
            loop=loop,
        )
        ref.append(self.proc)
        self.sig: Records = np.zeros(1, SIG_V1)

    async def open(self) -> None:
        await self.proc.open()

    async def aclose(self) -> None:
        await self.proc.aclose()

    def close(self) -> None:
        self.proc.close()

    def pump(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    def absorb_trades(self, trades: Records) -> None:
        self.engine.update(np.zeros(0, BOOK_V1), trades)

    def decide(self, book: Records, trades: Records) -> Stamps:
        """Decide one BOOK_V1 row (plus the trades that came before it)."""
        ts_recv = int(book["ts_recv_ns"][0])
        book["ts_pub_ns"] = time.time_ns()
        feat = self.engine.update(book, trades, ts_feat_ns=time.time_ns())
        y = self.model.score(feat["x"])
        sig = self.sig
        for name in ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "flags", "mid"):
            sig[name] = feat[name]
        sig["score"] = y[:1]
        sig["ts_sig_ns"] = ts_sig = time.time_ns()
        # a copy, as the pipeline's ring poll returns one: execution keeps each symbol's newest
        # book for the paper venue as its row's level arrays (views, procs.trading.paper's
        # RecordBook), and both feeders reuse their one-row buffer. Given the buffer itself,
        # every kept book read as the newest of any symbol: ETH's paper book and mark were
        # BTC's prices, most orders were refused (price_collar_mark) and fills went wrong
        self.book_q.pending = book.copy()
        self.sig_q.pending = sig
        n_sent = len(self.events.sent)
        self.proc.step()
        self.proc.sent_later.flush()  # its SENT event now, not on the loop's next pass
        if len(self.events.sent) == n_sent:
            return Stamps(ts_recv, ts_sig, 0, 0)
        ev = self.events.sent[-1]
        return Stamps(ts_recv, ts_sig, ev.ts_order_ns, self.journal.last_intent_ns)


class _Ingest:
    """ingest's receive path without its rings: dispatcher → normalise → one-book batches."""

    def __init__(self, decider: Decider) -> None:
        self.d = decider
        self.symbols = SymbolMap(SYMBOLS)
        self.books = BookBatch(4)
        self.trades = TradeBatch(256)
        self.mark: dict[str, float] = {}
        self.stamps: list[Stamps] = []
        disp = WsDispatcher()
        disp.on("depth_book15", self.on_depth)
        disp.on("trade", self.on_trade)
        disp.on("price", self.on_price)
        self.dispatcher = disp

    def on_depth(self, push: DepthPush) -> None:
        sid = self.symbols.id(push.symbol)
        if sid < 0:
            return
        add_depth(self.books, sid, push)
        self.stamps.append(self.d.decide(self.books.take(), self.trades.take()))
        self.books.clear()
        self.trades.clear()

    def on_trade(self, push: TradePush) -> None:
        sid = self.symbols.id(push.symbol)
        if sid < 0:
            return
        k = 0
        while k < len(push.data):
            if self.trades.full:
                self.d.absorb_trades(self.trades.take())
                self.trades.clear()
            k = add_trades(self.trades, sid, push, k)

    def on_price(self, push: PricePush) -> None:
        self.mark[push.symbol] = push.data.mp


def chain_latencies(frames: list[bytes], config: ExecutionConfig, passes: int = 1) -> list[Stamps]:
    """Baseline (a): the frames through the chain back to back, ``passes`` times over (one
    continuous state, so a pass starts where the last one's market left off); each book's
    stamps."""
    loop = asyncio.new_event_loop()
    decider = Decider(config, loop)
    ing = _Ingest(decider)
    try:
        loop.run_until_complete(decider.open())
        deadline = time.monotonic() + 10.0
        k = 0
        while (k < 200 or not decider.proc.reconciled) and time.monotonic() < deadline:
            ing.dispatcher.on_text(frames[k % len(frames)], time.time_ns())
            decider.pump()
            k += 1
        ing.stamps.clear()
        gc.collect()
        for f in frames * passes:
            ing.dispatcher.on_text(f, time.time_ns())
            decider.pump()
    finally:
        decider.close()
        loop.close()
    return ing.stamps


async def record_frames(ws_url: str, n: int, timeout_s: float) -> list[tuple[int, bytes]]:
    """Subscribe like ingest (depth_book15, trade, price on every symbol); keep ``n`` pushes
    with their arrival offsets in ns."""
    import websockets

    args = [{"symbol": s, "ch": ch} for s in SYMBOLS for ch in ("depth_book15", "trade", "price")]
    out: list[tuple[int, bytes]] = []
    async with websockets.connect(ws_url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": args}))
        t0 = 0
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            msg = await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())
            raw = msg.encode() if isinstance(msg, str) else msg
            if not raw.startswith(b'{"ch"'):
                continue  # op replies
            now = time.perf_counter_ns()
            t0 = t0 or now
            out.append((now - t0, raw))
    return out


__all__ = [
    "JOURNAL_FS",
    "Decider",
    "Stamps",
    "chain_latencies",
    "execution_config",
    "record_frames",
]
