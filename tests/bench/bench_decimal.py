"""What `Decimal` costs on the order path: the arithmetic of one placing decision and one risk
check, in `Decimal` as strategy and risk do it, beside the same arithmetic on integer ticks and
lots (issue 12 item 1 asks for the latter), and the real calls beside their `Decimal` part.

- ``decimal_decide_arith``: the Decimal operations of ``Strategy.decide`` placing a post-only
  quote (delta, the qty rounding, the price inside the spread, its rounding to the tick)
  against the same on Python ints, including the two conversions back to Decimal that the
  journal and the wire would need (``Decimal(lots) * step``, ``Decimal(ticks) * tick``).
- ``decimal_risk_arith``: the Decimal operations of ``RiskEngine.check`` passing that order
  (steps, ticks, order notional, mid collar, worst-case and total notional) against ints with
  the limits pre-scaled to tick × lot units.
- ``decide_placing`` / ``risk_check`` (info): the real ``Strategy.decide`` (placing) and
  ``RiskEngine.check`` (with its ``RiskContext`` built) against their Decimal arithmetic: how
  much of each call integers could touch at all.

Each kernel is checked against the real call's result before it is timed.
"""

from __future__ import annotations

import itertools
import timeit
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from procs.trading.config import RiskConfig, StrategyConfig
from procs.trading.instruments import DecimalGrid, Instrument
from procs.trading.risk import BPS, RiskContext, RiskEngine
from procs.trading.strategy import PlaceOrder, Quote, SignalInput, Strategy
from tests.bench._common import Result

SYM = "BTCUSDT"
INST = Instrument(
    symbol=SYM, tick=Decimal("0.1"), step=Decimal("0.0001"), min_qty=Decimal("0.0001"),
    max_limit_qty=Decimal(100), max_market_qty=Decimal(100), price_protect_scope=Decimal("0.05"),
)  # fmt: skip
RISK = RiskConfig(
    max_orders_per_window=10**9, duplicate_window_s=0.0,
    daily_loss_limit_usdt=Decimal(10**9), max_drawdown_usdt=Decimal(10**9),
)  # fmt: skip
_GRID = DecimalGrid(INST.tick)
QUOTE = Quote(_GRID(59999.9), _GRID(60000.1))
ZERO = Decimal(0)
STRATEGY = StrategyConfig(enter_score=0.3, exit_score=0.1, take_score=1.0)
IMPROVE = STRATEGY.improve_ticks


def _round_qty(q: Decimal) -> Decimal:  # Instrument.round_qty, inlined as a kernel
    if q <= 0:
        return ZERO
    r = (q / INST.step).to_integral_value(rounding=ROUND_DOWN) * INST.step
    return r if r >= INST.min_qty else ZERO


def dec_decide(target: Decimal, position: Decimal, q: Quote) -> tuple[Decimal, Decimal] | None:
    tick = INST.tick
    delta = target - position
    rounded = _round_qty(abs(delta))
    if rounded == 0:
        return None
    reducing = position != 0 and (position > 0) != (delta > 0)
    qty = _round_qty(min(abs(delta), abs(position))) if reducing else rounded
    if not 0 < q.best_bid < q.best_ask:
        return None
    price = min(q.best_bid + IMPROVE * tick, q.best_ask - tick)  # a buy
    return qty, (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def dec_risk(qty: Decimal, price: Decimal, mid: Decimal, position: Decimal) -> bool:
    c, inst = RISK, INST
    if not (qty > 0 and qty % inst.step == 0 and qty >= inst.min_qty):
        return False
    if not (price > 0 and price % inst.tick == 0) or qty > inst.max_limit_qty:
        return False
    if qty * price > c.max_order_notional_usdt:
        return False
    if abs(price - mid) * BPS > c.price_collar_mid_bps * mid:
        return False
    notional = abs(position + 1 * (ZERO + qty)) * price
    return not (
        notional > c.max_position_notional_usdt or ZERO + notional > c.max_total_notional_usdt
    )


# integers: qty in lots (0.0001), price in ticks (0.1), the mid in half ticks, limits in
# tick × lot units (1e-5 USDT), scaled once
_SCALE = 10**5
_L_ORDER = int(RISK.max_order_notional_usdt * _SCALE)
_L_POS = int(RISK.max_position_notional_usdt * _SCALE)
_L_TOTAL = int(RISK.max_total_notional_usdt * _SCALE)
_COLLAR_BPS = int(RISK.price_collar_mid_bps)


def int_decide(
    target: int, position: int, bid: int, ask: int
) -> tuple[Decimal, Decimal, int, int] | None:
    delta = target - position
    if abs(delta) < 1:  # min_qty is one lot
        return None
    reducing = position != 0 and (position > 0) != (delta > 0)
    qty = min(abs(delta), abs(position)) if reducing else abs(delta)
    if not 0 < bid < ask:
        return None
    price = min(bid + IMPROVE, ask - 1)
    return Decimal(qty) * INST.step, Decimal(price) * INST.tick, qty, price  # the wire edge


def int_risk(qty: int, price: int, mid2: int, position: int) -> bool:
    if qty < 1 or price <= 0 or qty > 100 * 10**4:
        return False
    if qty * price > _L_ORDER:
        return False
    if abs(2 * price - mid2) * 10_000 > _COLLAR_BPS * mid2:
        return False
    notional = abs(position + 1 * (0 + qty)) * price
    return not (notional > _L_POS or 0 + notional > _L_TOTAL)


def _ns(fn: Callable[[], object], n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6  # µs


def run(quick: bool = False) -> list[Result]:
    n = 20_000 if quick else 100_000
    ids = itertools.count()
    strategy = Strategy(
        STRATEGY,
        {SYM: INST},
        lambda: f"c{next(ids)}",
    )
    sig = SignalInput(symbol=SYM, score=0.5, mid=_GRID(60000.0))
    tick_ns = itertools.count(1_000_000_000, 1000)

    def decide() -> object:
        return strategy.decide(sig, QUOTE, ZERO, [], next(tick_ns))

    action = decide()
    assert isinstance(action, list)
    assert isinstance(action[0], PlaceOrder)
    req = action[0].request
    target = strategy.target_qty(sig, next(tick_ns))
    want = dec_decide(target, ZERO, QUOTE)
    assert want == (req.qty, req.price), (want, req)
    lots, bid_t, ask_t = int(target / INST.step), 599_999, 600_001
    got = int_decide(lots, 0, bid_t, ask_t)
    assert got is not None
    assert got[:2] == want, (got, want)  # equal in value (not in exponent: see docs)
    engine = RiskEngine(RISK)
    now = itertools.count(10**12)

    def check() -> object:
        t = next(now)
        ctx = RiskContext(
            now_ns=t, instrument=INST, mid=QUOTE.mid, ts_data_ns=t,
            positions={SYM: ZERO}, marks={SYM: QUOTE.mid},
        )  # fmt: skip
        refusal = engine.check(req, ctx)
        engine._client_ids.discard(req.client_id)  # the same request passes again
        return refusal

    assert check() is None
    assert dec_risk(req.qty, req.price, QUOTE.mid, ZERO)
    assert int_risk(got[2], got[3], bid_t + ask_t, 0)
    d_dec = _ns(lambda: dec_decide(target, ZERO, QUOTE), n)
    d_int = _ns(lambda: int_decide(lots, 0, bid_t, ask_t), n)
    r_dec = _ns(lambda: dec_risk(req.qty, req.price, QUOTE.mid, ZERO), n)
    r_int = _ns(lambda: int_risk(got[2], got[3], bid_t + ask_t, 0), n)
    d_all = _ns(decide, n // 4)
    r_all = _ns(check, n // 4)
    return [
        Result(
            "decimal_decide_arith", "per_call", d_dec, "us", "int_ticks_lots", d_int, "(report)"
        ),
        Result("decimal_risk_arith", "per_call", r_dec, "us", "int_ticks_lots", r_int, "(report)"),
        Result("decide_placing", "per_call", d_all, "us", "its_decimal_arith", d_dec),
        Result("risk_check", "per_call", r_all, "us", "its_decimal_arith", r_dec),
    ]
