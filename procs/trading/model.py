"""Value types shared by the execution modules: sides, order kinds, requests, venue updates, fills.

Money and quantities are ``Decimal`` here (the journal's and the wire's); the hot path's ints
(ticks, lots) ride along on an ``OrderRequest`` and are turned into these at its creation.
Signal scores are floats.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Final

ZERO: Final = Decimal(0)


class ExecutionError(Exception):
    """Base error of the execution package."""


class IllegalTransitionError(ExecutionError):
    """An order was driven through a transition the state machine forbids."""


class UnknownOrderError(ExecutionError):
    """An event names a clientId that the tracker never issued."""


class JournalError(ExecutionError):
    """The journal is unreadable or its schema is not ours."""


class JournalWriteError(JournalError):
    """The journal cannot take a write now (disk full, I/O error, read-only): nothing trades."""


class JournalDiskError(JournalError):
    """The disk failed the journal's opening (full, I/O error, read-only): not damage to it."""


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class PositionSide(enum.StrEnum):
    """Which position an order or fill books into: BOTH in one-way mode, LONG/SHORT in hedge."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class OrderStatus(enum.StrEnum):
    NEW_INTENT = "NEW_INTENT"  # journaled, not yet handed to the venue client
    SENT = "SENT"  # handed to the venue client, no answer yet
    ACKED = "ACKED"  # venue status NEW (or INIT)
    PART_FILLED = "PART_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PART_FILLED_CANCELED = "PART_FILLED_CANCELED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"  # no answer within the timeout: only an exchange query resolves it

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


_TERMINAL: Final = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.PART_FILLED_CANCELED,
        OrderStatus.REJECTED,
    }
)


@dataclass(frozen=True, slots=True)
class TickStamps:
    """Clock stamps (CLOCK_REALTIME ns) of the market tick that caused an order."""

    ts_event_ns: int = 0
    ts_recv_ns: int = 0
    ts_feat_ns: int = 0
    ts_sig_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """An order as the strategy wants it: checked by risk, journaled as an intent, then sent."""

    client_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None  # None for MARKET
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    position_side: PositionSide = PositionSide.BOTH
    position_id: str = ""  # the venue's position a hedge-mode close names ("" otherwise)
    stamps: TickStamps = field(default_factory=TickStamps)
    ts_order_ns: int = 0  # when the strategy decided to send it
    tag: str = ""  # why: "quote", "take", "flatten", ...
    # qty in lots and price in ticks of the symbol, as the strategy computed them (-1: not
    # given; risk then derives them from qty and price). Not journaled, not compared.
    lots: int = field(default=-1, compare=False, repr=False)
    ticks: int = field(default=-1, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"qty must be positive, was {self.qty}")
        if (self.price is None) != (self.order_type is OrderType.MARKET):
            raise ValueError(f"{self.order_type} order with price {self.price}")

    def leaving_at(self, ts_order_ns: int) -> OrderRequest:
        """``dataclasses.replace(self, ts_order_ns=ts_order_ns)``, its slots copied: the request
        was checked when it was made (~1.5 against ~4 µs on the order path)."""
        new = _new(OrderRequest)
        for get, put in _REQUEST_SLOTS:
            put(new, get(self))
        _REQUEST_TS_ORDER(new, ts_order_ns)
        return new


_new: Final = object.__new__
_REQUEST_SLOTS: Final = tuple(
    (getattr(OrderRequest, f.name).__get__, getattr(OrderRequest, f.name).__set__)
    for f in fields(OrderRequest)
)
_REQUEST_TS_ORDER: Final = getattr(OrderRequest, "ts_order_ns").__set__  # noqa: B009  # the slot


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueOrderUpdate:
    """One observation of an order at the venue (WS ``order`` push or a REST query).

    ``filled_qty`` is cumulative and ``avg_price`` its average; ``fee`` is cumulative and
    positive when paid. ``mtime_ms`` is the venue's modification time, used for ordering.
    """

    client_id: str
    order_id: str
    symbol: str
    status: str  # venue enum: INIT NEW PART_FILLED FILLED CANCELED PART_FILLED_CANCELED ...
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    fee: Decimal = ZERO
    mtime_ms: int = 0
    qty: Decimal | None = None
    price: Decimal | None = None
    side: Side | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution booked into positions; ``fill_id`` is unique in the journal."""

    fill_id: str
    client_id: str
    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal  # positive = paid, negative = rebate
    position_side: PositionSide = PositionSide.BOTH
    ts_ns: int = 0
    maker: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingEvent:
    """A funding settlement: ``amount`` is positive when received, negative when paid."""

    event_id: str
    symbol: str
    amount: Decimal
    position_side: PositionSide = PositionSide.BOTH
    ts_ns: int = 0
