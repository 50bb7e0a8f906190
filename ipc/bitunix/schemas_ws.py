"""msgspec schemas of Bitunix futures WebSocket pushes (reference §4).

Market data (depth, trade, ticker, kline, price) decodes to float: it is never booked, and msgspec
converts strings to floats in C (``strict=False``), the cheapest path measured (machine-limits
§5). Private pushes (balance, position, order, tpsl) keep money as ``Decimal``. Every push
carries the venue's ``ts`` (ms) and ``ts_recv_ns`` (``time.time_ns()`` stamped by the client
when the frame arrived). A private push's ``data`` may be an object or a list: use ``items``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

from ipc.bitunix.fields import (
    Effect,
    Event,
    Id,
    LooseDecimal,
    MarginMode,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
    StopType,
    TimeMs,
    Upper,
)
from ipc.bitunix.schemas_rest import Wire

__all__ = [
    "BalanceEvent",
    "BalancePush",
    "Control",
    "DepthLevels",
    "DepthPush",
    "KlineBar",
    "KlinePush",
    "OrderEvent",
    "OrderPush",
    "PositionEvent",
    "PositionPush",
    "PriceData",
    "PricePush",
    "TickerData",
    "TickerPush",
    "TickersPush",
    "TpslEvent",
    "TpslPush",
    "TradePush",
    "TradeTick",
    "WsHeader",
]

OptDec = LooseDecimal | None
_NO_STATUS: Final = OrderStatus("")  # the wire sent no orderStatus (it may have sent status)


class WsHeader(msgspec.Struct, gc=False):
    """The two keys the client dispatches on: ``op`` first, then ``ch``."""

    op: str = ""
    ch: str = ""


class Control(msgspec.Struct, gc=False):
    """``connect`` greeting, ``login`` result, ``ping`` reply (ping/pong in seconds), errors."""

    op: str = ""
    ping: int | None = None
    pong: int | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")
    code: int | None = None
    msg: str = ""


class _Push(msgspec.Struct, kw_only=True):
    ch: str
    ts: int = 0
    ts_recv_ns: int = 0


class DepthLevels(msgspec.Struct, gc=False):
    """``b`` bids (descending) and ``a`` asks (ascending) as ``(price, qty)`` floats."""

    b: list[tuple[float, float]] = []
    a: list[tuple[float, float]] = []


class DepthPush(_Push, kw_only=True, gc=False):
    """``depth_book1/5/15`` (full top-N snapshot) or ``depth_books`` (snapshot, then deltas)."""

    symbol: str = ""
    data: DepthLevels


class TradeTick(msgspec.Struct, gc=False):
    """One public trade: ``t`` ms, ``p`` price, ``v`` qty, ``s`` taker side."""

    t: TimeMs
    p: float
    v: float
    s: Side


class TradePush(_Push, kw_only=True, gc=False):
    symbol: str = ""
    data: list[TradeTick]


class TickerData(msgspec.Struct, gc=False):
    """24h ticker; ``bd/ak/bv/av`` (best bid/ask and sizes) only on ``tickers``."""

    s: str = ""
    la: float = 0.0
    o: float = 0.0
    h: float = 0.0
    l: float = 0.0  # noqa: E741 - the wire name
    b: float = 0.0
    q: float = 0.0
    r: float = 0.0
    bd: float = 0.0
    ak: float = 0.0
    bv: float = 0.0
    av: float = 0.0


class TickerPush(_Push, kw_only=True, gc=False):
    symbol: str = ""
    data: TickerData


class TickersPush(_Push, kw_only=True, gc=False):
    data: list[TickerData]


class KlineBar(msgspec.Struct, gc=False):
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire name
    b: float = 0.0
    q: float = 0.0


class KlinePush(_Push, kw_only=True, gc=False):
    """``market_kline_<i>`` / ``last_kline_<i>`` (last price) or ``mark_kline_<i>``."""

    symbol: str = ""
    data: KlineBar

    @property
    def price_type(self) -> str:
        """Return ``market``, ``last`` or ``mark`` (the channel's prefix)."""
        return self.ch.partition("_kline_")[0]

    @property
    def interval(self) -> str:
        """Return the channel's interval, e.g. ``1min``."""
        return self.ch.partition("_kline_")[2]


class PriceData(msgspec.Struct, gc=False):
    """``ip`` index, ``mp`` mark, ``fr`` funding rate, ``ft``/``nft`` funding times (ms)."""

    ip: float = 0.0
    mp: float = 0.0
    fr: float = 0.0
    ft: TimeMs | None = None
    nft: TimeMs | None = None


class PricePush(_Push, kw_only=True, gc=False):
    symbol: str = ""
    data: PriceData


class BalanceEvent(Wire, frozen=True, kw_only=True):
    coin: str = "USDT"
    available: Decimal
    frozen: OptDec = None
    isolationFrozen: OptDec = None
    crossFrozen: OptDec = None
    margin: OptDec = None
    isolationMargin: OptDec = None
    crossMargin: OptDec = None
    expMoney: OptDec = None


class PositionEvent(Wire, frozen=True, kw_only=True):
    """Position push; ``event`` OPEN/UPDATE/CLOSE, ``side`` LONG/SHORT."""

    event: Event
    positionId: Id
    symbol: str
    side: PositionSide
    qty: Decimal
    marginMode: MarginMode | None = None
    positionMode: PositionMode | None = None
    positionType: Upper | None = None
    leverage: int | None = None
    margin: OptDec = None
    entryValue: OptDec = None
    realizedPNL: OptDec = None
    unrealizedPNL: OptDec = None
    funding: OptDec = None
    fee: OptDec = None
    ctime: TimeMs | None = None
    mtime: TimeMs | None = None


class _TpslFields(Wire, frozen=True, kw_only=True):
    tpStopType: StopType | None = None
    tpPrice: OptDec = None
    tpOrderType: OrderType | None = None
    tpOrderPrice: OptDec = None
    slStopType: StopType | None = None
    slPrice: OptDec = None
    slOrderType: OrderType | None = None
    slOrderPrice: OptDec = None


class OrderEvent(_TpslFields, frozen=True, kw_only=True):
    """Order push; ``positionType`` is the margin mode, ``reductionOnly`` the reduce flag.

    The status arrives as ``orderStatus`` (docs, Java demo) or ``status`` (Python and Go demos):
    either fills ``orderStatus``; a push with neither is a schema error.
    """

    event: Event
    orderId: Id
    symbol: str
    side: Side
    qty: Decimal
    orderStatus: OrderStatus = _NO_STATUS
    status: OrderStatus | None = None
    type: OrderType | None = None
    clientId: Id | None = None
    price: OptDec = None
    positionType: MarginMode | None = None
    positionMode: PositionMode | None = None
    effect: Effect | None = None
    reductionOnly: bool = False
    leverage: int | None = None
    fee: OptDec = None
    averagePrice: OptDec = None
    dealAmount: OptDec = None
    ctime: TimeMs | None = None
    mtime: TimeMs | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.orderStatus:
            if self.status is None:
                raise ValueError("order push has neither orderStatus nor status")
            msgspec.structs.force_setattr(self, "orderStatus", self.status)


class TpslEvent(_TpslFields, frozen=True, kw_only=True):
    """TP/SL push; ``type`` TPSL/POSITION_TPSL; read ``event`` together with ``status``."""

    event: Event
    orderId: Id
    symbol: str = ""
    positionId: Id | None = None
    leverage: int | None = None
    side: Side | None = None
    positionMode: PositionMode | None = None
    status: OrderStatus | None = None
    type: Upper | None = None
    tpQty: OptDec = None
    slQty: OptDec = None
    ctime: TimeMs | None = None


class BalancePush(_Push, kw_only=True):
    data: BalanceEvent | list[BalanceEvent]

    @property
    def items(self) -> list[BalanceEvent]:
        """Return ``data`` as a list (the venue sends an object or a list)."""
        return self.data if isinstance(self.data, list) else [self.data]


class PositionPush(_Push, kw_only=True):
    data: PositionEvent | list[PositionEvent]

    @property
    def items(self) -> list[PositionEvent]:
        """Return ``data`` as a list (the venue sends an object or a list)."""
        return self.data if isinstance(self.data, list) else [self.data]


class OrderPush(_Push, kw_only=True):
    data: OrderEvent | list[OrderEvent]

    @property
    def items(self) -> list[OrderEvent]:
        """Return ``data`` as a list (the venue sends an object or a list)."""
        return self.data if isinstance(self.data, list) else [self.data]


class TpslPush(_Push, kw_only=True):
    data: TpslEvent | list[TpslEvent]

    @property
    def items(self) -> list[TpslEvent]:
        """Return ``data`` as a list (the venue sends an object or a list)."""
        return self.data if isinstance(self.data, list) else [self.data]
