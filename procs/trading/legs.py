"""The venue's view of our position legs: each leg's ``positionId`` (hedge-mode closes need it)
and the venue's cumulative funding per position, turned into ``FundingEvent``s exactly once.

The venue reports funding as a running total per position (``funding`` on the WS ``position``
push and on ``get_pending_positions``), never as separate payments. ``VenueLegs.observe`` books
the change of that total since what the journal already holds for the same ``positionId``: a
replayed push, a REST snapshot of the same figure or a restart books nothing, because the
baseline is the journal's own sum (``restore``). The event id names the position and the two
totals (``fund:<positionId>:<from>:<to>``), so it is the same whoever computes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

from procs.trading.model import ZERO, FundingEvent, PositionSide
from procs.trading.reconcile import VenuePosition

log = logging.getLogger(__name__)

ID_PREFIX: Final = "fund:"


def funding_event_id(position_id: str, before: Decimal, after: Decimal) -> str:
    return f"{ID_PREFIX}{position_id}:{before:f}:{after:f}"


def position_of(event_id: str) -> str | None:
    """The positionId a funding event id names, or None for ids not made here."""
    if not event_id.startswith(ID_PREFIX):
        return None
    return event_id[len(ID_PREFIX) :].split(":", 1)[0]


class VenueLegs:
    """Position ids by leg and funding booked by position id; fed by every venue observation."""

    def __init__(self) -> None:
        self._legs: dict[tuple[str, PositionSide], str] = {}  # open leg -> its positionId
        self._mtime: dict[str, int] = {}  # positionId -> venue mtime of the newest observation
        self._booked: dict[str, Decimal] = {}  # funding journaled per positionId (received > 0)
        self._warned: dict[str, int] = {}  # positionId -> mtime of the last older figure logged
        self.older_funding_total = 0  # figures with other funding dropped as older (health)

    def restore(self, events: Iterable[FundingEvent]) -> None:
        """Start from the funding the journal holds (every event, in journal order)."""
        for ev in events:
            pid = position_of(ev.event_id)
            if pid is not None:
                self._booked[pid] = self._booked.get(pid, ZERO) + ev.amount

    @property
    def booked(self) -> Mapping[str, Decimal]:
        return self._booked

    def position_id(self, symbol: str, position_side: PositionSide) -> str:
        """The venue's id of the open leg, or "" when none is known."""
        return self._legs.get((symbol, position_side), "")

    def observe(self, vp: VenuePosition, ts_ns: int) -> FundingEvent | None:
        """Take one venue observation of a leg; return the funding it newly reports, if any.

        An observation older (by the venue's ``mtime``) than the last one of the same position
        is ignored: a REST snapshot taken before a push must not undo it.
        """
        key, pid = (vp.symbol, vp.position_side), vp.position_id
        if pid:
            newest = self._mtime.get(pid, -1)
            if vp.mtime_ms < newest:
                if vp.funding is not None and vp.funding != self._booked.get(pid, ZERO):
                    self._older(vp, newest)
                return None
            self._mtime[pid] = vp.mtime_ms
        if vp.closed or vp.qty == 0:
            if self._legs.get(key) == pid:
                del self._legs[key]
        elif pid:
            self._legs[key] = pid
        if vp.funding is None or not pid:
            return None
        before = self._booked.get(pid, ZERO)
        if vp.funding == before:
            return None
        self._booked[pid] = vp.funding
        return FundingEvent(
            event_id=funding_event_id(pid, before, vp.funding),
            symbol=vp.symbol,
            amount=vp.funding - before,
            position_side=vp.position_side,
            ts_ns=ts_ns,
        )

    def _older(self, vp: VenuePosition, newest: int) -> None:
        # a figure whose funding differs, dropped as older than one seen: said once per figure,
        # so "reconcile stuck: funding_mismatch" is not left unexplained (a venue whose mtime
        # went back would leave the funding unbooked until its next newer figure)
        self.older_funding_total += 1
        if self._warned.get(vp.position_id) != vp.mtime_ms:
            self._warned[vp.position_id] = vp.mtime_ms
            log.warning(
                "venue position figure dropped as older: positionId=%s symbol=%s mtime_ms=%d"
                " newest_seen_ms=%d funding=%s booked=%s",
                *(vp.position_id, vp.symbol, vp.mtime_ms, newest, vp.funding),
                self._booked.get(vp.position_id, ZERO),
            )
