"""Integers on the order path (issue 12 item 1): one placing decision and one passing risk check
as the code now does them (ticks and lots, ``Decimal`` made once at the request), beside the
``Decimal`` code they replaced (``tests/helpers/decimal_reference.py``, copied unchanged), in the
same run.

- ``decide_placing``: ``Strategy.decide`` placing a post-only quote (the whole call), against
  the ``Decimal`` strategy's ``decide`` on the same inputs (``decimal_decide_placing``).
- ``risk_check``: ``RiskEngine.check`` passing that order, with the ``RiskContext`` the engine
  builds (the mid in half ticks and the net lots given), against the ``Decimal`` engine's check
  on the same context (``decimal_risk_check``).
- ``int_decide_arith`` / ``int_risk_arith`` (info): the arithmetic alone, as kernels: the
  integer operations of that decision (with the two ``Decimal`` conversions for the request)
  and of that check, against the ``Decimal`` operations they replaced.

Each pair is checked to give the same result before it is timed.
"""

from __future__ import annotations

import itertools
import timeit
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from procs.trading.config import RiskConfig, StrategyConfig
from procs.trading.instruments import DecimalGrid, Instrument, floor_units
from procs.trading.risk import BPS, RiskContext, RiskEngine
from procs.trading.strategy import PlaceOrder, Quote, SignalInput, Strategy
from tests.bench._common import Result
from tests.helpers.decimal_reference import DecimalRiskEngine, DecimalStrategy

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
QUOTE = Quote(_GRID(59999.9), _GRID(60000.1), _GRID.units(59999.9), _GRID.units(60000.1))
ZERO = Decimal(0)
STRATEGY = StrategyConfig(enter_score=0.3, exit_score=0.1, take_score=1.0)
IMPROVE = STRATEGY.improve_ticks


def _round_qty(q: Decimal) -> Decimal:  # Instrument.round_qty, inlined as a kernel
    if q <= 0:
        return ZERO
    r = (q / INST.step).to_integral_value(rounding=ROUND_DOWN) * INST.step
    return r if r >= INST.min_qty else ZERO


def dec_decide(target: Decimal, position: Decimal, q: Quote) -> tuple[Decimal, Decimal] | None:
    """The Decimal operations the strategy did for a post-only buy."""
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


def int_decide(target: int, position: int, bid: int, ask: int) -> tuple[Decimal, Decimal] | None:
    """The integer operations the strategy now does, and the request's two conversions."""
    delta = target - position
    size = abs(delta)
    if size < INST.min_lots:
        return None
    reducing = position != 0 and (position > 0) != (delta > 0)
    qty = min(size, abs(position)) if reducing else size
    if qty < INST.min_lots or not 0 < bid < ask:
        return None
    price = min(bid + IMPROVE, ask - 1)
    return INST.qty_of(qty), INST.price_of(price)  # the journal's and the wire's Decimals


def dec_risk(qty: Decimal, price: Decimal, mid: Decimal, position: Decimal) -> bool:
    """The Decimal operations of a passing check (steps, ticks, notional, collar, exposure)."""
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


_U = INST.tick * INST.step
_L_ORDER = floor_units(RISK.max_order_notional_usdt, _U)
_L_POS = floor_units(RISK.max_position_notional_usdt, _U)
_L_TOTAL = floor_units(RISK.max_total_notional_usdt, _U)
_COLLAR = RISK.price_collar_mid_bps.as_integer_ratio()


def int_risk(lots: int, ticks: int, mid2: int, position: int) -> bool:
    """The same compares as the risk engine now makes them: ints, limits pre-scaled."""
    if lots < INST.min_lots or ticks <= 0 or lots > INST.max_limit_lots:
        return False
    if lots * ticks > _L_ORDER:
        return False
    if abs(2 * ticks - mid2) * 10_000 * _COLLAR[1] > _COLLAR[0] * mid2:
        return False
    notional = abs(position + 1 * (0 + lots)) * ticks
    return not (notional > _L_POS or notional > _L_TOTAL)


def _pair(fn: Callable[[], object], base: Callable[[], object], n: int) -> tuple[float, float]:
    """µs per call of ``fn`` and ``base``, timed in alternate blocks (a neighbour's burst hits
    both alike), the fastest block of each."""
    a, b = timeit.Timer(fn), timeit.Timer(base)
    ta, tb = zip(*((a.timeit(n), b.timeit(n)) for _ in range(9)), strict=True)
    return min(ta) / n * 1e6, min(tb) / n * 1e6


def run(quick: bool = False) -> list[Result]:
    n = 20_000 if quick else 100_000
    ids_new, ids_old = itertools.count(), itertools.count()
    new = Strategy(STRATEGY, {SYM: INST}, lambda: f"c{next(ids_new)}")
    old = DecimalStrategy(STRATEGY, {SYM: INST}, lambda: f"c{next(ids_old)}")
    sig = SignalInput(symbol=SYM, score=0.5, mid=_GRID(60000.0))
    tick_ns, tick_ns_old = (itertools.count(1_000_000_000, 1000) for _ in range(2))

    def decide() -> object:
        return new.decide(sig, QUOTE, 0, [], next(tick_ns))

    def decide_old() -> object:
        return old.decide(sig, QUOTE, ZERO, [], next(tick_ns_old))

    a, b = decide(), decide_old()
    assert isinstance(a, list)
    assert isinstance(a[0], PlaceOrder)
    assert a == b, (a, b)  # the same order (ids drawn in step)
    req = a[0].request
    assert (str(req.qty), str(req.price)) == ("0.0016", "59999.9")
    target_d = old.target_qty(sig, next(tick_ns))
    target = new.target_lots(sig, next(tick_ns))
    bid, ask = QUOTE.ticks(INST)
    assert dec_decide(target_d, ZERO, QUOTE) == int_decide(target, 0, bid, ask) == (
        req.qty, req.price,
    )  # fmt: skip
    engine, engine_old = RiskEngine(RISK), DecimalRiskEngine(RISK)
    now = itertools.count(10**12)
    mid2 = bid + ask

    def context() -> RiskContext:
        t = next(now)
        return RiskContext(
            now_ns=t, instrument=INST, mid=QUOTE.mid, ts_data_ns=t, positions={SYM: ZERO},
            marks={SYM: QUOTE.mid}, mid2=mid2, position_lots=0,
        )  # fmt: skip

    def check() -> object:
        refusal = engine.check(req, context())
        engine._client_ids.discard(req.client_id)  # the same request passes again
        return refusal

    def check_old() -> object:
        refusal = engine_old.check(req, context())
        engine_old._client_ids.discard(req.client_id)
        return refusal

    assert check() is None
    assert check_old() is None
    assert dec_risk(req.qty, req.price, QUOTE.mid, ZERO)
    assert int_risk(req.lots, req.ticks, mid2, 0)
    d_all, d_old = _pair(decide, decide_old, n // 8)
    r_all, r_old = _pair(check, check_old, n // 8)
    d_int, d_dec = _pair(
        lambda: int_decide(target, 0, bid, ask), lambda: dec_decide(target_d, ZERO, QUOTE), n // 2
    )
    r_int, r_dec = _pair(
        lambda: int_risk(req.lots, req.ticks, mid2, 0),
        lambda: dec_risk(req.qty, req.price, QUOTE.mid, ZERO),
        n // 2,
    )
    return [
        Result("decide_placing", "per_call", d_all, "us", "decimal_decide_placing", d_old),
        Result("risk_check", "per_call", r_all, "us", "decimal_risk_check", r_old),
        Result("int_decide_arith", "per_call", d_int, "us", "decimal_decide_arith", d_dec),
        Result("int_risk_arith", "per_call", r_int, "us", "decimal_risk_arith", r_dec),
    ]
