"""simex funding settlement: who pays, wallet and position totals, pushes, schedule, state."""

from __future__ import annotations

from decimal import Decimal as D

from procs.exchange.engine import Exchange
from procs.exchange.model import SymbolSpec
from procs.simex import admin
from procs.simex.funding import next_funding_ms, settle_funding
from procs.simex.state import load_state, save_state

BTC = SymbolSpec(symbol="BTCUSDT", base="BTC", funding_rate=D("0.001"))


def make() -> Exchange:
    ex = Exchange([BTC], {"a": D(100000), "b": D(100000)}, funding_interval_ms=60_000)
    for i in range(5):
        ex.mm_add("BTCUSDT", f"mb{i}", True, D(100) - i, D(10), 0)
        ex.mm_add("BTCUSDT", f"ma{i}", False, D(101) + i, D(10), 0)
    ex.drain()
    return ex


def buy(ex: Exchange, acct: str, side: str, qty: str) -> None:
    ex.place_order(acct, symbol="BTCUSDT", side=side, order_type="MARKET", qty=D(qty), ts_ms=1)


def test_settle_funding_positive_rate_long_pays_short_receives():
    ex = make()
    buy(ex, "a", "BUY", "2")
    buy(ex, "b", "SELL", "3")
    ex.drain()
    mark = ex.mark("BTCUSDT")
    wallet_a, wallet_b = ex.accounts["a"].wallet, ex.accounts["b"].wallet

    n = settle_funding(ex, 60_000)

    a = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    b = ex.accounts["b"].positions[("BTCUSDT", "NET")]
    assert n == 2
    assert a.funding == -(D(2) * mark * D("0.001"))
    assert b.funding == D(3) * mark * D("0.001")
    assert ex.accounts["a"].wallet == wallet_a + a.funding
    assert ex.accounts["b"].wallet == wallet_b + b.funding
    assert ex.accounts["a"].funding_total == a.funding
    assert a.mtime == 60_000


def test_settle_funding_pushes_position_and_balance_and_keeps_history():
    ex = make()
    buy(ex, "a", "BUY", "1")
    ex.drain()

    settle_funding(ex, 120_000, {"BTCUSDT": D("-0.002")})

    events, _ = ex.drain()
    pos = [e.data for e in events if e.channel == "position"]
    held = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    assert [D(str(p["funding"])) for p in pos] == [held.funding]
    assert D(str(pos[0]["funding"])) > 0  # a negative rate: the long receives
    assert [e.account for e in events if e.channel == "balance"] == ["a"]
    assert ex.funding_history["BTCUSDT"][-1]["fundingRate"] == "-0.002"
    assert ex.funding_history["BTCUSDT"][-1]["fundingTime"] == "120000"


def test_settle_funding_without_positions_moves_no_money():
    ex = make()

    assert settle_funding(ex, 60_000) == 0
    assert ex.accounts["a"].wallet == D(100000)


def test_hedge_legs_settle_each_leg():
    ex = make()
    admin.change_position_mode(ex, "a", "HEDGE")
    ex.place_order("a", symbol="BTCUSDT", side="BUY", order_type="MARKET", qty=D(1), ts_ms=1,
                   trade_side="OPEN")  # fmt: skip
    ex.place_order("a", symbol="BTCUSDT", side="SELL", order_type="MARKET", qty=D(1), ts_ms=1,
                   trade_side="OPEN")  # fmt: skip

    assert settle_funding(ex, 60_000) == 2
    legs = ex.accounts["a"].positions
    assert legs[("BTCUSDT", "LONG")].funding == -legs[("BTCUSDT", "SHORT")].funding != 0


def test_next_funding_ms_is_the_next_multiple_of_the_interval():
    ex = make()

    assert next_funding_ms(ex, 0) == 60_000
    assert next_funding_ms(ex, 59_999) == 60_000
    assert next_funding_ms(ex, 60_000) == 120_000


def test_funding_totals_survive_save_and_restore(tmp_path):
    ex = make()
    buy(ex, "a", "BUY", "1")
    settle_funding(ex, 60_000)
    path = tmp_path / "state.json"
    save_state(ex, path, 1)

    again = make()
    load_state(again, path)

    pos = again.accounts["a"].positions[("BTCUSDT", "NET")]
    assert pos.funding == ex.accounts["a"].positions[("BTCUSDT", "NET")].funding != 0
    assert again.accounts["a"].funding_total == ex.accounts["a"].funding_total
    assert again.accounts["a"].wallet == ex.accounts["a"].wallet


def test_a_settlement_never_moves_a_positions_mtime_back():
    # the settlement runs a little after its time; a trade in between stamped the position
    # later. Execution keeps a position id's newest figure by mtime (``Legs.observe``): an
    # mtime moved back would make the settlement's push and every later REST figure look old,
    # and its funding would never be booked (reconciliation stuck on funding_mismatch)
    ex = make()
    ex.place_order("a", symbol="BTCUSDT", side="BUY", order_type="MARKET", qty=D(1), ts_ms=60_150)
    ex.drain()
    pos = ex.accounts["a"].positions[("BTCUSDT", "NET")]
    assert pos.mtime == 60_150

    settle_funding(ex, 60_000)  # its time, run 200 ms late

    events, _ = ex.drain()
    [push] = [e.data for e in events if e.channel == "position"]
    assert pos.mtime == 60_150
    assert push["mtime"] == "1970-01-01T00:01:00.150000000Z"
    assert D(str(push["funding"])) == pos.funding != 0
