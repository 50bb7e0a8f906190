"""The order path's arithmetic as it was before issue 12's integers (``procs/trading/strategy.py``
and ``risk.py`` at da3dc9a, the decision and the checks copied unchanged): the oracle the
integer code is tested against (``tests/unit/procs/execution/test_ints.py``). Not used by the
program. Do not "fix" it: it is what the behaviour must stay equal to."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from procs.trading.breaker import BreakerState
from procs.trading.config import RiskConfig, StrategyConfig, SymbolConfig
from procs.trading.instruments import Instrument
from procs.trading.model import (
    ZERO,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
)
from procs.trading.orders import Order
from procs.trading.risk import (
    BPS,
    Refusal,
    RefusalReason,
    RiskContext,
    _Found,
    _Key,
    is_reducing,
)
from procs.trading.strategy import (
    Action,
    CancelOrder,
    PlaceOrder,
    Quote,
    ReplaceOrder,
    SignalInput,
    VolEstimator,
)

_IN_FLIGHT = frozenset({OrderStatus.NEW_INTENT, OrderStatus.SENT, OrderStatus.UNKNOWN})


class DecimalStrategy:
    """``Strategy`` as it was: the decision in ``Decimal``."""

    def __init__(
        self,
        config: StrategyConfig,
        instruments: Mapping[str, Instrument],
        next_client_id: Callable[[], str],
        *,
        symbols: Sequence[SymbolConfig] = (),
        hedge: bool = False,
    ) -> None:
        self._c = config
        self._instruments = instruments
        self._next_id = next_client_id
        self._symbols = {s.symbol: s for s in symbols}
        self._hedge = hedge
        self._regime: dict[str, int] = {}
        self._vol: dict[str, VolEstimator] = {}
        # per symbol: the inputs of the last decision that did nothing, and the clientIds it
        # drew; the same inputs again do nothing again (``decide``)
        self._quiet: dict[str, tuple[tuple[object, ...], int]] = {}
        self._units: dict[str, tuple[Decimal, Instrument, Decimal]] = {}  # fixed sizing
        self._ids_drawn = 0

    def reconfigure(self, config: StrategyConfig) -> None:
        """New parameters (a hot reload); regimes and volatility estimates carry over."""
        self._c = config
        self._units.clear()
        for vol in self._vol.values():
            vol.halflife_s = config.vol_halflife_s

    def regime(self, symbol: str) -> int:
        """-1 short, 0 flat, +1 long: the hysteresis state."""
        return self._regime.get(symbol, 0)

    def update_regime(self, symbol: str, score: float) -> int:
        c, cur = self._c, self.regime(symbol)
        if score >= c.enter_score:
            new = 1
        elif score <= -c.enter_score:
            new = -1
        elif cur != 0 and cur * score < c.exit_score:
            new = 0  # the signal faded (or turned) below the exit threshold
        else:
            new = cur
        self._regime[symbol] = new
        return new

    def unit_qty(self, symbol: str, mid: Decimal) -> Decimal:
        """Position size at full signal, capped by inventory limits, on the qty step."""
        c, inst = self._c, self._instruments[symbol]
        if c.sizing != "vol_scaled":
            last = self._units.get(symbol)
            if last is not None and last[0] is mid and last[1] is inst:  # the grid's own mid
                return last[2]
        notional = c.target_notional_usdt
        if c.sizing == "vol_scaled":
            vol = self._vol[symbol].vol_per_sqrt_s if symbol in self._vol else 0.0
            scale = c.vol_target_per_sqrt_s / max(vol, c.vol_floor_per_sqrt_s)
            notional = notional * Decimal(repr(round(scale, 9)))
        notional = min(notional, c.max_position_notional_usdt)
        qty = notional / mid
        sym = self._symbols.get(symbol)
        if sym is not None and sym.max_position_qty is not None:
            qty = min(qty, sym.max_position_qty)
        qty = inst.round_qty(qty)
        if c.sizing != "vol_scaled":
            self._units[symbol] = (mid, inst, qty)
        return qty

    def target_qty(self, sig: SignalInput, ts_ns: int) -> Decimal:
        vol = self._vol.get(sig.symbol)
        if vol is None:  # (not setdefault: that would build an estimator every signal)
            vol = self._vol[sig.symbol] = VolEstimator(self._c.vol_halflife_s)
        vol.update(float(sig.mid), ts_ns)
        regime = self.update_regime(sig.symbol, sig.score)
        return regime * self.unit_qty(sig.symbol, sig.mid) if regime else ZERO

    def decide(
        self,
        sig: SignalInput,
        quote: Quote,
        position: Decimal,
        working: Sequence[Order],
        now_ns: int,
    ) -> list[Action]:
        """Actions that move this symbol's orders towards the target for ``sig``.

        A signal whose inputs (target, position, top of book, which side may take, the symbol's
        orders) equal those of the last decision that did nothing does nothing: a compare, and
        the clientId that decision drew for the request it dropped (ids stay as they were)."""
        inst = self._instruments[sig.symbol]
        mine = [o for o in working if o.symbol == sig.symbol and o.status.is_open]
        if sig.stale:
            self._quiet.pop(sig.symbol, None)
            return self._cancel_all(mine, "stale market data")
        target = self.target_qty(sig, now_ns)
        c, score = self._c, sig.score
        big = abs(score) >= c.take_score
        key = (target, position, quote.best_bid, quote.best_ask, big and score > 0,
               big and -score > 0, c, inst, *mine)  # fmt: skip
        quiet = self._quiet.get(sig.symbol)
        if quiet is not None and quiet[0] == key:
            for _ in range(quiet[1]):
                self._next_id()
            return []
        drawn = self._ids_drawn
        actions = self._actions(sig, quote, inst, mine, target, position, now_ns)
        if actions:
            self._quiet.pop(sig.symbol, None)
        else:
            self._quiet[sig.symbol] = (key, self._ids_drawn - drawn)
        return actions

    def _actions(
        self,
        sig: SignalInput,
        quote: Quote,
        inst: Instrument,
        mine: list[Order],
        target: Decimal,
        position: Decimal,
        now_ns: int,
    ) -> list[Action]:
        if any(o.status in _IN_FLIGHT or o.ts_cancel_ns for o in mine):
            return []  # wait for the venue's answer before acting again
        delta = target - position
        rounded = inst.round_qty(abs(delta))
        if rounded == 0:
            return self._cancel_all(mine, "at target")
        side = Side.BUY if delta > 0 else Side.SELL
        reducing = position != 0 and (position > 0) != (delta > 0)
        qty = inst.round_qty(min(abs(delta), abs(position))) if reducing else rounded
        if qty == 0:
            return self._cancel_all(mine, "below min qty")
        actions: list[Action] = [
            CancelOrder(o.client_id, o.symbol, "wrong side")
            for o in mine
            if o.request.side is not side
        ]
        same = [o for o in mine if o.request.side is side]
        actions += [CancelOrder(o.client_id, o.symbol, "extra order") for o in same[1:]]
        request = self._request(sig, quote, inst, side, qty, reducing, position, now_ns)
        if request is None:
            return actions
        if not same:
            return [*actions, PlaceOrder(request)]
        resting = same[0]
        drift = abs((resting.request.price or ZERO) - (request.price or ZERO))
        if (
            drift >= self._c.requote_ticks * inst.tick
            or resting.remaining_qty != qty
            or resting.request.tif != request.tif
        ):
            actions.append(ReplaceOrder(resting.client_id, request))
        return actions

    def _request(
        self,
        sig: SignalInput,
        quote: Quote,
        inst: Instrument,
        side: Side,
        qty: Decimal,
        reducing: bool,
        position: Decimal,
        now_ns: int,
    ) -> OrderRequest | None:
        bid, ask = quote.best_bid, quote.best_ask
        if not 0 < bid < ask:
            return None  # no two-sided book: do not guess a price
        take = abs(sig.score) >= self._c.take_score and side.sign * sig.score > 0
        if take:
            price, tif = (ask if side is Side.BUY else bid), TimeInForce.IOC
        else:
            step = self._c.improve_ticks * inst.tick
            price = (
                min(bid + step, ask - inst.tick)
                if side is Side.BUY
                else max(ask - step, bid + inst.tick)
            )
            price, tif = inst.round_price(price, side), TimeInForce.POST_ONLY
        if self._hedge:
            held = position if reducing else Decimal(side.sign)
            position_side = PositionSide.LONG if held > 0 else PositionSide.SHORT
        else:
            position_side = PositionSide.BOTH
        self._ids_drawn += 1
        return OrderRequest(
            client_id=self._next_id(),
            symbol=sig.symbol,
            side=side,
            qty=qty,
            price=price,
            order_type=OrderType.LIMIT,
            tif=tif,
            reduce_only=reducing,
            position_side=position_side,
            stamps=sig.stamps,
            ts_order_ns=now_ns,
            tag="take" if take else "quote",
        )

    @staticmethod
    def _cancel_all(orders: Sequence[Order], reason: str) -> list[Action]:
        return [
            CancelOrder(o.client_id, o.symbol, reason)
            for o in orders
            if o.status not in _IN_FLIGHT and not o.ts_cancel_ns
        ]


class DecimalRiskEngine:
    """``RiskEngine`` as it was: the checks in ``Decimal``."""

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
