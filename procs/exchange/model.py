"""simex's bookkeeping records (orders, positions, accounts, TP/SL) and their wire views.

Money and quantities are Decimal throughout; views render them as strings like the venue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

__all__ = [
    "ZERO",
    "Account",
    "ExchangeError",
    "Order",
    "Position",
    "PrivateEvent",
    "SymbolSpec",
    "TpslOrder",
    "TradeEvent",
    "balance_view",
    "fill_view",
    "fmt",
    "iso_ms",
]

ZERO: Final = Decimal(0)
_DISPLAY: Final = Decimal("1e-12")


class ExchangeError(Exception):
    """A business error answered as ``{"code": code, "msg": msg}`` with HTTP 200."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg


def fmt(d: Decimal) -> str:
    """Render a Decimal like the venue: plain digits, no exponent, no trailing zeros."""
    if d == d.to_integral_value():
        return str(int(d))
    q = d.quantize(_DISPLAY).normalize()
    return format(q, "f")


def iso_ms(ts_ms: int) -> str:
    """ISO-8601 UTC with nanosecond digits, as the private pushes carry."""
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ts_ms % 1000) * 1_000_000:09d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolSpec:
    symbol: str
    base: str
    quote: str = "USDT"
    base_precision: int = 4
    quote_precision: int = 1
    min_qty: Decimal = Decimal("0.0001")
    max_limit_qty: Decimal = Decimal(100000)
    max_market_qty: Decimal = Decimal(50000)
    min_leverage: int = 1
    max_leverage: int = 125
    default_leverage: int = 20
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0006")
    funding_rate: Decimal = Decimal("0.0001")  # per settlement; > 0: longs pay shorts

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.quote_precision)

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.base_precision)


@dataclass(slots=True, kw_only=True)
class Order:
    order_id: str
    client_id: str
    account: str
    symbol: str
    side: str  # as sent: BUY / SELL
    is_buy: bool  # the trade direction in the book (hedge CLOSE flips it)
    order_type: str  # LIMIT / MARKET
    effect: str  # GTC / IOC / FOK / POST_ONLY
    price: Decimal | None
    qty: Decimal
    trade_side: str  # OPEN / CLOSE
    position_side: str  # LONG / SHORT in hedge mode, "" in one-way
    position_mode: str
    margin_mode: str
    leverage: int
    reduce_only: bool
    ctime: int
    mtime: int
    status: str = "NEW"
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fee: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    lock_per_unit: Decimal = ZERO
    lock: Decimal = ZERO
    tpsl: dict[str, str] = field(default_factory=dict)
    tpsl_placed: bool = False  # the attached TP/SL became a TP/SL order on the first fill

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PART_FILLED", "INIT")

    @property
    def avg_price(self) -> Decimal:
        return self.filled_value / self.filled if self.filled else ZERO

    def view(self) -> dict[str, object]:
        """REST order object (§3.12); times are ms integers."""
        d: dict[str, object] = {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "qty": fmt(self.qty),
            "tradeQty": fmt(self.filled),
            "positionMode": self.position_mode,
            "marginMode": self.margin_mode,
            "leverage": self.leverage,
            "price": fmt(self.price) if self.price is not None else "market",
            "side": self.side,
            "orderType": self.order_type,
            "effect": self.effect,
            "clientId": self.client_id,
            "reduceOnly": self.reduce_only,
            "status": self.status,
            "fee": fmt(self.fee),
            "realizedPNL": fmt(self.realized_pnl),
            "avgPrice": fmt(self.avg_price),
            "marginCoin": "USDT",
            "tradeSide": self.trade_side,
            "ctime": self.ctime,
            "mtime": self.mtime,
        }
        d.update(self.tpsl)
        return d

    def push(self, event: str) -> dict[str, object]:
        """Private ``order`` channel data (§4.6)."""
        d: dict[str, object] = {
            "event": event,
            "orderId": self.order_id,
            "clientId": self.client_id,
            "symbol": self.symbol,
            "positionType": self.margin_mode,
            "positionMode": self.position_mode,
            "side": self.side,
            "effect": self.effect,
            "type": self.order_type,
            "qty": fmt(self.qty),
            "reductionOnly": self.reduce_only,
            "price": fmt(self.price) if self.price is not None else "0",
            "ctime": iso_ms(self.ctime),
            "mtime": iso_ms(self.mtime),
            "leverage": str(self.leverage),
            "orderStatus": self.status,
            "fee": fmt(self.fee),
            "averagePrice": fmt(self.avg_price),
            "dealAmount": fmt(self.filled),
        }
        d.update(self.tpsl)
        return d


@dataclass(slots=True, kw_only=True)
class Position:
    position_id: str
    account: str
    symbol: str
    side: str  # LONG / SHORT
    position_mode: str
    margin_mode: str
    leverage: int
    ctime: int
    mtime: int
    qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    margin: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fee: Decimal = ZERO
    funding: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.entry_value / self.qty if self.qty else ZERO

    def unrealized(self, mark: Decimal | None) -> Decimal:
        if mark is None or not self.qty:
            return ZERO
        diff = mark * self.qty - self.entry_value
        return diff if self.side == "LONG" else -diff

    def view(self, mark: Decimal | None) -> dict[str, object]:
        return {
            "positionId": self.position_id,
            "symbol": self.symbol,
            "qty": fmt(self.qty),
            "entryValue": fmt(self.entry_value),
            "side": self.side,
            "marginMode": self.margin_mode,
            "positionMode": self.position_mode,
            "leverage": self.leverage,
            "fee": fmt(self.fee),
            "funding": fmt(self.funding),
            "realizedPNL": fmt(self.realized_pnl),
            "margin": fmt(self.margin),
            "unrealizedPNL": fmt(self.unrealized(mark)),
            "liqPrice": "0",
            "marginRate": "0",
            "avgOpenPrice": fmt(self.avg_price),
            "ctime": self.ctime,
            "mtime": self.mtime,
        }

    def push(self, event: str, mark: Decimal | None) -> dict[str, object]:
        return {
            "event": event,
            "positionId": self.position_id,
            "symbol": self.symbol,
            "marginMode": self.margin_mode,
            "positionMode": self.position_mode,
            "side": self.side,
            "leverage": str(self.leverage),
            "margin": fmt(self.margin),
            "ctime": iso_ms(self.ctime),
            "mtime": iso_ms(self.mtime),
            "qty": fmt(self.qty),
            "entryValue": fmt(self.entry_value),
            "realizedPNL": fmt(self.realized_pnl),
            "unrealizedPNL": fmt(self.unrealized(mark)),
            "funding": fmt(self.funding),
            "fee": fmt(self.fee),
        }


@dataclass(slots=True, kw_only=True)
class TpslOrder:
    order_id: str
    account: str
    symbol: str
    position_id: str
    kind: str  # TPSL / POSITION_TPSL
    ctime: int
    mtime: int
    status: str = "NEW"
    fields: dict[str, str] = field(default_factory=dict)

    def view(self, base: str, quote: str) -> dict[str, object]:
        d: dict[str, object] = {
            "id": self.order_id,
            "positionId": self.position_id,
            "symbol": self.symbol,
            "base": base,
            "quote": quote,
            "status": self.status,
            "ctime": self.ctime,
        }
        d.update(self.fields)
        return d


@dataclass(slots=True, kw_only=True)
class Account:
    name: str
    wallet: Decimal
    initial: Decimal
    position_mode: str = "ONE_WAY"
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, str] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)  # every order, open and closed
    open_orders: dict[str, Order] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    position_history: list[Position] = field(default_factory=list)
    fills: list[dict[str, object]] = field(default_factory=list)
    tpsl: dict[str, TpslOrder] = field(default_factory=dict)
    fees_total: Decimal = ZERO
    pnl_total: Decimal = ZERO
    funding_total: Decimal = ZERO  # received > 0

    def frozen(self) -> Decimal:
        return sum((o.lock for o in self.open_orders.values()), ZERO)

    def margin(self) -> Decimal:
        return sum((p.margin for p in self.positions.values()), ZERO)

    def available(self) -> Decimal:
        return self.wallet - self.frozen() - self.margin()


@dataclass(frozen=True, slots=True)
class PrivateEvent:
    account: str
    channel: str  # balance / position / order / tpsl
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class TradeEvent:
    symbol: str
    ts_ms: int
    price: Decimal
    qty: Decimal
    side: str  # taker side, lowercase buy / sell


def fill_view(
    trade_id: str,
    o: Order,
    q: Decimal,
    p: Decimal,
    fee: Decimal,
    pnl: Decimal,
    maker: bool,
    ts_ms: int,
) -> dict[str, object]:
    """One entry of ``get_history_trades``."""
    return {
        "tradeId": trade_id,
        "orderId": o.order_id,
        "symbol": o.symbol,
        "qty": fmt(q),
        "positionMode": o.position_mode,
        "marginMode": o.margin_mode,
        "leverage": o.leverage,
        "price": fmt(p),
        "side": o.side,
        "orderType": o.order_type,
        "effect": o.effect,
        "clientId": o.client_id,
        "reduceOnly": o.reduce_only,
        "fee": fmt(fee),
        "realizedPNL": fmt(pnl),
        "ctime": ts_ms,
        "roleType": "MAKER" if maker else "TAKER",
    }


def balance_view(acct: Account) -> dict[str, object]:
    """Private ``balance`` channel data (§4.6)."""
    frozen, margin = acct.frozen(), acct.margin()
    iso_f = sum((o.lock for o in acct.open_orders.values() if o.margin_mode == "ISOLATION"), ZERO)
    iso_m = sum((p.margin for p in acct.positions.values() if p.margin_mode == "ISOLATION"), ZERO)
    return {
        "coin": "USDT",
        "available": fmt(acct.wallet - frozen - margin),
        "frozen": fmt(frozen),
        "isolationFrozen": fmt(iso_f),
        "crossFrozen": fmt(frozen - iso_f),
        "margin": fmt(margin),
        "isolationMargin": fmt(iso_m),
        "crossMargin": fmt(margin - iso_m),
        "expMoney": "0",
    }
