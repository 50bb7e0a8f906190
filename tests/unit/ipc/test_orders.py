"""Execution's ZeroMQ event schemas: round trip, tags, topics."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ipc.orders import (
    ORDER_EVENT_DECODER,
    BreakerEvent,
    FillEvent,
    OrderEvent,
    PositionEvent,
    RiskEvent,
    fill_topic,
    order_topic,
)

D = Decimal


def test_order_event_round_trips_with_decimals_and_stamps():
    ev = OrderEvent(
        seq=7, ts_event_ns=1, ts_recv_ns=2, ts_feat_ns=3, ts_sig_ns=4, ts_order_ns=5, ts_ns=6,
        client_id="br-1-1", order_id="X", symbol="BTCUSDT", side="BUY", order_type="LIMIT",
        tif="GTC", qty=D("0.0100"), price=D("60000.1"), status="ACKED", old_status="SENT",
        filled_qty=D(0), avg_price=D(0), fee=D(0),
    )  # fmt: skip
    raw = msgspec.msgpack.encode(ev)
    back = ORDER_EVENT_DECODER.decode(raw)
    assert back == ev
    assert back.qty == D("0.0100")
    assert msgspec.msgpack.decode(raw)[0] == "oe"  # array_like with the tag first


def test_every_event_kind_decodes_to_its_type():
    events = [
        FillEvent(
            1, 1, 2, 3, 4, 5, 6, "f", "c", "o", "BTCUSDT", "BUY", "BOTH", D(1), D(2), D("0.1")
        ),
        PositionEvent(2, 6, "BTCUSDT", "BOTH", D(1), D(2), D(0), D(1), D(0), D(0), D(3)),
        RiskEvent(3, 6, "c", "BTCUSDT", "order_rate", "9 orders"),
        BreakerEvent(4, 6, "ACTIVE", "HALTED", "manual", "op"),
    ]
    for ev in events:
        assert ORDER_EVENT_DECODER.decode(msgspec.msgpack.encode(ev)) == ev


def test_topics_end_with_a_dot():
    assert order_topic("BTCUSDT") == b"ord.BTCUSDT."
    assert fill_topic("ETHUSDT") == b"fill.ETHUSDT."
