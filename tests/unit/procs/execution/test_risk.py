"""Every pre-trade check: refuses with its reason just past its boundary, passes at/inside it."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from procs.trading.breaker import BreakerState
from procs.trading.config import RiskConfig, SymbolConfig
from procs.trading.instruments import SymbolStatus
from procs.trading.model import OrderRequest, OrderStatus, Side
from procs.trading.orders import Order
from procs.trading.risk import RefusalReason, RiskContext, RiskEngine

from .helpers import btc, req

D = Decimal
R = RefusalReason
SEC = 1_000_000_000
NOW = 100 * SEC
CFG = RiskConfig(
    max_order_notional_usdt=D(1000),
    price_collar_mid_bps=D(50),
    price_collar_mark_bps=D(100),
    max_position_notional_usdt=D(2000),
    max_total_notional_usdt=D(5000),
    max_open_orders=3,
    max_open_orders_per_symbol=2,
    max_orders_per_window=3,
    order_rate_window_s=1.0,
    daily_loss_limit_usdt=D(100),
    max_drawdown_usdt=D(150),
    max_data_age_s=2.0,
    duplicate_window_s=1.0,
)
_n = iter(range(10**9))


def engine(**kw: Any) -> RiskEngine:
    return RiskEngine(
        msgspec.structs.replace(CFG, **kw), [SymbolConfig(symbol="BTCUSDT", symbol_id=1)]
    )


def ctx(**kw: Any) -> RiskContext:
    now = kw.get("now_ns", NOW)
    base = {"now_ns": now, "instrument": btc(), "mid": D(10000), "ts_data_ns": now}
    base.update(kw)
    return RiskContext(**base)


def order(
    side: Side = Side.BUY, qty: str = "0.01", price: str | None = "10000", **kw: Any
) -> OrderRequest:
    return req(cid=f"br-1-{next(_n)}", side=side, qty=qty, price=price, **kw)


def resting(
    side: Side = Side.SELL, price: str = "10001", symbol: str = "BTCUSDT", qty: str = "0.01"
) -> Order:
    return Order(request=order(side, qty, price, symbol=symbol), status=OrderStatus.ACKED)


def reason(e: RiskEngine, r: OrderRequest, c: RiskContext) -> RefusalReason | None:
    refusal = e.check(r, c)
    return None if refusal is None else refusal.reason


def test_risk_clean_order_passes_and_is_counted():
    e = engine()
    assert e.check(order(), ctx()) is None
    assert e.passed_total == 1


def test_risk_refusal_carries_reason_detail_and_is_counted():
    e = engine()
    r = order(qty="0.1001")
    refusal = e.check(r, ctx())
    assert refusal.reason is R.MAX_ORDER_NOTIONAL
    assert (refusal.client_id, refusal.symbol, refusal.ts_ns) == (r.client_id, "BTCUSDT", NOW)
    assert "1001" in refusal.detail
    assert e.refusals_total[R.MAX_ORDER_NOTIONAL] == 1


def test_risk_max_order_notional_boundary():
    assert reason(engine(), order(qty="0.1"), ctx()) is None
    assert reason(engine(), order(qty="0.1001"), ctx()) is R.MAX_ORDER_NOTIONAL


def test_risk_max_order_qty_boundary_symbol_cap_and_venue_cap():
    e = RiskEngine(CFG, [SymbolConfig(symbol="BTCUSDT", symbol_id=1, max_order_qty=D("0.02"))])
    assert reason(e, order(qty="0.02"), ctx()) is None
    assert reason(e, order(qty="0.0201"), ctx()) is R.MAX_ORDER_QTY
    venue = ctx(instrument=btc(max_limit_qty=D("0.05")))
    assert reason(engine(), order(qty="0.05"), venue) is None
    assert reason(engine(), order(qty="0.0501"), venue) is R.MAX_ORDER_QTY


def test_risk_invalid_qty_and_price_refused():
    assert reason(engine(), order(qty="0.00015"), ctx()) is R.INVALID_QTY
    assert reason(engine(), order(price="10000.05"), ctx()) is R.INVALID_PRICE


def test_risk_price_collar_mid_boundary():
    assert reason(engine(), order(price="10050"), ctx()) is None
    assert reason(engine(), order(price="10050.1"), ctx()) is R.PRICE_COLLAR_MID
    assert reason(engine(), order(Side.SELL, price="9950"), ctx()) is None
    assert reason(engine(), order(Side.SELL, price="9949.9"), ctx()) is R.PRICE_COLLAR_MID


def test_risk_price_collar_mark_boundary_uses_tighter_of_config_and_venue():
    c = ctx(mark=D(10100))  # 100 bps of 10100 = 101
    assert reason(engine(), order(price="9999"), c) is None
    assert reason(engine(), order(price="9998.9"), c) is R.PRICE_COLLAR_MARK
    tight = ctx(mark=D(10100), instrument=btc(price_protect_scope=D("0.005")))  # 50.5
    assert reason(engine(), order(price="10049.5"), tight) is None
    assert reason(engine(), order(price="10049.4"), tight) is R.PRICE_COLLAR_MARK


def test_risk_stale_data_boundary_and_missing_mid():
    assert reason(engine(), order(), ctx(ts_data_ns=NOW - 2 * SEC)) is None
    assert reason(engine(), order(), ctx(ts_data_ns=NOW - 2 * SEC - 1)) is R.STALE_DATA
    assert reason(engine(), order(), ctx(mid=None)) is R.STALE_DATA


def test_risk_max_position_symbol_boundary_counts_resting_same_side():
    pos = {"BTCUSDT": D("0.15")}
    assert reason(engine(), order(qty="0.05"), ctx(positions=pos)) is None
    assert reason(engine(), order(qty="0.0501"), ctx(positions=pos)) is R.MAX_POSITION_SYMBOL
    rest = [resting(Side.BUY, "9990", qty="0.01")]
    c = ctx(positions=pos, open_orders=rest)
    assert reason(engine(), order(qty="0.04"), c) is None
    assert reason(engine(), order(qty="0.0401"), c) is R.MAX_POSITION_SYMBOL


def test_risk_max_position_qty_from_symbol_config():
    e = RiskEngine(CFG, [SymbolConfig(symbol="BTCUSDT", symbol_id=1, max_position_qty=D("0.03"))])
    pos = {"BTCUSDT": D("0.02")}
    assert reason(e, order(qty="0.01"), ctx(positions=pos)) is None
    assert reason(e, order(qty="0.0101"), ctx(positions=pos)) is R.MAX_POSITION_SYMBOL


def test_risk_max_position_total_boundary():
    c = ctx(positions={"ETHUSDT": D("2.00005")}, marks={"ETHUSDT": D(2000)})  # 4000.1
    assert reason(engine(), order(qty="0.0999"), c) is None  # 999 → 4999.1
    assert reason(engine(), order(qty="0.1", price="9999"), c) is None  # 999.9 → exactly 5000
    assert reason(engine(), order(qty="0.1", price="9999.1"), c) is R.MAX_POSITION_TOTAL


def test_risk_reducing_order_skips_exposure_limits():
    c = ctx(positions={"BTCUSDT": D("0.5")}, day_pnl=D(-500), drawdown=D(900))
    assert reason(engine(), order(Side.SELL, qty="0.05"), c) is None
    assert reason(engine(), order(Side.BUY, qty="0.05"), c) is R.DAILY_LOSS


def test_risk_daily_loss_boundary():
    assert reason(engine(), order(), ctx(day_pnl=D("-99.99"))) is None
    assert reason(engine(), order(), ctx(day_pnl=D(-100))) is R.DAILY_LOSS


def test_risk_max_drawdown_boundary():
    assert reason(engine(), order(), ctx(drawdown=D("149.99"))) is None
    assert reason(engine(), order(), ctx(drawdown=D(150))) is R.MAX_DRAWDOWN


def test_risk_max_open_orders_total_and_per_symbol():
    one = [resting(Side.BUY, "9000")]
    assert reason(engine(), order(), ctx(open_orders=one)) is None
    two = [*one, resting(Side.BUY, "9001")]
    assert reason(engine(), order(), ctx(open_orders=two)) is R.MAX_OPEN_ORDERS
    eth = [resting(Side.BUY, "9000", "ETHUSDT"), resting(Side.BUY, "9001", "ETHUSDT")]
    assert reason(engine(), order(), ctx(open_orders=eth)) is None
    three = [*eth, resting(Side.BUY, "9002", "ETHUSDT")]
    assert reason(engine(), order(), ctx(open_orders=three)) is R.MAX_OPEN_ORDERS


def test_risk_order_rate_throttle_window():
    e = engine()
    for i in range(3):
        assert reason(e, order(price=str(10000 - i)), ctx(now_ns=NOW + i)) is None
    assert reason(e, order(price="9990"), ctx(now_ns=NOW + 3)) is R.ORDER_RATE
    assert reason(e, order(price="9990"), ctx(now_ns=NOW + SEC)) is None  # first left the window


def test_risk_duplicate_client_id_open_order_and_recent_identical():
    e = engine()
    first = order()
    assert e.check(first, ctx()) is None
    same = req(cid="br-9-9", qty="0.01", price="10000")
    assert reason(e, same, ctx(now_ns=NOW + SEC - 1)) is R.DUPLICATE_ORDER
    assert reason(e, same, ctx(now_ns=NOW + SEC)) is None
    assert reason(e, first, ctx(now_ns=NOW + 5 * SEC)) is R.DUPLICATE_ORDER
    open_twin = [Order(request=req(cid="br-8-8", qty="0.02", price="9990"))]
    assert reason(engine(), order(qty="0.02", price="9990"), ctx(open_orders=open_twin)) is (
        R.DUPLICATE_ORDER
    )


def test_risk_self_trade_prevention():
    rest = [resting(Side.SELL, "10001")]
    assert reason(engine(), order(price="10000.9"), ctx(open_orders=rest)) is None
    assert reason(engine(), order(price="10001"), ctx(open_orders=rest)) is R.SELF_TRADE
    assert reason(engine(), order(price=None), ctx(open_orders=rest)) is R.SELF_TRADE


@pytest.mark.parametrize(
    ("kw", "want"),
    [
        ({"kill_switch": True}, R.KILL_SWITCH),
        ({"breaker": BreakerState.HALTED}, R.BREAKER_HALTED),
        ({"breaker": BreakerState.REDUCING}, R.BREAKER_REDUCING),
        ({"instrument": btc(status=SymbolStatus.CANCEL_ONLY)}, R.SYMBOL_STATUS),
    ],
)
def test_risk_gates_refuse_new_orders(kw, want):
    assert reason(engine(), order(), ctx(**kw)) is want


def test_risk_breaker_reducing_allows_reduce_only_reducing_order():
    c = ctx(breaker=BreakerState.REDUCING, positions={"BTCUSDT": D("0.02")})
    assert reason(engine(), order(Side.SELL, reduce_only=True), c) is None
    assert reason(engine(), order(Side.SELL), c) is R.BREAKER_REDUCING
    assert reason(engine(), order(Side.SELL, qty="0.03", reduce_only=True), c) is (
        R.BREAKER_REDUCING
    )


def test_risk_reconfigure_applies_new_limit_to_the_next_order():
    e = engine()
    before = reason(e, order(qty="0.05"), ctx())  # 500 USDT under a 1000 limit

    e.reconfigure(msgspec.structs.replace(CFG, max_order_notional_usdt=D(400)))
    after = reason(e, order(qty="0.05", price="10001"), ctx())

    assert before is None
    assert after is R.MAX_ORDER_NOTIONAL
