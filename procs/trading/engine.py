"""The execution process stage: reads rings ``sig`` and ``md.book``, sends orders to a ``Venue``,
writes the journal and publishes ``ord.``/``fill.``/``pos.``/``risk.``/``brk.`` on its PUB.

``step()`` is the hot path (signal → strategy → risk → journal intent → send); venue calls run
as tasks on the process's asyncio loop, which ``procs._looprun.LoopRunner`` runs around the steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from ipc.orders import breaker_topic, fill_topic, order_topic, position_topic, risk_topic
from procs.trading.breaker import Breaker, BreakerState, BreakerTransition
from procs.trading.config import ExecutionConfig
from procs.trading.driver import CANCELLABLE, RATE_LIMITED, OrderDriver
from procs.trading.events import (
    EventOutbox,
    EventPublisher,
    EventSequencer,
    breaker_event,
    fill_event,
    order_event,
    position_event,
    risk_event,
)
from procs.trading.instruments import DecimalGrid, Instrument
from procs.trading.journal import Journal
from procs.trading.killswitch import KillSwitch
from procs.trading.legs import VenueLegs
from procs.trading.metrics import PNL_KINDS, ExecutionMetrics, PendingMetrics
from procs.trading.model import (
    ZERO,
    Fill,
    FundingEvent,
    OrderRequest,
    OrderStatus,
    PositionSide,
    VenueOrderUpdate,
)
from procs.trading.orders import ClientIdGenerator, OrderTracker, OrderTransition
from procs.trading.paper import RecordBook
from procs.trading.positions import DailyPnl, PositionBook
from procs.trading.reads import ReadLog
from procs.trading.reconcile import Reconciliation, VenuePosition
from procs.trading.reconciler import Reconciler
from procs.trading.risk import Refusal, RefusalReason, RiskContext, RiskEngine
from procs.trading.sent import SentAfterSend
from procs.trading.status import RingWatch, execution_health, set_gauges
from procs.trading.strategy import (
    Action,
    CancelOrder,
    PlaceOrder,
    Quote,
    ReplaceOrder,
    Strategy,
    signals_from_records,
)
from procs.trading.tasks import TaskRunner
from procs.trading.venue import PaperVenueAdapter, Venue, VenueCallError
from shm.records import BOOK_V1, FLAG_STALE, Records
from shm.ring import RecordSource

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
REFUSAL_JOURNAL_S: Final = 1.0  # journal/publish one refusal per (symbol, reason) this often
PRUNE_AFTER_S: Final = 3600.0  # forget terminal orders this old (they stay in the journal)
_STATES: Final = {BreakerState.ACTIVE: "active", BreakerState.REDUCING: "reducing"}  # else halted
_B = {name: i for i, name in enumerate(BOOK_V1.names or ())}  # field positions in a row's tuple
_B_SID, _B_FLAGS, _B_NB, _B_NA = _B["symbol_id"], _B["flags"], _B["n_bids"], _B["n_asks"]
_B_BID, _B_ASK, _B_RECV, _B_PUB = _B["bid_px"], _B["ask_px"], _B["ts_recv_ns"], _B["ts_pub_ns"]


class ExecutionProc:
    """Owns orders, positions, risk, breaker and the journal's writer; one asyncio loop.

    Build in ``main``; ``await open()`` on the loop (venue, instruments, journal recovery), then
    run ``step`` under ``Runtime.run``. Trading starts once reconciliation finds no difference.
    """

    name = "execution"

    def __init__(
        self,
        config: ExecutionConfig,
        *,
        sig: RecordSource,
        book: RecordSource,
        venue: Venue,
        journal: Journal,
        publisher: EventPublisher,
        killswitch: KillSwitch,
        metrics: ExecutionMetrics,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], int] = time.time_ns,
        event_log: Callable[[bytes], object] | None = None,
    ) -> None:
        self._c = config
        self._sig = sig
        self._book = book
        self.venue = venue
        self.journal = journal
        self.killswitch = killswitch
        self._m = metrics
        self._pnl_gauges = [(k, metrics.pnl.labels(k)) for k in PNL_KINDS]
        self._loop = loop
        self._clock = clock
        self._out = EventOutbox(publisher if config.publish_events else None, event_log)
        self._emit = self._out.emit  # held while a step runs (``step``)
        self.tracker = OrderTracker(
            ack_timeout_s=config.order_ack_timeout_s, cancel_timeout_s=config.cancel_timeout_s
        )
        self.positions = PositionBook(hedge=config.position_mode == "HEDGE")
        self.legs = VenueLegs()  # the venue's position ids and funding booked per position
        self.risk = RiskEngine(config.risk, config.symbols)
        self.breaker = Breaker(config.breaker)
        self.daily = DailyPnl()
        self._seq = EventSequencer()
        self.instruments: dict[str, Instrument] = {}
        self._by_id: dict[int, Instrument] = {}
        self._grids: dict[str, tuple[DecimalGrid, DecimalGrid]] = {}  # price, qty per symbol
        self._mid_grids: dict[int, DecimalGrid] = {}  # the price grid per symbol id
        self.strategy: Strategy | None = None
        self._ids: ClientIdGenerator | None = None
        self._quotes: dict[str, Quote] = {}
        self._book_ns: dict[str, int] = {}  # ts_recv_ns of the newest book per symbol
        self.stale: dict[str, int] = {}  # symbols flagged FLAG_STALE → first stale record's stamp
        self._pub_ns: dict[str, deque[tuple[int, int]]] = {}  # (ts_recv, ts_pub) of recent books
        self.marks: dict[str, Decimal] = {}
        self.reconciler = Reconciler(config, self, clock)
        self.balance_venue: Decimal | None = None
        self.tasks = TaskRunner(loop)
        self.driver = OrderDriver(config, self, metrics, clock)
        self._ws_up = True
        self._due: dict[str, int] = {}
        self._refusal_seen: dict[tuple[str, RefusalReason], int] = {}
        self.counters: Counter[str] = Counter()
        self.last_tick_to_order_ns = 0
        self._pending = PendingMetrics()  # Prometheus work: in housekeeping
        self.sent_later = SentAfterSend(journal, loop, self._emit, self._seq)
        self._net: tuple[int, dict[str, Decimal]] = (-1, {})  # (positions.version, net qty)
        self._rings = RingWatch({"sig": sig, "book": book})
        self.reads = ReadLog(journal, config.journal.reads_flush_s)  # what trading steps read
        self.housekeeping_in_step = True  # False: the host calls housekeeping() (procs.hotpath)

    # -- start-up ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the venue, load instruments, rebuild from the journal; state: reconciling."""
        c, now = self._c, self._clock()
        await self.venue.start(self)
        for inst in await self.venue.instruments(c.symbols):
            self.instruments[inst.symbol] = inst
            self._by_id[inst.symbol_id] = inst
            self._grids[inst.symbol] = (DecimalGrid(inst.tick), DecimalGrid(inst.step))
            self._mid_grids[inst.symbol_id] = self._grids[inst.symbol][0]
            self.positions.set_step(inst.symbol, inst.step)  # net lots, for strategy and risk
        rec = self.journal.recover(hedge=self.positions.hedge)
        self.tracker.restore(rec.orders)
        self.positions.restore(rec.positions.snapshots())
        self.legs.restore(rec.funding)
        for tr in self.tracker.recover_intents(now):
            self.apply(tr, now)  # written/sent before the crash, never answered: UNKNOWN
        used = [o.client_id for o in rec.orders]
        self._ids = ClientIdGenerator.after(c.client_id_prefix, now // 1_000_000, used)
        self.reads.run_ms = self._ids.epoch_ms
        self.strategy = Strategy(
            c.strategy, self.instruments, self._ids, symbols=c.symbols, hedge=self.positions.hedge
        )
        daily = self.journal.load_daily()
        if daily is not None:
            self.daily.restore(*daily)
        self.reconciler.restore()
        self.tasks.install()
        positions = {p.symbol: str(p.qty) for p in self.positions.snapshots()}
        log.info("recovered orders=%d open=%d fills=%d positions=%s mode=%s", len(rec.orders),
                 len(self.tracker.open_orders()), rec.fills_total, positions, c.mode)  # fmt: skip

    # -- the hot path ------------------------------------------------------------------------

    def step(self) -> int:
        """One read of both rings; a live venue's calls start as it ends (``Venue``), then the
        events it made are sent (``EventOutbox``)."""
        self._out.hold()
        eager = self.venue.eager_sends
        if eager:
            self.tasks.hold()
        try:
            return self._step()
        finally:
            if eager:
                self.tasks.release()  # before the process's next pass, in the order they were made
            self._out.release()

    def _step(self) -> int:
        self.tasks.check()  # a callback or task failed: crash, don't limp
        n = 0
        books = self._book.poll(self._c.batch_max)
        if len(books):
            self.reads.books = books
            self._on_books(books)
            n += len(books)
        sigs = self._sig.poll(self._c.batch_max)
        if len(sigs):
            self._pending.signals += len(sigs)  # reaches Prometheus in housekeeping
            self._on_signals(sigs)
            n += len(sigs)
        now = self._clock()
        if self.housekeeping_in_step and now >= self._due.get("hk", 0):
            self._due["hk"] = now + int(self._c.housekeeping_s * NS)
            self.housekeeping(now)
        return n

    def _on_books(self, batch: Records) -> None:
        newest: dict[int, tuple[Any, ...]] = {}
        by_id = self._by_id
        for row in batch.tolist():  # every field of every row in one call; arrays for levels
            if row[_B_SID] in by_id:
                newest[row[_B_SID]] = row  # later rows win
        paper = self.venue if isinstance(self.venue, PaperVenueAdapter) else None
        for sid, row in newest.items():
            inst = by_id[sid]
            sym = inst.symbol
            two_sided = row[_B_NB] and row[_B_NA]
            if two_sided:
                to_px = self._grids[sym][0]
                bid_f, ask_f = row[_B_BID].item(0), row[_B_ASK].item(0)
                bid, ask = to_px(bid_f), to_px(ask_f)
                q = self._quotes.get(sym)
                if q is None or q.best_bid != bid or q.best_ask != ask:  # kept while the same
                    self._quotes[sym] = Quote(bid, ask, to_px.units(bid_f), to_px.units(ask_f))
            recv = row[_B_RECV]
            if not row[_B_FLAGS] & FLAG_STALE:
                # only fresh books age the data: ingest's stale markers carry new receive stamps,
                # so counting them would make stale data look fresh to the pre-trade guard. The
                # breaker sees the real age in _watch (after stale_data_s), not a start-up gap.
                self._book_ns[sym] = recv
                self.stale.pop(sym, None)
            else:  # untradeable from the first stale record to the first clean one
                self.stale.setdefault(sym, recv)
            pubs = self._pub_ns.get(sym) or self._pub_ns.setdefault(sym, deque(maxlen=256))
            pubs.append((recv, row[_B_PUB]))
            if paper is not None:  # as its record: Decimal levels only when needed (see docs)
                q = self._quotes[sym] if two_sided else None
                best = (q.best_bid, q.best_ask) if q is not None else None
                paper.on_record(RecordBook(row, inst, self._grids[sym]), best)

    def _on_signals(self, batch: Records) -> None:
        if not self.can_trade or self.strategy is None:
            return
        now = self._clock()
        for sig in signals_from_records(batch, self._by_id, self._mid_grids):
            quote = self._quotes.get(sig.symbol)
            if quote is None:
                continue
            position = self.positions.net_lots(sig.symbol)
            working = self.tracker.open_orders(sig.symbol)
            for action in self.strategy.decide(sig, quote, position, working, now):
                self._act(action, now)
        self.reads.note(batch, now)

    def _act(self, action: Action, now: int) -> None:
        if isinstance(action, PlaceOrder):
            self.place(action.request, now)
        elif isinstance(action, CancelOrder):
            self.cancel(action.client_id, now, action.reason)
        elif isinstance(action, ReplaceOrder):
            # cancel now, the new quote at the next signal once confirmed: never both counted
            self.cancel(action.cancel_client_id, now, "replace")

    def risk_context(self, symbol: str, now: int) -> RiskContext:
        q = self._quotes.get(symbol)
        version, net = self._net
        if version != self.positions.version or len(net) != len(self.instruments):
            net = {s: self.positions.net_qty(s) for s in self.instruments}
            self._net = (self.positions.version, net)
        return RiskContext(
            now_ns=now,
            instrument=self.instruments[symbol],
            mid=None if q is None else q.mid,
            mid2=None if q is None or q.bid_ticks < 0 else q.bid_ticks + q.ask_ticks,
            position_lots=self.positions.net_lots(symbol),
            ts_data_ns=0 if symbol in self.stale else self._book_ns.get(symbol, 0),
            mark=self.marks.get(symbol),
            positions=net,  # not changed by risk; rebuilt when a leg changes
            marks=self._marks_or_mid(),
            open_orders=self.tracker.open_orders(),
            day_pnl=self.daily.day_pnl,
            drawdown=self.daily.drawdown,
            breaker=self.breaker.state,
            kill_switch=self.killswitch.on,
        )

    def place(self, req: OrderRequest, now: int) -> bool:
        """Risk-check, journal the intent, then send; False when refused."""
        if req.reduce_only and req.position_side is not PositionSide.BOTH and not req.position_id:
            # a hedge-mode close names the venue's position (the venue refuses it otherwise)
            req = replace(req, position_id=self.legs.position_id(req.symbol, req.position_side))
        held = self.breaker.hold_reason(now, reduce_only=req.reduce_only)
        if held:  # counted, not journaled: a short wait, not a refusal
            self.counters[f"{held}_deferred_total"] += 1
            return False
        refusal = self.risk.check(req, self.risk_context(req.symbol, now))
        if refusal is not None:
            self._refused(refusal)
            return False
        t0 = time.perf_counter_ns()
        if not self.journal.record_intent(req, now):  # logged BEFORE the order can leave
            return False  # the disk refused it (full): not sent; the breaker halts
        self._pending.intent_writes_ns.append(time.perf_counter_ns() - t0)
        leave = self._clock()  # the order leaves execution now: its ts_order_ns
        req = req.leaving_at(leave)
        sent = self.tracker.add_sent(req, now, leave)  # add_intent, then mark_sent, at once
        self._observe_latency(req, leave)
        self._pending.sent += 1
        self.counters["orders_sent_total"] += 1
        self.spawn(self.driver.send(req))
        self.sent_later.add(sent, leave)  # its row and event: after the send (sent.py)
        return True

    def _next_seq(self) -> int:
        """The next event's seq, after the deferred SENT events (theirs come first)."""
        if self.sent_later:
            self.sent_later.publish()
        return self._seq.next()

    def _observe_latency(self, req: OrderRequest, leave: int) -> None:
        s = req.stamps
        if s.ts_recv_ns:
            books = self._pub_ns.get(req.symbol, ())  # newest first: usually the first one
            pub = next((p for r, p in reversed(books) if r == s.ts_recv_ns), 0)
            self.last_tick_to_order_ns = leave - s.ts_recv_ns
            self._pending.latencies.append((s, leave, pub))  # histograms: in housekeeping

    def _flush_metrics(self) -> None:
        """Prometheus work kept off the per-signal path (~20 µs an order): every housekeeping_s."""
        intents = self.journal.intent_log
        self._pending.flush(self._m, intents.drain_sync_lags() if intents is not None else [])

    def cancel(self, client_id: str, now: int, reason: str) -> None:
        """Request a cancel once; an UNKNOWN order is resolved by its query first."""
        o = self.tracker.get(client_id)
        if o.status not in CANCELLABLE or o.ts_cancel_ns:
            return
        updated = self.tracker.request_cancel(client_id, now)
        self._m.cancels_sent.inc()
        self.counters["cancels_sent_total"] += 1
        self.spawn(self.driver.send_cancel(o.symbol, client_id))  # its row: with the next write
        self.sent_later.defer_row(updated, o.status, f"cancel requested: {reason}", now)

    async def query(self, client_id: str) -> None:
        await self.driver.query(client_id)

    # -- venue events (VenueSink) ------------------------------------------------------------

    def on_order_update(self, update: VenueOrderUpdate) -> None:
        if update.client_id not in self.tracker:
            self.counters["foreign_updates_total"] += 1  # not ours, or pruned: reconcile decides
            return
        now = self._clock()
        self.apply(self.tracker.on_venue_update(update, now), now)

    def on_balance(self, balance: Decimal) -> None:
        self.balance_venue = balance

    def on_position(self, position: VenuePosition) -> None:
        """A venue position figure: note its id, book the funding it newly reports."""
        now = self._clock()
        ev = self.legs.observe(position, now)
        if ev is not None:
            self.book_funding(ev, now)

    def on_funding(self, event: FundingEvent) -> None:
        self.book_funding(event, self._clock())

    def book_funding(self, ev: FundingEvent, now: int) -> None:
        """Journal one funding payment and apply it to its leg (once per event id)."""
        if not self.journal.record_funding(ev):
            return  # already journaled (a replay): already in the positions too
        self.positions.apply_funding(ev)
        self.counters["funding_events_total"] += 1
        log.info("funding symbol=%s side=%s amount=%s id=%s",
                 ev.symbol, ev.position_side, ev.amount, ev.event_id)  # fmt: skip
        self._publish_position(ev.symbol, now)
        self._update_pnl(now)

    def book_fill(self, fill: Fill, now: int) -> None:
        """Journal and book a fill that no order transition carries (an operator adoption)."""
        if not self.journal.record_fill(fill):
            return
        self.positions.apply_fill(fill)
        self.counters["fills_total"] += 1
        self._publish_position(fill.symbol, now)
        self._update_pnl(now)

    def on_resync(self) -> None:
        log.info("venue resync: reconciling")
        self.reconciler.request()

    def apply(self, tr: OrderTransition | None, now: int) -> None:
        if tr is None:
            return
        if tr.new is OrderStatus.REJECTED:
            self._m.rejects.inc()
        if not tr.fills:  # nothing to book: its row and event with the next write (sent.py)
            self.sent_later.add(tr, now)
            return
        new_fills = self.journal.record_transition(tr, now)
        self.sent_later.rows_later()  # its rows, in the intent log: committed with the next flush
        self._emit(order_topic(tr.order.symbol), order_event(tr, self._next_seq(), now))
        for f in new_fills:
            self.positions.apply_fill(f)
            self._m.fills.inc()
            self.counters["fills_total"] += 1
            self._emit(fill_topic(f.symbol), fill_event(f, tr.order.request, self._next_seq()))
        if new_fills:
            self._publish_position(tr.order.symbol, now)
            self._update_pnl(now)

    # -- breaker, kill switch, refusals --------------------------------------------------------

    def _refused(self, r: Refusal) -> None:
        self._pending.refused(r.reason)  # Prometheus: in housekeeping
        self.counters["refusals_total"] += 1
        key = (r.symbol, r.reason)
        if r.ts_ns - self._refusal_seen.get(key, -NS * 10) < REFUSAL_JOURNAL_S * NS:
            return  # counted; journaled at most once a second per symbol and reason
        self._refusal_seen[key] = r.ts_ns
        self.journal.record_refusal(r)
        self._emit(risk_topic(), risk_event(r, self._next_seq()))

    def on_breaker(self, t: BreakerTransition | None) -> None:
        if t is None:
            return
        self.journal.record_breaker(t)
        self._emit(breaker_topic(), breaker_event(t, self._next_seq()))
        self._m.breaker_transitions.labels(str(t.trigger)).inc()
        if t.new is BreakerState.HALTED:
            self.cancel_all(t.ts_ns, f"breaker halted: {t.trigger}")

    def cancel_all(self, now: int, reason: str) -> None:
        for o in self.tracker.open_orders():
            self.cancel(o.client_id, now, reason)

    def venue_error(self, exc: VenueCallError, *, ok_for_breaker: bool) -> None:
        self._m.venue_errors.labels(exc.kind).inc()
        self.counters["venue_errors_total"] += 1
        if exc.kind == RATE_LIMITED:  # back off; no verdict on the venue's health
            self.counters["rate_limited_total"] += 1
            self.breaker.on_rate_limited(self._clock())
            return
        self.on_breaker(self.breaker.on_rest_result(ok_for_breaker, self._clock()))

    # -- housekeeping (every housekeeping_s) -------------------------------------------------

    def housekeeping(self, now: int | None = None) -> None:
        c, now = self._c, self._clock() if now is None else now
        self._flush_metrics()
        self.venue.check()
        self._watch(now)
        for tr in self.tracker.expire(now):
            self.apply(tr, now)
        for cid in self.tracker.needs_query(now):
            if not self.driver.querying(cid):
                self.spawn(self.query(cid))
        if self._is_due("marks", now, c.venue.mark_poll_s):
            self.spawn(self._poll_marks())
        self._update_pnl(now, gauges=True)
        self.journal.merge_wal()  # here, not inside an order's intent (journal.py)
        if self._is_due("snapshot", now, c.position_snapshot_interval_s):
            self.journal.record_positions(self.positions.snapshots(), now)
            self.journal.save_daily(*self.daily.state())
            for sym in self.positions.symbols():
                self._publish_position(sym, now)
            self.tracker.prune(now - int(PRUNE_AFTER_S * NS))
            self.driver.prune()
        self.reconciler.maybe_start(now)
        set_gauges(self, self._m)

    def _watch(self, now: int) -> None:
        """Kill switch, private WS state, breaker clocks and market-data age."""
        c = self._c
        changed = self.killswitch.poll(now)
        if changed is not None:
            log.warning("kill switch on=%s reason=%s", changed.on, changed.reason)
        if self.killswitch.on or self.breaker.state is BreakerState.HALTED:
            self.cancel_all(now, "kill switch" if self.killswitch.on else "breaker halted")
        up = self.venue.ws_connected
        if up != self._ws_up or not up:
            self._ws_up = up
            self.on_breaker(self.breaker.on_ws(up, now))
        self.on_breaker(self.breaker.tick(now, self.journal.write_error))
        for ts in self._book_ns.values():
            age_s = (now - ts) / NS
            if age_s > c.breaker.stale_data_s:
                self.on_breaker(self.breaker.on_data_age(age_s, now))  # logs once, escalating

    def _is_due(self, key: str, now: int, period_s: float) -> bool:
        if now < self._due.get(key, 0):
            return False
        self._due[key] = now + int(period_s * NS)
        return True

    async def _poll_marks(self) -> None:
        try:
            self.marks.update(await self.venue.marks(list(self.instruments)))
        except VenueCallError as exc:
            self.venue_error(exc, ok_for_breaker=False)

    def _marks_or_mid(self) -> dict[str, Decimal]:
        out = {s: q.mid for s, q in self._quotes.items()}
        out.update(self.marks)
        return out

    def _update_pnl(self, now: int, *, gauges: bool = False) -> None:
        """The day's P&L to the breaker (after every fill: it halts before the next order); to
        Prometheus from housekeeping only (every housekeeping_s; ~30 µs in situ on a fill)."""
        totals = self.positions.priced_totals(self._marks_or_mid())
        if totals is None:
            return  # no price for an open leg yet
        self.daily.update(totals.net, now)
        self.on_breaker(self.breaker.on_pnl(self.daily.day_pnl, now))
        if gauges:
            for kind, gauge in self._pnl_gauges:
                gauge.set(float(getattr(totals, kind)))

    def _publish_position(self, symbol: str, now: int) -> None:
        mark = self._marks_or_mid().get(symbol)
        for p in self.positions.snapshots():
            if p.symbol == symbol:
                ev = position_event(p, mark if mark is not None else ZERO, self._next_seq(), now)
                self._emit(position_topic(symbol), ev)

    # -- reconciliation (reconciler.py) ------------------------------------------------------

    @property
    def reconciled(self) -> bool:
        return self.reconciler.reconciled

    @property
    def last_reconcile(self) -> Reconciliation | None:
        return self.reconciler.last

    def local_balance(self) -> Decimal | None:
        return self.reconciler.local_balance()

    def owns(self, client_id: str) -> bool:
        """Whether a clientId carries our prefix (an order of ours, maybe from an earlier run)."""
        assert self._ids is not None
        return self._ids.owns(client_id)

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def can_trade(self) -> bool:
        return self.reconciled

    @property
    def state(self) -> str:
        if not self.reconciled:
            return "reconciling"
        if self.killswitch.on:
            return "killed"
        return _STATES.get(self.breaker.state, "halted")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.spawn(coro)

    def health(self) -> dict[str, float | int | str]:
        self._flush_metrics()
        totals = self.positions.priced_totals(self._marks_or_mid())
        fields = {"mode": self._c.mode, **execution_health(self, self._clock(), totals)}
        return {**fields, **self._rings.health(), "last_seq": self._seq.last_seq}

    async def aclose(self) -> None:
        """Let in-flight venue calls finish briefly, then close the venue."""
        await self.tasks.drain(1.0)
        await self.venue.close()

    def close(self) -> None:
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.run_until_complete(self.aclose())  # the venue calls answer first
        self.sent_later.flush()
        self._flush_metrics()
        self.reads.flush()
        self._sig.close()
        self._book.close()
        self.journal.close()
