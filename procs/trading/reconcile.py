"""Reconciliation: journal state vs exchange snapshots → differences and the actions resolving them.

Trading is allowed only when there are no differences. Unknown orders are resolved by a query
(never assumed cancelled); fills the venue has and we lack are adopted from its order state, and
funding the venue reports beyond what the journal holds is adopted from its position figures.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from procs.trading.model import ZERO, Fill, OrderStatus, PositionSide, Side, VenueOrderUpdate
from procs.trading.orders import Order, venue_status
from procs.trading.positions import PositionSnapshot


class DiffKind(enum.StrEnum):
    ORDER_MISSING_AT_VENUE = "order_missing_at_venue"  # open here, not open there: query it
    ORDER_UNRESOLVED = "order_unresolved"  # in flight or UNKNOWN here, not open there: query it
    ORDER_UNKNOWN_LOCALLY = "order_unknown_locally"  # ours by prefix, open there, unknown here
    ORDER_FOREIGN = "order_foreign"  # not ours by prefix: left alone, reported
    ORDER_STATE_MISMATCH = "order_state_mismatch"  # both know it, the venue is further on
    POSITION_MISMATCH = "position_mismatch"
    BALANCE_MISMATCH = "balance_mismatch"
    FUNDING_MISMATCH = "funding_mismatch"  # the venue's cumulative funding differs from ours


@dataclass(frozen=True, slots=True, kw_only=True)
class VenuePosition:
    symbol: str
    qty: Decimal  # signed: short < 0
    avg_price: Decimal = ZERO
    position_side: PositionSide = PositionSide.BOTH
    position_id: str = ""  # the venue's id (hedge-mode closes name it)
    funding: Decimal | None = None  # cumulative funding of this position id, received > 0
    mtime_ms: int = 0  # the venue's modification time of this figure
    closed: bool = False  # a CLOSE push: the position is gone


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueSnapshot:
    """What the venue says, fetched by REST after (re)connecting."""

    open_orders: Sequence[VenueOrderUpdate] = ()
    positions: Sequence[VenuePosition] = ()
    balance: Decimal | None = None  # wallet balance (excluding unrealised PnL)
    ts_ns: int = 0


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DiffKind
    symbol: str
    client_id: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class QueryOrder:
    client_id: str


@dataclass(frozen=True, slots=True)
class AdoptUpdate:
    """Apply the venue's view of an order to the tracker (books the fills we missed)."""

    update: VenueOrderUpdate


@dataclass(frozen=True, slots=True)
class AdoptFunding:
    """Book the funding the venue reports for a position beyond what we hold."""

    position: VenuePosition


@dataclass(frozen=True, slots=True)
class CancelVenueOrder:
    symbol: str
    order_id: str
    client_id: str


_RESTING = frozenset({OrderStatus.ACKED, OrderStatus.PART_FILLED})
Resolution = QueryOrder | AdoptUpdate | AdoptFunding | CancelVenueOrder


@dataclass(frozen=True, slots=True)
class Reconciliation:
    differences: list[Difference] = field(default_factory=list)
    actions: list[Resolution] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """Trading is allowed only when this is true."""
        return not self.differences


def reconcile(
    local_orders: Sequence[Order],
    local_positions: Sequence[PositionSnapshot],
    venue: VenueSnapshot,
    *,
    owns: Callable[[str], bool],
    local_balance: Decimal | None = None,
    balance_tolerance: Decimal = ZERO,
    funding_booked: Mapping[str, Decimal] | None = None,
) -> Reconciliation:
    """Compare local open orders, positions, funding and balance with the venue's snapshot.

    ``funding_booked`` is the funding journaled per venue position id; positions whose funding
    the venue does not report (paper mode) are not compared.
    """
    out = Reconciliation()
    _orders(local_orders, venue.open_orders, owns, out)
    _positions(local_positions, venue.positions, out)
    if funding_booked is not None:
        _funding(funding_booked, venue.positions, out)
    if local_balance is not None and venue.balance is not None:
        gap = venue.balance - local_balance
        if abs(gap) > balance_tolerance:
            detail = f"venue {venue.balance} local {local_balance}"
            out.differences.append(Difference(DiffKind.BALANCE_MISMATCH, "", "", detail))
    return out


def _orders(
    local: Sequence[Order],
    remote: Sequence[VenueOrderUpdate],
    owns: Callable[[str], bool],
    out: Reconciliation,
) -> None:
    mine = {o.client_id: o for o in local if o.status.is_open}
    theirs = {u.client_id: u for u in remote}
    for cid, o in mine.items():
        u = theirs.get(cid)
        if u is None:
            kind = (
                DiffKind.ORDER_MISSING_AT_VENUE
                if o.order_id and o.status in _RESTING
                else DiffKind.ORDER_UNRESOLVED
            )
            out.differences.append(Difference(kind, o.symbol, cid, f"local {o.status}"))
            out.actions.append(QueryOrder(cid))
        elif u.filled_qty != o.filled_qty or venue_status(u.status, u.filled_qty) != o.status:
            detail = f"local {o.status} {o.filled_qty}, venue {u.status} {u.filled_qty}"
            out.differences.append(Difference(DiffKind.ORDER_STATE_MISMATCH, o.symbol, cid, detail))
            out.actions.append(AdoptUpdate(u))
    for cid, u in theirs.items():
        if cid in mine:
            continue
        if not owns(cid):
            out.differences.append(Difference(DiffKind.ORDER_FOREIGN, u.symbol, cid, u.order_id))
            continue
        detail = f"venue order {u.order_id} {u.status}"
        out.differences.append(Difference(DiffKind.ORDER_UNKNOWN_LOCALLY, u.symbol, cid, detail))
        out.actions.append(CancelVenueOrder(u.symbol, u.order_id, cid))


def _positions(
    local: Sequence[PositionSnapshot], remote: Sequence[VenuePosition], out: Reconciliation
) -> None:
    have = {(p.symbol, p.position_side): p.qty for p in local if p.qty}
    want = {(p.symbol, p.position_side): p.qty for p in remote if p.qty}
    for key in sorted(have.keys() | want.keys()):
        a, b = have.get(key, ZERO), want.get(key, ZERO)
        if a != b:
            detail = f"{key[1]} local {a} venue {b}"
            out.differences.append(Difference(DiffKind.POSITION_MISMATCH, key[0], "", detail))


def _funding(
    booked: Mapping[str, Decimal], remote: Sequence[VenuePosition], out: Reconciliation
) -> None:
    for p in remote:
        if p.funding is None or not p.position_id:
            continue
        have = booked.get(p.position_id, ZERO)
        if have != p.funding:
            detail = f"{p.position_side} {p.position_id} local {have} venue {p.funding}"
            out.differences.append(Difference(DiffKind.FUNDING_MISMATCH, p.symbol, "", detail))
            out.actions.append(AdoptFunding(p))


def adoption_fill(local: PositionSnapshot, venue: VenuePosition, ts_ns: int) -> Fill | None:
    """A synthetic fill that moves the local leg to the venue's qty at the venue's average price.

    Use it only once no open or unresolved order can explain the gap (an operator decision).
    """
    gap = venue.qty - local.qty
    if gap == 0:
        return None
    return Fill(
        fill_id=f"adopt:{venue.symbol}:{venue.position_side}:{ts_ns}",
        client_id="",
        order_id="",
        symbol=venue.symbol,
        side=Side.BUY if gap > 0 else Side.SELL,
        qty=abs(gap),
        price=venue.avg_price,
        fee=ZERO,
        position_side=venue.position_side,
        ts_ns=ts_ns,
    )
