"""Integers on the hot path (issue 12 item 1): the one canonical ``Decimal`` form an order's qty
and price get at the boundary, and the integer strategy, risk checks and net lots against the
``Decimal`` code they replaced (``tests/helpers/decimal_reference.py``, copied unchanged)."""

from __future__ import annotations

import itertools
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from procs.ml.simcapture import DEFAULT_SYMBOLS
from procs.trading.breaker import BreakerState
from procs.trading.config import RiskConfig, StrategyConfig, SymbolConfig
from procs.trading.instruments import DecimalGrid, Instrument, instrument_from_pair
from procs.trading.model import (
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
)
from procs.trading.orders import Order
from procs.trading.positions import PositionBook, PositionSnapshot
from procs.trading.risk import RiskContext, RiskEngine
from procs.trading.strategy import PlaceOrder, Quote, ReplaceOrder, SignalInput, Strategy
from tests.helpers.decimal_reference import DecimalRiskEngine, DecimalStrategy
from tests.helpers.golden_session import SYMBOLS as GOLDEN_SYMBOLS

D = Decimal
CONFIGS = Path(__file__).resolve().parents[4] / "configs"
BIG = "1000000"


def _inst(symbol: str, tick: Decimal, step: Decimal, min_qty: Decimal | None = None) -> Instrument:
    return Instrument(
        symbol=symbol, tick=tick, step=step, min_qty=min_qty or step, max_limit_qty=D(BIG),
        max_market_qty=D(BIG), price_protect_scope=D("0.02"),
    )  # fmt: skip


def every_instrument() -> list[Instrument]:
    """Every instrument in configs/ (execution's symbols with rules, simex's list), simcapture's
    and the golden session's, and a few odd grids (tick 0.5, tick 1, step 1, step 0.5)."""
    out = []
    for path in sorted(CONFIGS.glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        rules = [s for s in doc.get("execution", {}).get("symbols", []) if "tick" in s]
        out += [_inst(s["symbol"], D(s["tick"]), D(s["step"]), D(s["min_qty"])) for s in rules]
        for s in doc.get("simex", {}).get("symbols", []):
            pair = {
                "symbol": s["symbol"], "basePrecision": s["base_precision"],
                "quotePrecision": s["quote_precision"], "minTradeVolume": s["min_qty"],
                "maxLimitOrderVolume": BIG, "maxMarketOrderVolume": BIG,
                "priceProtectScope": "0.02",
            }  # fmt: skip
            out.append(instrument_from_pair(pair))
    n_configs = len(out)
    out += [_inst(g.symbol, g.tick, g.step, g.min_qty) for g in DEFAULT_SYMBOLS]
    out += [_inst(s, D(repr(t)), D(repr(q))) for s, _, t, q, _ in GOLDEN_SYMBOLS]
    out += [
        _inst("HALF", D("0.5"), D("0.001")), _inst("ONE", D(1), D("0.01")),
        _inst("MEME", D("0.000001"), D(1)), _inst("HALFLOT", D("0.01"), D("0.5")),
    ]  # fmt: skip
    assert n_configs >= 6  # demo's execution and simex lists, simex.toml's
    return out


INSTRUMENTS = every_instrument()


def _exp(d: Decimal) -> int:
    e = d.as_tuple().exponent
    assert isinstance(e, int)
    return e


@settings(max_examples=300)
@given(st.sampled_from(INSTRUMENTS), st.integers(1, 10**10), st.integers(0, 10**6))
def test_ints_canonical_form_is_the_instruments_exponent(inst, n, finer):
    price, qty = inst.price_of(n), inst.qty_of(n)
    assert (price, qty) == (n * inst.tick, n * inst.step)  # the value
    assert (_exp(price), _exp(qty)) == (_exp(inst.tick), _exp(inst.step))  # the form
    assert "E" not in str(price) + str(qty)  # plain text on the wire
    assert (inst.ticks_of(price), inst.lots_of(qty)) == (n, n)
    # the Decimal rounding gives this same text whenever its input is at least as fine as the
    # grid: a post-only price (bid + k ticks, rounded) and a qty from a division (rounded down)
    fine = D(finer).scaleb(_exp(inst.tick) - 6)
    if fine < inst.tick:
        assert str(inst.round_price(price + fine, Side.BUY)) == str(price)
    fine_q = D(finer).scaleb(_exp(inst.step) - 6)
    if fine_q < inst.step and qty >= inst.min_qty:
        assert str(inst.round_qty(qty + fine_q)) == str(qty)


def test_ints_todays_strings_were_not_a_function_of_the_value():
    # why one canonical form had to be chosen: the Decimal path printed the same value two
    # ways, depending on where it came from
    eth = _inst("ETHUSDT", D("0.01"), D("0.001"))
    taken = DecimalGrid(eth.tick)(3000.1)  # an IOC took the book's price: the float's digits
    quoted = eth.round_price(D("3000.09") + eth.tick, Side.BUY)  # a post-only inside it
    assert taken == quoted
    assert (str(taken), str(quoted)) == ("3000.1", "3000.10")
    exact = eth.round_qty(D(100) / D("2000.0"))  # fixed sizing, a round mid: exact division
    inexact = eth.round_qty(D(100) / D("1999.99"))
    assert (str(exact), str(inexact)) == ("0.05", "0.050")
    assert str(eth.round_qty(D("0.5"))) == "0.5"  # a max_position_qty cap from the config
    # now every path prints the instrument's exponent
    assert (str(eth.price_of(300010)), str(eth.qty_of(50)), str(eth.qty_of(500))) == (
        "3000.10", "0.050", "0.500",
    )  # fmt: skip


# -- the strategy: ints against the Decimal decision ---------------------------------------------


def _same_actions(new: list[Any], old: list[Any]) -> None:
    assert new == old  # types, ids, sides, tifs, flags; qty and price by value
    for a, b in zip(new, old, strict=True):
        if isinstance(a, PlaceOrder | ReplaceOrder):
            r, o = a.request, b.request
            inst = _BY_SYMBOL[r.symbol]
            assert str(r.qty) == str(o.qty.quantize(inst.step))  # the canonical text
            assert str(r.price) == str(o.price.quantize(inst.tick))
            assert (r.qty, r.price) == (inst.qty_of(r.lots), inst.price_of(r.ticks))


_BY_SYMBOL: dict[str, Instrument] = {}

_step = st.tuples(
    st.sampled_from([0.0, 0.25, 0.35, 0.6, 0.95, -0.35, -0.6, -0.95]),  # score
    st.integers(-3, 3),  # the mid moves, in ticks
    st.integers(1, 4),  # spread, in ticks
    st.integers(-30, 30),  # position, in (scaled) lots
    st.sampled_from([None, "ACKED", "PART", "SENT"]),  # a resting order
    st.integers(-3, 3),  # its price, ticks from the bid
)


@settings(max_examples=150, deadline=None)
@given(
    inst_i=st.integers(0, len(INSTRUMENTS) - 1),
    sizing=st.sampled_from(["fixed_notional", "vol_scaled"]),
    improve=st.integers(0, 2),
    requote=st.integers(1, 3),
    cap=st.sampled_from([None, "0.5", "3"]),
    hedge=st.booleans(),
    mid0=st.integers(1, 10**7),
    steps=st.lists(_step, min_size=1, max_size=25),
)
def test_ints_strategy_decides_as_the_decimal_strategy(
    inst_i, sizing, improve, requote, cap, hedge, mid0, steps
):
    inst = INSTRUMENTS[inst_i]
    _BY_SYMBOL[inst.symbol] = inst
    cfg = StrategyConfig(
        enter_score=0.3, exit_score=0.1, take_score=0.9, sizing=sizing,
        target_notional_usdt=D(1000), max_position_notional_usdt=D(5000),
        improve_ticks=improve, requote_ticks=requote, vol_halflife_s=1.0,
    )  # fmt: skip
    syms = [SymbolConfig(symbol=inst.symbol, symbol_id=1,
                         max_position_qty=None if cap is None else D(cap))]  # fmt: skip
    ids_new, ids_old = itertools.count(), itertools.count()
    new = Strategy(cfg, {inst.symbol: inst}, lambda: f"c{next(ids_new)}", symbols=syms,
                   hedge=hedge)  # fmt: skip
    old = DecimalStrategy(cfg, {inst.symbol: inst}, lambda: f"c{next(ids_old)}", symbols=syms,
                          hedge=hedge)  # fmt: skip
    grid = DecimalGrid(inst.tick)
    lot_scale = max(1, inst.min_lots)
    mid = mid0
    for i, (score, move, spread, pos, resting, off) in enumerate(steps):
        mid = max(spread + 1, mid + move)
        bid_t, ask_t = mid - spread // 2 - 1, mid - spread // 2 - 1 + spread
        bid_f, ask_f = float(inst.price_of(bid_t)), float(inst.price_of(ask_t))
        bid, ask = grid(bid_f), grid(ask_f)  # what the engine's grid gives: the float's digits
        lots = pos * lot_scale
        working = []
        if resting is not None:
            side = Side.BUY if i % 2 else Side.SELL
            price = inst.price_of(max(1, bid_t + off))
            q = inst.qty_of(5 * lot_scale)
            r = OrderRequest(client_id=f"r{i}", symbol=inst.symbol, side=side, qty=q,
                             price=price, tif=TimeInForce.POST_ONLY)  # fmt: skip
            status = {"ACKED": OrderStatus.ACKED, "PART": OrderStatus.PART_FILLED,
                      "SENT": OrderStatus.SENT}[resting]  # fmt: skip
            filled = inst.qty_of(lot_scale) if resting == "PART" else D(0)
            working = [Order(request=r, status=status, filled_qty=filled)]
        sig_mid = grid(float(inst.price_of(mid)))
        sig = SignalInput(symbol=inst.symbol, score=score, mid=sig_mid)
        now = (i + 1) * 10**9
        a = new.decide(sig, Quote(bid, ask, grid.units(bid_f), grid.units(ask_f)), lots,
                       working, now)  # fmt: skip
        b = old.decide(sig, Quote(bid, ask), inst.qty_of(lots), working, now)
        _same_actions(a, b)
    assert next(ids_new) == next(ids_old)


# -- risk: ints against the Decimal checks -------------------------------------------------------

_factor = st.sampled_from([D("0.77"), D("1.5"), D("2.25"), D(4), D(1000)])
_collars = st.tuples(st.sampled_from(["0.5", "7.5", "50", "3000"]), st.sampled_from(["20", "5000"]))


@settings(max_examples=150, deadline=None)
@given(
    inst_i=st.integers(0, len(INSTRUMENTS) - 1),
    mid_t=st.integers(2, 4_000_000),  # the mid in half ticks
    limits=st.tuples(_factor, _factor, _factor),  # x the notional of 100 lots at the mid
    collars=_collars,
    sym_caps=st.tuples(st.sampled_from([None, 60, 250]), st.sampled_from([None, None, 250])),
    checks=st.lists(
        st.tuples(
            st.integers(1, 300),  # qty, lots
            st.integers(-40, 40),  # price, ticks from the mid (-40: a market order)
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(-300, 300),  # position, lots
            st.sampled_from([0, 0, 7, -3]),  # another symbol's position
            st.integers(0, 4),  # open orders on the symbol
            st.sampled_from([None, None, "near", "far"]),  # the mark
            st.sampled_from(["ok"] * 6 + ["pnl", "breaker", "offstep", "offtick"]),
        ),
        min_size=1,
        max_size=14,
    ),
)
def test_ints_risk_checks_as_the_decimal_checks(inst_i, mid_t, limits, collars, sym_caps, checks):
    inst = INSTRUMENTS[inst_i]
    mid = inst.price_of(mid_t) / 2  # on the half tick, as a quote's mid is
    unit = (100 * inst.step * mid).quantize(D("0.01"))  # 100 lots' notional, to the cent
    cfg = RiskConfig(
        max_order_notional_usdt=max(D("0.01"), unit * limits[0]),
        max_position_notional_usdt=max(D("0.01"), unit * limits[1]),
        max_total_notional_usdt=max(D("0.01"), unit * limits[2]),
        price_collar_mid_bps=D(collars[0]), price_collar_mark_bps=D(collars[1]),
        max_open_orders=50, max_open_orders_per_symbol=50, max_orders_per_window=8,
        order_rate_window_s=1.0, daily_loss_limit_usdt=D(100), max_drawdown_usdt=D(150),
        max_data_age_s=2.0, duplicate_window_s=0.5,
    )  # fmt: skip
    caps = [None if c is None else inst.qty_of(c) + inst.step / 3 for c in sym_caps]  # off-step
    syms = [SymbolConfig(symbol=inst.symbol, symbol_id=1, max_position_qty=caps[0],
                         max_order_qty=caps[1])]  # fmt: skip
    new, old = RiskEngine(cfg, syms), DecimalRiskEngine(cfg, syms)
    other = "OTHERUSDT"
    for i, (lots, off, side, pos, pos_o, n_open, mark, kind) in enumerate(checks):
        ticks = mid_t // 2 + off if off > -40 else -1
        qty = inst.qty_of(lots) + (inst.step / 2 if kind == "offstep" else 0)
        price = None if ticks < 0 else inst.price_of(ticks)
        if price is not None and kind == "offtick":
            price += inst.tick / 4
        lots_on = -1 if kind == "offstep" or i % 3 == 0 else lots  # -1: risk derives them
        ticks_on = -1 if price is None or kind == "offtick" or i % 3 == 1 else ticks
        r = OrderRequest(
            client_id=f"c{i % 5}", symbol=inst.symbol, side=side, qty=qty, price=price,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            tif=TimeInForce.IOC if price is None else TimeInForce.GTC,
            reduce_only=bool(i % 2), lots=lots_on, ticks=ticks_on,
        )  # fmt: skip
        opened = [
            Order(
                request=OrderRequest(
                    client_id=f"o{i}-{k}", symbol=inst.symbol,
                    side=Side.BUY if k % 2 else Side.SELL, qty=inst.qty_of(10 * k + 1),
                    price=inst.price_of(max(1, mid_t // 2 + (-30 - k if k % 2 else 30 + k))),
                    lots=10 * k + 1 if k % 2 else -1,
                ),
                status=OrderStatus.PART_FILLED if k == 3 else OrderStatus.ACKED,
                filled_qty=inst.qty_of(1) if k == 3 else D(0),
            )
            for k in range(n_open)
        ]  # fmt: skip
        now = (i + 1) * 300_000_000
        ctx = RiskContext(
            now_ns=now, instrument=inst, mid=mid, ts_data_ns=now - (3 * 10**9 if i == 5 else 0),
            mark={None: None, "near": mid * D("1.0013"), "far": mid * D("1.3")}[mark],
            positions={inst.symbol: inst.qty_of(pos), other: D(pos_o)},
            marks={inst.symbol: mid, other: unit / 7}, open_orders=opened,
            day_pnl=D(-120) if kind == "pnl" else D(0), drawdown=D(0),
            breaker=BreakerState.REDUCING if kind == "breaker" else BreakerState.ACTIVE,
        )  # fmt: skip
        assert ctx.position_lots == pos
        assert ctx.mid2 == mid_t
        assert new.check(r, ctx) == old.check(r, ctx), (i, r)  # reason and detail text


@given(
    st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 500)), max_size=30)
)
def test_ints_position_book_keeps_net_lots(trades):
    inst = INSTRUMENTS[0]
    book = PositionBook()
    book.set_step(inst.symbol, inst.step)
    for k, (side, lots) in enumerate(trades):
        book.apply_fill(Fill(fill_id=f"f{k}", client_id="c", order_id="o", symbol=inst.symbol,
                             side=side, qty=inst.qty_of(lots), price=D(100), fee=D(0)))  # fmt: skip
        assert inst.qty_of(book.net_lots(inst.symbol)) == book.net_qty(inst.symbol)
    hedge = PositionBook(hedge=True)
    hedge.set_step("X", D("0.01"))
    hedge.restore([PositionSnapshot(symbol="X", position_side=PositionSide.LONG, qty=D("0.05")),
                   PositionSnapshot(symbol="X", position_side=PositionSide.SHORT,
                                    qty=D("-0.02"))])  # fmt: skip
    assert hedge.net_lots("X") == 3
    assert hedge.net_lots("NOSTEP") == 0
