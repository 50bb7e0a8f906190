"""Features: reads rings md.trade then md.book, writes one FEAT_V1 per book to ring feat.

Owns the feature engine's per-symbol state and the ``{ns}.features.feat`` ring; wakes its
readers on ``wake.feat.``. Trades are drained before books are read, which is the delivery
order under which streaming equals ``compute_batch`` over the capture (procs.features.engine).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from ipc.messages import WAKE_FEAT, WAKE_MD, wake_topic
from procs._config import load_section
from procs._runtime import Runtime
from procs.features.config import FeaturesConfig
from procs.features.engine import EngineConfig, FeatureEngine
from shm.records import BOOK_V1, FEAT_V1, FLAG_STALE, TRADE_V1, Records
from shm.ring import RecordSink, RecordSource, RingSpec, RingWriter, attach_reader


class Waker(Protocol):
    def notify(self) -> None: ...


@dataclass(frozen=True)
class FeaturesMetrics:
    books: Counter
    trades: Counter
    records: Counter
    stale: Counter
    dropped: Counter  # label ring: book | trade
    lag: Gauge


def make_metrics(registry: CollectorRegistry) -> FeaturesMetrics:
    p = "pipe_features"
    return FeaturesMetrics(
        books=Counter(f"{p}_books", "book records read", registry=registry),
        trades=Counter(f"{p}_trades", "trade records read", registry=registry),
        records=Counter(f"{p}_records", "feat records published", registry=registry),
        stale=Counter(f"{p}_stale_records", "feat records flagged stale", registry=registry),
        dropped=Counter(
            f"{p}_ring_dropped_records", "records lost to lapping", ["ring"], registry=registry
        ),
        lag=Gauge(f"{p}_ring_lag_records", "published minus read", ["ring"], registry=registry),
    )


class FeaturesProc:
    """Per step: up to ``batch_max`` trades, then (trade ring drained) up to as many books."""

    name = "features"

    def __init__(
        self,
        config: FeaturesConfig,
        *,
        books: RecordSource,
        trades: RecordSource,
        out: RecordSink,
        waker: Waker,
        metrics: FeaturesMetrics,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._books = books
        self._trades = trades
        self._out = out
        self._waker = waker
        self._m = metrics
        self._clock = clock_ns
        self._batch_max = config.batch_max
        self._engine = FeatureEngine(
            config.n_symbols, EngineConfig(mark_degenerate_stale=config.mark_degenerate_stale)
        )
        self._no_books: Records = np.zeros(0, dtype=BOOK_V1)
        self._dropped_seen = {"book": 0, "trade": 0}
        self._last_seq = -1
        self._published = 0

    def step(self) -> int:
        trades = self._trades.poll(self._batch_max)
        if trades.size == self._batch_max:  # more trades may precede the next books: drain first
            self._engine.update(self._no_books, trades)
            self._m.trades.inc(trades.size)
            return int(trades.size)
        books = self._books.poll(self._batch_max)
        if books.size == 0 and trades.size == 0:
            return 0
        feats = self._engine.update(books, trades)
        if feats.size:
            feats["ts_feat_ns"] = self._clock()
            self._out.publish(feats)
            self._waker.notify()
            self._last_seq = int(feats["seq"][-1])
            self._published += int(feats.size)
            self._m.records.inc(feats.size)
            self._m.stale.inc(int(((feats["flags"] & FLAG_STALE) != 0).sum()))
        self._m.books.inc(books.size)
        self._m.trades.inc(trades.size)
        self._export_ring_stats()
        return int(books.size + trades.size)

    def _export_ring_stats(self) -> None:
        for label, ring in (("book", self._books), ("trade", self._trades)):
            dropped = ring.dropped_total
            if dropped > self._dropped_seen[label]:
                self._m.dropped.labels(label).inc(dropped - self._dropped_seen[label])
                self._dropped_seen[label] = dropped
            self._m.lag.labels(label).set(ring.lag_records)

    def health(self) -> dict[str, float | int | str]:
        return {
            "last_seq": self._last_seq,
            "published_total": self._published,
            "book_ring_dropped_total": self._books.dropped_total,
            "trade_ring_dropped_total": self._trades.dropped_total,
            "book_ring_lag_records": self._books.lag_records,
            "trade_ring_lag_records": self._trades.lag_records,
        }

    def close(self) -> None:
        self._books.close()
        self._trades.close()
        self._out.close()


def main(argv: list[str] | None = None) -> int:
    from ipc.sockets import WakeListener, WakeSender  # composition root: I/O opens here

    config = load_section(argv, "features", FeaturesConfig)
    registry = CollectorRegistry()
    with Runtime("features", config.runtime, registry) as rt:
        rt.start()
        trades = attach_reader(config.trade_ring, TRADE_V1, config.attach_timeout_s)
        books = attach_reader(config.book_ring, BOOK_V1, config.attach_timeout_s)
        out = RingWriter(
            RingSpec(name=config.feat_ring, dtype=FEAT_V1, capacity=config.capacity_records)
        )
        notifier = None
        if config.runtime.waiter == "hybrid":
            notifier = WakeListener(config.ingest_pub, wake_topic(WAKE_MD))
        try:
            proc = FeaturesProc(
                config,
                books=books,
                trades=trades,
                out=out,
                waker=WakeSender(rt.publisher, wake_topic(WAKE_FEAT)),
                metrics=make_metrics(registry),
            )
            return rt.run(proc, rt.make_waiter(notifier))
        finally:
            if notifier is not None:
                notifier.close()


if __name__ == "__main__":
    sys.exit(main())
