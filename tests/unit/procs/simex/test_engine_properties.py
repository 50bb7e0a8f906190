"""Engine invariants over random order sequences (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procs.exchange.engine import Exchange
from procs.exchange.model import ZERO, ExchangeError, SymbolSpec
from procs.simex import admin

SPEC = SymbolSpec(symbol="X", base="X", base_precision=1, quote_precision=0, min_qty=D("0.1"))
ACCOUNTS = ("a", "b")

qty = st.integers(1, 30).map(lambda i: D(i) / 10)
price = st.integers(95, 105).map(D)
place = st.tuples(
    st.just("place"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["LIMIT", "MARKET"]),
    st.sampled_from(["GTC", "IOC", "FOK", "POST_ONLY"]),
    qty,
    price,
    st.booleans(),
    st.sampled_from(["OPEN", "CLOSE"]),
)
mm_add = st.tuples(st.just("mm_add"), st.booleans(), price, qty)
mm_take = st.tuples(st.just("mm_take"), st.booleans(), qty)
cancel = st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 20))
modify = st.tuples(st.just("modify"), st.sampled_from(ACCOUNTS), st.integers(0, 20), qty, price)
ops = st.lists(st.one_of(place, mm_add, mm_take, cancel, modify), min_size=10, max_size=60)


def apply(ex: Exchange, op: tuple, i: int) -> None:
    kind = op[0]
    try:
        if kind == "place":
            _, acct, side, otype, effect, q, p, ro, tside = op
            leg = ex.accounts[acct].positions.get(("X", "LONG" if side == "BUY" else "SHORT"))
            ex.place_order(
                acct,
                symbol="X",
                side=side,
                order_type=otype,
                effect=effect,
                qty=q,
                price=p,
                reduce_only=ro,
                trade_side=tside,
                position_id=leg.position_id if leg is not None else "",  # hedge closes name it
                ts_ms=i,
            )
        elif kind == "mm_add":
            ex.mm_add("X", f"m{i}", op[1], op[2], op[3], i)
        elif kind == "mm_take":
            ex.mm_take("X", op[1], op[2], i)
        elif kind in ("cancel", "modify"):
            opens = list(ex.accounts[op[1]].open_orders)
            if not opens:
                return
            oid = opens[op[2] % len(opens)]
            if kind == "cancel":
                ex.cancel_order(op[1], order_id=oid, ts_ms=i)
            else:
                ex.modify_order(op[1], order_id=oid, qty=op[3], price=op[4], ts_ms=i)
    except ExchangeError:
        pass


def check(ex: Exchange, traded: D) -> None:
    book = ex.books["X"]
    net = ex.mm_position["X"]
    for acct in ex.accounts.values():
        assert acct.wallet == acct.initial + acct.pnl_total - acct.fees_total
        assert acct.wallet >= 0
        assert acct.frozen() >= 0
        assert acct.margin() >= 0
        fees = sum((D(f["fee"]) for f in acct.fills), ZERO)
        assert abs(fees - acct.fees_total) < D("1e-9")
        by_order: dict[str, D] = {}
        for f in acct.fills:
            by_order[f["orderId"]] = by_order.get(f["orderId"], ZERO) + D(f["qty"])
        for o in acct.orders.values():
            assert 0 <= o.filled <= o.qty
            assert by_order.get(o.order_id, ZERO) == o.filled
            assert o.lock >= 0
            if o.open:
                assert o.order_id in book
                assert book.orders[o.order_id].remaining == o.remaining
            else:
                assert o.order_id not in book
                assert o.lock == 0
            net += o.filled if o.is_buy else -o.filled
        pos_net = ZERO
        for p in acct.positions.values():
            assert abs(p.margin - p.entry_value / p.leverage) < D("1e-9")
            assert p.qty > 0
            assert p.margin >= 0
            pos_net += p.qty if p.side == "LONG" else -p.qty
        filled_net = sum(
            ((o.filled if o.is_buy else -o.filled) for o in acct.orders.values()), ZERO
        )
        assert pos_net == filled_net
        if not acct.positions:
            assert acct.available() >= 0
    assert net == 0
    for side in (book.bids, book.asks):
        for px, level in side.levels.items():
            assert side.qty[px] == sum((r.remaining for r in level), ZERO) > 0
    bb, ba = book.best_bid(), book.best_ask()
    assert bb is None or ba is None or bb < ba
    assert traded >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, lev=st.sampled_from([1, 2, 5]), hedge=st.booleans())
def test_engine_random_sequences_keep_books_balances_and_positions_consistent(ops, lev, hedge):
    ex = Exchange([SPEC], {a: D(5000) for a in ACCOUNTS})
    for a in ACCOUNTS:
        admin.change_leverage(ex, a, "X", lev)
        if hedge:
            admin.change_position_mode(ex, a, "HEDGE")
    for k in range(4):
        ex.mm_add("X", f"sb{k}", True, D(99 - k), D(2), 0)
        ex.mm_add("X", f"sa{k}", False, D(101 + k), D(2), 0)
    traded = ZERO

    for i, op in enumerate(ops):
        apply(ex, op, i)
        _, trades = ex.drain()
        traded += sum((t.qty for t in trades), ZERO)
        check(ex, traded)
