"""Strategy: hysteresis, thresholds, inventory caps, sizing on tick/step, quoting decisions."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from procs.trading.config import StrategyConfig, SymbolConfig
from procs.trading.model import OrderStatus, PositionSide, Side, TimeInForce
from procs.trading.orders import Order
from procs.trading.strategy import (
    CancelOrder,
    PlaceOrder,
    Quote,
    ReplaceOrder,
    SignalInput,
    Strategy,
    VolEstimator,
    signals_from_records,
)
from shm.records import FLAG_STALE, SIG_V1

from .helpers import btc, req

D = Decimal
CFG = StrategyConfig(
    enter_score=0.3,
    exit_score=0.1,
    take_score=0.9,
    target_notional_usdt=D(600),
    max_position_notional_usdt=D(1200),
    requote_ticks=2,
)
Q = Quote(D("59999.9"), D("60000.1"))


def strat(
    cfg: StrategyConfig = CFG,
    hedge: bool = False,
    symbols: Sequence[SymbolConfig] = (),
    **inst: Any,
) -> Strategy:
    ids = (f"br-1-{i}" for i in itertools.count(1))
    return Strategy(cfg, {"BTCUSDT": btc(**inst)}, lambda: next(ids), symbols=symbols, hedge=hedge)


def sig(score: float, mid: str = "60000", stale: bool = False) -> SignalInput:
    return SignalInput(symbol="BTCUSDT", score=score, mid=D(mid), stale=stale)


def test_strategy_hysteresis_enters_at_threshold_and_exits_below_exit():
    s = strat()
    path = [0.29, 0.3, 0.2, 0.1, 0.09, -0.29, -0.3, -0.11, -0.09, 0.5, -0.3]
    assert [s.update_regime("BTCUSDT", x) for x in path] == [0, 1, 1, 1, 0, 0, -1, -1, 0, 1, -1]


def test_strategy_target_fixed_notional_on_step():
    s = strat()
    assert s.target_qty(sig(0.5), 1) == D("0.01")
    assert s.target_qty(sig(-0.5, mid="70000"), 2) == D("-0.0085")  # 600/70000 rounded down
    assert s.target_qty(sig(0.05), 3) == 0


def test_strategy_inventory_caps_notional_and_symbol_qty():
    cfg = msgspec.structs.replace(CFG, target_notional_usdt=D(5000))
    assert strat(cfg).unit_qty("BTCUSDT", D(60000)) == D("0.02")  # capped at 1200 notional
    capped = strat(
        cfg, symbols=[SymbolConfig(symbol="BTCUSDT", symbol_id=1, max_position_qty=D("0.005"))]
    )
    assert capped.unit_qty("BTCUSDT", D(60000)) == D("0.005")


def test_strategy_vol_scaled_sizing_shrinks_when_vol_rises():
    cfg = msgspec.structs.replace(
        CFG,
        sizing="vol_scaled",
        vol_target_per_sqrt_s=1e-4,
        vol_halflife_s=10.0,
        max_position_notional_usdt=D(10**6),
    )
    calm, wild = strat(cfg), strat(cfg)
    for i in range(200):
        calm.target_qty(sig(0.0, mid=str(60000 + (i % 2))), i * 10**9)
        wild.target_qty(sig(0.0, mid=str(60000 + 100 * (i % 2))), i * 10**9)
    assert calm.unit_qty("BTCUSDT", D(60000)) > wild.unit_qty("BTCUSDT", D(60000)) > 0


def test_vol_estimator_matches_constant_return_rate():
    v = VolEstimator(halflife_s=1.0)
    for i in range(2000):
        v.update(100.0 * (1.001 if i % 2 else 1.0), i * 10**9)
    assert abs(v.vol_per_sqrt_s - np.log(1.001)) < 1e-6


@st.composite
def random_instruments(draw):
    step = D(1).scaleb(-draw(st.integers(0, 6)))
    return {
        "tick": D(1).scaleb(-draw(st.integers(-1, 5))),
        "step": step,
        "min_qty": step * draw(st.integers(1, 50)),
    }


@given(random_instruments(), st.decimals("0.01", "100000", places=2), st.floats(-1, 1))
def test_strategy_sizing_any_instrument_respects_step_min_and_tick(inst, mid, score):
    s = strat(**inst)
    rules = btc(**inst)
    qty = s.target_qty(sig(score, mid=str(mid)), 1)
    assert qty == 0 or (rules.on_step(abs(qty)) and abs(qty) >= rules.min_qty)
    assert abs(qty) * mid <= CFG.max_position_notional_usdt
    bid = rules.round_price(mid, Side.BUY)
    quote = Quote(bid, bid + 3 * rules.tick)
    for a in s.decide(sig(score, mid=str(mid)), quote, 0, [], 1):
        r = a.request
        assert rules.on_tick(r.price)
        assert rules.on_step(r.qty)
        assert r.qty >= rules.min_qty


def test_strategy_places_post_only_at_best_and_keeps_it_while_close():
    s = strat()
    [a] = s.decide(sig(0.5), Q, 0, [], 1)
    assert isinstance(a, PlaceOrder)
    r = a.request
    assert (r.side, r.qty, r.price, r.tif, r.reduce_only) == (
        Side.BUY,
        D("0.01"),
        D("59999.9"),
        TimeInForce.POST_ONLY,
        False,
    )
    assert r.position_side is PositionSide.BOTH
    resting = Order(request=r, status=OrderStatus.ACKED)
    near = Quote(D("60000.0"), D("60000.2"))  # 1 tick away: keep
    assert s.decide(sig(0.5), near, 0, [resting], 2) == []
    far = Quote(D("60000.1"), D("60000.3"))  # 2 ticks: replace
    [rep] = s.decide(sig(0.5), far, 0, [resting], 3)
    assert isinstance(rep, ReplaceOrder)
    assert rep.cancel_client_id == r.client_id
    assert rep.request.price == D("60000.1")


def test_strategy_improve_ticks_stays_inside_spread():
    cfg = msgspec.structs.replace(CFG, improve_ticks=3)
    [a] = strat(cfg).decide(sig(0.5), Quote(D(60000), D("60000.2")), 0, [], 1)
    assert a.request.price == D("60000.1")  # never at or through the ask
    [b] = strat(cfg).decide(sig(-0.5), Quote(D(60000), D("60001")), 0, [], 1)
    assert b.request.price == D("60000.7")


def test_strategy_strong_signal_takes_with_ioc_at_opposite_best():
    [a] = strat().decide(sig(0.95), Q, 0, [], 1)
    assert (a.request.price, a.request.tif, a.request.tag) == (
        D("60000.1"),
        TimeInForce.IOC,
        "take",
    )


def test_strategy_flip_closes_reduce_only_first():
    s = strat()
    s.update_regime("BTCUSDT", 0.5)
    [a] = s.decide(sig(-0.5), Q, 100, [], 1)
    r = a.request
    assert (r.side, r.qty, r.reduce_only) == (Side.SELL, D("0.01"), True)


def test_strategy_exit_flattens_and_cancels_wrong_side():
    s = strat()
    s.update_regime("BTCUSDT", 0.5)
    buy = Order(
        request=req(cid="old", side=Side.BUY, qty="0.01", price="59990"), status=OrderStatus.ACKED
    )
    actions = s.decide(sig(0.05), Q, 40, [buy], 1)
    assert actions[0] == CancelOrder("old", "BTCUSDT", "wrong side")
    r = actions[1].request
    assert (r.side, r.qty, r.reduce_only) == (Side.SELL, D("0.004"), True)


def test_strategy_at_target_cancels_resting():
    s = strat()
    s.update_regime("BTCUSDT", 0.5)
    buy = Order(request=req(cid="old", qty="0.001", price="59990"), status=OrderStatus.ACKED)
    assert s.decide(sig(0.5), Q, 100, [buy], 1) == [CancelOrder("old", "BTCUSDT", "at target")]


def test_strategy_waits_while_an_order_is_in_flight_or_cancelling():
    s = strat()
    sent = Order(request=req(cid="x"), status=OrderStatus.SENT)
    assert s.decide(sig(0.5), Q, 0, [sent], 1) == []
    cancelling = Order(request=req(cid="y"), status=OrderStatus.ACKED, ts_cancel_ns=5)
    assert s.decide(sig(0.5), Q, 0, [cancelling], 1) == []


def test_strategy_stale_signal_cancels_everything_places_nothing():
    s = strat()
    o = Order(request=req(cid="x"), status=OrderStatus.ACKED)
    assert s.decide(sig(0.9, stale=True), Q, 0, [o], 1) == [
        CancelOrder("x", "BTCUSDT", "stale market data")
    ]


def test_strategy_one_sided_book_places_nothing():
    assert strat().decide(sig(0.5), Quote(D(0), D(60000)), 0, [], 1) == []


def test_strategy_hedge_mode_picks_the_leg():
    s = strat(hedge=True)
    [a] = s.decide(sig(-0.5), Q, 0, [], 1)
    assert (a.request.side, a.request.position_side) == (Side.SELL, PositionSide.SHORT)
    [b] = s.decide(sig(0.5), Q, -100, [], 2)
    assert (b.request.side, b.request.position_side, b.request.reduce_only) == (
        Side.BUY,
        PositionSide.SHORT,
        True,
    )


def test_signals_from_records_newest_per_symbol_with_stamps_and_stale_flag():
    recs = np.zeros(3, dtype=SIG_V1)
    recs["symbol_id"] = [1, 1, 9]
    recs["score"] = [0.1, 0.7, 0.3]
    recs["mid"] = [60000.0, 60000.05000001, 1.0]
    recs["flags"] = [0, FLAG_STALE, 0]
    recs["ts_event_ns"], recs["ts_sig_ns"] = [1, 2, 3], [4, 5, 6]
    [s] = signals_from_records(recs, {1: btc()})
    assert s.symbol == "BTCUSDT"
    assert abs(s.score - 0.7) < 1e-6
    assert s.mid == D("60000.1")
    assert s.stale
    assert (s.stamps.ts_event_ns, s.stamps.ts_sig_ns) == (2, 5)


def test_signals_from_records_are_the_signal_inputs_their_constructor_makes():
    # signals_from_records sets the slots directly; the objects must be the constructor's
    from procs.trading.instruments import DecimalGrid, to_decimal
    from procs.trading.model import TickStamps

    rng = np.random.default_rng(3)
    insts = {1: btc(), 4: btc(symbol="ETHUSDT")}
    recs = np.zeros(40, dtype=SIG_V1)
    recs["symbol_id"] = rng.choice([1, 4, 9], 40)
    recs["score"] = rng.uniform(-1, 1, 40)
    recs["score"][::7] = np.nan
    recs["mid"] = 60000 + rng.uniform(-5, 5, 40)
    recs["flags"] = rng.choice([0, FLAG_STALE, FLAG_STALE | 1], 40)
    for name in ("ts_event_ns", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns"):
        recs[name] = rng.integers(0, 2**62, 40)
    grids = {sid: DecimalGrid(i.tick) for sid, i in insts.items()}
    for k in range(0, 40, 5):
        batch = recs[k : k + 5]
        for mids in (None, grids):
            got = signals_from_records(batch, insts, mids)
            newest = {int(r["symbol_id"]): r for r in batch if int(r["symbol_id"]) in insts}
            want = []
            for sid, r in newest.items():
                score = float(r["score"])
                want.append(
                    SignalInput(
                        symbol=insts[sid].symbol,
                        score=score if np.isfinite(score) else 0.0,
                        mid=to_decimal(float(r["mid"]), insts[sid].tick),
                        stale=bool(int(r["flags"]) & FLAG_STALE) or not np.isfinite(score),
                        stamps=TickStamps(*(int(r[n]) for n in (
                            "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns"))),
                    )
                )  # fmt: skip
            assert got == want
            assert [type(s.stamps.ts_recv_ns) for s in got] == [int] * len(got)
            assert [hash(s.stamps) for s in got] == [hash(s.stamps) for s in want]


_QUOTES = [Q, Quote(D("60000.0"), D("60000.2")), Quote(D("60000.1"), D("60000.3")), Q]
QUOTING = req("br-0-1", price="60000.0", qty="0.01", tif=TimeInForce.POST_ONLY)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.95, -0.35, -0.95]),
            st.integers(0, len(_QUOTES) - 1),
            st.sampled_from([None, OrderStatus.SENT, OrderStatus.ACKED, OrderStatus.ACKED]),
            st.sampled_from([0, 0, 100, -40]),  # lots of 0.0001
        ),
        max_size=40,
    )
)
def test_strategy_quiet_shortcut_decides_as_the_full_path(steps):
    # the shortcut (the same inputs as the last decision that did nothing) gives the same
    # actions and draws the same clientIds as deciding in full every time
    fast, full = strat(), strat()
    resting = {
        st_: Order(request=QUOTING, status=st_) for st_ in (OrderStatus.SENT, OrderStatus.ACKED)
    }
    for i, (score, qi, status, pos) in enumerate(steps):
        working = [] if status is None else [resting[status]]
        full._quiet.clear()
        a = fast.decide(sig(score), _QUOTES[qi], pos, working, i)
        b = full.decide(sig(score), _QUOTES[qi], pos, working, i)
        assert a == b
    assert fast._next_id() == full._next_id()
