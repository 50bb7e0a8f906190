"""Capture replay: the replayed books equal the captured snapshots; trades become takes."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest

from procs.exchange.engine import Exchange
from procs.exchange.marketgen import TakeAction, apply_action
from procs.exchange.model import SymbolSpec
from procs.ml.simcapture import DEFAULT_SYMBOLS, write_sim_capture
from procs.simex.replay import ReplayError, load_replay

SPECS = {
    g.symbol: SymbolSpec(
        symbol=g.symbol,
        base=g.symbol,
        base_precision=-g.step.as_tuple().exponent,  # type: ignore[operator]  # finite Decimal
        quote_precision=-g.tick.as_tuple().exponent,  # type: ignore[operator]
        min_qty=g.min_qty,
    )
    for g in DEFAULT_SYMBOLS
}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cap")
    write_sim_capture(directory, seed=4, duration_s=2.0)
    return directory


def test_replayed_book_matches_each_captured_snapshot(capture):
    src = load_replay(capture, SPECS, start_ns=0, loop=False)
    ex = Exchange(list(SPECS.values()), {})
    books = src._books
    symbols = src.symbols
    checked = 0

    ts = books["ts_event_ns"]
    last_in_ms = [
        k
        for k in range(min(books.size, 400))
        if not any(
            ts[j] == ts[k] and books[j]["symbol_id"] == books[k]["symbol_id"]
            for j in range(k + 1, min(k + 40, books.size))
        )
    ]  # stamps are ms: within one ms only the last snapshot of a symbol is observable
    for k in last_in_ms[::3]:
        rec = books[k]
        t = int(rec["ts_event_ns"]) - src._c0 + 1
        for a in src.actions_until(t, ex.books):
            apply_action(ex, a, 0)
        sym = symbols[int(rec["symbol_id"])]
        bids, asks = ex.books[sym].depth(15)
        nb, na = int(rec["n_bids"]), int(rec["n_asks"])
        assert [float(p) for p, _ in bids] == pytest.approx(rec["bid_px"][:nb].tolist())
        assert [float(q) for _, q in bids] == pytest.approx(rec["bid_qty"][:nb].tolist())
        assert [float(p) for p, _ in asks] == pytest.approx(rec["ask_px"][:na].tolist())
        assert [float(q) for _, q in asks] == pytest.approx(rec["ask_qty"][:na].tolist())
        checked += 1

    assert checked > 20


def test_replay_turns_trades_into_takes_and_loops(capture):
    src = load_replay(capture, SPECS, start_ns=0, speed=4.0, loop=True)
    ex = Exchange(list(SPECS.values()), {})

    actions = []
    for a in src.actions_until(2_000_000_000, ex.books):  # 8 s of capture at 4x: loops
        apply_action(ex, a, 0)
        actions.append(a)

    takes = [a for a in actions if isinstance(a, TakeAction)]
    assert takes
    assert len(actions) > 2 * np.size(src._ts) * 0.9
    assert not src.finished


def test_replay_of_unconfigured_symbols_is_refused(capture):
    other = {"FOOUSDT": SymbolSpec(symbol="FOOUSDT", base="FOO")}

    with pytest.raises(ReplayError, match="not configured"):
        load_replay(capture, other, start_ns=0)


def test_replay_captured_sell_trade_fills_a_user_bid_at_the_top(capture):
    src = load_replay(capture, SPECS, start_ns=0, loop=False)
    ex = Exchange(list(SPECS.values()), {"u": D(10**9)})
    sym = src.symbols[0]
    tick = SPECS[sym].tick
    order = None
    for a in src.actions_until(10**12, ex.books):
        book = ex.books[sym]
        bid, ask = book.best_bid(), book.best_ask()
        is_sell = isinstance(a, TakeAction) and a.symbol == sym and not a.is_buy
        if is_sell and bid is not None and ask is not None and ask - bid > tick:
            order = ex.place_order(
                "u", symbol=sym, side="BUY", order_type="LIMIT", qty=SPECS[sym].min_qty,
                price=bid + tick, ts_ms=0,
            )  # fmt: skip
            apply_action(ex, a, 0)
            break
        apply_action(ex, a, 0)

    assert order is not None
    assert order.filled > 0
