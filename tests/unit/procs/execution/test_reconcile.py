"""Reconciliation diff cases and the actions that resolve them."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

from procs.trading.model import OrderStatus, PositionSide, Side, VenueOrderUpdate
from procs.trading.orders import ClientIdGenerator, Order, OrderTracker
from procs.trading.positions import PositionBook, PositionSnapshot
from procs.trading.reconcile import (
    AdoptUpdate,
    CancelVenueOrder,
    DiffKind,
    QueryOrder,
    VenuePosition,
    VenueSnapshot,
    adoption_fill,
    reconcile,
)

from .helpers import req

D = Decimal
S = OrderStatus
owns = ClientIdGenerator("br", 1).owns


def order(cid: str, status: OrderStatus, filled: str = "0", order_id: str = "X") -> Order:
    return Order(
        request=req(cid=cid, qty="0.01"), status=status, order_id=order_id, filled_qty=D(filled)
    )


def vo(cid: str, status: str = "NEW", filled: str = "0") -> VenueOrderUpdate:
    return VenueOrderUpdate(
        client_id=cid, order_id="V" + cid, symbol="BTCUSDT", status=status, filled_qty=D(filled)
    )


def pos(qty: str, side: PositionSide = PositionSide.BOTH) -> PositionSnapshot:
    return PositionSnapshot(symbol="BTCUSDT", position_side=side, qty=D(qty))


def test_reconcile_agreeing_state_is_in_sync():
    r = reconcile(
        [order("br-1-1", S.ACKED), order("br-1-2", S.FILLED, "0.01")],
        [pos("0.01")],
        VenueSnapshot(
            open_orders=[vo("br-1-1")],
            positions=[VenuePosition(symbol="BTCUSDT", qty=D("0.01"))],
            balance=D(100),
        ),
        owns=owns,
        local_balance=D("100.005"),
        balance_tolerance=D("0.01"),
    )
    assert r.in_sync
    assert r.actions == []


def test_reconcile_local_open_missing_at_venue_is_queried_not_cancelled():
    r = reconcile([order("br-1-1", S.ACKED)], [], VenueSnapshot(), owns=owns)
    assert [d.kind for d in r.differences] == [DiffKind.ORDER_MISSING_AT_VENUE]
    assert r.actions == [QueryOrder("br-1-1")]
    assert not r.in_sync


def test_reconcile_unknown_and_in_flight_orders_are_queried():
    r = reconcile(
        [order("br-1-1", S.UNKNOWN, order_id=""), order("br-1-2", S.NEW_INTENT, order_id="")],
        [],
        VenueSnapshot(),
        owns=owns,
    )
    assert [d.kind for d in r.differences] == [DiffKind.ORDER_UNRESOLVED] * 2
    assert r.actions == [QueryOrder("br-1-1"), QueryOrder("br-1-2")]


def test_reconcile_venue_fill_we_missed_is_adopted():
    u = vo("br-1-1", "PART_FILLED", "0.004")
    r = reconcile([order("br-1-1", S.ACKED)], [], VenueSnapshot(open_orders=[u]), owns=owns)
    assert [d.kind for d in r.differences] == [DiffKind.ORDER_STATE_MISMATCH]
    assert r.actions == [AdoptUpdate(u)]


def test_reconcile_adopted_update_books_missing_fill_and_then_agrees():
    t = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    t.add_intent(req(cid="br-1-1", qty="0.01", price="60000"), 0)
    t.mark_sent("br-1-1", 1)
    t.on_send_ok("br-1-1", "Vbr-1-1", 2)
    book = PositionBook()
    venue = VenueSnapshot(
        open_orders=[
            VenueOrderUpdate(
                client_id="br-1-1",
                order_id="Vbr-1-1",
                symbol="BTCUSDT",
                status="PART_FILLED",
                filled_qty=D("0.004"),
                avg_price=D(60000),
            )
        ],
        positions=[VenuePosition(symbol="BTCUSDT", qty=D("0.004"), avg_price=D(60000))],
    )
    first = reconcile(t.open_orders(), book.snapshots(), venue, owns=owns)
    assert {d.kind for d in first.differences} == {
        DiffKind.ORDER_STATE_MISMATCH,
        DiffKind.POSITION_MISMATCH,
    }
    for a in first.actions:
        tr = t.on_venue_update(a.update, 3)
        for f in tr.fills:
            book.apply_fill(f)
    assert reconcile(t.open_orders(), book.snapshots(), venue, owns=owns).in_sync


def test_reconcile_our_order_unknown_locally_is_cancelled_foreign_is_reported():
    r = reconcile([], [], VenueSnapshot(open_orders=[vo("br-9-9"), vo("manual-1")]), owns=owns)
    assert [d.kind for d in r.differences] == [
        DiffKind.ORDER_UNKNOWN_LOCALLY,
        DiffKind.ORDER_FOREIGN,
    ]
    assert r.actions == [CancelVenueOrder("BTCUSDT", "Vbr-9-9", "br-9-9")]


def test_reconcile_position_and_balance_mismatch():
    r = reconcile(
        [],
        [pos("0.01"), pos("1", PositionSide.LONG)],
        VenueSnapshot(positions=[VenuePosition(symbol="BTCUSDT", qty=D("0.02"))], balance=D(100)),
        owns=owns,
        local_balance=D("99.98"),
        balance_tolerance=D("0.01"),
    )
    kinds = [(d.kind, d.detail) for d in r.differences]
    assert (DiffKind.POSITION_MISMATCH, "BOTH local 0.01 venue 0.02") in kinds
    assert (DiffKind.POSITION_MISMATCH, "LONG local 1 venue 0") in kinds
    assert DiffKind.BALANCE_MISMATCH in {k for k, _ in kinds}


def test_adoption_fill_moves_local_to_venue():
    book = PositionBook()
    f = adoption_fill(
        pos("0.01"), VenuePosition(symbol="BTCUSDT", qty=D("-0.01"), avg_price=D(60000)), 7
    )
    assert (f.side, f.qty, f.price) == (Side.SELL, D("0.02"), D(60000))
    book.restore([pos("0.01")])
    assert book.apply_fill(f).qty == D("-0.01")
    assert adoption_fill(pos("0.01"), VenuePosition(symbol="BTCUSDT", qty=D("0.01")), 7) is None
