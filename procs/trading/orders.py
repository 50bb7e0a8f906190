"""Order state machine keyed by clientId, idempotent under duplicated or out-of-order venue events.

NEW_INTENT → SENT → ACKED → PART_FILLED → FILLED | CANCELED | PART_FILLED_CANCELED | REJECTED,
and UNKNOWN when the venue does not answer in time: only an exchange query resolves it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from procs.trading.model import (
    ZERO,
    Fill,
    IllegalTransitionError,
    OrderRequest,
    OrderStatus,
    UnknownOrderError,
    VenueOrderUpdate,
)

log = logging.getLogger(__name__)

S = OrderStatus
LEGAL: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    S.NEW_INTENT: frozenset({S.SENT, S.REJECTED, S.UNKNOWN}),
    S.SENT: frozenset(
        {
            S.ACKED,
            S.PART_FILLED,
            S.FILLED,
            S.CANCELED,
            S.PART_FILLED_CANCELED,
            S.REJECTED,
            S.UNKNOWN,
        }
    ),
    S.ACKED: frozenset({S.PART_FILLED, S.FILLED, S.CANCELED, S.PART_FILLED_CANCELED, S.UNKNOWN}),
    S.PART_FILLED: frozenset({S.PART_FILLED, S.FILLED, S.PART_FILLED_CANCELED, S.UNKNOWN}),
    S.UNKNOWN: frozenset(
        {S.ACKED, S.PART_FILLED, S.FILLED, S.CANCELED, S.PART_FILLED_CANCELED, S.REJECTED}
    ),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.PART_FILLED_CANCELED: frozenset(),
    S.REJECTED: frozenset(),
}

# progress rank: a venue event never moves an order to a lower rank
_RANK: Final = {
    S.NEW_INTENT: 0,
    S.SENT: 1,
    S.UNKNOWN: 1,
    S.ACKED: 2,
    S.PART_FILLED: 3,
    S.FILLED: 4,
    S.CANCELED: 4,
    S.PART_FILLED_CANCELED: 4,
    S.REJECTED: 4,
}

NOT_FOUND_REASON: Final = "not found at venue"
PRICE_QUANTUM: Final = Decimal("1e-10")  # fill prices derived from average prices are tidied here


def check_transition(old: OrderStatus, new: OrderStatus) -> None:
    """Raise ``IllegalTransitionError`` unless ``old → new`` is in ``LEGAL``."""
    if new not in LEGAL[old]:
        raise IllegalTransitionError(f"illegal order transition {old} -> {new}")


def venue_status(status: str, filled_qty: Decimal) -> OrderStatus:
    """Map a venue status string (any case) and cumulative fill to our status."""
    s = status.upper()
    if s in ("INIT", "NEW"):
        return S.PART_FILLED if filled_qty > 0 else S.ACKED
    if s == "PART_FILLED":
        # no fill quantity known yet (a push without fill fields): acknowledged, no more
        return S.PART_FILLED if filled_qty > 0 else S.ACKED
    if s == "FILLED":
        return S.FILLED
    if s in ("CANCELED", "SYSTEM_CANCELED", "PART_FILLED_CANCELED"):
        return S.PART_FILLED_CANCELED if filled_qty > 0 else S.CANCELED
    if s in ("REJECTED", "FAILED"):
        return S.REJECTED
    raise ValueError(f"unknown venue order status {status!r}")


def qty_text(q: Decimal) -> str:
    """Canonical text of a Decimal (no exponent, no trailing zeros) for ids and storage keys."""
    t = format(q.normalize(), "f")
    return "0" if t in ("-0", "") else t


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """The tracker's view of one order; replaced, never mutated, on each transition."""

    request: OrderRequest
    status: OrderStatus = S.NEW_INTENT
    order_id: str = ""
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    fee: Decimal = ZERO
    mtime_ms: int = 0
    ts_created_ns: int = 0
    ts_sent_ns: int = 0
    ts_update_ns: int = 0
    ts_cancel_ns: int = 0  # when a cancel was requested; 0 when none
    reason: str = ""

    @property
    def client_id(self) -> str:
        return self.request.client_id

    @property
    def symbol(self) -> str:
        return self.request.symbol

    @property
    def remaining_qty(self) -> Decimal:
        return ZERO if self.status.is_terminal else self.request.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class OrderTransition:
    """What one event did to one order; ``fills`` are the new executions it revealed."""

    client_id: str
    old: OrderStatus
    new: OrderStatus
    order: Order
    fills: tuple[Fill, ...] = ()
    cause: str = ""


class OrderTracker:
    """Holds every order of this process by clientId; the one place order state changes."""

    def __init__(self, *, ack_timeout_s: float, cancel_timeout_s: float) -> None:
        self._orders: dict[str, Order] = {}
        # the open ones, in _orders' order (by _rank): the hot path never scans terminal orders
        self._open: dict[str, Order] = {}
        self._rank: dict[str, int] = {}
        self._ranks = itertools.count()
        self._unsorted = False  # an order reopened out of _orders' order: sort _open once
        self._ack_timeout_ns = int(ack_timeout_s * 1e9)
        self._cancel_timeout_ns = int(cancel_timeout_s * 1e9)
        self.ignored_updates_total = 0  # duplicated or stale venue events
        self.unknown_status_total = 0  # venue events with a status string we do not know

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._orders

    def get(self, client_id: str) -> Order:
        try:
            return self._orders[client_id]
        except KeyError:
            raise UnknownOrderError(f"unknown clientId {client_id!r}") from None

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        if self._unsorted:
            rank = self._rank
            self._open = dict(sorted(self._open.items(), key=lambda kv: rank[kv[0]]))
            self._unsorted = False
        if symbol is None:
            return list(self._open.values())
        return [o for o in self._open.values() if o.symbol == symbol]

    def _put(self, o: Order) -> None:
        """Store ``o``, the one write of an order: keeps the open index in step."""
        cid, orders, open_ = o.client_id, self._orders, self._open
        if cid not in orders:
            self._rank[cid] = next(self._ranks)
        orders[cid] = o
        if not o.status.is_open:
            open_.pop(cid, None)
        elif cid in open_:
            open_[cid] = o
        else:
            if open_ and self._rank[next(reversed(open_))] > self._rank[cid]:
                self._unsorted = True  # reopened (a not-found that was in flight after all)
            open_[cid] = o

    def prune(self, older_than_ns: int) -> int:
        """Forget terminal orders last updated before ``older_than_ns``; return how many."""
        old = [
            cid
            for cid, o in self._orders.items()
            if o.status.is_terminal and o.ts_update_ns < older_than_ns
        ]
        for cid in old:
            del self._orders[cid]
            del self._rank[cid]
        return len(old)

    def restore(self, orders: Iterable[Order]) -> None:
        """Load orders rebuilt from the journal (start-up only)."""
        for o in orders:
            self._put(o)

    def add_intent(self, request: OrderRequest, now_ns: int) -> Order:
        if request.client_id in self._orders:
            raise ValueError(f"clientId {request.client_id!r} already used")
        order = Order(request=request, ts_created_ns=now_ns, ts_update_ns=now_ns)
        self._put(order)
        return order

    def add_sent(self, request: OrderRequest, now_ns: int, sent_ns: int) -> OrderTransition:
        """``add_intent(request, now_ns)`` then ``mark_sent(client_id, sent_ns)``: the same
        order and transition, made at once (one ``Order``, not three) for a request whose
        intent is journaled and which leaves at ``sent_ns``."""
        if request.client_id in self._orders:
            raise ValueError(f"clientId {request.client_id!r} already used")
        check_transition(S.NEW_INTENT, S.SENT)
        order = Order(
            request=request, status=S.SENT, ts_created_ns=now_ns, ts_sent_ns=sent_ns,
            ts_update_ns=sent_ns,
        )  # fmt: skip
        self._put(order)
        return OrderTransition(request.client_id, S.NEW_INTENT, S.SENT, order, (), "sent")

    def _move(self, order: Order, new: OrderStatus, cause: str, **kw: object) -> OrderTransition:
        check_transition(order.status, new)
        updated = replace(order, status=new, **kw)  # type: ignore[arg-type]  # kw are Order fields
        self._put(updated)
        return OrderTransition(order.client_id, order.status, new, updated, (), cause)

    def mark_sent(self, client_id: str, now_ns: int) -> OrderTransition:
        o = self.get(client_id)
        return self._move(o, S.SENT, "sent", ts_sent_ns=now_ns, ts_update_ns=now_ns)

    def on_send_ok(self, client_id: str, order_id: str, now_ns: int) -> OrderTransition | None:
        """REST accepted the order: SENT/UNKNOWN → ACKED; later states only learn the orderId."""
        o = self.get(client_id)
        if o.status in (S.SENT, S.UNKNOWN):
            return self._move(o, S.ACKED, "accepted", order_id=order_id, ts_update_ns=now_ns)
        if not o.order_id:
            self._put(replace(o, order_id=order_id))
        self.ignored_updates_total += 1
        return None

    def on_send_failed(self, client_id: str, reason: str, now_ns: int) -> OrderTransition:
        """The venue definitively refused the order (a business error, not a timeout)."""
        o = self.get(client_id)
        return self._move(o, S.REJECTED, "rejected", reason=reason, ts_update_ns=now_ns)

    def request_cancel(self, client_id: str, now_ns: int) -> Order:
        """Note that a cancel was sent; the outcome comes as a venue event."""
        o = self.get(client_id)
        if o.status.is_terminal:
            raise IllegalTransitionError(f"cannot cancel {client_id}: already {o.status}")
        updated = replace(o, ts_cancel_ns=now_ns)
        self._put(updated)
        return updated

    def expire(self, now_ns: int) -> list[OrderTransition]:
        """Move orders unanswered past the ack timeout (and unsent intents) to UNKNOWN."""
        late = [
            o
            for o in self.open_orders()
            if o.status is S.SENT and now_ns - o.ts_sent_ns >= self._ack_timeout_ns
        ]
        return [self._move(o, S.UNKNOWN, "ack timeout", ts_update_ns=now_ns) for o in late]

    def recover_intents(self, now_ns: int) -> list[OrderTransition]:
        """After a restart nobody knows whether a NEW_INTENT or SENT order left: make it UNKNOWN."""
        return [
            self._move(o, S.UNKNOWN, "recovered after restart", ts_update_ns=now_ns)
            for o in list(self._orders.values())
            if o.status in (S.NEW_INTENT, S.SENT)
        ]

    def needs_query(self, now_ns: int) -> list[str]:
        """ClientIds to query at the venue: UNKNOWN orders and cancels unanswered too long."""
        return [
            o.client_id
            for o in self.open_orders()
            if o.status is S.UNKNOWN
            or (
                o.status.is_open
                and o.ts_cancel_ns
                and now_ns - o.ts_cancel_ns >= self._cancel_timeout_ns
            )
        ]

    def resolve(
        self, client_id: str, found: VenueOrderUpdate | None, now_ns: int
    ) -> OrderTransition | None:
        """Apply a query answer: the venue's view, or ``None`` when it has no such order."""
        o = self.get(client_id)
        if found is not None:
            return self.on_venue_update(found, now_ns)
        if o.status is not S.UNKNOWN:
            self.ignored_updates_total += 1  # an open order must not vanish on a not-found
            return None
        return self._move(o, S.REJECTED, "query", reason=NOT_FOUND_REASON, ts_update_ns=now_ns)

    def close_lost(self, client_id: str, reason: str, now_ns: int) -> OrderTransition | None:
        """An acknowledged order the venue no longer knows (its state was lost): it cannot
        fill there, so it is closed here; a later venue report of it still applies."""
        o = self.get(client_id)
        if o.status not in (S.ACKED, S.PART_FILLED):
            return None
        new = S.PART_FILLED_CANCELED if o.filled_qty else S.CANCELED
        return self._move(o, new, "lost at venue", reason=reason, ts_update_ns=now_ns)

    def on_venue_update(self, u: VenueOrderUpdate, now_ns: int) -> OrderTransition | None:
        """Apply a venue observation; ``None`` when it is a duplicate or older than what we have."""
        o = self.get(u.client_id)
        base = o
        if o.status is S.NEW_INTENT:  # the send raced ahead of mark_sent
            base = replace(o, status=S.SENT)
        elif o.status is S.REJECTED and o.reason == NOT_FOUND_REASON:
            base = replace(o, status=S.UNKNOWN)  # it was in flight after all
        grew = u.filled_qty > base.filled_qty
        # a push without fill fields must not erase the fill we already know
        try:
            target = venue_status(u.status, max(u.filled_qty, base.filled_qty))
        except ValueError:
            # a status this code does not know must not crash execution (it would replay on
            # restart): count it and keep the order open; reconciliation queries it again
            self.unknown_status_total += 1
            log.warning("unknown venue status=%r client_id=%s ignored", u.status, u.client_id)
            return None
        if target is S.REJECTED and base.status not in (S.SENT, S.UNKNOWN):
            target = S.PART_FILLED_CANCELED if base.filled_qty or grew else S.CANCELED
        if not grew:
            older = bool(u.mtime_ms) and u.mtime_ms < base.mtime_ms
            if older or _RANK[target] <= _RANK[base.status]:
                self.ignored_updates_total += 1
                return None
        elif base.status.is_terminal or _RANK[target] < _RANK[base.status]:
            target = _merge_late_fill(base.status, target, u.filled_qty >= o.request.qty)
        if not (base.status is target or base.status.is_terminal):
            check_transition(base.status, target)
        updated = replace(
            base,
            status=target,
            order_id=u.order_id or o.order_id,
            filled_qty=max(u.filled_qty, o.filled_qty),
            avg_price=u.avg_price if grew and u.avg_price > 0 else o.avg_price,
            fee=u.fee if grew else o.fee,
            mtime_ms=max(u.mtime_ms, o.mtime_ms),
            ts_update_ns=now_ns,
        )
        self._put(updated)
        fills = (self._fill_between(o, u, now_ns),) if grew else ()
        cause = "late fill" if base.status.is_terminal else "venue"
        return OrderTransition(o.client_id, o.status, target, updated, fills, cause)

    def _fill_between(self, o: Order, u: VenueOrderUpdate, now_ns: int) -> Fill:
        qty = u.filled_qty - o.filled_qty
        fallback = o.request.price if o.request.price is not None else u.avg_price
        if u.avg_price > 0:
            raw = (u.avg_price * u.filled_qty - o.avg_price * o.filled_qty) / qty
            price = Decimal(qty_text(raw.quantize(PRICE_QUANTUM)))
        else:
            price = fallback
        order_id = u.order_id or o.order_id
        return Fill(
            fill_id=f"{order_id or o.client_id}:{qty_text(u.filled_qty)}",
            client_id=o.client_id,
            order_id=order_id,
            symbol=o.symbol,
            side=o.request.side,
            qty=qty,
            price=price,
            fee=u.fee - o.fee,
            position_side=o.request.position_side,
            ts_ns=now_ns,
        )


def _merge_late_fill(current: OrderStatus, target: OrderStatus, complete: bool) -> OrderStatus:
    # more fill arrived after a later-ranked status: keep the order's progress, book the fill
    if complete:
        return S.FILLED
    if current in (S.CANCELED, S.PART_FILLED_CANCELED, S.REJECTED):
        return S.PART_FILLED_CANCELED
    return current if _RANK[current] > _RANK[target] else target


class ClientIdGenerator:
    """Issues ``<prefix>-<epoch_ms>-<counter>``; a restart takes a later epoch: no id repeats."""

    def __init__(self, prefix: str, epoch_ms: int) -> None:
        if not prefix.isalnum():
            raise ValueError(f"prefix must be alphanumeric, was {prefix!r}")
        self.prefix = prefix
        self.epoch_ms = epoch_ms
        self._counter = 0

    def __call__(self) -> str:
        self._counter += 1
        return f"{self.prefix}-{self.epoch_ms}-{self._counter}"

    def owns(self, client_id: str) -> bool:
        return client_id.startswith(self.prefix + "-")

    @staticmethod
    def epoch_of(client_id: str) -> int | None:
        parts = client_id.split("-")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return int(parts[1])

    @classmethod
    def after(cls, prefix: str, now_ms: int, used: Iterable[str]) -> ClientIdGenerator:
        """A generator whose epoch is later than every epoch in ``used`` (ids from the journal)."""
        last = max((e for e in map(cls.epoch_of, used) if e is not None), default=-1)
        return cls(prefix, max(now_ms, last + 1))
