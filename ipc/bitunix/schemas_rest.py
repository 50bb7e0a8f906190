"""msgspec schemas of Bitunix futures REST responses (reference §3): the ``data`` payloads.

Money is ``Decimal`` (``LooseDecimal | None`` where the venue may send ``""`` or ``"market"``);
REST market data (depth, klines) decodes to float: it feeds the book and features, not booking.
Field names are the wire names; unknown fields are ignored.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ipc.bitunix.fields import (
    Effect,
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
    nan_to_none,
)

__all__ = [
    "Account",
    "BatchResult",
    "DepthSnapshot",
    "Envelope",
    "Failure",
    "FundingRate",
    "FundingRateHistory",
    "HistoryPositions",
    "HistoryTrades",
    "Kline",
    "LeverageMarginMode",
    "Order",
    "OrderAck",
    "OrderList",
    "Position",
    "PositionTier",
    "Ticker",
    "TpslAck",
    "TpslOrder",
    "Trade",
    "TradingPair",
    "Wire",
]

OptDec = LooseDecimal | None


class Envelope(msgspec.Struct, frozen=True):
    """``{"code", "msg", "data"}``; ``data`` is kept raw and decoded per endpoint."""

    code: int
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of response structs: optional money that did not parse becomes None."""

    def __post_init__(self) -> None:
        nan_to_none(self)


class TradingPair(Wire, frozen=True, kw_only=True):
    """Symbol rules; tick = 10^-quotePrecision, qty step = 10^-basePrecision."""

    symbol: str
    base: str = ""
    quote: str = ""
    minTradeVolume: Decimal = Decimal(0)
    minBuyPriceOffset: OptDec = None
    maxSellPriceOffset: OptDec = None
    maxLimitOrderVolume: OptDec = None
    maxMarketOrderVolume: OptDec = None
    basePrecision: int = 0
    quotePrecision: int = 0
    maxLeverage: int = 0
    minLeverage: int = 1
    defaultLeverage: int = 0
    defaultMarginMode: MarginMode | None = None
    priceProtectScope: OptDec = None
    symbolStatus: Upper = Upper("OPEN")
    isApiSupported: bool = True

    @property
    def tick_size(self) -> Decimal:
        """Return the price tick derived from ``quotePrecision``."""
        return Decimal(1).scaleb(-self.quotePrecision)

    @property
    def qty_step(self) -> Decimal:
        """Return the quantity step derived from ``basePrecision``."""
        return Decimal(1).scaleb(-self.basePrecision)


class Ticker(Wire, frozen=True, kw_only=True):
    symbol: str
    markPrice: OptDec = None
    lastPrice: OptDec = None
    open: OptDec = None
    last: OptDec = None
    quoteVol: OptDec = None
    baseVol: OptDec = None
    high: OptDec = None
    low: OptDec = None


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """REST depth: ``[price, qty]`` levels as floats (market data, not booked)."""

    asks: list[tuple[float, float]] = []
    bids: list[tuple[float, float]] = []


class Kline(msgspec.Struct, frozen=True, gc=False):
    """One candle; ❓ ``quoteVol`` looks like base-coin volume and ``baseVol`` like quote."""

    time: TimeMs
    open: float
    high: float
    low: float
    close: float
    quoteVol: float = 0.0
    baseVol: float = 0.0
    type: StopType = StopType("LAST_PRICE")


class FundingRate(Wire, frozen=True, kw_only=True):
    symbol: str
    fundingRate: Decimal
    markPrice: OptDec = None
    lastPrice: OptDec = None
    fundingInterval: int | None = None
    nextFundingTime: TimeMs | None = None
    maxFundingRate: OptDec = None
    minFundingRate: OptDec = None


class FundingRateHistory(Wire, frozen=True, kw_only=True):
    fundingRate: Decimal
    fundingTime: TimeMs
    markPrice: OptDec = None
    symbol: str = ""


class Account(Wire, frozen=True, kw_only=True):
    marginCoin: str
    available: Decimal
    frozen: Decimal = Decimal(0)
    margin: Decimal = Decimal(0)
    transfer: OptDec = None
    positionMode: PositionMode | None = None
    crossUnrealizedPNL: OptDec = None
    isolationUnrealizedPNL: OptDec = None
    bonus: OptDec = None


class LeverageMarginMode(Wire, frozen=True, kw_only=True):
    symbol: str
    leverage: int
    marginMode: MarginMode
    marginCoin: str = "USDT"


class OrderAck(Wire, frozen=True, kw_only=True):
    """Accepted (not filled): the ``order`` WS push carries the outcome."""

    orderId: Id | None = None
    clientId: Id | None = None


class Failure(Wire, frozen=True, kw_only=True):
    errorCode: int = 0
    errorMsg: str = ""
    orderId: Id | None = None
    clientId: Id | None = None
    id: Id | None = None


class BatchResult(Wire, frozen=True, kw_only=True):
    successList: list[OrderAck] = []
    failureList: list[Failure] = []


class _Tpsl(Wire, frozen=True, kw_only=True):
    tpPrice: OptDec = None
    tpStopType: StopType | None = None
    tpOrderType: OrderType | None = None
    tpOrderPrice: OptDec = None
    slPrice: OptDec = None
    slStopType: StopType | None = None
    slOrderType: OrderType | None = None
    slOrderPrice: OptDec = None


class Order(_Tpsl, frozen=True, kw_only=True):
    """An order; ``price`` is None for market orders (history sends ``"market"``)."""

    orderId: Id
    symbol: str
    qty: Decimal
    side: Side
    orderType: OrderType | None = None
    price: OptDec = None
    tradeQty: OptDec = None
    positionMode: PositionMode | None = None
    marginMode: MarginMode | None = None
    leverage: int | None = None
    effect: Effect | None = None
    clientId: Id | None = None
    reduceOnly: bool = False
    status: OrderStatus | None = None
    fee: OptDec = None
    realizedPNL: OptDec = None
    avgPrice: OptDec = None
    marginCoin: str = ""
    ctime: TimeMs | None = None
    mtime: TimeMs | None = None


class OrderList(Wire, frozen=True, kw_only=True):
    orderList: list[Order] = []
    total: int = 0


class Trade(Wire, frozen=True, kw_only=True):
    """One of our fills (history trades)."""

    tradeId: Id | None = None
    orderId: Id | None = None
    symbol: str = ""
    qty: Decimal = Decimal(0)
    price: OptDec = None
    side: Side | None = None
    orderType: OrderType | None = None
    positionMode: PositionMode | None = None
    marginMode: MarginMode | None = None
    leverage: int | None = None
    effect: Effect | None = None
    clientId: Id | None = None
    reduceOnly: bool = False
    fee: OptDec = None
    realizedPNL: OptDec = None
    roleType: Upper | None = None
    ctime: TimeMs | None = None


class HistoryTrades(Wire, frozen=True, kw_only=True):
    tradeList: list[Trade] = []
    total: int = 0


class Position(Wire, frozen=True, kw_only=True):
    """An open (or historical) position; ``side`` is LONG/SHORT even if sent as BUY/SELL."""

    positionId: Id
    symbol: str
    qty: Decimal
    side: PositionSide
    entryValue: OptDec = None
    marginMode: MarginMode | None = None
    positionMode: PositionMode | None = None
    leverage: int | None = None
    fee: OptDec = None
    funding: OptDec = None
    realizedPNL: OptDec = None
    margin: OptDec = None
    unrealizedPNL: OptDec = None
    liqPrice: OptDec = None
    marginRate: OptDec = None
    avgOpenPrice: OptDec = None
    closePrice: OptDec = None
    maxQty: OptDec = None
    ctime: TimeMs | None = None
    mtime: TimeMs | None = None


class HistoryPositions(Wire, frozen=True, kw_only=True):
    positionList: list[Position] = []
    total: int = 0


class PositionTier(Wire, frozen=True, kw_only=True):
    """One risk tier ❓ (field names from the SDK typing, all optional)."""

    symbol: str = ""
    level: int = 0
    startValue: OptDec = None
    endValue: OptDec = None
    leverage: int | None = None
    maintenanceMarginRate: OptDec = None


class TpslOrder(_Tpsl, frozen=True, kw_only=True):
    """A pending or historical TP/SL order (``id`` is its order id)."""

    id: Id | None = None
    orderId: Id | None = None
    positionId: Id | None = None
    symbol: str = ""
    base: str = ""
    quote: str = ""
    side: Side | None = None
    tpQty: OptDec = None
    slQty: OptDec = None
    status: OrderStatus | None = None
    ctime: TimeMs | None = None
    mtime: TimeMs | None = None


class TpslAck(Wire, frozen=True, kw_only=True):
    orderId: Id | None = None
    id: Id | None = None
