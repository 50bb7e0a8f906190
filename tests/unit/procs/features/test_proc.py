from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from procs._config import RuntimeConfig
from procs.featurecalc import compute_batch
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.stage import FeaturesProc, make_metrics
from procs.ml.synth import synthetic_market
from procs.tickstore import concat_records
from shm.records import BOOK_V1, FEAT_V1, TRADE_V1
from shm.ring import RingReader, RingSpec, RingWriter

Rings = tuple[RingWriter, RingWriter, RingWriter, RingReader, RingReader, RingReader]


class CountingWaker:
    def __init__(self) -> None:
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1


def _config(ring_name: str, batch_max: int, single_books_max: int = 1) -> FeaturesConfig:
    rt = RuntimeConfig(pub_endpoint="ipc:///tmp/x.pub", control_endpoint="ipc:///tmp/x.ctl")
    return FeaturesConfig(
        single_books_max=single_books_max,
        runtime=rt,
        n_symbols=2,
        book_ring=f"{ring_name}.book",
        trade_ring=f"{ring_name}.trade",
        feat_ring=f"{ring_name}.feat",
        capacity_records=4096,
        batch_max=batch_max,
    )


@pytest.fixture
def rings(ring_name):
    made: list[RingWriter | RingReader] = []

    def make(cfg: FeaturesConfig) -> Rings:
        w_book = RingWriter(RingSpec(name=cfg.book_ring, dtype=BOOK_V1, capacity=4096))
        w_trade = RingWriter(RingSpec(name=cfg.trade_ring, dtype=TRADE_V1, capacity=4096))
        w_feat = RingWriter(RingSpec(name=cfg.feat_ring, dtype=FEAT_V1, capacity=4096))
        made.extend([w_book, w_trade, w_feat])
        r_book = RingReader(cfg.book_ring, BOOK_V1)
        r_trade = RingReader(cfg.trade_ring, TRADE_V1)
        r_feat = RingReader(cfg.feat_ring, FEAT_V1)
        made.append(r_feat)
        return w_book, w_trade, w_feat, r_book, r_trade, r_feat

    yield make
    for r in made:
        r.close()


# batch_max 3: every step has at most 3 books, so they go through the engine one at a time
@pytest.mark.parametrize("batch_max", [3, 8, 256])
def test_features_proc_streams_rings_into_the_same_features_as_batch(rings, ring_name, batch_max):
    cfg = _config(ring_name, batch_max)
    w_book, w_trade, w_feat, r_book, r_trade, r_feat = rings(cfg)
    waker = CountingWaker()
    proc = FeaturesProc(
        cfg,
        books=r_book,
        trades=r_trade,
        out=w_feat,
        waker=waker,
        metrics=make_metrics(CollectorRegistry()),
        clock_ns=lambda: 42,
    )
    books, trades = synthetic_market(seed=8, n_books=3000, n_symbols=2)
    got = []
    t0 = 0
    for b0 in range(0, books.size, 100):
        chunk = books[b0 : b0 + 100]
        t1 = int(np.searchsorted(trades["ts_recv_ns"], chunk["ts_recv_ns"][-1], "right"))
        w_trade.publish(trades[t0:t1])  # ingest order: what was received before the books
        w_book.publish(chunk)
        t0 = t1
        for _ in range(1000):
            if proc.step() == 0:
                break
        got.append(r_feat.poll(4096))

    streamed = concat_records(got, FEAT_V1)
    want = compute_batch(books, trades[:t0], n_symbols=2)

    assert streamed.size == books.size
    np.testing.assert_array_equal(streamed["x"], want["x"])
    np.testing.assert_array_equal(streamed["seq"], books["seq"])
    assert (streamed["ts_feat_ns"] == 42).all()
    assert waker.notified > 0
    assert proc.health()["last_seq"] == int(books["seq"][-1])
    proc.close()


class ClockedWaker:
    """Records how many feat records were readable at each wake-up."""

    def __init__(self, reader: RingReader) -> None:
        self.reader = reader
        self.seen: list[int] = []

    def notify(self) -> None:
        self.seen.append(self.reader.lag_records)


def _proc(cfg, r_book, r_trade, w_feat, waker, registry=None, mono=None):
    kw = {} if mono is None else {"monotonic_ns": mono}
    return FeaturesProc(
        cfg,
        books=r_book,
        trades=r_trade,
        out=w_feat,
        waker=waker,
        metrics=make_metrics(registry or CollectorRegistry()),
        **kw,
    )


def test_features_proc_few_books_publishes_and_wakes_per_book(rings, ring_name):
    cfg = _config(ring_name, 64, single_books_max=4)
    w_book, w_trade, w_feat, r_book, r_trade, _r_feat = rings(cfg)
    probe = RingReader(cfg.feat_ring, FEAT_V1)
    waker = ClockedWaker(probe)
    proc = _proc(cfg, r_book, r_trade, w_feat, waker)
    books, trades = synthetic_market(seed=3, n_books=3, n_symbols=2)
    w_trade.publish(trades[trades["ts_recv_ns"] <= books["ts_recv_ns"][0]])
    w_book.publish(books)

    assert proc.step() > 0

    assert waker.seen == [1, 2, 3]  # each book published, and its readers woken, on its own
    probe.close()
    proc.close()


def test_features_proc_many_books_publishes_once(rings, ring_name):
    cfg = _config(ring_name, 64)
    w_book, _w_trade, w_feat, r_book, r_trade, _r_feat = rings(cfg)
    probe = RingReader(cfg.feat_ring, FEAT_V1)
    waker = ClockedWaker(probe)
    proc = _proc(cfg, r_book, r_trade, w_feat, waker)
    books, _ = synthetic_market(seed=3, n_books=cfg.single_books_max + 1, n_symbols=2)
    w_book.publish(books)

    assert proc.step() == books.size

    assert waker.seen == [books.size]
    probe.close()
    proc.close()


def test_features_proc_counters_reach_prometheus_at_the_flush_period(rings, ring_name):
    cfg = _config(ring_name, 64)
    w_book, _w_trade, w_feat, r_book, r_trade, _r_feat = rings(cfg)
    now = [0]
    registry = CollectorRegistry()
    proc = _proc(cfg, r_book, r_trade, w_feat, CountingWaker(), registry, lambda: now[0])
    books, _ = synthetic_market(seed=4, n_books=2, n_symbols=1)
    proc.step()  # first step flushes (nothing yet) and schedules the next flush
    w_book.publish(books)

    proc.step()
    held = registry.get_sample_value("bitrader_features_books_read_total")
    now[0] = int(cfg.metrics_flush_s * 1e9)
    proc.step()

    assert held == 0
    assert registry.get_sample_value("bitrader_features_books_read_total") == 2
    assert registry.get_sample_value("bitrader_features_records_total") == 2
    proc.close()


def test_features_config_rejects_bad_capacity():
    rt = RuntimeConfig(pub_endpoint="ipc:///tmp/x.pub", control_endpoint="ipc:///tmp/x.ctl")

    with pytest.raises(ValueError, match="power of two"):
        FeaturesConfig(runtime=rt, n_symbols=1, capacity_records=1000)
    with pytest.raises(ValueError, match="batch_max"):
        FeaturesConfig(runtime=rt, n_symbols=1, capacity_records=64, batch_max=128)


class PublishOnPoll:
    """A reader that lets ``ingest`` publish right after its first poll: the race in which a
    trade and the book received after it land between the process's two polls."""

    def __init__(self, reader: RingReader, ingest) -> None:
        self.reader, self.ingest = reader, ingest
        self.dropped_total = 0
        self.lag_records = 0

    def poll(self, n):
        out = self.reader.poll(n)
        self.ingest()
        return out

    def close(self) -> None:
        self.reader.close()


def test_a_trade_published_between_the_polls_reaches_the_book_after_it(rings, ring_name):
    """ingest publishes in receive order (trade, then the book after it); whatever the timing of
    the two polls, the book sees the trade, as ``compute_batch`` (and a backtest) computes it."""
    cfg = _config(ring_name, 64)
    w_book, w_trade, w_feat, r_book, r_trade, r_feat = rings(cfg)
    books, trades = synthetic_market(seed=5, n_books=40, n_symbols=1)
    books = books[:2]
    mid = (books["ts_recv_ns"][0] + books["ts_recv_ns"][1]) // 2
    early = trades[trades["ts_recv_ns"] <= books["ts_recv_ns"][0]]
    late = trades[(trades["ts_recv_ns"] > books["ts_recv_ns"][0]) & (trades["ts_recv_ns"] <= mid)]
    assert late.size > 0
    w_trade.publish(early)
    w_book.publish(books[:1])
    pending = [lambda: (w_trade.publish(late), w_book.publish(books[1:]))]

    def ingest() -> None:
        if pending:
            pending.pop()()

    proc = _proc(cfg, r_book, PublishOnPoll(r_trade, ingest), w_feat, CountingWaker())
    while proc.step():
        pass
    got = r_feat.poll(8)
    want = compute_batch(books, concat_records([early, late], TRADE_V1))
    assert got.size == 2
    assert got["x"].tobytes() == want["x"].tobytes()
    proc.close()
