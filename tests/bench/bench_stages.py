"""Each stage's own cost per event, beside the bare floor of that event, in one process.

- ``stage_execution_signal``: ``ExecutionProc.step`` for one signal that places nothing (the
  strategy's target equals the position), paper venue, against a bare record read (publish one
  SIG_V1 record on a ring, poll it) plus one dict lookup of its symbol id.
- ``stage_execution_book_signal`` (info): the same step with the signal's book in it.
- ``stage_execution_order``: the step of a signal that places an order (strategy, risk, the
  fsync'd intent, the send task queued) against a bare journal insert: one row, ``BEGIN
  IMMEDIATE``, ``INSERT``, ``COMMIT`` with ``synchronous=FULL`` in a WAL sqlite file in the same
  directory (tmpfs, as tick_to_order's journals).
- ``stage_execution_order_sent`` (info): the order's SENT row and event, which the loop writes
  once the send task has started (``procs/trading/sent.py``), timed apart from the step.
- ``stage_features_book``: ``FeaturesProc.step`` for a lone book (ring read, engine, FEAT_V1
  publish) against a bare numpy pass over that one book (``bench_features.bare_numpy_pass``:
  the same features, vectorised, nothing else).
- ``colocated_pass_book``, ``colocated_pass_chunk``: one pass of procs.hotpath's ``HotPath``
  over features → inference for one book, and for a chunk of 12 books of two symbols, against
  the compute alone (the engine's update and the model call; ``tests/bench/_pass_rig.py``).
- ``stage_ingest_frame``: a depth_book15 frame through ingest's receive path (the WS client's
  frame callback → dispatcher → ``IngestProc.on_depth`` → BOOK_V1 publish) against a bare
  ``msgspec.json.decode`` of the frame into the same typed push.

Stage and baseline are timed in interleaved blocks (the machine is shared); each row gives the
median over blocks of the per-event p50 (``per_event_p50``) and of the mean (``per_event_mean``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.bitunix.schemas_ws import DepthPush
from procs._config import RuntimeConfig
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.stage import FeaturesProc
from procs.featurecalc.stage import make_metrics as feat_metrics
from procs.marketdata.config import IngestConfig
from procs.marketdata.stage import BOOK_STREAM, IngestProc
from procs.marketdata.stage import make_metrics as ingest_metrics
from procs.ml.synth import synthetic_market
from procs.trading.config import ExecutionConfig, RiskConfig, StrategyConfig, SymbolConfig
from procs.trading.engine import ExecutionProc
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics as exec_metrics
from procs.trading.venue import PaperVenueAdapter
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter
from tests.bench._common import Result
from tests.bench.bench_features import bare_numpy_pass
from tests.conftest import unique_ns
from tests.helpers.bitunix_frames import depth_book15_frames

JOURNAL_FS = Path("/dev/shm")
logging.getLogger("procs.execution").setLevel(logging.ERROR)
SYM, SID = "BTCUSDT", 0
# the stages' configs need a runtime table; nothing here binds its endpoints
_RT = RuntimeConfig(
    pub_endpoint="ipc:///tmp/bench-stages.pub", control_endpoint="ipc:///tmp/bs.ctl"
)


class _NoWake:
    def notify(self) -> None:
        return None


def _timed(fn: Callable[[int], None], n: int) -> np.ndarray:
    """Per-call ns of ``fn(i)`` for i in range(n)."""
    out = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        fn(i)
        out[i] = clock() - t
    return out


def _compare(
    name: str, stage: Callable[[int], None], bare: Callable[[int], None], *, n: int, blocks: int,
    baseline: str, setup: Callable[[], None] | None = None, goal: str = "",
) -> list[Result]:  # fmt: skip
    """Interleaved blocks of ``n`` events; medians over blocks of p50 and mean, µs."""
    s50, smean, b50, bmean = [], [], [], []
    gc.collect()
    gc.disable()
    try:
        for _ in range(blocks):
            if setup is not None:
                setup()
            t = _timed(stage, n)
            s50.append(np.percentile(t, 50))
            smean.append(t.mean())
            t = _timed(bare, n)
            b50.append(np.percentile(t, 50))
            bmean.append(t.mean())
    finally:
        gc.enable()
    med = lambda xs: float(np.median(xs)) / 1e3  # noqa: E731
    return [
        Result(name, "per_event_p50", med(s50), "us", baseline, med(b50), goal),
        Result(name, "per_event_mean", med(smean), "us", baseline, med(bmean)),
    ]


# -- execution -------------------------------------------------------------------------------


class _Exec:
    """An ExecutionProc on in-process rings with the paper venue, reconciled, clock real."""

    def __init__(self, tmp: Path, ns: str) -> None:
        sym = SymbolConfig(
            symbol=SYM, symbol_id=SID, tick=Decimal("0.1"), step=Decimal("0.0001"),
            min_qty=Decimal("0.0001"),
        )  # fmt: skip
        self.config = ExecutionConfig(
            symbols=[sym], mode="paper", journal_path=str(tmp / "j.sqlite"),
            killswitch_path=str(tmp / "ks.json"), reconcile_interval_s=1e6,
            reconcile_retry_s=0.01,
            strategy=StrategyConfig(enter_score=0.3, exit_score=0.1, take_score=1.0),
            risk=RiskConfig(
                max_orders_per_window=10**6, duplicate_window_s=0.0,
                daily_loss_limit_usdt=Decimal(10**9), max_drawdown_usdt=Decimal(10**9),
            ),
        )  # fmt: skip
        self.sig_w = RingWriter(RingSpec(name=f"{ns}.sig", dtype=SIG_V1, capacity=1024))
        self.book_w = RingWriter(RingSpec(name=f"{ns}.book", dtype=BOOK_V1, capacity=1024))
        self.loop = asyncio.new_event_loop()
        ref: list[ExecutionProc] = []
        venue = PaperVenueAdapter(
            self.config.paper,
            local=lambda cid: ref[0].tracker.get(cid) if cid in ref[0].tracker else None,
            positions=lambda: ref[0].positions.snapshots(),
            balance=lambda: Decimal(0),
        )
        self.proc = ExecutionProc(
            self.config,
            sig=RingReader(f"{ns}.sig", SIG_V1),
            book=RingReader(f"{ns}.book", BOOK_V1),
            venue=venue,
            journal=Journal.open(self.config.journal_path),
            publisher=cast(Any, _Sink()),
            killswitch=KillSwitch(FileStore(self.config.killswitch_path), 0.25),
            metrics=exec_metrics(CollectorRegistry()),
            loop=self.loop,
        )
        ref.append(self.proc)
        self.loop.run_until_complete(self.proc.open())
        self.sig = np.zeros(1, SIG_V1)
        self.book = np.zeros(1, BOOK_V1)
        b = self.book
        b["symbol_id"], b["n_bids"], b["n_asks"] = SID, 15, 15
        b["bid_px"][0] = 59999.9 - 0.1 * np.arange(15)
        b["ask_px"][0] = 60000.1 + 0.1 * np.arange(15)
        b["bid_qty"][0] = b["ask_qty"][0] = np.round(np.linspace(0.1, 1.5, 15), 4)
        self.sig["symbol_id"], self.sig["mid"] = SID, 60000.0
        # the first reconciliation schedules a second one reconcile_retry_s later: let both run
        # now, not while an order of the bench is in flight (it would stop trading for a while)
        deadline = time.monotonic() + 10
        while not (self.proc.reconciled and self.proc.reconciler.total >= 2):
            assert time.monotonic() < deadline, "the bench's execution did not reconcile"
            self.send_book()
            self.pump()
            time.sleep(0.005)

    def pump(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.run_until_complete(asyncio.sleep(0))

    def send_book(self) -> None:
        now = time.time_ns()
        self.book["ts_recv_ns"] = self.book["ts_event_ns"] = self.book["ts_pub_ns"] = now
        self.book_w.publish(self.book)
        self.proc.step()

    def put_sig(self, score: float, with_book: bool = False) -> None:
        now = time.time_ns()
        if with_book:
            self.book["ts_recv_ns"] = self.book["ts_event_ns"] = self.book["ts_pub_ns"] = now
            self.book_w.publish(self.book)
        s = self.sig
        s["ts_recv_ns"] = s["ts_event_ns"] = s["ts_feat_ns"] = s["ts_sig_ns"] = now
        s["score"] = score
        self.sig_w.publish(s)

    def close(self) -> None:
        self.proc.close()
        self.sig_w.close()
        self.book_w.close()
        self.loop.close()


class _Sink:
    sent = 0

    def send(self, topic: bytes, payload: bytes) -> bool:
        self.sent += 1
        return True


def _execution(tmp: Path, quick: bool) -> list[Result]:
    ns = unique_ns("bs")
    ex = _Exec(tmp, ns)
    bare_w = RingWriter(RingSpec(name=f"{ns}.bare", dtype=SIG_V1, capacity=1024))
    bare_r = RingReader(f"{ns}.bare", SIG_V1)
    ids = {SID: ex.proc.instruments[SYM]}
    rec = ex.sig.copy()
    n, blocks = (500, 3) if quick else (2000, 7)
    try:

        def signal(i: int) -> None:  # flat target, flat position: nothing to do
            ex.put_sig(0.05 if i % 2 else -0.05)
            ex.proc.step()

        def book_signal(i: int) -> None:
            ex.put_sig(0.05 if i % 2 else -0.05, with_book=True)
            ex.proc.step()

        def bare(i: int) -> None:
            rec["score"] = i
            bare_w.publish(rec)
            got = bare_r.poll(256)
            ids.get(int(got["symbol_id"][0]))

        out = _compare("stage_execution_signal", signal, bare, n=n, blocks=blocks,
                       baseline="ring_read+dict_lookup", goal="(report)",
                       setup=ex.send_book)  # fmt: skip  # the data stays fresh
        out += _compare("stage_execution_book_signal", book_signal, bare, n=n, blocks=blocks,
                        baseline="ring_read+dict_lookup")  # fmt: skip
        out += _orders(ex, tmp, quick)
        return out
    finally:
        bare_w.close()
        bare_r.close()
        ex.close()


def _orders(ex: _Exec, tmp: Path, quick: bool) -> list[Result]:
    """Alternate: a signal that places a quote (timed), the loop acks it, a flat signal that
    cancels it, the loop confirms; so every timed step places exactly one order."""
    conn = sqlite3.connect(str(tmp / "bare.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE intents(client_id TEXT PRIMARY KEY, symbol TEXT, side TEXT, qty TEXT,"
        " price TEXT, ts_ns INTEGER)"
    )
    n, blocks = (200, 3) if quick else (500, 7)
    placed: list[int] = []
    sent_before = [0]

    def place(i: int) -> None:
        ex.put_sig(0.5, with_book=True)
        ex.proc.step()

    def stage(i: int) -> None:
        place(i)

    def reset(i: int) -> None:
        for _ in range(50):  # until the quote is acked, cancelled and confirmed: a clean state
            ex.pump()
            if not ex.proc.tracker.open_orders():
                return
            ex.put_sig(0.0, with_book=True)
            ex.proc.step()  # flat: cancel
        o = ex.proc.tracker.open_orders()
        raise RuntimeError(
            f"the bench's quote was not cancelled: {o} {ex.proc.state} "
            f"{dict(ex.proc.counters)} {ex.proc.reconciler.last} {ex.proc.reconciler.total}"
        )

    def bare(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO intents VALUES (?, ?, ?, ?, ?, ?)",
            (f"b{time.time_ns()}-{i}", SYM, "BUY", "0.0016", "59999.9", i),
        )
        conn.execute("COMMIT")

    s50, smean, b50, bmean, w50 = [], [], [], [], []
    clock = time.perf_counter_ns
    flush_sent = ex.proc.sent_later.flush  # what the loop runs once the send task has started
    gc.collect()
    gc.disable()
    try:
        for _ in range(blocks):
            ts = np.empty(n, np.int64)
            tw = np.empty(n, np.int64)
            for i in range(n):
                sent_before[0] = ex.proc.counters["orders_sent_total"]
                t = clock()
                stage(i)
                ts[i] = clock() - t
                t = clock()
                flush_sent()  # (here before the send task runs: the same rows and events)
                tw[i] = clock() - t
                placed.append(ex.proc.counters["orders_sent_total"] - sent_before[0])
                reset(i)
            s50.append(np.percentile(ts, 50))
            smean.append(ts.mean())
            w50.append(np.percentile(tw, 50))
            tb = _timed(bare, n)
            b50.append(np.percentile(tb, 50))
            bmean.append(tb.mean())
    finally:
        gc.enable()
        conn.close()
    assert sum(placed) == len(placed), f"{len(placed) - sum(placed)} timed steps placed nothing"
    med = lambda xs: float(np.median(xs)) / 1e3  # noqa: E731
    return [
        Result("stage_execution_order", "per_event_p50", med(s50), "us", "bare_journal_insert",
               med(b50), "(report)"),
        Result("stage_execution_order", "per_event_mean", med(smean), "us",
               "bare_journal_insert", med(bmean)),
        Result("stage_execution_order_sent", "per_event_p50", med(w50), "us",
               "bare_journal_insert", med(b50)),
    ]  # fmt: skip


# -- features --------------------------------------------------------------------------------


def _features(quick: bool) -> list[Result]:
    ns = unique_ns("bf")
    n, blocks = (1000, 3) if quick else (1500, 7)
    books, _ = synthetic_market(seed=3, n_books=n * blocks + 400)  # no book is fed twice
    book_w = RingWriter(RingSpec(name=f"{ns}.book", dtype=BOOK_V1, capacity=1024))
    trade_w = RingWriter(RingSpec(name=f"{ns}.trade", dtype=TRADE_V1, capacity=1024))  # empty
    out_spec = RingSpec(name=f"{ns}.feat", dtype=FEAT_V1, capacity=1024)
    out_w = RingWriter(out_spec)
    proc = FeaturesProc(
        FeaturesConfig(runtime=_RT, n_symbols=1),
        books=RingReader(f"{ns}.book", BOOK_V1),
        trades=RingReader(f"{ns}.trade", TRADE_V1),
        out=out_w,
        waker=_NoWake(),
        metrics=feat_metrics(CollectorRegistry()),
    )
    empty_trades: Records = np.zeros(0, TRADE_V1)
    pos = [-n]
    for i in range(200):  # warm the engine's windows
        book_w.publish(books[i : i + 1])
        proc.step()
    base = 200

    def stage(i: int) -> None:
        k = base + pos[0] + i
        book_w.publish(books[k : k + 1])
        proc.step()

    def bare(i: int) -> None:
        k = base + pos[0] + i
        bare_numpy_pass(books[k : k + 1], empty_trades)

    def setup() -> None:
        pos[0] += n

    try:
        return _compare("stage_features_book", stage, bare, n=n, blocks=blocks,
                        baseline="bare_numpy_pass_one_book", setup=setup,
                        goal="(report)")  # fmt: skip
    finally:
        proc.close()
        book_w.close()
        trade_w.close()


# -- ingest ----------------------------------------------------------------------------------


def _ingest(quick: bool) -> list[Result]:
    from picows import WSMsgType, WSTransport
    from picows.picows import _make_test_ws_frame

    from ipc.bitunix.ws import BitunixWs, WsConfig, _Listener

    ns = unique_ns("bi")
    cfg = IngestConfig(runtime=_RT, symbols=[SYM], book_ring=f"{ns}.book", trade_ring=f"{ns}.trade")
    book_w = RingWriter(RingSpec(name=cfg.book_ring, dtype=BOOK_V1, capacity=1 << 12))
    trade_w = RingWriter(RingSpec(name=cfg.trade_ring, dtype=TRADE_V1, capacity=1 << 12))
    proc = IngestProc(
        cfg, book_ring=book_w, trade_ring=trade_w, waker=_NoWake(), rest=cast(Any, None),
        metrics=ingest_metrics(CollectorRegistry()),
    )  # fmt: skip
    client = BitunixWs(WsConfig())
    proc.attach(cast(Any, client))
    listener = _Listener(client)
    frames = depth_book15_frames(1000)
    ws_frames = [_make_test_ws_frame(WSMsgType.TEXT, f, True, False) for f in frames]
    no_transport = cast(WSTransport, None)
    dec = msgspec.json.Decoder(DepthPush, strict=False)
    keep: list[Any] = [None]
    n, blocks = (1000, 3) if quick else (1000, 9)
    on_frame, flush = listener.on_ws_frame, proc.flush

    def stage(i: int) -> None:
        on_frame(no_transport, ws_frames[i % 1000])
        flush()

    def bare(i: int) -> None:
        keep[0] = dec.decode(frames[i % 1000])

    try:
        out = _compare("stage_ingest_frame", stage, bare, n=n, blocks=blocks,
                       baseline="msgspec.json.decode", goal="(report)")  # fmt: skip
        assert proc.records_total[BOOK_STREAM] >= n, proc.records_total
        return out
    finally:
        book_w.close()
        trade_w.close()


# -- the colocated pass (features → inference; tests/bench/_pass_rig.py) ------------------------


def _colocated_pass(quick: bool) -> list[Result]:
    from tests.bench import _pass_rig

    out: list[Result] = []
    for name, k, n_sym, n in (
        ("colocated_pass_book", 1, 1, 1000),
        ("colocated_pass_chunk", _pass_rig.CHUNK_BOOKS, _pass_rig.CHUNK_SYMBOLS, 200),
    ):
        blocks = 3 if quick else 7
        stage, bare, setup, stack, rig = _pass_rig.passes(k, n_sym, n, blocks)
        with stack:
            before = rig.signals()
            out += _compare(name, stage, bare, n=n, blocks=blocks, setup=setup, goal="(report)",
                            baseline=f"engine_update+model_call_{k}_books")  # fmt: skip
            got = rig.signals() - before
            assert got == k * n * blocks, f"{name}: {got} signals for {k * n * blocks} books"
    return out


def run(quick: bool) -> list[Result]:
    with tempfile.TemporaryDirectory(dir=JOURNAL_FS, prefix="bench-stages-") as d:
        out = _execution(Path(d), quick)
    out += _features(quick)
    out += _ingest(quick)
    out += _colocated_pass(quick)
    return out
