"""Event builders carry the causing tick's stamps and per-publisher sequence numbers."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

import msgspec

from ipc.orders import ORDER_EVENT_DECODER
from procs.trading.breaker import BreakerState, BreakerTransition, BreakerTrigger
from procs.trading.events import (
    EventSequencer,
    breaker_event,
    fill_event,
    order_event,
    position_event,
    risk_event,
)
from procs.trading.model import TickStamps, VenueOrderUpdate
from procs.trading.orders import OrderTracker
from procs.trading.positions import PositionBook
from procs.trading.risk import Refusal, RefusalReason

from .helpers import req

D = Decimal


def test_events_from_a_fill_carry_stamps_and_increasing_seq():
    seq = EventSequencer()
    t = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    r = req(stamps=TickStamps(1, 2, 3, 4), ts_order_ns=5)
    t.add_intent(r, 5)
    t.mark_sent(r.client_id, 6)
    tr = t.on_venue_update(
        VenueOrderUpdate(
            client_id=r.client_id,
            order_id="X",
            symbol="BTCUSDT",
            status="FILLED",
            filled_qty=D("0.01"),
            avg_price=D(60000),
        ),
        7,
    )
    oe = order_event(tr, seq.next(), 7)
    fe = fill_event(tr.fills[0], r, seq.next())
    book = PositionBook()
    pe = position_event(book.apply_fill(tr.fills[0]), D(60100), seq.next(), 8)
    re = risk_event(Refusal(RefusalReason.STALE_DATA, "old", "c", "BTCUSDT", 9), seq.next())
    be = breaker_event(
        BreakerTransition(
            BreakerState.ACTIVE, BreakerState.REDUCING, BreakerTrigger.STALE_DATA, "x", 10
        ),
        seq.next(),
    )
    assert [e.seq for e in (oe, fe, pe, re, be)] == [1, 2, 3, 4, 5]
    assert (oe.ts_event_ns, oe.ts_recv_ns, oe.ts_feat_ns, oe.ts_sig_ns, oe.ts_order_ns) == (
        1,
        2,
        3,
        4,
        5,
    )
    assert (oe.status, oe.old_status) == ("FILLED", "SENT")
    assert (fe.ts_sig_ns, fe.qty, fe.price) == (4, D("0.01"), D(60000))
    assert pe.unrealised == D("1.00")
    assert (be.old, be.new) == ("ACTIVE", "REDUCING")
    for e in (oe, fe, pe, re, be):
        assert ORDER_EVENT_DECODER.decode(msgspec.msgpack.encode(e)) == e
