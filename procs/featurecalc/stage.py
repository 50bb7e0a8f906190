"""The features stage: reads rings md.book and md.trade, writes one FEAT_V1 per book to ring feat.

The stage the features program runs (``python -m procs.features``) and the colocated hot path
(procs.hotpath) hosts; ``build`` is its composition over a started ``Runtime``.

Owns the feature engine's per-symbol state and the ``{ns}.features.feat`` ring; wakes its
readers on ``wake.feat.``. Each step polls books first, then trades, and hands the trades to the
engine before the books: ingest publishes each burst's trades before its books, so every
trade received before a polled book is in the trade ring by the second poll. That is the
delivery order under which streaming equals ``compute_batch`` over the capture
(procs.featurecalc.engine), and what makes a backtest of the capture reproduce these records bit
for bit (polling trades first raced with ingest: a trade published between the two polls
missed the books after it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from ipc.messages import WAKE_FEAT, wake_topic
from procs._runtime import Runtime
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.engine import EngineConfig, FeatureEngine
from procs.observe import NAMESPACE
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


def make_metrics(registry: CollectorRegistry) -> FeaturesMetrics:
    p = f"{NAMESPACE}_features"
    return FeaturesMetrics(
        books=Counter(f"{p}_books_read", "book records read", registry=registry),
        trades=Counter(f"{p}_trades_read", "trade records read", registry=registry),
        records=Counter(f"{p}_records", "feat records published", registry=registry),
        stale=Counter(f"{p}_stale_records", "feat records flagged stale", registry=registry),
    )


class FeaturesProc:
    """Per step: up to ``batch_max`` trades, then (trade ring drained) up to as many books.

    Counters are kept as ints and reach Prometheus every ``metrics_flush_s`` (and on
    ``health``/``close``).
    """

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
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
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
        self._no_trades: Records = np.zeros(0, dtype=TRADE_V1)
        self._held: Records | None = None  # books polled before a full trade batch
        # the engine writes its records here (no array per step) and the fields are read and
        # stamped through views made once (bench_stages' stage_features_book: 10.4-10.6 ->
        # 8.8-9.7 µs, alternated runs)
        self._obuf: Records = np.zeros(config.batch_max, dtype=FEAT_V1)
        self._o1 = self._obuf[:1]
        self._o_ts, self._o_seq = self._obuf["ts_feat_ns"], self._obuf["seq"]
        self._o_flags = self._obuf["flags"]
        self._single_max = config.single_books_max
        self._last_seq = -1
        self._published = 0
        self._books_read = 0
        self._trades_read = 0
        self._stale = 0
        self._flushed = dict.fromkeys(("books", "trades", "records", "stale"), 0)
        self._mono = monotonic_ns
        self._flush_ns = int(config.metrics_flush_s * 1e9)
        self._flush_due_ns = 0

    def step(self) -> int:
        books = self._held if self._held is not None else self._books.poll(self._batch_max)
        self._held = None
        trades = self._trades.poll(self._batch_max)
        if trades.size == self._batch_max:  # more trades may precede these books: drain first
            self._engine.update(self._no_books, trades)
            self._held = books if books.size else None  # a copy: poll never returns a view
            self._trades_read += int(trades.size)
            self._maybe_flush()
            return int(trades.size)
        nb, nt = int(books.size), int(trades.size)
        if nb == 0 and nt == 0:
            self._maybe_flush(idle=True)
            return 0
        if 1 < nb <= self._single_max:
            # one book at a time: the same records as one call, and each leaves as soon as it
            # is done (the call costs more per book than a batch does: FeaturesConfig)
            up, o = self._engine.update, self._o1
            self._emit(len(up(books[:1], trades, out=o)))
            for i in range(1, nb):
                self._emit(len(up(books[i : i + 1], self._no_trades, out=o)))
        else:
            self._emit(len(self._engine.update(books, trades, out=self._obuf)))
        self._books_read += nb
        self._trades_read += nt
        self._maybe_flush()
        return nb + nt

    def _emit(self, n: int) -> None:
        """Publish the first ``n`` records of the engine's output buffer, stamped now."""
        if not n:
            return
        if n == 1:
            self._o_ts[0] = self._clock()
            self._out.publish(self._o1)
        else:
            self._o_ts[:n] = self._clock()
            self._out.publish(self._obuf[:n])
        self._waker.notify()
        self._last_seq = self._o_seq.item(n - 1)
        self._published += n
        if n == 1:
            self._stale += (self._o_flags.item(0) & FLAG_STALE) != 0
        else:
            self._stale += int(((self._o_flags[:n] & FLAG_STALE) != 0).sum())

    def _maybe_flush(self, *, idle: bool = False) -> None:
        # Prometheus calls (a lock and a label lookup each) stay off the per-record path: on a
        # step that found nothing (the next one, under load), not between a record and its
        # readers (a colocated pass runs inference and execution after this step); busy for a
        # whole period more, they are done anyway
        now = self._mono()
        due = self._flush_due_ns
        if now >= due and (idle or now >= due + self._flush_ns):
            self._flush_due_ns = now + self._flush_ns
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Move the hot path's counts into Prometheus (ring counters are read at scrape time)."""
        m, f = self._m, self._flushed
        for key, counter, value in (
            ("books", m.books, self._books_read),
            ("trades", m.trades, self._trades_read),
            ("records", m.records, self._published),
            ("stale", m.stale, self._stale),
        ):
            if value > f[key]:
                counter.inc(value - f[key])
                f[key] = value

    def health(self) -> dict[str, float | int | str]:
        self.flush_metrics()
        return {
            "last_seq": self._last_seq,
            "published_total": self._published,
            "book_ring_dropped_total": self._books.dropped_total,
            "trade_ring_dropped_total": self._trades.dropped_total,
            "book_ring_lag_records": self._books.lag_records,
            "trade_ring_lag_records": self._trades.lag_records,
        }

    def close(self) -> None:
        self.flush_metrics()
        self._books.close()
        self._trades.close()
        self._out.close()


def build(
    config: FeaturesConfig,
    rt: Runtime,
    registry: CollectorRegistry,
    wrap_waker: Callable[[Waker], Waker] | None = None,
) -> FeaturesProc:
    """Attach the md rings, create ring feat and return the stage (``rt`` started); the
    stage's ``close`` closes the rings. Used by ``main`` and by the colocated host, which
    defers the stage's wake-ups to the end of its pass (``wrap_waker``)."""
    from ipc.sockets import WakeSender  # composition root: I/O opens here

    trades = attach_reader(config.trade_ring, TRADE_V1, config.attach_timeout_s)
    books = attach_reader(config.book_ring, BOOK_V1, config.attach_timeout_s)
    rt.watch_ring("md.trade", trades)
    rt.watch_ring("md.book", books)
    out = RingWriter(
        RingSpec(name=config.feat_ring, dtype=FEAT_V1, capacity=config.capacity_records)
    )
    waker: Waker = WakeSender(rt.publisher, wake_topic(WAKE_FEAT))
    return FeaturesProc(
        config,
        books=books,
        trades=trades,
        out=out,
        waker=waker if wrap_waker is None else wrap_waker(waker),
        metrics=make_metrics(registry),
    )
