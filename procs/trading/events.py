"""Builds the ZeroMQ event messages (``ipc.orders``) from execution's own value types.

``EventSequencer`` numbers every message of the publisher, so consumers can spot gaps;
``EventOutbox`` sends them (the PUB, the event log), after the step that made them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final, Protocol

import msgspec

from ipc.orders import BreakerEvent, FillEvent, OrderEvent, PositionEvent, RiskEvent
from procs.trading.breaker import BreakerTransition
from procs.trading.model import Fill, OrderRequest
from procs.trading.orders import OrderTransition
from procs.trading.positions import PositionSnapshot
from procs.trading.risk import Refusal

_ENC: Final = msgspec.msgpack.Encoder()
_JSON: Final = msgspec.json.Encoder()


class EventPublisher(Protocol):
    """The process PUB (``ipc.sockets.Publisher``)."""

    def send(self, topic: bytes, payload: bytes) -> bool: ...


class EventOutbox:
    """Execution's events, sent at once or, while a step ``hold``s them, when it ends
    (``release``), in the order they were made: the step's orders are decided (and their sends
    started) first. A paper fill's events took ~120 µs in situ at 10 k msg/s before the step's
    order (four sends 47, the waiting SENT events 52, the position event 22: docs/benchmarks.md);
    nothing reads them in the step."""

    def __init__(
        self,
        publisher: EventPublisher | None,
        event_log: Callable[[bytes], object] | None = None,
    ) -> None:
        self._pub = publisher  # None: ``publish_events`` off
        self._log = event_log  # a JSON line per event (``events_log_path``)
        self._held: list[tuple[bytes, msgspec.Struct]] | None = None

    def emit(self, topic: bytes, event: msgspec.Struct) -> None:
        if self._held is not None:
            self._held.append((topic, event))
            return
        if self._pub is not None:
            self._pub.send(topic, _ENC.encode(event))
        if self._log is not None:
            self._log(_JSON.encode({"topic": topic.decode(), "event": event}) + b"\n")

    def hold(self) -> None:
        self._held = []

    def release(self) -> None:
        held, self._held = self._held, None
        for topic, event in held or ():
            self.emit(topic, event)


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
