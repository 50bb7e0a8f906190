"""Strategy: signal → target position (thresholds, hysteresis, inventory caps) → quoting actions.

Maker first: a post-only limit at (or inside) the best price, replaced when it drifts; an IOC
limit at the opposite best only when the signal is very strong. Sizes respect tick, step and
min qty. A position is never flipped in one order: it is closed (reduce-only) first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from procs.trading.config import StrategyConfig, SymbolConfig
from procs.trading.instruments import Instrument, to_decimal
from procs.trading.model import (
    ZERO,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TickStamps,
    TimeInForce,
)
from procs.trading.orders import Order
from shm.records import FLAG_STALE, SIG_V1, Records


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalInput:
    """One model signal for one symbol, with the stamps of the tick that caused it."""

    symbol: str
    score: float  # in [-1, 1]
    mid: Decimal
    stale: bool = False
    stamps: TickStamps = field(default_factory=TickStamps)


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book for one symbol, on the symbol's tick; ``mid`` computed once, at creation."""

    best_bid: Decimal
    best_ask: Decimal
    mid: Decimal = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mid", (self.best_bid + self.best_ask) / 2)


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    request: OrderRequest


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_id: str
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    """Cancel ``cancel_client_id``, then place ``request`` (or modify, where the venue allows)."""

    cancel_client_id: str
    request: OrderRequest


Action = PlaceOrder | CancelOrder | ReplaceOrder


_S = {name: i for i, name in enumerate(SIG_V1.names or ())}  # field positions in a row's tuple
_S_SID, _S_FLAGS, _S_MID, _S_SCORE = _S["symbol_id"], _S["flags"], _S["mid"], _S["score"]
_S_EVENT, _S_RECV, _S_FEAT, _S_SIG = (
    _S["ts_event_ns"], _S["ts_recv_ns"], _S["ts_feat_ns"], _S["ts_sig_ns"]
)  # fmt: skip


def signals_from_records(
    batch: Records,
    symbols: Mapping[int, Instrument],
    mids: Mapping[int, Callable[[float], Decimal]] | None = None,
) -> list[SignalInput]:
    """Turn a batch of SIG_V1 records into inputs, keeping only the newest per known symbol.

    ``mids`` (per symbol id: ``DecimalGrid`` on its tick) memoise the mid's conversion; without
    them it is ``to_decimal(mid, tick)``, with the same result."""
    newest: dict[int, tuple[Any, ...]] = {}
    for row in batch.tolist():  # one call for every field of every row (~0.1 µs a field)
        if row[_S_SID] in symbols:
            newest[row[_S_SID]] = row  # later rows win; the first one's position is kept
    out = []
    for sid, row in newest.items():
        inst = symbols[sid]
        score, mid = row[_S_SCORE], row[_S_MID]
        finite = math.isfinite(score)
        out.append(
            SignalInput(
                symbol=inst.symbol,
                score=score if finite else 0.0,
                mid=mids[sid](mid) if mids is not None else to_decimal(mid, inst.tick),
                stale=bool(row[_S_FLAGS] & FLAG_STALE) or not finite,
                stamps=TickStamps(row[_S_EVENT], row[_S_RECV], row[_S_FEAT], row[_S_SIG]),
            )
        )
    return out


_LN2 = math.log(2)


class VolEstimator:
    """EWMA of squared log returns per second of the mid; volatility is per √second."""

    def __init__(self, halflife_s: float) -> None:
        self._halflife_ns = halflife_s * 1e9
        self._last: tuple[float, int] | None = None
        self._var = 0.0
        self.samples = 0

    def update(self, mid: float, ts_ns: int) -> None:
        if mid <= 0:
            return
        if self._last is not None and ts_ns > self._last[1]:
            dt_ns = ts_ns - self._last[1]
            r = math.log(mid / self._last[0])
            alpha = 1.0 - math.exp(-dt_ns * _LN2 / self._halflife_ns)
            self._var += alpha * (r * r / (dt_ns / 1e9) - self._var)
            self.samples += 1
        if self._last is None or ts_ns > self._last[1]:
            self._last = (mid, ts_ns)

    @property
    def halflife_s(self) -> float:
        return self._halflife_ns / 1e9

    @halflife_s.setter
    def halflife_s(self, value: float) -> None:
        self._halflife_ns = value * 1e9

    @property
    def vol_per_sqrt_s(self) -> float:
        return math.sqrt(self._var)  # correctly rounded, as np.sqrt


class Strategy:
    """Per-symbol regime state and the quoting decision; owns no I/O and sends nothing itself."""

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


_IN_FLIGHT = frozenset({OrderStatus.NEW_INTENT, OrderStatus.SENT, OrderStatus.UNKNOWN})
