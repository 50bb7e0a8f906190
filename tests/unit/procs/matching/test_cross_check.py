"""Cross-check: the same orders against simex's exchange (full book) and against QueueMatcher
(observed book: paper mode and the backtest) give the same fills, statuses, fees and positions
where their models coincide: takers against a book nobody else changes, post-only, IOC, FOK,
reduce-only, self-trade prevention, a maker fill alone at its price, funding.

The observed book handed to QueueMatcher is simex's book without our own orders (what paper
mode sees of the venue), taken before each order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from procs.exchange.engine import Exchange
from procs.exchange.model import ExchangeError, SymbolSpec
from procs.matching import BookLevels, OrderSpec, QueueMatcher, TradePrint
from procs.matching.fees import funding_amount
from procs.matching.rules import MatchReject

SYM = "BTCUSDT"
SPEC = SymbolSpec(symbol=SYM, base="BTC", base_precision=3, quote_precision=1)
BIDS = (("99.5", "3"), ("99", "5"), ("98", "2"))
ASKS = (("100", "1"), ("100.5", "2"), ("101", "4"))

Fills = list[tuple[D, D, D, bool]]  # (price, qty, fee, maker)


@dataclass(frozen=True)
class Seen:
    status: str
    qty: D
    filled: D
    fee: D
    fills: Fills


class Pair:
    """One order sequence, run on simex's Exchange and on a QueueMatcher side by side."""

    def __init__(self) -> None:
        self.ex = Exchange([SPEC], {"a": D(10**7)})
        for i, (p, q) in enumerate(BIDS):
            self.ex.mm_add(SYM, f"gb{i}", True, D(p), D(q), 0)
        for i, (p, q) in enumerate(ASKS):
            self.ex.mm_add(SYM, f"ga{i}", False, D(p), D(q), 0)
        self.ex.drain()
        self.qm = QueueMatcher(
            maker_fee_rate=SPEC.maker_fee,
            taker_fee_rate=SPEC.taker_fee,
            check_reduce_only=True,
            keep_fills=True,
        )
        self._ids: dict[str, str] = {}  # client id -> simex order id
        self._qm_seen = 0

    def observed(self) -> BookLevels:
        """simex's book as paper mode sees the venue: other people's orders only."""
        book = self.ex.books[SYM]

        def side(is_buy: bool) -> tuple[tuple[D, D], ...]:
            s = book.side(is_buy)
            out = []
            for px in s.iter_prices():
                q = sum((r.remaining for r in s.levels[px] if r.owner is None), D(0))
                if q:
                    out.append((px, q))
            return tuple(out)

        return BookLevels(SYM, side(True), side(False))

    def place(
        self,
        cid: str,
        buy: bool,
        qty: str,
        price: str | None,
        effect: str = "GTC",
        ro: bool = False,
    ) -> tuple[Seen, Seen]:
        book = self.observed()
        acct = self.ex.accounts["a"]
        n_fills = len(acct.fills)
        o = self.ex.place_order(
            "a", symbol=SYM, side="BUY" if buy else "SELL",
            order_type="MARKET" if price is None else "LIMIT", qty=D(qty), ts_ms=1,
            price=None if price is None else D(price), effect=effect, reduce_only=ro,
            client_id=cid,
        )  # fmt: skip
        self._ids[cid] = o.order_id
        simex = Seen(o.status, o.qty, o.filled, o.fee, _simex_fills(acct.fills[n_fills:]))
        spec = OrderSpec(cid, SYM, buy, D(qty), None if price is None else D(price),
                         "IOC" if price is None else effect, ro)  # fmt: skip
        self.qm.submit(spec, book, 0)
        return simex, self._queue_seen(cid)

    def _queue_seen(self, cid: str) -> Seen:
        m = self.qm.orders[cid]
        assert self.qm.fills is not None
        new = self.qm.fills[self._qm_seen :]
        self._qm_seen = len(self.qm.fills)
        fills = [(f.price, f.qty, f.fee, f.maker) for f in new]
        return Seen(m.status, m.qty, m.filled, m.fee, fills)

    def status(self, cid: str) -> tuple[str, str]:
        simex = self.ex.accounts["a"].orders[self._ids[cid]].status
        return simex, self.qm.orders[cid].status

    def position(self) -> tuple[D, D]:
        pos = self.ex.accounts["a"].positions.get((SYM, "NET"))
        signed = D(0) if pos is None else pos.qty if pos.side == "LONG" else -pos.qty
        return signed, self.qm.position(SYM)


def _simex_fills(views: list[dict[str, object]]) -> Fills:
    return [
        (D(str(v["price"])), D(str(v["qty"])), D(str(v["fee"])), v["roleType"] == "MAKER")
        for v in views
    ]


def same(pair: tuple[Seen, Seen]) -> Seen:
    simex, queue = pair
    assert simex == queue
    return simex


def test_a_market_order_walks_the_book_with_taker_fees():
    p = Pair()
    s = same(p.place("m1", True, "2.5", None))
    assert (s.status, s.filled) == ("FILLED", D("2.5"))
    assert [(px, q, mk) for px, q, _, mk in s.fills] == [
        (D(100), D(1), False),
        (D("100.5"), D("1.5"), False),
    ]
    assert s.fee == D("0.0006") * (D(100) + D("100.5") * D("1.5"))
    assert p.position() == (D("2.5"), D("2.5"))


def test_a_crossing_limit_takes_what_it_reaches_then_rests():
    p = Pair()
    s = same(p.place("l1", True, "4", "100.5"))
    assert (s.status, s.filled) == ("PART_FILLED", D(3))
    s = same(p.place("l2", False, "2", "99"))  # sells into the bids: 99.5 x 2
    assert (s.status, s.filled, s.fills[0][0]) == ("FILLED", D(2), D("99.5"))
    assert p.position() == (D(1), D(1))


@pytest.mark.parametrize(("price", "status"), [("100", "CANCELED"), ("99.8", "NEW")])
def test_post_only_is_cancelled_when_it_would_cross_and_rests_otherwise(price, status):
    p = Pair()
    s = same(p.place("p1", True, "1", price, "POST_ONLY"))
    assert (s.status, s.filled, s.fills) == (status, D(0), [])


def test_ioc_fills_what_crosses_and_cancels_the_rest():
    p = Pair()
    s = same(p.place("i1", True, "5", "100.5", "IOC"))
    assert (s.status, s.filled) == ("PART_FILLED_CANCELED", D(3))
    s = same(p.place("i2", False, "1", "99.6", "IOC"))  # nothing crosses
    assert (s.status, s.filled) == ("CANCELED", D(0))


def test_fok_is_refused_whole_when_short_and_filled_whole_otherwise():
    p = Pair()
    s = same(p.place("f1", True, "4", "100.5", "FOK"))
    assert (s.status, s.filled, s.fills) == ("CANCELED", D(0), [])
    s = same(p.place("f2", True, "3", "100.5", "FOK"))
    assert (s.status, s.filled) == ("FILLED", D(3))


def test_reduce_only_is_refused_without_a_position_and_clamped_to_it():
    p = Pair()
    with pytest.raises(ExchangeError) as sx:
        p.ex.place_order("a", symbol=SYM, side="SELL", order_type="LIMIT", qty=D(1), ts_ms=1,
                         price=D(101), reduce_only=True)  # fmt: skip
    with pytest.raises(MatchReject) as qm:
        p.qm.submit(OrderSpec("r0", SYM, False, D(1), D(101), "GTC", True), p.observed(), 0)
    assert sx.value.code == qm.value.code == 30018
    same(p.place("b1", True, "1.5", None))  # long 1.5
    with pytest.raises(ExchangeError) as sx:
        p.ex.place_order("a", symbol=SYM, side="BUY", order_type="LIMIT", qty=D(1), ts_ms=1,
                         price=D(99), reduce_only=True)  # fmt: skip
    with pytest.raises(MatchReject) as qm:
        p.qm.submit(OrderSpec("r1", SYM, True, D(1), D(99), "GTC", True), p.observed(), 0)
    assert sx.value.code == qm.value.code == 30019
    s = same(p.place("r2", False, "5", "101", ro=True))  # rests, clamped to the position
    assert (s.status, s.qty) == ("NEW", D("1.5"))
    s = same(p.place("r3", False, "1", "99", "IOC", ro=True))  # closes 1 of 1.5
    assert (s.status, s.filled) == ("FILLED", D(1))
    assert p.position() == (D("0.5"), D("0.5"))
    # the resting reduce-only order follows the position down: 0.5 left to close
    assert p.ex.accounts["a"].orders[p._ids["r2"]].qty == p.qm.orders["r2"].qty == D("0.5")
    same(p.place("r4", False, "0.5", None, ro=True))  # flat: the resting one is cancelled
    assert p.status("r2") == ("CANCELED", "CANCELED")
    assert p.position() == (D(0), D(0))


def test_self_trade_prevention_cancels_our_resting_order_the_taker_reaches():
    p = Pair()
    s = same(p.place("ask", False, "1", "100.2"))  # ours, inside the spread
    assert s.status == "NEW"
    s = same(p.place("bid", True, "2", "100.5"))  # reaches our ask: it is cancelled first
    assert (s.status, s.filled) == ("FILLED", D(2))
    assert [(px, q) for px, q, _, _ in s.fills] == [(D(100), D(1)), (D("100.5"), D(1))]
    assert p.status("ask") == ("CANCELED", "CANCELED")


def test_post_only_that_would_cross_only_our_own_order_is_cancelled():
    p = Pair()
    same(p.place("ask", False, "1", "99.8"))
    s = same(p.place("bid", True, "1", "99.9", "POST_ONLY"))
    assert s.status == "CANCELED"
    assert p.status("ask") == ("NEW", "NEW")


def test_a_resting_order_alone_at_its_price_fills_as_maker_on_the_print():
    p = Pair()
    same(p.place("bid", True, "2", "99.7"))  # a new best bid, nothing queued ahead
    p.ex.mm_take(SYM, False, D("1.5"), 2)  # someone sells 1.5 at the best bid
    _, trades = p.ex.drain()
    [tr] = trades
    p.qm.on_trade(TradePrint(SYM, tr.price, tr.qty, taker_buy=False))
    acct = p.ex.accounts["a"]
    simex_fills = _simex_fills(acct.fills[-1:])
    assert simex_fills == p._queue_seen("bid").fills
    [(price, qty, _, maker)] = simex_fills
    assert (price, qty, maker) == (D("99.7"), D("1.5"), True)
    assert p.status("bid") == ("PART_FILLED", "PART_FILLED")
    assert p.position() == (D("1.5"), D("1.5"))


def test_funding_is_the_same_amount_on_the_same_position():
    from procs.simex.funding import settle_funding

    p = Pair()
    same(p.place("s1", False, "2", "99"))  # short 2
    mark = p.ex.mark(SYM)
    assert mark is not None
    rate = D("0.0001")
    wallet = p.ex.accounts["a"].wallet
    settle_funding(p.ex, 8 * 3_600_000, {SYM: rate})
    received = p.ex.accounts["a"].wallet - wallet
    assert received == p.qm.settle_funding(SYM, mark, rate) == funding_amount(D(-2), mark, rate)
    assert received > 0  # a positive rate: shorts receive
