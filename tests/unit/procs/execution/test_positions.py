"""Positions and PnL against hand-computed examples, and the cash-flow identity."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procs.trading.model import Fill, FundingEvent, PositionSide, Side
from procs.trading.positions import NS_PER_DAY, DailyPnl, PositionBook

D = Decimal
L, SH, B = PositionSide.LONG, PositionSide.SHORT, PositionSide.BOTH
_n = iter(range(10**9))


def fill(
    side: Side,
    qty: object,
    px: object,
    fee: object = "0",
    ps: PositionSide = B,
    symbol: str = "BTCUSDT",
) -> Fill:
    return Fill(
        fill_id=f"f{next(_n)}",
        client_id="c",
        order_id="o",
        symbol=symbol,
        side=side,
        qty=D(str(qty)),
        price=D(str(px)),
        fee=D(str(fee)),
        position_side=ps,
    )


def test_one_way_open_add_reduce_flip_hand_computed():
    book = PositionBook()
    book.apply_fill(fill(Side.BUY, "1", "100", fee="0.1"))
    book.apply_fill(fill(Side.BUY, "1", "110", fee="0.1"))
    p = book.position("BTCUSDT")
    assert (p.qty, p.avg_price) == (D(2), D(105))
    p = book.apply_fill(fill(Side.SELL, "0.5", "120", fee="0.05"))
    assert p.realised == D("7.5")  # 0.5 × (120 − 105)
    assert p.qty == D("1.5")
    assert p.avg_price == D(105)
    p = book.apply_fill(fill(Side.SELL, "2.5", "100"))  # close 1.5 (−7.5), open short 1 at 100
    assert p.realised == D(0)
    assert (p.qty, p.avg_price) == (D(-1), D(100))
    assert p.fees == D("0.25")
    assert p.unrealised(D(90)) == D(10)
    assert book.totals({"BTCUSDT": D(90)}).net == D("9.75")


def test_short_round_trip_realises_price_difference():
    book = PositionBook()
    book.apply_fill(fill(Side.SELL, "2", "50"))
    p = book.apply_fill(fill(Side.BUY, "2", "45"))
    assert (p.qty, p.cost, p.realised) == (D(0), D(0), D(10))


def test_hedge_legs_are_independent_and_cannot_flip():
    book = PositionBook(hedge=True)
    book.apply_fill(fill(Side.BUY, "1", "100", ps=L))
    book.apply_fill(fill(Side.SELL, "2", "101", ps=SH))
    assert book.net_qty("BTCUSDT") == D(-1)
    p = book.apply_fill(fill(Side.SELL, "1", "103", ps=L))
    assert (p.qty, p.realised) == (D(0), D(3))
    with pytest.raises(ValueError, match="flips"):
        book.apply_fill(fill(Side.BUY, "3", "100", ps=SH))
    with pytest.raises(ValueError, match="hedge mode"):
        book.apply_fill(fill(Side.BUY, "1", "100", ps=B))


def test_one_way_rejects_hedge_leg():
    with pytest.raises(ValueError, match="one-way"):
        PositionBook().apply_fill(fill(Side.BUY, "1", "1", ps=L))


def test_funding_accumulates_into_net():
    book = PositionBook()
    book.apply_fill(fill(Side.BUY, "1", "100"))
    book.apply_funding(FundingEvent(event_id="x", symbol="BTCUSDT", amount=D("-0.3")))
    t = book.totals({"BTCUSDT": D(100)})
    assert (t.funding, t.net) == (D("-0.3"), D("-0.3"))


trades = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals("0.001", "5", places=3),
        st.decimals("1", "200", places=2),
        st.decimals("-0.01", "0.5", places=4),
    ),
    min_size=1,
    max_size=30,
)


@given(trades, st.decimals("1", "200", places=2), st.decimals("-1", "1", places=2))
def test_pnl_equals_cash_flow_plus_marked_inventory(ts, mark, funding):
    book = PositionBook()
    cash = D(0)
    for side, qty, px, fee in ts:
        book.apply_fill(fill(side, qty, px, fee))
        cash += -side.sign * qty * px - fee
    book.apply_funding(FundingEvent(event_id="f", symbol="BTCUSDT", amount=funding))
    cash += funding
    p = book.position("BTCUSDT")
    assert p.qty == sum(s.sign * q for s, q, _, _ in ts)
    assert book.totals({"BTCUSDT": mark}).net == cash + p.qty * mark
    if p.qty == 0:
        assert p.realised - p.fees + p.funding == cash


def test_daily_pnl_day_rollover_and_drawdown():
    d = DailyPnl()
    d.update(D(10), NS_PER_DAY * 5 + 1)
    d.update(D(30), NS_PER_DAY * 5 + 2)
    d.update(D(5), NS_PER_DAY * 5 + 3)
    assert (d.day_pnl, d.drawdown) == (D(-5), D(25))
    d.update(D(4), NS_PER_DAY * 6)
    assert d.day_pnl == 0
    assert d.drawdown == D(26)
    e = DailyPnl()
    e.restore(*d.state())
    e.update(D(0), NS_PER_DAY * 6 + 1)
    assert (e.day_pnl, e.drawdown) == (D(-4), D(30))


def test_symbols_come_in_the_order_their_legs_appeared():
    # a set's order follows the string hash seed, which differs from process to process: a
    # backtest publishing positions in that order would not repeat byte for byte
    book = PositionBook()
    for sym in ("ETHUSDT", "BTCUSDT", "SOLUSDT", "ETHUSDT"):
        book.apply_fill(fill(Side.BUY, 1, 100, symbol=sym))
    assert book.symbols() == ["ETHUSDT", "BTCUSDT", "SOLUSDT"]


def test_priced_totals_wait_for_a_price_of_every_open_leg():
    book = PositionBook()
    book.apply_fill(fill(Side.BUY, "1", "100"))
    book.apply_fill(fill(Side.BUY, "1", "10", symbol="ETHUSDT"))
    book.apply_fill(fill(Side.SELL, "1", "12", symbol="ETHUSDT"))  # flat: needs no price
    assert book.priced_totals({}) is None
    assert book.priced_totals({"ETHUSDT": D(11)}) is None
    assert book.priced_totals({"BTCUSDT": D(90)}) == book.totals({"BTCUSDT": D(90)})
