"""Symbol rules derived from trading_pairs, and rounding of prices and quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procs.trading.instruments import DecimalGrid, SymbolStatus, instrument_from_pair, to_decimal
from procs.trading.model import OrderType, Side

from .helpers import btc

D = Decimal
PAIR = {
    "symbol": "BTCUSDT",
    "minTradeVolume": "0.0001",
    "maxLimitOrderVolume": "100000",
    "maxMarketOrderVolume": "50000",
    "basePrecision": 4,
    "quotePrecision": 1,
    "priceProtectScope": "0.02",
    "symbolStatus": "OPEN",
}


def test_instrument_from_pair_reference_example_derives_tick_and_step():
    inst = instrument_from_pair(PAIR, symbol_id=3)
    assert (inst.tick, inst.step, inst.min_qty) == (D("0.1"), D("0.0001"), D("0.0001"))
    assert inst.max_qty(OrderType.LIMIT) == D(100000)
    assert inst.max_qty(OrderType.MARKET) == D(50000)
    assert inst.price_protect_scope == D("0.02")
    assert inst.tradable
    assert inst.symbol_id == 3


def test_instrument_from_pair_status_and_api_flag_map_to_status():
    assert instrument_from_pair({**PAIR, "symbolStatus": "cancel_only"}).status is (
        SymbolStatus.CANCEL_ONLY
    )
    assert instrument_from_pair({**PAIR, "isApiSupported": False}).status is SymbolStatus.STOP


def test_instrument_min_qty_off_step_raises():
    with pytest.raises(ValueError, match="min_qty"):
        btc(min_qty=D("0.00015"))


def test_round_qty_rounds_down_and_zeroes_below_min():
    inst = btc(min_qty=D("0.001"))
    assert inst.round_qty(D("0.01239")) == D("0.0123")
    assert inst.round_qty(D("0.00099")) == 0
    assert inst.round_qty(D("-1")) == 0


def test_round_price_passive_per_side_nearest_without_side():
    inst = btc()
    assert inst.round_price(D("60000.07"), Side.BUY) == D("60000.0")
    assert inst.round_price(D("60000.01"), Side.SELL) == D("60000.1")
    assert inst.round_price(D("60000.06")) == D("60000.1")


def test_to_decimal_float_record_value_lands_on_tick():
    assert to_decimal(60000.100000001, D("0.1")) == D("60000.1")
    assert to_decimal(0.30000000000000004, D("0.05")) == D("0.30")


@st.composite
def instruments(draw):
    base_prec = draw(st.integers(0, 8))
    quote_prec = draw(st.integers(-1, 6))
    step = D(1).scaleb(-base_prec)
    min_qty = step * draw(st.integers(1, 1000))
    return instrument_from_pair(
        {
            **PAIR,
            "basePrecision": base_prec,
            "quotePrecision": quote_prec,
            "minTradeVolume": str(min_qty),
        }
    )


@given(instruments(), st.decimals("0", "1000", places=10), st.decimals("0.001", "1e6", places=6))
def test_rounding_any_instrument_lands_on_step_tick_and_never_exceeds(inst, qty, px):
    q = inst.round_qty(qty)
    assert q <= qty
    assert q == 0 or (inst.on_step(q) and q >= inst.min_qty)
    assert qty - q < inst.step or q == 0
    buy, sell = inst.round_price(px, Side.BUY), inst.round_price(px, Side.SELL)
    assert buy <= px <= sell
    assert sell - buy <= inst.tick
    assert buy % inst.tick == 0
    assert sell % inst.tick == 0


@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e7, allow_nan=False), max_size=30),
    st.sampled_from(["0.1", "0.01", "0.0001", "1", "0.5"]),
)
def test_decimal_grid_equals_to_decimal_on_misses_and_hits(values, quantum):
    q = Decimal(quantum)
    grid = DecimalGrid(q, max_size=8)
    for v in values + values:  # the second pass hits the memo (or a refilled one)
        got = grid(v)
        assert got == to_decimal(v, q)
        assert str(got) == str(to_decimal(v, q))
    assert len(grid._memo) <= 8


def test_decimal_grid_zero_keeps_its_sign_like_to_decimal():
    grid = DecimalGrid(Decimal("0.1"))
    assert str(grid(0.0)) == str(to_decimal(0.0, Decimal("0.1")))
    assert str(grid(-0.0)) == str(to_decimal(-0.0, Decimal("0.1")))
