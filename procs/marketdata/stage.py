"""The ingest process core: WS push handlers → batched ring publishes, watchdog, REST resyncs.

Reads Bitunix public WS pushes (via ``ipc.bitunix.ws.BitunixWs`` callbacks) and REST depth
snapshots. Writes rings ``md.book`` (BOOK_V1) and ``md.trade`` (TRADE_V1) and wake-ups on
``wake.md.``. Owns the per-symbol staleness verdicts and the resync schedule.

Contract for readers (features, execution, capture):

- ``seq`` is the record's position in its ring (0, 1, 2 ...): a gap means the reader was lapped.
- ``ts_event_ns`` is the venue's stamp: the push's ``ts`` (ms precision, in ns), for books and
  for every tick of a trade push (a tick's own time has whole seconds only); ``ts_recv_ns``
  the frame's receipt; ``ts_pub_ns`` the publish. All are ``time.time_ns()`` clocks.
- Book levels at or past ``n_bids``/``n_asks`` are NaN.
- ``FLAG_SNAPSHOT``: a REST depth snapshot (after start, every reconnect and every crossed
  book), or the first ``depth_books`` book after a (re)subscribe. Its ``ts_event_ns`` is the
  REST response time: the venue stamps no REST depth.
- ``FLAG_CROSSED``: best bid >= best ask; ingest is resyncing that symbol. Do not trade on it.
- ``FLAG_STALE``: no book update for ``stale_after_s``. When a symbol goes stale ingest
  publishes a copy of its last book (original ``ts_event_ns``; fresh ``ts_recv_ns`` and
  ``ts_pub_ns``; an empty book if none was seen) with ``FLAG_STALE``, repeats it every
  ``stale_after_s`` while the symbol stays stale, and sets ``FLAG_STALE`` on every other record
  of that symbol (trades, snapshots) until a WS book update arrives; that update carries no
  ``FLAG_STALE`` and is the all-clear. Treat the symbol as untradeable from the first stale
  record until the first book record without the flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ipc.bitunix.errors import BitunixError
from ipc.bitunix.schemas_rest import DepthSnapshot
from ipc.bitunix.schemas_ws import DepthPush, PricePush, TradePush
from ipc.bitunix.ws_dispatch import BookUpdate
from procs._runtime import StopFlag
from procs.marketdata.config import IngestConfig
from procs.marketdata.normalise import BookBatch, SymbolMap, TradeBatch, add_trades
from procs.marketdata.watchdog import StalenessWatchdog
from procs.observe import NAMESPACE, SLOW_BUCKETS_S, STEP_BUCKETS_S, observe_many
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_CROSSED, FLAG_SNAPSHOT, FLAG_STALE, Records
from shm.waiters import Waker

__all__ = [
    "FEED_LATENCY_BUCKETS_S",
    "DepthSource",
    "IngestMetrics",
    "IngestProc",
    "RingSink",
    "WsClient",
    "make_metrics",
]

log = logging.getLogger(__name__)

FEED_LATENCY_BUCKETS_S: Final = SLOW_BUCKETS_S  # venue stamps are ms: up to 10 s
PUBLISH_BUCKETS_S: Final = STEP_BUCKETS_S
BOOK_STREAM: Final = "md.book"
TRADE_STREAM: Final = "md.trade"
_RESYNC_ERRORS: Final = (BitunixError, OSError, TimeoutError)


class RingSink(Protocol):
    """The writer side of a ring (``shm.ring.RingWriter``)."""

    @property
    def next_seq(self) -> int: ...

    def publish(self, records: Records) -> int: ...


class DepthSource(Protocol):
    """Where resync snapshots come from (``ipc.bitunix.rest_api.BitunixRest``)."""

    async def depth(self, symbol: str, limit: str | int = ...) -> DepthSnapshot: ...


class WsClient(Protocol):
    """The part of ``ipc.bitunix.ws.BitunixWs`` ingest uses."""

    reconnects_total: int

    @property
    def dispatcher(self) -> Any: ...

    def on(self, ch: str, handler: Callable[[Any], None]) -> None: ...

    def subscribe_many(self, args: list[tuple[str, str | None]]) -> None: ...

    def start(self) -> asyncio.Task[None]: ...

    async def close(self) -> None: ...

    def fileno(self) -> int: ...


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """Collectors of ``bitrader_md_*``; counters are fed in batches from ``tick``/``flush``."""

    messages: Counter
    decode_errors: Counter
    reconnects: Counter
    records: Counter
    stale_symbols: Gauge
    feed_latency: Histogram
    clock_offset: Gauge
    publish_seconds: Histogram
    resyncs: Counter
    resync_errors: Counter
    crossed_books: Counter


def make_metrics(registry: CollectorRegistry) -> IngestMetrics:
    """Register the ingest collectors in ``registry``."""
    r, p = registry, f"{NAMESPACE}_md"
    return IngestMetrics(
        messages=Counter(f"{p}_messages", "WS pushes", ["channel"], registry=r),
        decode_errors=Counter(f"{p}_decode_errors", "frames skipped", ["reason"], registry=r),
        reconnects=Counter(f"{p}_reconnects", "WS reconnects", registry=r),
        records=Counter(f"{p}_records", "records published", ["ring"], registry=r),
        stale_symbols=Gauge(f"{p}_stale_symbols", "symbols now stale", registry=r),
        feed_latency=Histogram(
            f"{p}_feed_latency_seconds",
            "ts_recv - ts_exchange per record (venue stamps are ms)",
            buckets=FEED_LATENCY_BUCKETS_S,
            registry=r,
        ),
        clock_offset=Gauge(
            f"{p}_clock_offset_seconds",
            "smallest ts_recv - ts_exchange of the last service period: local minus venue clock "
            "plus the fastest one-way delay (negative: the local clock is behind)",
            registry=r,
        ),
        publish_seconds=Histogram(
            f"{p}_publish_seconds",
            "one ring publish of a batch, stamping included",
            ["ring"],
            buckets=PUBLISH_BUCKETS_S,
            registry=r,
        ),
        resyncs=Counter(f"{p}_resyncs", "REST depth resyncs", ["reason"], registry=r),
        resync_errors=Counter(f"{p}_resync_errors", "failed resyncs", registry=r),
        crossed_books=Counter(f"{p}_crossed_books", "crossed books seen", registry=r),
    )


class IngestProc:
    """Turns WS callbacks into ring batches; single-threaded, on the client's event loop.

    Handlers append to preallocated batches and ask for one ``flush`` per callback burst
    (``loop.call_soon``), so frames that arrive in one read share one publish and one wake-up.
    ``tick`` runs the watchdog and feeds metrics; ``run`` drives it all until stopped.
    """

    name = "ingest"

    def __init__(
        self,
        config: IngestConfig,
        *,
        book_ring: RingSink,
        trade_ring: RingSink,
        waker: Waker,
        rest: DepthSource,
        metrics: IngestMetrics,
    ) -> None:
        self.config = config
        self.symbols = SymbolMap(config.symbols)
        self._ids = {s: i for i, s in enumerate(self.symbols.symbols)}
        n = len(self.symbols)
        self._book_ring = book_ring
        self._trade_ring = trade_ring
        self._waker = waker
        self._rest = rest
        self._m = metrics
        self._books = BookBatch(config.batch_max_records)
        self._trades = TradeBatch(config.batch_max_records)
        self.watchdog = StalenessWatchdog(n, config.stale_after_s, time.monotonic_ns())
        self._last_books: Records = np.zeros(n, dtype=BOOK_V1)
        for level_field in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
            self._last_books[level_field] = np.nan  # an empty book: no level is used
        self._last_mv = self._last_books.data.cast("B")
        self._have_book = [False] * n
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_due = False
        self._fault: BaseException | None = None
        self._ws: WsClient | None = None
        self._resync_tasks: dict[int, asyncio.Task[None]] = {}
        self._resync_wanted: dict[int, str] = {}
        self._resync_at_ns = [-(1 << 62)] * n
        self.msgs: Tally[str] = Tally()
        self.unknown_symbol_total = 0
        self.records_total = {BOOK_STREAM: 0, TRADE_STREAM: 0}
        self.last_seq = {BOOK_STREAM: -1, TRADE_STREAM: -1}
        self.snapshots_total = 0
        self.crossed_total = 0
        self.resyncs_total = 0
        self.resync_errors_total = 0
        self.mark_px = [float("nan")] * n
        self._seen: dict[str, float] = {}  # totals already passed to Prometheus
        self._rate = (time.monotonic_ns(), 0, 0.0)  # (window start, msgs then, msgs/s)
        self._arange = np.arange(config.batch_max_records, dtype=np.int64)
        self._publish_hist = {
            s: metrics.publish_seconds.labels(s) for s in (BOOK_STREAM, TRADE_STREAM)
        }
        self._feed_lat_ns: list[int] = []  # observed by tick(), off the publish path
        self.on_step: Callable[[int, int], None] | None = None  # (records, ns) per flush
        # a host that runs the rings' readers on this loop (procs.hotpath): called after each
        # book is added; True when it published the book itself (no flush is queued then)
        self.on_book: Callable[[], bool] | None = None
        # False: the host runs tick() and the runtime's service itself, when its loop is idle
        # (procs.hotpath); run() then only watches for faults and the stop
        self.tick_in_run = True
        self._publish_ns: dict[str, list[int]] = {BOOK_STREAM: [], TRADE_STREAM: []}  # by tick()

    @property
    def flush_pending(self) -> bool:
        """Records wait for a flush queued on the loop (a book that did not run inline)."""
        return self._flush_due

    def input_fd(self) -> int:
        """The venue WS socket's descriptor (-1 when not connected): procs.hotpath polls it
        to learn whether a frame is waiting before it does idle work."""
        return self._ws.fileno() if self._ws is not None else -1

    # ---- WS callbacks (run inline in the client's frame callback) ----
    def attach(self, ws: WsClient) -> None:
        """Register the handlers on ``ws`` and subscribe every configured symbol and channel."""
        self._ws = ws
        depth = self.config.depth_channel
        ws.on(depth, self.on_book_update if depth == "depth_books" else self.on_depth)
        handlers: dict[str, Callable[[Any], None]] = {
            "trade": self.on_trade,
            "price": self.on_price,
        }
        for ch in self.config.channels:
            ws.on(ch, handlers[ch])
        chans = [depth, *self.config.channels]
        ws.subscribe_many([(ch, s) for s in self.symbols.symbols for ch in chans])

    def on_depth(self, push: DepthPush) -> None:
        """Handle a ``depth_book15`` push (a full top-N book)."""
        self.msgs[push.ch] += 1
        sid = self._ids.get(push.symbol, -1)  # SymbolMap.id, without two calls a frame
        if sid < 0:
            self.unknown_symbol_total += 1
            return
        books = self._books
        if books.n >= books.capacity:
            self.flush()
        ts_event_ns = push.ts * 1_000_000
        d = push.data
        books.add(sid, ts_event_ns, push.ts_recv_ns, d.b, d.a)  # normalise.add_depth
        self._feed_lat_ns.append(push.ts_recv_ns - ts_event_ns)
        # _book_added inline, like add_depth and SymbolMap.id above: the three together are
        # ~0.6 µs of a ~15 µs frame (bench_stages' ingest row, two alternated runs)
        self.watchdog.touch(sid, time.monotonic_ns())
        if books.last_flags & FLAG_CROSSED:
            self._crossed(sid)
        if self.on_book is None or not self.on_book():
            self._want_flush()

    def on_book_update(self, update: BookUpdate) -> None:
        """Handle a ``depth_books`` push applied to the client's local book."""
        push = update.push
        self.msgs[push.ch] += 1
        sid = self._sid(push.symbol)
        if sid < 0:
            return
        if self._books.full:
            self.flush()
        bids, asks = update.book.top(BOOK_DEPTH)
        flags = FLAG_SNAPSHOT if update.snapshot else 0
        ts_event_ns = push.ts * 1_000_000
        self._books.add(sid, ts_event_ns, push.ts_recv_ns, bids, asks, flags)
        self._feed_lat_ns.append(push.ts_recv_ns - ts_event_ns)
        self._book_added(sid)

    def _book_added(self, sid: int) -> None:
        self.watchdog.touch(sid, time.monotonic_ns())
        if self._books.last_flags & FLAG_CROSSED:  # the row's flags, as add wrote them
            self._crossed(sid)
        if self.on_book is None or not self.on_book():
            self._want_flush()

    def on_book_resync(self, symbol: str) -> None:
        """The client found a crossed ``depth_books`` book and is resubscribing it."""
        sid = self._sid(symbol)
        if sid >= 0:
            self._crossed(sid)

    def on_trade(self, push: TradePush) -> None:
        """Handle a ``trade`` push: one record per tick, stamped with the push's ms ``ts``."""
        self.msgs[push.ch] += 1
        sid = self._sid(push.symbol)
        if sid < 0:
            return
        flags = FLAG_STALE if self.watchdog.is_stale(sid) else 0
        k, n = 0, len(push.data)
        while k < n:
            if self._trades.full:
                self.flush()
            k = add_trades(self._trades, sid, push, k, flags)
        if push.ts:  # the push's ms stamp, as the records' ts_event_ns: one figure per record
            self._feed_lat_ns.extend([push.ts_recv_ns - push.ts * 1_000_000] * n)
        self._want_flush()

    def on_price(self, push: PricePush) -> None:
        """Handle a ``price`` push: kept as the last mark price (no ring carries it)."""
        self.msgs[push.ch] += 1
        sid = self._sid(push.symbol)
        if sid >= 0:
            self.mark_px[sid] = push.data.mp

    def on_resync(self) -> None:
        """The client reconnected and resubscribed: refetch every symbol's book over REST."""
        for sid in range(len(self.symbols)):
            self.request_resync(sid, "reconnect", force=True)

    def _sid(self, symbol: str) -> int:
        sid = self.symbols.id(symbol)
        if sid < 0:
            self.unknown_symbol_total += 1
        return sid

    def _crossed(self, sid: int) -> None:
        self.crossed_total += 1
        self.request_resync(sid, "crossed")

    # ---- publishing ----
    def _want_flush(self) -> None:
        if self._loop is not None and not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = False
        try:
            t0 = time.perf_counter_ns()
            n = self.flush()
            if self.on_step is not None:  # the runtime's step_seconds: one burst's publish
                self.on_step(n, time.perf_counter_ns() - t0)
        except Exception as exc:  # relayed to run(), which re-raises it: crash, don't limp
            self._fault = exc

    def flush(self) -> int:
        """Publish the pending batches (trades, then books), wake readers; return the count.

        Trades first: a trade received before a book of this burst is then in its ring before
        the book is in its own, so a reader that polls books, then trades (features, capture)
        has every trade received before each book it got. Books first, features could take a
        book between the two publishes and compute it without the trades before it."""
        books, trades = self._books, self._trades
        n = self._publish(trades, self._trade_ring, TRADE_STREAM) if trades.n else 0
        if books.n:
            nb = self._publish(books, self._book_ring, BOOK_STREAM)
            if nb == 1:  # a byte copy of the one row (a record assignment costs 3 times more)
                sid = books.sid.item(0)
                size = books.row_bytes
                self._last_mv[sid * size : (sid + 1) * size] = books.bytes[:size]
                self._have_book[sid] = True
            else:
                self._keep_last_books(books.take())
            books.n = 0  # clear()
            n += nb
        trades.n = 0
        if n:
            self._waker.notify()
        return n

    def _publish(self, batch: BookBatch | TradeBatch, ring: RingSink, stream: str) -> int:
        n = batch.n
        if self.watchdog.stale_count:
            stale, flags = self.watchdog.is_stale, batch.flags
            for i, sid in enumerate(batch.sid[:n].tolist()):  # a stale symbol's verdict
                if stale(sid):
                    flags[i] |= FLAG_STALE
        start = ring.next_seq
        t0 = time.perf_counter_ns()
        if n == 1:  # one book per frame: an item each, not a slice
            batch.seq[0] = start
            batch.ts_pub[0] = time.time_ns()
        else:
            batch.seq[:n] = self._arange[:n]
            batch.seq[:n] += start
            batch.ts_pub[:n] = time.time_ns()
        ring.publish(batch.take())
        self._publish_ns[stream].append(time.perf_counter_ns() - t0)  # observed by tick()
        self.records_total[stream] += n
        self.last_seq[stream] = start + n - 1
        return n

    def _keep_last_books(self, recs: Records) -> None:
        sids = recs["symbol_id"].tolist()
        seen: set[int] = set()
        for i in range(len(sids) - 1, -1, -1):  # newest first; older rows of a symbol lose
            sid = sids[i]
            if sid not in seen:
                seen.add(sid)
                self._last_books[sid] = recs[i]
                self._have_book[sid] = True

    # ---- periodic work ----
    def tick(self, now_ns: int | None = None) -> None:
        """Run the watchdog, retry wanted resyncs, feed metrics; called every service period."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        newly, due = self.watchdog.check(now)
        for sid in (*newly, *due):
            self._emit_stale(sid)
        for sid in newly:
            age = self.watchdog.ages_s(now)[sid]
            log.warning("symbol stale symbol=%s age_s=%.3f", self.symbols.name(sid), age)
        if newly or due:
            self.flush()
        for sid, reason in list(self._resync_wanted.items()):
            self.request_resync(sid, reason)
        self._feed_metrics(now)

    def _emit_stale(self, sid: int) -> None:
        if self._books.full:
            self.flush()
        now = time.time_ns()
        if self._have_book[sid]:
            flags = int(self._last_books["flags"][sid]) & ~(FLAG_SNAPSHOT | FLAG_CROSSED)
            self._books.add_copy(self._last_books[sid], now, flags | FLAG_STALE)
        else:
            self._books.add(sid, now, now, (), (), FLAG_STALE)

    def _feed_metrics(self, now_ns: int) -> None:
        m = self._m
        for ch, total in self.msgs.items():
            self._delta(m.messages.labels(ch), f"msg.{ch}", total)
        for reason, total in self.decode_errors().items():
            self._delta(m.decode_errors.labels(reason), f"err.{reason}", total)
        self._delta(m.reconnects, "reconnects", self.reconnects_total)
        self._delta(m.crossed_books, "crossed", self.crossed_total)
        for stream, total in self.records_total.items():
            self._delta(m.records.labels(stream), f"rec.{stream}", total)
        m.stale_symbols.set(self.watchdog.stale_count)
        for stream, took in self._publish_ns.items():
            if took:
                observe_many(self._publish_hist[stream], np.array(took, dtype=np.float64) * 1e-9)
                took.clear()
        if self._feed_lat_ns:
            lat = np.array(self._feed_lat_ns, dtype=np.float64)
            m.clock_offset.set(float(lat.min()) * 1e-9)
            # venue stamps are ms: clamp skew below zero
            observe_many(m.feed_latency, np.maximum(lat, 0.0) * 1e-9)
            self._feed_lat_ns.clear()
        t0, msgs0, _ = self._rate
        if now_ns - t0 >= 1_000_000_000:
            msgs = sum(self.msgs.values())
            self._rate = (now_ns, msgs, (msgs - msgs0) * 1e9 / (now_ns - t0))

    def _delta(self, counter: Any, key: str, total: float) -> None:
        seen = self._seen.get(key, 0)
        if total > seen:
            counter.inc(total - seen)
            self._seen[key] = total

    def decode_errors(self) -> dict[str, int]:
        """Return frames skipped by reason (the client's counts plus unknown symbols)."""
        out: dict[str, int] = {}
        if self._ws is not None:
            out.update(self._ws.dispatcher.decode_errors_total)
        if self.unknown_symbol_total:
            out["unknown_symbol"] = self.unknown_symbol_total
        return out

    @property
    def reconnects_total(self) -> int:
        """Return the WS client's reconnect count."""
        return self._ws.reconnects_total if self._ws is not None else 0

    def health(self) -> dict[str, float | int | str]:
        """Return the counters for ``bitrader health`` (``stale_symbols`` > 0 is a problem)."""
        ages = self.watchdog.ages_s(time.monotonic_ns())
        out: dict[str, float | int | str] = {
            "last_seq": self.last_seq[BOOK_STREAM],
            "last_trade_seq": self.last_seq[TRADE_STREAM],
            "msgs_per_s": self._rate[2],
            "msgs_total": sum(self.msgs.values()),
            "decode_errors_total": sum(self.decode_errors().values()),
            "reconnects_total": self.reconnects_total,
            "stale_symbols": self.watchdog.stale_count,
            "book_records_total": self.records_total[BOOK_STREAM],
            "trade_records_total": self.records_total[TRADE_STREAM],
            "snapshots_total": self.snapshots_total,
            "crossed_total": self.crossed_total,
            "resyncs_total": self.resyncs_total,
            "resync_errors_total": self.resync_errors_total,
        }
        for sym, age in zip(self.symbols.symbols, ages, strict=True):
            out[f"book_age_s.{sym}"] = round(age, 6)
        return out

    # ---- resync ----
    def request_resync(self, sid: int, reason: str, *, force: bool = False) -> bool:
        """Start a REST snapshot of ``sid`` unless one runs or ran within the minimum interval.

        A refused request is remembered and retried by ``tick``. Returns True when started.
        """
        now = time.monotonic_ns()
        min_ns = int(self.config.resync_min_interval_s * 1e9)
        if self._loop is None or sid in self._resync_tasks:
            self._resync_wanted.setdefault(sid, reason)
            return False
        if not force and now - self._resync_at_ns[sid] < min_ns:
            self._resync_wanted.setdefault(sid, reason)
            return False
        self._resync_wanted.pop(sid, None)
        self._resync_at_ns[sid] = now
        task = self._loop.create_task(self._resync(sid, reason), name=f"resync-{sid}")
        self._resync_tasks[sid] = task
        task.add_done_callback(self._resync_done)
        return True

    async def _resync(self, sid: int, reason: str) -> None:
        symbol = self.symbols.name(sid)
        try:
            snap = await self._rest.depth(symbol, self.config.snapshot_limit)
        except _RESYNC_ERRORS as exc:
            self.resync_errors_total += 1
            self._m.resync_errors.inc()
            self._resync_wanted.setdefault(sid, reason)
            log.warning("resync failed symbol=%s reason=%s error=%r", symbol, reason, exc)
            return
        self.add_snapshot(sid, snap, time.time_ns())
        self.resyncs_total += 1
        self._m.resyncs.labels(reason).inc()
        log.info("resynced symbol=%s reason=%s", symbol, reason)

    def add_snapshot(self, sid: int, snap: DepthSnapshot, ts_ns: int) -> None:
        """Queue a REST depth snapshot as a FLAG_SNAPSHOT book (stamped ``ts_ns``)."""
        if self._books.full:
            self.flush()
        bids = sorted(snap.bids, key=lambda lv: -lv[0])[:BOOK_DEPTH]
        asks = sorted(snap.asks, key=lambda lv: lv[0])[:BOOK_DEPTH]
        row = self._books.add(sid, ts_ns, ts_ns, bids, asks, FLAG_SNAPSHOT)
        self.snapshots_total += 1
        if self._books.flags[row] & FLAG_CROSSED:  # a field view made once, not a lookup
            self.crossed_total += 1  # a crossed REST book: try again after the interval
            self._resync_wanted.setdefault(sid, "crossed")
        self._want_flush()

    def _resync_done(self, task: asyncio.Task[None]) -> None:
        for sid, t in list(self._resync_tasks.items()):
            if t is task:
                del self._resync_tasks[sid]
        if not task.cancelled() and task.exception() is not None and self._fault is None:
            self._fault = task.exception()

    # ---- lifecycle ----
    async def run(self, ws: WsClient, *, service: Callable[[], None], stop: StopFlag) -> None:
        """Attach to ``ws``, start it, then ``tick`` and ``service()`` each period until ``stop``.

        Raises whatever a handler, a flush or the WS client failed with (the caller exits 1).
        """
        self._loop = asyncio.get_running_loop()
        self.attach(ws)
        ws_task = ws.start()
        for sid in range(len(self.symbols)):
            self.request_resync(sid, "start", force=True)
        period = self.config.service_interval_s
        log.info(
            "running symbols=%s depth=%s channels=%s ws=%s",
            *(",".join(self.symbols.symbols), self.config.depth_channel),
            *(",".join(self.config.channels), self.config.ws_url),
        )
        try:
            while not stop.is_set:
                await asyncio.sleep(period)
                if self._fault is not None:
                    raise self._fault
                if ws_task.done():
                    ws_task.result()  # re-raises the client's fatal error
                    raise RuntimeError("WS client stopped on its own")
                if self.tick_in_run:
                    self.tick()
                    service()
            log.info("stopping (%s)", stop.reason)
        finally:
            await ws.close()
            tasks = list(self._resync_tasks.values())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop = None
            if self._fault is None:
                self.flush()
