"""Engine semantics: TIF, reduce-only, hedge mode, duplicate clientId, min qty, margin."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from procs.exchange.engine import Exchange
from procs.exchange.model import ExchangeError, SymbolSpec
from procs.simex import admin

BTC = SymbolSpec(
    symbol="BTCUSDT", base="BTC", base_precision=3, quote_precision=1, min_qty=D("0.001")
)


def make(balance: str = "100000") -> Exchange:
    ex = Exchange([BTC], {"a": D(balance), "b": D(balance)})
    for i in range(5):
        ex.mm_add("BTCUSDT", f"mb{i}", True, D(100) - i, D(1), 0)
        ex.mm_add("BTCUSDT", f"ma{i}", False, D(101) + i, D(1), 0)
    ex.drain()
    return ex


def place(ex: Exchange, acct: str = "a", **kw: object):
    args: dict[str, object] = {"symbol": "BTCUSDT", "order_type": "LIMIT", "ts_ms": 1, **kw}
    for k in ("qty", "price"):
        if isinstance(args.get(k), str | int):
            args[k] = D(str(args[k]))
    return ex.place_order(acct, **args)  # type: ignore[arg-type]  # test helper kwargs


def test_limit_buy_crossing_fills_at_maker_prices_then_rests():
    ex = make()

    o = place(ex, side="BUY", qty="1.5", price="102")

    assert o.filled == D("1.5")
    assert o.status == "FILLED"
    assert o.filled_value == D(101) + D("0.5") * 102
    assert ex.books["BTCUSDT"].best_ask() == D(102)
    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    assert (pos.side, pos.qty) == ("LONG", D("1.5"))


def test_gtc_partial_fill_rests_remainder_with_part_filled_status():
    ex = make()

    o = place(ex, side="BUY", qty="2", price="101")

    assert (o.status, o.filled) == ("PART_FILLED", D(1))
    assert ex.books["BTCUSDT"].best_bid() == D(101)
    assert o.order_id in ex.accounts["a"].open_orders


def test_ioc_cancels_unfilled_remainder():
    ex = make()

    o = place(ex, side="BUY", qty="2", price="101", effect="IOC")

    assert (o.status, o.filled) == ("PART_FILLED_CANCELED", D(1))
    assert ex.books["BTCUSDT"].best_bid() == D(100)


def test_fok_without_enough_liquidity_cancels_without_fills():
    ex = make()

    o = place(ex, side="BUY", qty="2", price="101", effect="FOK")

    assert (o.status, o.filled) == ("CANCELED", D(0))
    assert ex.books["BTCUSDT"].level_qty(False, D(101)) == D(1)


def test_fok_with_enough_liquidity_fills_completely():
    ex = make()

    o = place(ex, side="BUY", qty="2", price="102", effect="FOK")

    assert o.status == "FILLED"


def test_post_only_that_would_cross_is_canceled():
    ex = make()

    crossing = place(ex, side="BUY", qty="1", price="101", effect="POST_ONLY")
    passive = place(ex, side="BUY", qty="1", price="100.5", effect="POST_ONLY")

    assert crossing.status == "CANCELED"
    assert crossing.filled == 0
    assert passive.status == "NEW"
    assert ex.books["BTCUSDT"].best_bid() == D("100.5")


def test_market_order_fills_and_never_rests():
    ex = make()

    o = place(ex, side="SELL", order_type="MARKET", qty="7")

    assert (o.status, o.filled) == ("PART_FILLED_CANCELED", D(5))
    assert ex.books["BTCUSDT"].best_bid() is None


def test_fees_maker_and_taker_are_charged_from_wallet():
    ex = make()
    maker = place(ex, "b", side="SELL", qty="1", price="100.5")

    taker = place(ex, "a", side="BUY", qty="1", price="100.5")

    assert maker.fee == D("100.5") * BTC.maker_fee
    assert taker.fee == D("100.5") * BTC.taker_fee
    assert ex.accounts["a"].wallet == D(100000) - taker.fee


@pytest.mark.parametrize(
    ("qty", "otype", "code"), [("0.0005", "LIMIT", 10002), ("0", "LIMIT", 10002)]
)
def test_bad_qty_precision_is_parameter_error(qty, otype, code):
    ex = make()

    with pytest.raises(ExchangeError) as e:
        place(ex, side="BUY", qty=qty, price="100", order_type=otype)

    assert e.value.code == code


def test_qty_below_minimum_is_30016_for_limit_and_30017_for_market():
    spec = SymbolSpec(symbol="BTCUSDT", base="BTC", base_precision=3, min_qty=D("0.01"))
    ex = Exchange([spec], {"a": D(1000)})

    with pytest.raises(ExchangeError) as lim:
        place(ex, side="BUY", qty="0.005", price="100")
    with pytest.raises(ExchangeError) as mkt:
        place(ex, side="BUY", qty="0.005", order_type="MARKET")

    assert (lim.value.code, mkt.value.code) == (30016, 30017)


def test_duplicate_client_id_is_30042():
    ex = make()
    place(ex, side="BUY", qty="1", price="90", client_id="c1")

    with pytest.raises(ExchangeError) as e:
        place(ex, side="BUY", qty="1", price="90", client_id="c1")

    assert e.value.code == 30042


def test_insufficient_balance_is_20003_and_books_nothing():
    ex = make(balance="10")

    with pytest.raises(ExchangeError) as e:
        place(ex, side="BUY", qty="5", price="100")

    assert e.value.code == 20003
    assert not ex.accounts["a"].orders
    assert ex.accounts["a"].frozen() == 0


def test_margin_locked_is_notional_over_leverage_plus_fee():
    ex = make()
    admin.change_leverage(ex, "a", "BTCUSDT", 10)

    o = place(ex, side="BUY", qty="2", price="90")

    assert o.lock == 2 * (D(90) / 10 + D(90) * BTC.taker_fee)
    assert ex.accounts["a"].available() == D(100000) - o.lock


def test_reduce_only_without_position_is_30018_and_same_direction_30019():
    ex = make()
    with pytest.raises(ExchangeError) as none:
        place(ex, side="SELL", qty="1", price="100", reduce_only=True)
    place(ex, side="BUY", qty="1", price="101")

    with pytest.raises(ExchangeError) as same:
        place(ex, side="BUY", qty="1", price="100", reduce_only=True)

    assert (none.value.code, same.value.code) == (30018, 30019)


def test_reduce_only_is_clamped_to_position_and_never_flips_it():
    ex = make()
    place(ex, side="BUY", qty="1", price="101")

    o = place(ex, side="SELL", qty="3", order_type="MARKET", reduce_only=True)

    assert o.filled == D(1)
    assert ("BTCUSDT", "NET") not in ex.accounts["a"].positions


def test_one_way_opposite_fill_closes_then_flips():
    ex = make()
    place(ex, side="BUY", qty="1", price="101")

    place(ex, side="SELL", qty="3", order_type="MARKET")

    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    assert (pos.side, pos.qty) == ("SHORT", D(2))
    assert ex.accounts["a"].position_history[-1].realized_pnl == D(100) - D(101)


def test_hedge_mode_keeps_long_and_short_and_buy_close_closes_long():
    ex = make()
    admin.change_position_mode(ex, "a", "HEDGE")
    place(ex, side="BUY", qty="1", price="101", trade_side="OPEN")
    place(ex, side="SELL", qty="1", price="100", trade_side="OPEN")
    acct = ex.accounts["a"]
    assert set(acct.positions) == {("BTCUSDT", "LONG"), ("BTCUSDT", "SHORT")}

    long_id = acct.positions[("BTCUSDT", "LONG")].position_id
    close = place(
        ex, side="BUY", qty="1", order_type="MARKET", trade_side="CLOSE", position_id=long_id
    )

    assert not close.is_buy
    assert close.filled == D(1)
    assert set(acct.positions) == {("BTCUSDT", "SHORT")}


def test_hedge_close_without_position_is_30004():
    ex = make()
    admin.change_position_mode(ex, "a", "HEDGE")

    with pytest.raises(ExchangeError) as e:
        place(ex, side="SELL", qty="1", order_type="MARKET", trade_side="CLOSE", position_id="9")

    assert e.value.code == 30004


def test_hedge_close_without_position_id_is_refused_with_10002():
    ex = make()
    admin.change_position_mode(ex, "a", "HEDGE")
    place(ex, side="BUY", qty="1", price="101", trade_side="OPEN")

    with pytest.raises(ExchangeError) as e:
        place(ex, side="BUY", qty="1", order_type="MARKET", trade_side="CLOSE")

    assert e.value.code == 10002
    assert "positionId" in e.value.msg
    assert ("BTCUSDT", "LONG") in ex.accounts["a"].positions


def test_position_mode_change_with_open_order_is_20009():
    ex = make()
    place(ex, side="BUY", qty="1", price="90")

    with pytest.raises(ExchangeError) as e:
        admin.change_position_mode(ex, "a", "HEDGE")

    assert e.value.code == 20009


def test_cancel_unknown_is_20007_and_twice_is_10013():
    ex = make()
    o = place(ex, side="BUY", qty="1", price="90")
    ex.cancel_order("a", order_id=o.order_id, ts_ms=2)

    with pytest.raises(ExchangeError) as twice:
        ex.cancel_order("a", order_id=o.order_id, ts_ms=3)
    with pytest.raises(ExchangeError) as unknown:
        ex.cancel_order("a", order_id="42", ts_ms=3)

    assert (twice.value.code, unknown.value.code) == (10013, 20007)
    assert o.status == "CANCELED"
    assert ex.accounts["a"].frozen() == 0


def test_user_resting_order_fills_against_generator_taker():
    ex = make()
    o = place(ex, side="BUY", qty="1", price="100.5")

    ex.mm_take("BTCUSDT", False, D("0.4"), 5)

    assert (o.filled, o.status) == (D("0.4"), "PART_FILLED")
    _, trades = ex.drain()
    assert trades[-1].side == "sell"
    assert trades[-1].price == D("100.5")


def test_private_events_cover_order_position_and_balance():
    ex = make()

    place(ex, side="BUY", qty="1", price="101")

    events, _ = ex.drain()
    kinds = [(e.channel, e.data.get("event")) for e in events]
    assert ("order", "CREATE") in kinds
    assert ("order", "CLOSE") in kinds
    assert ("position", "OPEN") in kinds
    assert ("balance", None) in kinds


def test_modify_order_moves_price_and_keeps_id():
    ex = make()
    o = place(ex, side="BUY", qty="1", price="90")

    ex.modify_order("a", order_id=o.order_id, qty=D(2), price=D(95), ts_ms=2)

    assert ex.books["BTCUSDT"].level_qty(True, D(95)) == D(2)
    assert ex.books["BTCUSDT"].level_qty(True, D(90)) == 0


def test_flash_close_flattens_position():
    ex = make()
    place(ex, side="BUY", qty="2", price="102")

    admin.close_positions(ex, "a", ts_ms=3)

    assert not ex.accounts["a"].positions


def test_tpsl_take_profit_fires_on_last_price_and_closes_position():
    ex = make()
    place(ex, side="BUY", qty="1", price="101")
    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    from procs.exchange.tpsl import place_tpsl

    t = place_tpsl(
        ex, "a", symbol="BTCUSDT", position_id=pos.position_id, fields={"tpPrice": "103"}, ts_ms=2
    )
    ex.mm_take("BTCUSDT", True, D(2), 3)  # lifts 102 and 103

    assert t.status == "FILLED"
    assert not ex.accounts["a"].positions


def test_hedge_open_with_reduce_only_flag_still_locks_margin():
    ex = make()
    admin.change_position_mode(ex, "a", "HEDGE")

    o = place(ex, side="BUY", qty="1", price="90", trade_side="OPEN", reduce_only=True)

    assert not o.reduce_only
    assert o.lock > 0


def test_attached_take_profit_becomes_a_tpsl_order_on_first_fill():
    ex = make()

    place(ex, side="BUY", qty="1", price="101", tpsl={"tpPrice": "110", "tpStopType": "LAST_PRICE"})

    [t] = ex.accounts["a"].tpsl.values()
    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    assert t.position_id == pos.position_id
    assert t.fields["tpPrice"] == "110"
    assert t.status == "NEW"


def test_reduce_only_order_whose_fill_fires_a_stop_loss_does_not_rest():
    from procs.exchange.tpsl import place_tpsl

    ex = make()
    place(ex, side="BUY", qty="2", price="102")  # long 2
    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    place_tpsl(
        ex, "a", symbol="BTCUSDT", position_id=pos.position_id, fields={"slPrice": "100"}, ts_ms=2
    )

    # sells 1 at 100: the last price fires the stop loss, which closes the other 1 at 99
    o = place(ex, side="SELL", qty="2", price="100", reduce_only=True)

    assert not ex.accounts["a"].positions
    assert (o.status, o.filled) == ("PART_FILLED_CANCELED", D(1))
    assert o.order_id not in ex.books["BTCUSDT"]
