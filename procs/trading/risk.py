"""Pre-trade risk: every new order passes ``RiskEngine.check`` or is refused with a typed reason.

Maximums are inclusive (a value equal to a limit passes); loss limits refuse once reached.
Cancels are never refused. Refusals are counted here and journaled by the caller.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from procs.trading.breaker import BreakerState
from procs.trading.config import RiskConfig, SymbolConfig
from procs.trading.instruments import Instrument
from procs.trading.model import ZERO, OrderRequest, OrderType, Side
from procs.trading.orders import Order

BPS: Final = Decimal(10_000)
_Key = tuple[str, Side, Decimal | None, Decimal]


class RefusalReason(enum.StrEnum):
    KILL_SWITCH = "kill_switch"
    BREAKER_HALTED = "breaker_halted"
    BREAKER_REDUCING = "breaker_reducing"
    SYMBOL_STATUS = "symbol_status"
    INVALID_QTY = "invalid_qty"
    INVALID_PRICE = "invalid_price"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    STALE_DATA = "stale_data"
    PRICE_COLLAR_MID = "price_collar_mid"
    PRICE_COLLAR_MARK = "price_collar_mark"
    DUPLICATE_ORDER = "duplicate_order"
    SELF_TRADE = "self_trade"
    MAX_OPEN_ORDERS = "max_open_orders"
    ORDER_RATE = "order_rate"
    DAILY_LOSS = "daily_loss"
    MAX_DRAWDOWN = "max_drawdown"
    MAX_POSITION_SYMBOL = "max_position_symbol"
    MAX_POSITION_TOTAL = "max_position_total"


_Found = tuple[RefusalReason, str] | None


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RefusalReason
    detail: str
    client_id: str
    symbol: str
    ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskContext:
    """What risk needs to know about the world at the moment of one order."""

    now_ns: int
    instrument: Instrument
    mid: Decimal | None  # None: no market data yet
    ts_data_ns: int  # stamp of the newest market data for the symbol
    mark: Decimal | None = None  # None: the mark collar is skipped
    positions: Mapping[str, Decimal] = field(default_factory=dict)  # net signed qty per symbol
    marks: Mapping[str, Decimal] = field(default_factory=dict)  # for other symbols' notional
    open_orders: Sequence[Order] = ()  # every open order of ours, all symbols
    day_pnl: Decimal = ZERO
    drawdown: Decimal = ZERO
    breaker: BreakerState = BreakerState.ACTIVE
    kill_switch: bool = False


def is_reducing(req: OrderRequest, position: Decimal) -> bool:
    """True when the order only shrinks the position (same symbol, opposite side, no flip)."""
    return position != 0 and (position > 0) == (req.side is Side.SELL) and req.qty <= abs(position)


class RiskEngine:
    """Stateful pre-trade checks: it remembers recent orders for the throttle and duplicates."""

    def __init__(self, config: RiskConfig, symbols: Sequence[SymbolConfig] = ()) -> None:
        self._c = config
        self._symbols = {s.symbol: s for s in symbols}
        self._window_ns = int(config.order_rate_window_s * 1e9)
        self._dup_ns = int(config.duplicate_window_s * 1e9)
        self._sent_ns: deque[int] = deque()  # order-rate window
        self._recent: deque[tuple[int, _Key]] = deque()  # duplicate window
        self._recent_keys: Counter[_Key] = Counter()
        self._client_ids: set[str] = set()
        self.refusals_total: Counter[RefusalReason] = Counter()
        self.passed_total = 0

    @property
    def config(self) -> RiskConfig:
        """The limits in force (they change on a hot reload)."""
        return self._c

    def reconfigure(self, config: RiskConfig) -> None:
        """New limits (a hot reload); the throttle and duplicate windows keep their history."""
        self._c = config
        self._window_ns = int(config.order_rate_window_s * 1e9)
        self._dup_ns = int(config.duplicate_window_s * 1e9)

    def check(self, req: OrderRequest, ctx: RiskContext) -> Refusal | None:
        """Return the first refusal, or ``None`` and remember the order as sent."""
        self._forget(ctx.now_ns)
        found = self._first_refusal(req, ctx)
        if found is not None:
            reason, detail = found
            self.refusals_total[reason] += 1
            return Refusal(reason, detail, req.client_id, req.symbol, ctx.now_ns)
        self.passed_total += 1
        self._client_ids.add(req.client_id)
        self._sent_ns.append(ctx.now_ns)
        key = _key(req)
        self._recent.append((ctx.now_ns, key))
        self._recent_keys[key] += 1
        return None

    def _forget(self, now_ns: int) -> None:
        while self._sent_ns and now_ns - self._sent_ns[0] >= self._window_ns:
            self._sent_ns.popleft()
        while self._recent and now_ns - self._recent[0][0] >= self._dup_ns:
            _, key = self._recent.popleft()
            self._recent_keys[key] -= 1
            if not self._recent_keys[key]:
                del self._recent_keys[key]

    def _first_refusal(
        self, req: OrderRequest, ctx: RiskContext
    ) -> tuple[RefusalReason, str] | None:
        position = ctx.positions.get(req.symbol, ZERO)
        reducing = is_reducing(req, position)
        for check in (
            self._gates,
            self._order_shape,
            self._market,
            self._duplicates,
            self._open_orders,
        ):
            found = check(req, ctx, reducing)
            if found is not None:
                return found
        if reducing:
            return None
        return self._exposure(req, ctx, position)

    def _gates(self, req: OrderRequest, ctx: RiskContext, reducing: bool) -> _Found:
        if ctx.kill_switch:
            return RefusalReason.KILL_SWITCH, "kill switch is on"
        if ctx.breaker is BreakerState.HALTED:
            return RefusalReason.BREAKER_HALTED, "breaker halted: cancels only"
        if ctx.breaker is BreakerState.REDUCING and not (reducing and req.reduce_only):
            return RefusalReason.BREAKER_REDUCING, "breaker reducing: reduce-only orders only"
        if not ctx.instrument.tradable:
            return RefusalReason.SYMBOL_STATUS, f"symbol status {ctx.instrument.status}"
        return None

    def _order_shape(self, req: OrderRequest, ctx: RiskContext, reducing: bool) -> _Found:
        inst = ctx.instrument
        if not inst.on_step(req.qty) or req.qty < inst.min_qty:
            return RefusalReason.INVALID_QTY, f"qty {req.qty} off step {inst.step} or < min"
        if req.price is not None and not inst.on_tick(req.price):
            return RefusalReason.INVALID_PRICE, f"price {req.price} off tick {inst.tick}"
        cap = inst.max_qty(req.order_type)
        sym = self._symbols.get(req.symbol)
        if sym is not None and sym.max_order_qty is not None:
            cap = min(cap, sym.max_order_qty)
        if req.qty > cap:
            return RefusalReason.MAX_ORDER_QTY, f"qty {req.qty} > {cap}"
        ref = req.price if req.price is not None else ctx.mid
        if ref is not None and req.qty * ref > self._c.max_order_notional_usdt:
            notional = req.qty * ref
            return (
                RefusalReason.MAX_ORDER_NOTIONAL,
                f"{notional} > {self._c.max_order_notional_usdt}",
            )
        return None

    def _market(self, req: OrderRequest, ctx: RiskContext, reducing: bool) -> _Found:
        age_ns = ctx.now_ns - ctx.ts_data_ns
        if ctx.mid is None or age_ns > self._c.max_data_age_s * 1e9:
            return RefusalReason.STALE_DATA, f"market data {age_ns / 1e9:.3f}s old"
        if req.price is None:
            return None
        if abs(req.price - ctx.mid) * BPS > self._c.price_collar_mid_bps * ctx.mid:
            return RefusalReason.PRICE_COLLAR_MID, f"price {req.price} vs mid {ctx.mid}"
        if ctx.mark is not None:
            scope = min(self._c.price_collar_mark_bps / BPS, ctx.instrument.price_protect_scope)
            if abs(req.price - ctx.mark) > scope * ctx.mark:
                return RefusalReason.PRICE_COLLAR_MARK, f"price {req.price} vs mark {ctx.mark}"
        return None

    def _duplicates(self, req: OrderRequest, ctx: RiskContext, reducing: bool) -> _Found:
        if req.client_id in self._client_ids or any(
            o.client_id == req.client_id for o in ctx.open_orders
        ):
            return RefusalReason.DUPLICATE_ORDER, f"clientId {req.client_id} already used"
        key = _key(req)
        if any(_key(o.request) == key for o in ctx.open_orders):
            return RefusalReason.DUPLICATE_ORDER, "an identical order is open"
        if key in self._recent_keys:
            return RefusalReason.DUPLICATE_ORDER, "an identical order was sent just now"
        for o in ctx.open_orders:
            r = o.request
            if r.symbol != req.symbol or r.side is req.side:
                continue
            if _crosses(req, r.price):
                return RefusalReason.SELF_TRADE, f"would trade with own order {o.client_id}"
        return None

    def _open_orders(self, req: OrderRequest, ctx: RiskContext, reducing: bool) -> _Found:
        n_all = len(ctx.open_orders)
        if n_all >= self._c.max_open_orders:
            return RefusalReason.MAX_OPEN_ORDERS, f"{n_all} open orders"
        n_sym = sum(1 for o in ctx.open_orders if o.symbol == req.symbol)
        if n_sym >= self._c.max_open_orders_per_symbol:
            return RefusalReason.MAX_OPEN_ORDERS, f"{n_sym} open orders on {req.symbol}"
        recent = len(self._sent_ns)
        if recent >= self._c.max_orders_per_window:
            return RefusalReason.ORDER_RATE, f"{recent} orders in {self._c.order_rate_window_s}s"
        return None

    def _exposure(self, req: OrderRequest, ctx: RiskContext, position: Decimal) -> _Found:
        if ctx.day_pnl <= -self._c.daily_loss_limit_usdt:
            return RefusalReason.DAILY_LOSS, f"day pnl {ctx.day_pnl}"
        if ctx.drawdown >= self._c.max_drawdown_usdt:
            return RefusalReason.MAX_DRAWDOWN, f"drawdown {ctx.drawdown}"
        price = req.price if req.price is not None else ctx.mid
        assert price is not None  # _market refused a missing mid
        pending = sum(
            (
                o.remaining_qty
                for o in ctx.open_orders
                if o.symbol == req.symbol and o.request.side is req.side
            ),
            ZERO,
        )
        worst = abs(position + req.side.sign * (pending + req.qty))
        sym = self._symbols.get(req.symbol)
        if sym is not None and sym.max_position_qty is not None and worst > sym.max_position_qty:
            return RefusalReason.MAX_POSITION_SYMBOL, f"worst-case qty {worst}"
        notional = worst * price
        if notional > self._c.max_position_notional_usdt:
            return RefusalReason.MAX_POSITION_SYMBOL, f"worst-case notional {notional}"
        others = sum(
            (abs(q) * ctx.marks.get(s, ZERO) for s, q in ctx.positions.items() if s != req.symbol),
            ZERO,
        )
        if others + notional > self._c.max_total_notional_usdt:
            return RefusalReason.MAX_POSITION_TOTAL, f"total notional {others + notional}"
        return None


def _key(req: OrderRequest) -> tuple[str, Side, Decimal | None, Decimal]:
    return (req.symbol, req.side, req.price, req.qty)


def _crosses(req: OrderRequest, resting_price: Decimal | None) -> bool:
    if resting_price is None:
        return False  # a resting market order does not exist long enough to matter
    if req.order_type is OrderType.MARKET or req.price is None:
        return True
    return req.price >= resting_price if req.side is Side.BUY else req.price <= resting_price
