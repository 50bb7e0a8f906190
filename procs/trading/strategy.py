"""Strategy: signal → target position (thresholds, hysteresis, inventory caps) → quoting actions.

Maker first: a post-only limit at (or inside) the best price, replaced when it drifts; an IOC
limit at the opposite best only when the signal is very strong. Sizes respect tick, step and
min qty. A position is never flipped in one order: it is closed (reduce-only) first.

The decision computes in ints: prices in ticks, quantities in lots (the instrument's tick and
step). Sizing (a notional over the mid) is the one ``Decimal`` division, memoised per mid; the
``OrderRequest`` gets its ``Decimal`` qty and price at creation (``Instrument.qty_of``,
``price_of``), and carries the ints for risk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Final

from procs.trading.config import StrategyConfig, SymbolConfig
from procs.trading.instruments import Instrument, to_decimal
from procs.trading.model import (
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
    """Top of book for one symbol, on the symbol's tick; ``mid`` computed once, at creation.

    ``bid_ticks``/``ask_ticks`` are the same prices in ticks (what the strategy computes with);
    -1 when the caller did not give them: ``ticks`` derives them then."""

    best_bid: Decimal
    best_ask: Decimal
    bid_ticks: int = field(default=-1, compare=False)
    ask_ticks: int = field(default=-1, compare=False)
    mid: Decimal = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mid", (self.best_bid + self.best_ask) / 2)

    def ticks(self, inst: Instrument) -> tuple[int, int]:
        """(bid, ask) in ticks; a price off the tick counts as none (0: no two-sided book)."""
        if self.bid_ticks >= 0 and self.ask_ticks >= 0:
            return self.bid_ticks, self.ask_ticks
        return inst.ticks_of(self.best_bid) or 0, inst.ticks_of(self.best_ask) or 0


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
    new, set_sym, set_score, set_mid, set_stale, set_stamps = _SIGNAL
    stamps_new, set_event, set_recv, set_feat, set_sig = _STAMPS
    for sid, row in newest.items():
        inst = symbols[sid]
        score, mid = row[_S_SCORE], row[_S_MID]
        finite = math.isfinite(score)
        # SignalInput(symbol=..., score=..., mid=..., stale=..., stamps=TickStamps(...)), its
        # slots set directly (~0.7 of ~1.3 µs a signal less; neither class has __post_init__)
        stamps = stamps_new(TickStamps)
        set_event(stamps, row[_S_EVENT])
        set_recv(stamps, row[_S_RECV])
        set_feat(stamps, row[_S_FEAT])
        set_sig(stamps, row[_S_SIG])
        sig = new(SignalInput)
        set_sym(sig, inst.symbol)
        set_score(sig, score if finite else 0.0)
        set_mid(sig, mids[sid](mid) if mids is not None else to_decimal(mid, inst.tick))
        set_stale(sig, bool(row[_S_FLAGS] & FLAG_STALE) or not finite)
        set_stamps(sig, stamps)
        out.append(sig)
    return out


def _slot_setters(cls: type, names: Sequence[str]) -> tuple[Any, ...]:
    """``object.__new__`` and each slot's setter, in ``names``' order: every field, no more."""
    assert tuple(names) == tuple(f.name for f in fields(cls)), cls
    assert not hasattr(cls, "__post_init__"), cls
    return (object.__new__, *(getattr(cls, n).__set__ for n in names))


_SIGNAL: Final = _slot_setters(SignalInput, ("symbol", "score", "mid", "stale", "stamps"))
_STAMPS: Final = _slot_setters(TickStamps, ("ts_event_ns", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns"))


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
        self._units: dict[str, tuple[Decimal, Instrument, int]] = {}  # fixed sizing, lots
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
        inst = self._instruments[symbol]
        return inst.qty_of(self.unit_lots(symbol, mid))

    def unit_lots(self, symbol: str, mid: Decimal) -> int:
        """``unit_qty`` in lots (the sizing's Decimal division, memoised per mid when fixed)."""
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
        lots = inst.lots_toward_zero(inst.round_qty(qty))  # on the step: exact
        if c.sizing != "vol_scaled":
            self._units[symbol] = (mid, inst, lots)
        return lots

    def target_qty(self, sig: SignalInput, ts_ns: int) -> Decimal:
        """``target_lots`` as a quantity."""
        return self._instruments[sig.symbol].qty_of(self.target_lots(sig, ts_ns))

    def target_lots(self, sig: SignalInput, ts_ns: int) -> int:
        """Signed target position in lots for ``sig``; updates volatility and regime."""
        vol = self._vol.get(sig.symbol)
        if vol is None:  # (not setdefault: that would build an estimator every signal)
            vol = self._vol[sig.symbol] = VolEstimator(self._c.vol_halflife_s)
        vol.update(float(sig.mid), ts_ns)
        regime = self.update_regime(sig.symbol, sig.score)
        return regime * self.unit_lots(sig.symbol, sig.mid) if regime else 0

    def decide(
        self,
        sig: SignalInput,
        quote: Quote,
        position: int,
        working: Sequence[Order],
        now_ns: int,
    ) -> list[Action]:
        """Actions that move this symbol's orders towards the target for ``sig``; ``position``
        is the symbol's net position in lots (``PositionBook.net_lots``).

        A signal whose inputs (target, position, top of book, which side may take, the symbol's
        orders) equal those of the last decision that did nothing does nothing: a compare, and
        the clientId that decision drew for the request it dropped (ids stay as they were)."""
        inst = self._instruments[sig.symbol]
        mine = [o for o in working if o.symbol == sig.symbol and o.status.is_open]
        if sig.stale:
            self._quiet.pop(sig.symbol, None)
            return self._cancel_all(mine, "stale market data")
        target = self.target_lots(sig, now_ns)
        bid, ask = quote.ticks(inst)
        c, score = self._c, sig.score
        big = abs(score) >= c.take_score
        key = (target, position, bid, ask, big and score > 0, big and -score > 0, c, inst, *mine)
        quiet = self._quiet.get(sig.symbol)
        if quiet is not None and quiet[0] == key:
            for _ in range(quiet[1]):
                self._next_id()
            return []
        drawn = self._ids_drawn
        actions = self._actions(sig, (bid, ask), inst, mine, target, position, now_ns)
        if actions:
            self._quiet.pop(sig.symbol, None)
        else:
            self._quiet[sig.symbol] = (key, self._ids_drawn - drawn)
        return actions

    def _actions(
        self,
        sig: SignalInput,
        top: tuple[int, int],
        inst: Instrument,
        mine: list[Order],
        target: int,
        position: int,
        now_ns: int,
    ) -> list[Action]:
        if any(o.status in _IN_FLIGHT or o.ts_cancel_ns for o in mine):
            return []  # wait for the venue's answer before acting again
        delta = target - position  # lots: what the Decimal rounding to the step did is exact
        size = abs(delta)
        if size < inst.min_lots:
            return self._cancel_all(mine, "at target")
        side = Side.BUY if delta > 0 else Side.SELL
        reducing = position != 0 and (position > 0) != (delta > 0)
        qty = min(size, abs(position)) if reducing else size
        if qty < inst.min_lots:
            return self._cancel_all(mine, "below min qty")
        actions: list[Action] = [
            CancelOrder(o.client_id, o.symbol, "wrong side")
            for o in mine
            if o.request.side is not side
        ]
        same = [o for o in mine if o.request.side is side]
        actions += [CancelOrder(o.client_id, o.symbol, "extra order") for o in same[1:]]
        request = self._request(sig, top, inst, side, qty, reducing, position, now_ns)
        if request is None:
            return actions
        if not same:
            return [*actions, PlaceOrder(request)]
        resting = same[0]
        if (
            _drifted(resting, request, inst, self._c.requote_ticks)
            or _remaining_lots(resting, inst) != qty
            or resting.request.tif != request.tif
        ):
            actions.append(ReplaceOrder(resting.client_id, request))
        return actions

    def _request(
        self,
        sig: SignalInput,
        top: tuple[int, int],
        inst: Instrument,
        side: Side,
        qty: int,
        reducing: bool,
        position: int,
        now_ns: int,
    ) -> OrderRequest | None:
        bid, ask = top
        if not 0 < bid < ask:
            return None  # no two-sided book: do not guess a price
        take = abs(sig.score) >= self._c.take_score and side.sign * sig.score > 0
        if take:
            price, tif = (ask if side is Side.BUY else bid), TimeInForce.IOC
        else:
            step = self._c.improve_ticks
            price = min(bid + step, ask - 1) if side is Side.BUY else max(ask - step, bid + 1)
            tif = TimeInForce.POST_ONLY
        if self._hedge:
            held = position if reducing else side.sign
            position_side = PositionSide.LONG if held > 0 else PositionSide.SHORT
        else:
            position_side = PositionSide.BOTH
        self._ids_drawn += 1
        return OrderRequest(
            client_id=self._next_id(),
            symbol=sig.symbol,
            side=side,
            qty=inst.qty_of(qty),  # the journal's and the wire's Decimal: made here, once
            price=inst.price_of(price),
            order_type=OrderType.LIMIT,
            tif=tif,
            reduce_only=reducing,
            position_side=position_side,
            stamps=sig.stamps,
            ts_order_ns=now_ns,
            tag="take" if take else "quote",
            lots=qty,
            ticks=price,
        )

    @staticmethod
    def _cancel_all(orders: Sequence[Order], reason: str) -> list[Action]:
        return [
            CancelOrder(o.client_id, o.symbol, reason)
            for o in orders
            if o.status not in _IN_FLIGHT and not o.ts_cancel_ns
        ]


_IN_FLIGHT = frozenset({OrderStatus.NEW_INTENT, OrderStatus.SENT, OrderStatus.UNKNOWN})


def _drifted(resting: Order, request: OrderRequest, inst: Instrument, ticks: int) -> bool:
    """The resting order's price is ``ticks`` or more ticks from the new request's."""
    r = resting.request
    if r.price is None:
        have = 0  # as the Decimal ``price or 0`` was
    elif r.ticks >= 0:
        have = r.ticks
    else:  # restored from the journal: no ints on it
        n = inst.ticks_of(r.price)
        if n is None:  # off the tick (no venue of ours allows it): as Decimals
            return abs(r.price - inst.price_of(request.ticks)) >= ticks * inst.tick
        have = n
    return abs(have - request.ticks) >= ticks


def _remaining_lots(o: Order, inst: Instrument) -> int:
    """A resting order's unfilled qty in lots (-1 when off the step: equal to no qty)."""
    if o.request.lots >= 0 and not o.filled_qty:
        return o.request.lots
    n = inst.lots_of(o.remaining_qty)
    return n if n is not None else -1
