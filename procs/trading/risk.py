"""Pre-trade risk: every new order passes ``RiskEngine.check`` or is refused with a typed reason.

Maximums are inclusive (a value equal to a limit passes); loss limits refuse once reached.
Cancels are never refused. Refusals are counted here and journaled by the caller.

The checks compare ints: qty in lots, prices in ticks (the mid in half ticks), and each limit
pre-scaled once per instrument and config to the unit it is compared in (a notional limit L in
tick × lot units: floor(L / (tick × step)), exactly, so ``lots × ticks > that`` is ``qty × price
> L``). PnL stays ``Decimal`` (the journal's truth), and so does the notional of other symbols'
positions (their marks are the venue's, on no grid of ours) when there is any. A refusal's
detail is built from the ``Decimal`` values, as before.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Final

from procs.trading.breaker import BreakerState
from procs.trading.config import RiskConfig, SymbolConfig
from procs.trading.instruments import Instrument, floor_units
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
    # the same in ints (derived from ``mid`` and ``positions`` when not given): the mid in half
    # ticks (best bid + best ask, in ticks), and this symbol's net position in lots
    mid2: int | None = None
    position_lots: int | None = None

    def __post_init__(self) -> None:
        inst = self.instrument
        if self.mid2 is None and self.mid is not None:
            a, b = self.mid.as_integer_ratio()
            c, d = inst.tick.as_integer_ratio()
            n, r = divmod(2 * a * d, b * c)
            if r:
                raise ValueError(f"mid {self.mid} is not on {inst.symbol}'s half tick")
            object.__setattr__(self, "mid2", n)
        if self.position_lots is None:
            lots = inst.lots_toward_zero(self.positions.get(inst.symbol, ZERO))
            object.__setattr__(self, "position_lots", lots)


def is_reducing(req: OrderRequest, position: Decimal) -> bool:
    """True when the order only shrinks the position (same symbol, opposite side, no flip)."""
    return position != 0 and (position > 0) == (req.side is Side.SELL) and req.qty <= abs(position)


@dataclass(frozen=True, slots=True)
class _Scaled:
    """One symbol's limits in the units its checks compare, for one config and instrument."""

    config: RiskConfig
    inst: Instrument
    cap_limit: int  # max lots of a limit order (the venue's and the symbol's cap)
    cap_market: int
    max_pos_lots: int | None  # the symbol's max_position_qty in lots, None: no cap
    order_u: int  # max_order_notional in tick × lot units (against lots × ticks)
    order_u2: int  # ... in half-tick × lot units (against lots × mid2)
    pos_u: int
    pos_u2: int
    total_u: int
    total_u2: int
    collar: tuple[int, int]  # price_collar_mid_bps as numerator, denominator

    @staticmethod
    def of(c: RiskConfig, inst: Instrument, sym: SymbolConfig | None) -> _Scaled:
        u = inst.tick * inst.step  # exact: a product of two short Decimals
        half = u / 2

        def caps(order_type: OrderType) -> int:
            cap = inst.max_lots(order_type)
            if sym is not None and sym.max_order_qty is not None:
                cap = min(cap, inst.floor_lots(sym.max_order_qty))
            return cap

        max_pos = None if sym is None or sym.max_position_qty is None else sym.max_position_qty
        return _Scaled(
            c, inst, caps(OrderType.LIMIT), caps(OrderType.MARKET),
            None if max_pos is None else inst.floor_lots(max_pos),
            floor_units(c.max_order_notional_usdt, u), floor_units(c.max_order_notional_usdt, half),
            floor_units(c.max_position_notional_usdt, u),
            floor_units(c.max_position_notional_usdt, half),
            floor_units(c.max_total_notional_usdt, u), floor_units(c.max_total_notional_usdt, half),
            c.price_collar_mid_bps.as_integer_ratio(),
        )  # fmt: skip


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
        self._scaled: dict[str, _Scaled] = {}  # the limits in ints, per symbol
        self._bands: dict[str, tuple[Decimal, _Scaled, int, int]] = {}  # mark collar, in ticks
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
        key = (req.symbol, req.side, req.price, req.qty)  # _key(req), made once
        found = self._first_refusal(req, ctx, key)
        if found is not None:
            reason, detail = found
            self.refusals_total[reason] += 1
            return Refusal(reason, detail, req.client_id, req.symbol, ctx.now_ns)
        self.passed_total += 1
        self._client_ids.add(req.client_id)
        self._sent_ns.append(ctx.now_ns)
        self._recent.append((ctx.now_ns, key))
        recent = self._recent_keys
        recent[key] = recent.get(key, 0) + 1
        return None

    def _forget(self, now_ns: int) -> None:
        while self._sent_ns and now_ns - self._sent_ns[0] >= self._window_ns:
            self._sent_ns.popleft()
        while self._recent and now_ns - self._recent[0][0] >= self._dup_ns:
            _, key = self._recent.popleft()
            self._recent_keys[key] -= 1
            if not self._recent_keys[key]:
                del self._recent_keys[key]

    def _limits(self, symbol: str, inst: Instrument) -> _Scaled:
        """The limits pre-scaled for ``inst``: once per config and instrument."""
        sc = self._scaled.get(symbol)
        if sc is None or sc.inst is not inst or sc.config is not self._c:
            sc = self._scaled[symbol] = _Scaled.of(self._c, inst, self._symbols.get(symbol))
        return sc

    def _first_refusal(self, req: OrderRequest, ctx: RiskContext, key: _Key) -> _Found:
        inst = ctx.instrument
        position = ctx.position_lots
        assert position is not None  # RiskContext derives it
        lots = req.lots if req.lots >= 0 else inst.lots_of(req.qty)
        if lots is not None:  # is_reducing, in lots
            reducing = position != 0 and (position > 0) == (req.side is Side.SELL)
            reducing = reducing and lots <= abs(position)
        else:  # off the step: refused below, after the gates, as before
            reducing = is_reducing(req, ctx.positions.get(req.symbol, ZERO))
        found = self._gates(req, ctx, reducing)
        if found is not None:
            return found
        sc = self._limits(req.symbol, inst)
        if lots is None or lots < inst.min_lots:
            return RefusalReason.INVALID_QTY, f"qty {req.qty} off step {inst.step} or < min"
        ticks = None
        if req.price is not None:
            ticks = req.ticks if req.ticks >= 0 else inst.ticks_of(req.price)
            if ticks is None or ticks <= 0:
                return RefusalReason.INVALID_PRICE, f"price {req.price} off tick {inst.tick}"
        for found in (
            self._order_shape(req, ctx, sc, lots, ticks),
            self._market(req, ctx, sc, ticks),
            self._duplicates(req, ctx, key),
            self._open_orders(req, ctx),
        ):
            if found is not None:
                return found
        if reducing:
            return None
        return self._exposure(req, ctx, sc, lots, ticks, position)

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

    def _order_shape(
        self, req: OrderRequest, ctx: RiskContext, sc: _Scaled, lots: int, ticks: int | None
    ) -> _Found:
        if lots > (sc.cap_limit if req.order_type is OrderType.LIMIT else sc.cap_market):
            cap = ctx.instrument.max_qty(req.order_type)
            sym = self._symbols.get(req.symbol)
            if sym is not None and sym.max_order_qty is not None:
                cap = min(cap, sym.max_order_qty)
            return RefusalReason.MAX_ORDER_QTY, f"qty {req.qty} > {cap}"
        if ticks is not None:
            over = lots * ticks > sc.order_u
        else:
            over = ctx.mid2 is not None and lots * ctx.mid2 > sc.order_u2
        if over:
            ref = req.price if req.price is not None else ctx.mid
            assert ref is not None
            notional = req.qty * ref
            return (
                RefusalReason.MAX_ORDER_NOTIONAL,
                f"{notional} > {self._c.max_order_notional_usdt}",
            )
        return None

    def _market(
        self, req: OrderRequest, ctx: RiskContext, sc: _Scaled, ticks: int | None
    ) -> _Found:
        age_ns = ctx.now_ns - ctx.ts_data_ns
        if ctx.mid is None or age_ns > self._c.max_data_age_s * 1e9:
            return RefusalReason.STALE_DATA, f"market data {age_ns / 1e9:.3f}s old"
        if ticks is None:
            return None
        mid2 = ctx.mid2
        assert mid2 is not None  # RiskContext derives it from mid
        num, den = sc.collar
        if abs(2 * ticks - mid2) * 10_000 * den > num * mid2:  # |price - mid| × BPS > bps × mid
            return RefusalReason.PRICE_COLLAR_MID, f"price {req.price} vs mid {ctx.mid}"
        if ctx.mark is not None:
            lo, hi = self._mark_band(req.symbol, ctx.mark, sc)
            if not lo <= ticks <= hi:
                return RefusalReason.PRICE_COLLAR_MARK, f"price {req.price} vs mark {ctx.mark}"
        return None

    def _mark_band(self, symbol: str, mark: Decimal, sc: _Scaled) -> tuple[int, int]:
        """The prices, in ticks, within the mark collar: |price - mark| <= scope × mark."""
        band = self._bands.get(symbol)
        if band is not None and band[0] == mark and band[1] is sc:
            return band[2], band[3]
        scope = min(self._c.price_collar_mark_bps / BPS, sc.inst.price_protect_scope)
        m, s, tick = Fraction(mark), Fraction(scope), Fraction(sc.inst.tick)
        lo, hi = math.ceil((m - s * m) / tick), math.floor((m + s * m) / tick)
        self._bands[symbol] = (mark, sc, lo, hi)
        return lo, hi

    def _duplicates(self, req: OrderRequest, ctx: RiskContext, key: _Key) -> _Found:
        opened = ctx.open_orders
        if req.client_id in self._client_ids or (
            opened and any(o.client_id == req.client_id for o in opened)
        ):
            return RefusalReason.DUPLICATE_ORDER, f"clientId {req.client_id} already used"
        if opened and any(_key(o.request) == key for o in opened):
            return RefusalReason.DUPLICATE_ORDER, "an identical order is open"
        if key in self._recent_keys:
            return RefusalReason.DUPLICATE_ORDER, "an identical order was sent just now"
        for o in opened:
            r = o.request
            if r.symbol != req.symbol or r.side is req.side:
                continue
            if _crosses(req, r.price):
                return RefusalReason.SELF_TRADE, f"would trade with own order {o.client_id}"
        return None

    def _open_orders(self, req: OrderRequest, ctx: RiskContext) -> _Found:
        n_all = len(ctx.open_orders)
        if n_all >= self._c.max_open_orders:
            return RefusalReason.MAX_OPEN_ORDERS, f"{n_all} open orders"
        n_sym = sum(1 for o in ctx.open_orders if o.symbol == req.symbol) if n_all else 0
        if n_sym >= self._c.max_open_orders_per_symbol:
            return RefusalReason.MAX_OPEN_ORDERS, f"{n_sym} open orders on {req.symbol}"
        recent = len(self._sent_ns)
        if recent >= self._c.max_orders_per_window:
            return RefusalReason.ORDER_RATE, f"{recent} orders in {self._c.order_rate_window_s}s"
        return None

    def _exposure(
        self,
        req: OrderRequest,
        ctx: RiskContext,
        sc: _Scaled,
        lots: int,
        ticks: int | None,
        position: int,
    ) -> _Found:
        if ctx.day_pnl <= -self._c.daily_loss_limit_usdt:
            return RefusalReason.DAILY_LOSS, f"day pnl {ctx.day_pnl}"
        if ctx.drawdown >= self._c.max_drawdown_usdt:
            return RefusalReason.MAX_DRAWDOWN, f"drawdown {ctx.drawdown}"
        inst = ctx.instrument
        pending = (
            sum(
                _remaining_lots(o, inst)
                for o in ctx.open_orders
                if o.symbol == req.symbol and o.request.side is req.side
            )
            if ctx.open_orders
            else 0
        )
        worst = abs(position + req.side.sign * (pending + lots))
        if sc.max_pos_lots is not None and worst > sc.max_pos_lots:
            return RefusalReason.MAX_POSITION_SYMBOL, f"worst-case qty {_worst(req, ctx)}"
        # the notional in tick × lot units, or half-tick × lot units for a market order
        notional, pos_u, total_u = (
            (worst * ticks, sc.pos_u, sc.total_u)
            if ticks is not None
            else (worst * _mid2(ctx), sc.pos_u2, sc.total_u2)
        )
        if notional > pos_u:
            n = _worst(req, ctx) * _price(req, ctx)
            return RefusalReason.MAX_POSITION_SYMBOL, f"worst-case notional {n}"
        others = ZERO
        for s, q in ctx.positions.items():
            if s != req.symbol and q:  # other symbols' exposure: their marks are Decimals
                others += abs(q) * ctx.marks.get(s, ZERO)
        if others:
            unit = inst.tick * inst.step if ticks is not None else inst.tick * inst.step / 2
            over = others + Decimal(notional) * unit > self._c.max_total_notional_usdt
        else:
            over = notional > total_u
        if over:
            n = _worst(req, ctx) * _price(req, ctx)
            total = sum(
                (
                    abs(q) * ctx.marks.get(s, ZERO)
                    for s, q in ctx.positions.items()
                    if s != req.symbol
                ),
                ZERO,
            )
            return RefusalReason.MAX_POSITION_TOTAL, f"total notional {total + n}"
        return None


def _mid2(ctx: RiskContext) -> int:
    assert ctx.mid2 is not None  # _market refused a missing mid
    return ctx.mid2


def _price(req: OrderRequest, ctx: RiskContext) -> Decimal:
    price = req.price if req.price is not None else ctx.mid
    assert price is not None  # _market refused a missing mid
    return price


def _worst(req: OrderRequest, ctx: RiskContext) -> Decimal:
    """The worst-case position in Decimal, as a refusal's detail shows it."""
    pending = sum(
        (
            o.remaining_qty
            for o in ctx.open_orders
            if o.symbol == req.symbol and o.request.side is req.side
        ),
        ZERO,
    )
    return abs(ctx.positions.get(req.symbol, ZERO) + req.side.sign * (pending + req.qty))


def _remaining_lots(o: Order, inst: Instrument) -> int:
    """An open order's unfilled qty in lots (the strategy's orders carry their lots)."""
    if o.request.lots >= 0 and not o.filled_qty:
        return o.request.lots
    return inst.lots_toward_zero(o.remaining_qty)


def _key(req: OrderRequest) -> tuple[str, Side, Decimal | None, Decimal]:
    return (req.symbol, req.side, req.price, req.qty)


def _crosses(req: OrderRequest, resting_price: Decimal | None) -> bool:
    if resting_price is None:
        return False  # a resting market order does not exist long enough to matter
    if req.order_type is OrderType.MARKET or req.price is None:
        return True
    return req.price >= resting_price if req.side is Side.BUY else req.price <= resting_price
