"""Builds the ZeroMQ event messages (``ipc.orders``) from execution's own value types.

``EventSequencer`` numbers every message of the publisher, so consumers can spot gaps.
"""

from __future__ import annotations

from decimal import Decimal

from ipc.orders import BreakerEvent, FillEvent, OrderEvent, PositionEvent, RiskEvent
from procs.trading.breaker import BreakerTransition
from procs.trading.model import Fill, OrderRequest
from procs.trading.orders import OrderTransition
from procs.trading.positions import PositionSnapshot
from procs.trading.risk import Refusal


class EventSequencer:
    """Per-publisher sequence numbers, starting at 1; one instance per PUB socket."""

    def __init__(self, start: int = 0) -> None:
        self.last_seq = start

    def next(self) -> int:
        self.last_seq += 1
        return self.last_seq


def order_event(tr: OrderTransition, seq: int, ts_ns: int) -> OrderEvent:
    o, r = tr.order, tr.order.request
    s = r.stamps
    return OrderEvent(
        seq=seq,
        ts_event_ns=s.ts_event_ns,
        ts_recv_ns=s.ts_recv_ns,
        ts_feat_ns=s.ts_feat_ns,
        ts_sig_ns=s.ts_sig_ns,
        ts_order_ns=r.ts_order_ns,
        ts_ns=ts_ns,
        client_id=r.client_id,
        order_id=o.order_id,
        symbol=r.symbol,
        side=str(r.side),
        order_type=str(r.order_type),
        tif=str(r.tif),
        qty=r.qty,
        price=r.price,
        status=str(tr.new),
        old_status=str(tr.old),
        filled_qty=o.filled_qty,
        avg_price=o.avg_price,
        fee=o.fee,
        reduce_only=r.reduce_only,
        reason=o.reason,
    )


def fill_event(fill: Fill, request: OrderRequest, seq: int) -> FillEvent:
    s = request.stamps
    return FillEvent(
        seq=seq,
        ts_event_ns=s.ts_event_ns,
        ts_recv_ns=s.ts_recv_ns,
        ts_feat_ns=s.ts_feat_ns,
        ts_sig_ns=s.ts_sig_ns,
        ts_order_ns=request.ts_order_ns,
        ts_ns=fill.ts_ns,
        fill_id=fill.fill_id,
        client_id=fill.client_id,
        order_id=fill.order_id,
        symbol=fill.symbol,
        side=str(fill.side),
        position_side=str(fill.position_side),
        qty=fill.qty,
        price=fill.price,
        fee=fill.fee,
    )


def position_event(p: PositionSnapshot, mark: Decimal, seq: int, ts_ns: int) -> PositionEvent:
    return PositionEvent(
        seq=seq,
        ts_ns=ts_ns,
        symbol=p.symbol,
        position_side=str(p.position_side),
        qty=p.qty,
        avg_price=p.avg_price,
        realised=p.realised,
        unrealised=p.unrealised(mark),
        fees=p.fees,
        funding=p.funding,
        mark=mark,
    )


def risk_event(r: Refusal, seq: int) -> RiskEvent:
    return RiskEvent(
        seq=seq,
        ts_ns=r.ts_ns,
        client_id=r.client_id,
        symbol=r.symbol,
        reason=str(r.reason),
        detail=r.detail,
    )


def breaker_event(t: BreakerTransition, seq: int) -> BreakerEvent:
    return BreakerEvent(
        seq=seq,
        ts_ns=t.ts_ns,
        old=t.old.name,
        new=t.new.name,
        trigger=str(t.trigger),
        detail=t.detail,
    )
