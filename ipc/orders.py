"""Wire schemas for execution's events on ZeroMQ: orders, fills, positions, risk, breaker.

Published by execution on its PUB socket. Every message carries ``seq``, a per-publisher
sequence number (consumers check it for gaps), and order and fill events carry the stamps of
the tick that caused them. Money and quantities are ``Decimal`` (MessagePack strings).

Evolution rule: append new fields at the end with defaults; never reorder, rename or retype a
field, never reuse a tag.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

__all__ = [
    "ORDER_EVENT_DECODER",
    "BreakerEvent",
    "FillEvent",
    "OrderEvent",
    "OrderMessage",
    "PositionEvent",
    "RiskEvent",
    "breaker_topic",
    "fill_topic",
    "order_topic",
    "position_topic",
    "risk_topic",
]


class OrderEvent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="oe"):
    """An order changed state (``status`` is execution's: NEW_INTENT ... UNKNOWN)."""

    seq: int
    ts_event_ns: int  # exchange stamp of the tick that caused the order
    ts_recv_ns: int  # our receive stamp of that tick
    ts_feat_ns: int
    ts_sig_ns: int
    ts_order_ns: int  # when execution decided to send
    ts_ns: int  # when this change happened
    client_id: str
    order_id: str
    symbol: str
    side: str  # BUY / SELL
    order_type: str  # LIMIT / MARKET
    tif: str
    qty: Decimal
    price: Decimal | None
    status: str
    old_status: str
    filled_qty: Decimal
    avg_price: Decimal
    fee: Decimal
    reduce_only: bool = False
    reason: str = ""


class FillEvent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="fe"):
    """One execution booked into positions (``fill_id`` unique, as in the journal)."""

    seq: int
    ts_event_ns: int
    ts_recv_ns: int
    ts_feat_ns: int
    ts_sig_ns: int
    ts_order_ns: int
    ts_ns: int
    fill_id: str
    client_id: str
    order_id: str
    symbol: str
    side: str
    position_side: str  # BOTH / LONG / SHORT
    qty: Decimal
    price: Decimal
    fee: Decimal  # positive = paid


class PositionEvent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="pe"):
    """A position leg after a change, with PnL against the mark at ``ts_ns``."""

    seq: int
    ts_ns: int
    symbol: str
    position_side: str
    qty: Decimal  # signed, short < 0
    avg_price: Decimal
    realised: Decimal
    unrealised: Decimal
    fees: Decimal
    funding: Decimal
    mark: Decimal


class RiskEvent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="re"):
    """A pre-trade refusal."""

    seq: int
    ts_ns: int
    client_id: str
    symbol: str
    reason: str
    detail: str


class BreakerEvent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="be"):
    """A circuit-breaker transition (ACTIVE / REDUCING / HALTED) and its cause."""

    seq: int
    ts_ns: int
    old: str
    new: str
    trigger: str
    detail: str


OrderMessage = OrderEvent | FillEvent | PositionEvent | RiskEvent | BreakerEvent
ORDER_EVENT_DECODER: Final = msgspec.msgpack.Decoder(OrderMessage)


def order_topic(symbol: str) -> bytes:
    return b"ord.%s." % symbol.encode()


def fill_topic(symbol: str) -> bytes:
    return b"fill.%s." % symbol.encode()


def position_topic(symbol: str) -> bytes:
    return b"pos.%s." % symbol.encode()


def risk_topic() -> bytes:
    return b"risk."


def breaker_topic() -> bytes:
    return b"brk."
