"""The pure pieces wired together as the process will: signal → order → paper fill → journal.

Then a crash: a new journal connection rebuilds state, and reconciliation with the (paper) venue
agrees, so trading may resume.
"""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

from procs.trading.breaker import Breaker
from procs.trading.config import ExecutionConfig, SymbolConfig
from procs.trading.journal import Journal
from procs.trading.model import OrderStatus, Side, VenueOrderUpdate
from procs.trading.orders import ClientIdGenerator, OrderTracker
from procs.trading.paper import BookLevels, PaperVenue, TradePrint, levels
from procs.trading.positions import PositionBook
from procs.trading.reconcile import VenuePosition, VenueSnapshot, reconcile
from procs.trading.risk import RiskContext, RiskEngine
from procs.trading.strategy import (
    CancelOrder,
    PlaceOrder,
    Quote,
    ReplaceOrder,
    SignalInput,
    Strategy,
)

from .helpers import btc

D = Decimal
SEC = 1_000_000_000
SYM = "BTCUSDT"


class Engine:
    """A test double of the process loop, using only the modules' public API."""

    def __init__(self, cfg: ExecutionConfig, journal: Journal) -> None:
        self.inst = btc()
        self.journal = journal
        self.ids = ClientIdGenerator(cfg.client_id_prefix, 1000)
        self.strategy = Strategy(cfg.strategy, {SYM: self.inst}, self.ids, symbols=cfg.symbols)
        self.risk = RiskEngine(cfg.risk, cfg.symbols)
        self.breaker = Breaker(cfg.breaker)
        self.tracker = OrderTracker(
            ack_timeout_s=cfg.order_ack_timeout_s, cancel_timeout_s=cfg.cancel_timeout_s
        )
        self.positions = PositionBook()
        self.positions.set_step(SYM, self.inst.step)
        self.venue = PaperVenue(cfg.paper)

    def apply(self, updates: list[VenueOrderUpdate], now: int) -> None:
        for u in updates:
            tr = self.tracker.on_venue_update(u, now)
            if tr is not None:
                for f in self.journal.record_transition(tr, now):
                    self.positions.apply_fill(f)

    def place(
        self, action: PlaceOrder | ReplaceOrder, book: BookLevels, mid: Decimal, now: int
    ) -> None:
        req = action.request
        ctx = RiskContext(
            now_ns=now,
            instrument=self.inst,
            mid=mid,
            ts_data_ns=now,
            positions={SYM: self.positions.net_qty(SYM)},
            open_orders=self.tracker.open_orders(),
            breaker=self.breaker.state,
        )
        refusal = self.risk.check(req, ctx)
        if refusal is not None:
            self.journal.record_refusal(refusal)
            return
        self.tracker.add_intent(req, now)
        self.journal.record_intent(req, now)  # before it leaves
        self.journal.record_transition(self.tracker.mark_sent(req.client_id, now), now)
        self.apply(self.venue.submit(req, book, now), now)

    def cancel(self, client_id: str, now: int) -> None:
        o = self.tracker.request_cancel(client_id, now)
        self.journal.record_order(o, o.status, "cancel requested", now)
        self.apply(self.venue.cancel(client_id, now), now)

    def on_signal(self, score: float, book: BookLevels, now: int) -> None:
        bid, ask = book.bids[0][0], book.asks[0][0]
        mid = (bid + ask) / 2
        sig = SignalInput(symbol=SYM, score=score, mid=mid)
        actions = self.strategy.decide(
            sig, Quote(bid, ask), self.positions.net_lots(SYM), self.tracker.open_orders(SYM), now
        )
        for a in actions:
            if isinstance(a, CancelOrder):
                self.cancel(a.client_id, now)
            elif isinstance(a, ReplaceOrder):
                self.cancel(a.cancel_client_id, now)
                self.place(a, book, mid, now)
            else:
                self.place(a, book, mid, now)


def book(bid: str, ask: str) -> BookLevels:
    return BookLevels(SYM, levels((bid, "0.02")), levels((ask, "0.03")))


def test_pipeline_quote_fill_exit_then_crash_recovery_reconciles(tmp_path):
    cfg = ExecutionConfig(symbols=[SymbolConfig(symbol=SYM, symbol_id=1)])
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    e = Engine(cfg, j)

    e.on_signal(0.5, book("59999.9", "60000.1"), 1 * SEC)  # long: post-only bid at the best bid
    [bid] = e.tracker.open_orders(SYM)
    assert (bid.request.side, bid.request.price, bid.request.qty) == (
        Side.BUY,
        D("59999.9"),
        D("0.0016"),
    )
    e.on_signal(0.5, book("60000.1", "60000.3"), 2 * SEC)  # market moved up 2 ticks: replace
    [bid2] = e.tracker.open_orders(SYM)
    assert bid2.request.price == D("60000.1")
    assert e.tracker.get(bid.client_id).status is OrderStatus.CANCELED
    e.apply(
        e.venue.on_trade(TradePrint(SYM, D("60000.1"), D("0.021"), Side.SELL, 3 * SEC)), 3 * SEC
    )
    assert e.positions.net_qty(SYM) == D("0.001")  # 0.02 queued ahead, 0.001 reached us
    e.apply(
        e.venue.on_book(BookLevels(SYM, levels(("60000.0", "1")), levels(("60000.0", "1")))),
        4 * SEC,
    )
    assert e.positions.net_qty(SYM) == D("0.0016")
    assert e.tracker.open_orders() == []

    e.on_signal(
        0.05, book("60010.0", "60010.2"), 5 * SEC
    )  # signal faded: close with a reduce-only ask
    [ask] = e.tracker.open_orders(SYM)
    assert (ask.request.side, ask.request.reduce_only, ask.request.qty) == (
        Side.SELL,
        True,
        D("0.0016"),
    )
    e.apply(
        e.venue.on_trade(TradePrint(SYM, D("60010.3"), D(1), Side.BUY, 6 * SEC)), 6 * SEC
    )  # through it
    assert e.positions.net_qty(SYM) == 0
    realised = e.positions.position(SYM).realised
    assert realised == D("0.0016") * (D("60010.2") - D("60000.1"))

    e.on_signal(0.6, book("60010.0", "60010.2"), 7 * SEC)  # a new bid, left resting at the crash
    [resting] = e.tracker.open_orders(SYM)

    # crash: no clean shutdown; a new process opens the same journal
    j2 = Journal.open(path)
    rec = j2.recover(hedge=False)
    tracker = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    tracker.restore(rec.orders)
    assert [o.client_id for o in tracker.open_orders()] == [resting.client_id]
    assert rec.positions.position(SYM) == e.positions.position(SYM)
    ids = ClientIdGenerator.after("br", now_ms=0, used=[rec.last_client_id])
    assert ids() not in {o.client_id for o in rec.orders}

    venue = VenueSnapshot(
        open_orders=e.venue.open_orders(), positions=[VenuePosition(symbol=SYM, qty=D(0))]
    )
    result = reconcile(tracker.open_orders(), rec.positions.snapshots(), venue, owns=ids.owns)
    assert result.in_sync
    assert j2.verify_audit().ok
    j.close()
    j2.close()
