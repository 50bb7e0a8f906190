"""QueueMatcher: queue models, partial fills, effects, reduce-only, fees, funding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from procs.matching import BookLevels, OrderSpec, QueueConfig, QueueMatcher, TradePrint
from procs.matching.engine import MatchReject
from procs.matching.fees import fee, funding_amount
from procs.matching.queue import PowerProbQueue, RiskAverseQueue

D = Decimal
SYM = "BTCUSDT"


def book(bids, asks, ts=0) -> BookLevels:
    return BookLevels(SYM, tuple((D(p), D(q)) for p, q in bids),
                      tuple((D(p), D(q)) for p, q in asks), ts)  # fmt: skip


BOOK = book([("99.5", "3"), ("99", "5")], [("100", "1"), ("100.5", "2")])


def matcher(**kw) -> QueueMatcher:
    return QueueMatcher(maker_fee_rate=D("0.0002"), taker_fee_rate=D("0.0006"), **kw)


def spec(cid="c1", buy=True, qty="1", price="99.5", effect="GTC", ro=False) -> OrderSpec:
    return OrderSpec(cid, SYM, buy, D(qty), None if price is None else D(price), effect, ro)


def test_risk_averse_queue_moves_only_when_the_level_shrinks_below_us():
    q = RiskAverseQueue()
    assert q.on_depth(D(3), D(0), D(5), D(4)) == D(3)  # cancels behind us
    assert q.on_depth(D(3), D(0), D(5), D(2)) == D(2)


def test_power_queue_splits_cancels_by_size_ahead_and_behind():
    q = PowerProbQueue(2.0)
    # 3 ahead, 1 behind, 2 cancelled: prob behind = 1/(1+9) -> front 3 - 0.9*2 + min(1-0.2, 0)
    assert q.on_depth(D(3), D(0), D(4), D(2)) == D("1.2").quantize(D(1), rounding="ROUND_CEILING")
    # trades already explained the shrink: nothing moves
    assert q.on_depth(D(3), D(2), D(5), D(3)) == D(3)
    # a bigger power puts more cancels ahead when more is ahead than behind
    assert PowerProbQueue(1.0).on_depth(D(30), D(0), D(40), D(20)) > q.on_depth(
        D(30), D(0), D(40), D(20)
    )


def test_power_model_fills_earlier_than_risk_averse_on_the_same_events():
    fills = {}
    for model in ("risk_averse", "power"):
        m = matcher(queue=QueueConfig(model=model, power=1.0))
        m.submit(spec(qty="1"), BOOK, 0)  # joins behind 3 at 99.5
        m.on_book(book([("99.5", "10"), ("99", "5")], [("100", "1")]))  # 7 join behind us
        m.on_book(book([("99.5", "6"), ("99", "5")], [("100", "1")]))  # 4 cancelled
        m.on_trade(TradePrint(SYM, D("99.5"), D(3), taker_buy=False))
        fills[model] = m.orders["c1"].filled
    assert fills == {"risk_averse": D(0), "power": D(1)}


def test_trades_at_our_price_eat_the_queue_then_fill_partially_with_maker_fee():
    m = matcher()
    m.submit(spec(qty="2"), BOOK, 0)
    assert m.on_trade(TradePrint(SYM, D("99.5"), D(2), taker_buy=False)) == []
    assert m.on_trade(TradePrint(SYM, D("99.5"), D(9), taker_buy=True)) == []  # buyer's print
    [o] = m.on_trade(TradePrint(SYM, D("99.5"), D("1.5"), taker_buy=False))
    maker_fee = fee(D("0.5"), D("99.5"), D("0.0002"))
    assert (o.status, o.filled, o.fee) == ("PART_FILLED", D("0.5"), maker_fee)
    assert m.position(SYM) == D("0.5")


def test_opposite_side_through_our_price_fills_all():
    m = matcher()
    m.submit(spec(qty="2"), BOOK, 0)
    [o] = m.on_book(book([("99", "1")], [("99.4", "1")]))
    assert (o.status, o.filled) == ("FILLED", D(2))


@pytest.mark.parametrize(
    ("effect", "qty", "price", "status", "filled"),
    [
        ("POST_ONLY", "1", "100", "CANCELED", "0"),
        ("FOK", "4", "100.5", "CANCELED", "0"),
        ("FOK", "3", "100.5", "FILLED", "3"),
        ("IOC", "2", "100", "PART_FILLED_CANCELED", "1"),
        ("GTC", "2", "100", "PART_FILLED", "1"),
        ("IOC", "2", None, "FILLED", "2"),
    ],
)
def test_effects(effect, qty, price, status, filled):
    m = matcher()
    *_, last = m.submit(spec(qty=qty, price=price, effect=effect), BOOK, 0)
    assert (last.status, last.filled) == (status, D(filled))


def test_market_walk_pays_taker_fee_per_level():
    m = matcher(keep_fills=True)
    m.submit(spec(qty="2", price=None, effect="IOC"), BOOK, 0)
    assert [(f.price, f.qty, f.maker) for f in m.fills] == [(D(100), D(1), False),
                                                           (D("100.5"), D(1), False)]  # fmt: skip
    assert m.orders["c1"].fee == fee(D(1), D(100), D("0.0006")) + fee(D(1), D("100.5"), D("0.0006"))


def test_reduce_only_is_refused_without_a_position_and_clamped_to_it():
    m = matcher(check_reduce_only=True)
    with pytest.raises(MatchReject) as e:
        m.submit(spec("r0", buy=False, ro=True), BOOK, 0)
    assert e.value.code == 30018
    m.submit(spec("b1", qty="1", price="100"), BOOK, 0)  # takes 1: long 1
    with pytest.raises(MatchReject) as e:
        m.submit(spec("r1", buy=True, ro=True), BOOK, 0)
    assert e.value.code == 30019
    [ack] = m.submit(spec("r2", buy=False, qty="5", price="101", ro=True), BOOK, 0)
    assert ack.qty == D(1)  # clamped to the position


def test_reduce_only_resting_order_is_cancelled_when_the_position_is_gone():
    m = matcher(check_reduce_only=True)
    m.submit(spec("b1", qty="1", price="100"), BOOK, 0)
    m.submit(spec("r1", buy=False, qty="1", price="101", ro=True), BOOK, 0)
    m.submit(spec("s1", buy=False, qty="1", price="99.5", effect="IOC"), BOOK, 0)  # flat again
    assert m.orders["r1"].status == "CANCELED"


def test_duplicate_client_id_and_cancel_of_final_order():
    m = matcher()
    m.submit(spec(), BOOK, 0)
    with pytest.raises(MatchReject):
        m.submit(spec(), BOOK, 0)
    assert m.cancel("c1").status == "CANCELED"
    assert m.cancel("c1") is None
    assert m.cancel("nope") is None


def test_funding_longs_pay_shorts_on_a_positive_rate():
    assert funding_amount(D(2), D(100), D("0.0001")) == D("-0.02")
    assert funding_amount(D(-2), D(100), D("0.0001")) == D("0.02")
    m = matcher()
    m.set_position(SYM, D(-1))
    assert m.settle_funding(SYM, D(100), D("0.0001")) == D("0.01")


def test_shrink_queues_moves_queues_like_on_book_without_levels():
    a, b = matcher(), matcher()
    for m in (a, b):
        m.submit(spec(qty="1"), BOOK, 0)  # 3 ahead at 99.5
    shrunk = book([("99.5", "1"), ("99", "5")], [("100", "1")])
    assert not a.may_fill(SYM, D("99.5"), D(100))
    a.on_book(shrunk)
    asked = []

    def qty_at(is_buy, price):
        asked.append((is_buy, price))
        return D(1)

    b.shrink_queues(SYM, qty_at)
    assert asked == [(True, D("99.5"))]  # one level per resting order, not the book
    assert a.orders["c1"].front == b.orders["c1"].front == D(1)


def test_observed_levels_take_each_displayed_level_once_and_leave_the_book():
    from procs.matching import ObservedLevels

    b = book([("99.5", "3")], [("100", "1"), ("100.5", "0"), ("101", "2")])
    liq = ObservedLevels(b)
    assert liq.available(True, D("101")) == D(3)
    f1 = liq.match_one(True, D(5), D("101"))
    assert f1 is not None
    assert (f1.price, f1.qty, f1.maker.owner) == (D(100), D(1), None)
    f2 = liq.match_one(True, D(4), D("101"))  # the empty level is skipped
    assert f2 is not None
    assert (f2.price, f2.qty) == (D(101), D(2))
    assert liq.match_one(True, D(2), D("101")) is None
    assert not liq.would_cross(True, D("101"))  # used up for this order
    assert liq.would_cross(False, D("99.5"))  # the other side is untouched
    assert b.asks == ((D(100), D(1)), (D("100.5"), D(0)), (D(101), D(2)))


def test_a_long_run_forgets_the_oldest_final_orders_and_never_an_open_one():
    m = matcher(retain_final=3)
    m.submit(spec("rest", price="99"), BOOK, 0)  # rests, open all along
    for i in range(20):
        m.submit(spec(f"ioc{i}", price="99", effect="IOC"), BOOK, 0)  # nothing crosses: final
        m.forget_old()
        assert len(m.orders) < 2 * 3
    assert m.orders["rest"].open
    assert list(m.orders)[-2:] == ["ioc18", "ioc19"]  # the newest final ones stay queryable
    assert m.forgotten_total == 21 - len(m.orders)
    assert m.cancel("ioc0") is None  # forgotten: like an unknown id
