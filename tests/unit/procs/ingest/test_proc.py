"""IngestProc with real rings, a fake WS client and a fake REST depth source (no sockets)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ipc.bitunix.errors import ServerError
from ipc.bitunix.schemas_rest import DepthSnapshot
from ipc.bitunix.schemas_ws import (
    DepthLevels,
    DepthPush,
    PriceData,
    PricePush,
    TradePush,
    TradeTick,
)
from procs._config import RuntimeConfig
from procs._runtime import StopFlag
from procs.marketdata.config import IngestConfig
from procs.marketdata.stage import IngestProc, make_metrics
from shm.records import BOOK_V1, FLAG_CROSSED, FLAG_SNAPSHOT, FLAG_STALE, TRADE_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter

S = 1_000_000_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _config(ns: str, **kw: Any) -> IngestConfig:
    rt = RuntimeConfig(pub_endpoint="ipc:///tmp/unused.pub", control_endpoint="ipc:///tmp/u.ctl")
    base: dict[str, Any] = {
        "runtime": rt,
        "symbols": SYMBOLS,
        "book_ring": f"{ns}.ingest.md.book",
        "trade_ring": f"{ns}.ingest.md.trade",
        "book_capacity_records": 1024,
        "trade_capacity_records": 1024,
        "batch_max_records": 64,
        "stale_after_s": 0.5,
        "service_interval_s": 0.002,
        "resync_min_interval_s": 0.02,
    }
    return IngestConfig(**(base | kw))


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def notify(self) -> None:
        self.count += 1


class FakeRest:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_next = 0

    async def depth(self, symbol: str, limit: str | int = "max") -> DepthSnapshot:
        self.calls.append(symbol)
        if self.fail_next:
            self.fail_next -= 1
            raise ServerError("boom")
        return DepthSnapshot(asks=[(101.0, 1.0), (100.5, 2.0)], bids=[(99.0, 1.0), (100.0, 3.0)])


class FakeWs:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.handlers: dict[str, Callable[[Any], None]] = {}
        self.subs: list[tuple[str, str | None]] = []
        self.reconnects_total = 0
        self.dispatcher = SimpleNamespace(decode_errors_total=Counter())
        self.closed = False
        self._fail = fail
        self._task: asyncio.Task[None] | None = None

    def on(self, ch: str, handler: Callable[[Any], None]) -> None:
        self.handlers[ch] = handler

    def subscribe_many(self, args: list[tuple[str, str | None]]) -> None:
        self.subs += args

    def start(self) -> asyncio.Task[None]:
        async def run() -> None:
            if self._fail is not None:
                raise self._fail
            await asyncio.Event().wait()

        self._task = asyncio.get_running_loop().create_task(run())
        return self._task

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Rig:
    def __init__(self, ns: str, **kw: Any) -> None:
        self.config = _config(ns, **kw)
        c = self.config
        self.book_w = RingWriter(RingSpec(name=c.book_ring, dtype=BOOK_V1, capacity=1024))
        self.trade_w = RingWriter(RingSpec(name=c.trade_ring, dtype=TRADE_V1, capacity=1024))
        self.book_r = RingReader(c.book_ring, BOOK_V1, from_start=True)
        self.trade_r = RingReader(c.trade_ring, TRADE_V1, from_start=True)
        self.registry = CollectorRegistry()
        self.wakes = Wakes()
        self.rest = FakeRest()
        self.proc = IngestProc(
            c,
            book_ring=self.book_w,
            trade_ring=self.trade_w,
            waker=self.wakes,
            rest=self.rest,
            metrics=make_metrics(self.registry),
        )
        self.books: list[Records] = []
        self.trades: list[Records] = []

    def read(self) -> tuple[Records, Records]:
        self.books.append(self.book_r.poll(1024))
        self.trades.append(self.trade_r.poll(1024))
        return np.concatenate(self.books), np.concatenate(self.trades)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})

    def close(self) -> None:
        for x in (self.book_r, self.trade_r, self.book_w, self.trade_w):
            x.close()


@pytest.fixture
def rig(ns: str) -> Iterator[Rig]:
    r = Rig(ns)
    yield r
    r.close()


def depth(symbol: str, bid: float = 100.0, ask: float = 101.0) -> DepthPush:
    now = time.time_ns()
    ts_ms = now // 1_000_000 - 2  # the venue stamped it 2-3 ms before we received it
    push = DepthPush(
        ch="depth_book15",
        ts=ts_ms,
        symbol=symbol,
        data=DepthLevels(b=[(bid, 1.0), (bid - 1, 2.0)], a=[(ask, 1.5)]),
    )
    push.ts_recv_ns = now
    return push


def trade(symbol: str, n: int = 1, side: str = "BUY") -> TradePush:
    ms = time.time_ns() // 1_000_000 - 2  # 2-3 ms of feed latency, never under 100 µs
    ticks = [TradeTick(t=ms, p=100.0 + i, v=0.5, s=side) for i in range(n)]  # type: ignore[arg-type]  # plain str and int stand in for Side and TimeMs
    push = TradePush(ch="trade", ts=ms, symbol=symbol, data=ticks)
    push.ts_recv_ns = time.time_ns()
    return push


def test_proc_pushes_between_flushes_share_one_publish_and_one_wake(rig):
    p = rig.proc
    for sym in ("BTCUSDT", "ETHUSDT", "BTCUSDT"):
        p.on_depth(depth(sym))
    p.on_trade(trade("ETHUSDT", n=2, side="SELL"))

    published, idle = p.flush(), p.flush()

    books, trades = rig.read()
    assert (published, idle) == (5, 0)
    assert rig.wakes.count == 1
    assert books["seq"].tolist() == [0, 1, 2]
    assert books["symbol_id"].tolist() == [0, 1, 0]
    assert trades["seq"].tolist() == [0, 1]
    assert trades["side"].tolist() == [-1, -1]
    for recs in (books, trades):
        assert np.all(recs["ts_event_ns"] <= recs["ts_recv_ns"])
        assert np.all(recs["ts_recv_ns"] <= recs["ts_pub_ns"])
    assert p.health()["last_seq"] == 2
    assert p.health()["last_trade_seq"] == 1


def test_proc_a_trade_received_before_a_book_is_in_its_ring_when_the_book_is(rig):
    # features polls books, then trades: a book it gets must not be ahead of the trades
    # received before it, or it is computed without them (and a backtest, which gives every
    # book the trades received before it, differs from the live record)
    p = rig.proc
    p.on_trade(trade("BTCUSDT", n=2))
    p.on_depth(depth("BTCUSDT"))  # received after the trade, in the same burst
    trades_seen: list[int] = []
    book_publish = rig.book_w.publish

    def publish_book(recs: Records) -> None:
        trades_seen.append(int(rig.trade_r.poll(1024).size))  # what a reader finds now
        book_publish(recs)

    rig.book_w.publish = publish_book  # type: ignore[method-assign]
    assert p.flush() == 3
    assert trades_seen == [2]


def test_proc_unknown_symbol_is_skipped_and_counted(rig):
    rig.proc.on_depth(depth("XRPUSDT"))
    rig.proc.on_trade(trade("XRPUSDT"))

    assert rig.proc.flush() == 0
    assert rig.proc.health()["decode_errors_total"] == 2
    assert rig.proc.decode_errors() == {"unknown_symbol": 2}


def test_proc_silence_publishes_stale_copy_flags_trades_until_fresh_book(rig):
    p = rig.proc
    p.on_depth(depth("BTCUSDT", bid=100.0))
    p.on_depth(depth("BTCUSDT", bid=99.5))
    p.on_depth(depth("ETHUSDT"))
    p.flush()
    last_btc = rig.read()[0][1].copy()

    p.tick(time.monotonic_ns() + 10 * S)
    stale_health = p.health()["stale_symbols"]
    p.on_trade(trade("BTCUSDT"))
    p.flush()
    p.on_depth(depth("BTCUSDT"))
    p.on_depth(depth("ETHUSDT"))
    p.flush()

    books, trades = rig.read()
    stale = books[3:5]
    assert stale["flags"].tolist() == [FLAG_STALE, FLAG_STALE]
    assert stale["symbol_id"].tolist() == [0, 1]
    assert int(stale[0]["ts_event_ns"]) == int(last_btc["ts_event_ns"])  # the exchange stamp
    np.testing.assert_array_equal(stale[0]["bid_px"], last_btc["bid_px"])  # NaN past n_bids
    assert int(stale[0]["ts_recv_ns"]) > int(last_btc["ts_recv_ns"])  # fresh stamps
    assert stale_health == 2
    assert int(trades[0]["flags"]) == FLAG_STALE
    assert books[5:]["flags"].tolist() == [0, 0]
    assert p.health()["stale_symbols"] == 0


def test_proc_stale_copy_of_books_published_one_at_a_time_is_each_symbols_last(rig):
    # one book a flush: the last book is kept by a byte copy of its row (the common case)
    p = rig.proc
    for sym, bid in (("ETHUSDT", 50.0), ("BTCUSDT", 100.0), ("ETHUSDT", 51.0)):
        p.on_depth(depth(sym, bid=bid, ask=bid + 2))
        assert p.flush() == 1
    published = rig.read()[0]

    p.tick(time.monotonic_ns() + 10 * S)

    stale = rig.read()[0][3:]  # (read gives every record so far)
    assert stale["symbol_id"].tolist() == [0, 1]
    for rec, last in ((stale[0], published[1]), (stale[1], published[2])):
        assert int(rec["flags"]) == FLAG_STALE
        assert int(rec["ts_recv_ns"]) > int(last["ts_recv_ns"])
        for name in ("ts_event_ns", "symbol_id", "n_bids", "n_asks"):
            assert int(rec[name]) == int(last[name]), name
        for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
            np.testing.assert_array_equal(rec[name], last[name])  # NaN past n_bids


def test_proc_stale_symbol_never_seen_gets_an_empty_stale_book(rig):
    rig.proc.tick(time.monotonic_ns() + 10 * S)

    books, _ = rig.read()
    assert books["flags"].tolist() == [FLAG_STALE, FLAG_STALE]
    assert books["n_bids"].tolist() == [0, 0]
    assert np.all(books["ts_event_ns"] <= books["ts_pub_ns"])


def test_proc_stale_symbol_repeats_its_marker_each_interval(rig):
    now = time.monotonic_ns()
    rig.proc.tick(now + S)
    rig.proc.tick(now + S + S // 10)
    rig.proc.tick(now + 2 * S)

    books, _ = rig.read()
    assert len(books) == 4  # 2 symbols x (went stale, still stale half a second later)


def test_proc_health_counters_and_metrics(rig):
    p = rig.proc
    p.on_depth(depth("BTCUSDT"))
    p.on_trade(trade("BTCUSDT", n=3))
    price = PricePush(ch="price", ts=1, symbol="ETHUSDT", data=PriceData(mp=3000.5))
    p.on_price(price)
    p.flush()
    p.tick()

    h = p.health()
    assert {
        "msgs_per_s",
        "decode_errors_total",
        "reconnects_total",
        "stale_symbols",
        "last_seq",
    } <= set(h)
    assert isinstance(h["book_age_s.BTCUSDT"], float)
    assert h["msgs_total"] == 3
    assert p.mark_px[1] == 3000.5
    assert rig.sample("bitrader_md_messages_total", {"channel": "trade"}) == 1
    assert rig.sample("bitrader_md_records_total", {"ring": "md.trade"}) == 3
    assert rig.sample("bitrader_md_records_total", {"ring": "md.book"}) == 1
    assert rig.sample("bitrader_md_feed_latency_seconds_count") == 4
    assert rig.sample("bitrader_md_feed_latency_seconds_bucket", {"le": "0.0001"}) == 0
    assert rig.sample("bitrader_md_feed_latency_seconds_bucket", {"le": "10.0"}) == 4
    assert rig.sample("bitrader_md_publish_seconds_count", {"ring": "md.book"}) == 1
    assert rig.sample("bitrader_md_stale_symbols") == 0


def _run(rig: Rig, ws: FakeWs, body: Callable[[], Any]) -> None:
    async def main() -> None:
        stop = StopFlag()
        task = asyncio.create_task(rig.proc.run(ws, service=lambda: None, stop=stop))
        await until(lambda: ws.handlers or task.done())
        job = asyncio.create_task(body())
        try:
            await asyncio.wait({task, job}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                job.cancel()
            await job
        finally:
            stop.set("test")
            await task

    asyncio.run(main())


async def until(cond: Callable[[], object], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout_s}s: {cond!r}")
        await asyncio.sleep(0.002)  # pacing between polls


def _snapshots(rig: Rig) -> Records:
    books, _ = rig.read()
    snaps: Records = books[(books["flags"] & FLAG_SNAPSHOT) != 0]
    return snaps


def test_proc_run_subscribes_resyncs_at_start_and_after_reconnect(rig):
    ws = FakeWs()

    async def body() -> None:
        await until(lambda: len(_snapshots(rig)) == 2)
        ws.handlers["depth_book15"](depth("ETHUSDT"))
        await until(lambda: rig.proc.health()["book_records_total"] == 3)
        rig.proc.on_resync()
        await until(lambda: len(_snapshots(rig)) == 4)

    _run(rig, ws, body)

    snaps = _snapshots(rig)
    assert sorted(ws.subs) == sorted(
        (ch, s) for s in SYMBOLS for ch in ("depth_book15", "trade", "price")
    )
    assert sorted(snaps["symbol_id"].tolist()) == [0, 0, 1, 1]
    assert snaps[0]["bid_px"][:2].tolist() == [100.0, 99.0]  # sorted best first
    assert snaps[0]["ask_px"][:2].tolist() == [100.5, 101.0]
    assert np.all(snaps["ts_event_ns"] == snaps["ts_recv_ns"])
    assert ws.closed
    assert rig.proc.health()["resyncs_total"] == 4


def test_proc_run_crossed_book_is_flagged_and_triggers_a_resync(rig):
    ws = FakeWs()

    async def body() -> None:
        await until(lambda: len(_snapshots(rig)) == 2)
        ws.handlers["depth_book15"](depth("BTCUSDT", bid=102.0, ask=101.0))
        await until(lambda: len(_snapshots(rig)) == 3)

    _run(rig, ws, body)

    books, _ = rig.read()
    crossed = books[(books["flags"] & FLAG_CROSSED) != 0]
    assert crossed["symbol_id"].tolist() == [0]
    assert _snapshots(rig)[-1]["symbol_id"] == 0
    assert rig.proc.health()["crossed_total"] == 1
    assert rig.sample("bitrader_md_crossed_books_total") == 1
    assert rig.sample("bitrader_md_resyncs_total", {"reason": "crossed"}) == 1
    assert rig.rest.calls.count("BTCUSDT") == 2


def test_proc_run_failed_resync_is_counted_and_retried(rig):
    rig.rest.fail_next = 1
    ws = FakeWs()

    async def body() -> None:
        await until(lambda: len(_snapshots(rig)) == 2)

    _run(rig, ws, body)

    assert rig.proc.health()["resync_errors_total"] == 1
    assert len(rig.rest.calls) == 3
    assert rig.sample("bitrader_md_resync_errors_total") == 1


def test_proc_run_raises_the_ws_clients_fatal_error(rig):
    ws = FakeWs(fail=ValueError("handler bug"))

    async def body() -> None:
        await asyncio.sleep(0)

    with pytest.raises(ValueError, match="handler bug"):
        _run(rig, ws, body)


def test_proc_run_raises_a_publish_error_from_the_flush_callback(ns):
    r = Rig(ns)
    try:

        def broken(records: Records) -> int:
            raise RuntimeError("ring broke")

        r.book_w.publish = broken  # type: ignore[method-assign]  # inject the fault
        ws = FakeWs()

        async def body() -> None:
            ws.handlers["depth_book15"](depth("BTCUSDT"))
            await until(lambda: False)  # run() ends first, with the error

        with pytest.raises(RuntimeError, match="ring broke"):
            _run(r, ws, body)
    finally:
        r.close()


def test_proc_trade_event_time_and_feed_latency_come_from_the_push_ms_ts(rig):
    # the venue's trade ticks carry whole-second ISO times; the push's ts has milliseconds
    now = time.time_ns()
    ts_ms = now // 1_000_000 - 3  # pushed 3 ms before we received it
    whole_s = ts_ms // 1000 * 1000 - 1000  # the tick's own time: truncated, up to ~2 s earlier
    ticks = [TradeTick(t=whole_s, p=100.0, v=0.5, s="BUY") for _ in range(2)]  # type: ignore[arg-type]  # plain str and int stand in for Side and TimeMs
    push = TradePush(ch="trade", ts=ts_ms, symbol="BTCUSDT", data=ticks)
    push.ts_recv_ns = now

    rig.proc.on_trade(push)
    rig.proc.flush()
    rig.proc.tick()

    _, trades = rig.read()
    assert trades["ts_event_ns"].tolist() == [ts_ms * 1_000_000] * 2
    assert rig.sample("bitrader_md_feed_latency_seconds_count") == 2
    total = rig.sample("bitrader_md_feed_latency_seconds_sum")
    assert total == pytest.approx(2 * (now - ts_ms * 1_000_000) / 1e9)  # ~3 ms each, not ~1 s
    assert total < 2 * 0.5


def test_proc_on_book_publishes_each_book_at_once_when_the_host_runs_its_readers(rig):
    # procs.hotpath: the host's on_book flushes (its pass starts with ingest's flush) and says so
    p = rig.proc
    seen: list[int] = []

    def host_pass() -> bool:
        seen.append(p.flush())
        return True

    p.on_book = host_pass
    p.on_trade(trade("BTCUSDT", n=2))  # a trade alone waits for the next book (or flush)
    p.on_depth(depth("BTCUSDT"))
    p.on_depth(depth("ETHUSDT"))

    books, trades = rig.read()
    assert seen == [3, 1]  # the trades with the first book, then the second book alone
    assert books["symbol_id"].tolist() == [0, 1]
    assert trades["seq"].tolist() == [0, 1]
    assert p.flush() == 0  # nothing left for a queued flush


def test_proc_on_book_that_declines_leaves_the_book_for_the_flush(rig):
    p = rig.proc
    p.on_book = lambda: False  # the host is busy: the burst is published together

    p.on_depth(depth("BTCUSDT"))
    p.on_depth(depth("ETHUSDT"))

    assert rig.read()[0].size == 0
    assert p.flush() == 2
