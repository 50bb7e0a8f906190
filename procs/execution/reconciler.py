"""The reconciliation loop of the execution process: when to compare with the venue, what to
journal about a difference, and how its resolutions are carried out (``reconcile.py`` decides).

Trading is allowed only once a reconciliation finds no difference (``Reconciler.reconciled``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final, Protocol, cast

from procs.execution.config import ExecutionConfig
from procs.execution.journal import Journal
from procs.execution.legs import VenueLegs
from procs.execution.model import ZERO, VenueOrderUpdate
from procs.execution.orders import OrderTracker
from procs.execution.positions import PositionBook
from procs.execution.reconcile import (
    AdoptFunding,
    AdoptUpdate,
    CancelVenueOrder,
    QueryOrder,
    Reconciliation,
    VenuePosition,
    reconcile,
)
from procs.execution.risk import Refusal, RefusalReason
from procs.execution.venue import Venue, VenueCallError

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000


class ReconcileHost(Protocol):
    """What the reconciler needs from the process (``ExecutionProc``)."""

    tracker: OrderTracker
    positions: PositionBook
    journal: Journal
    venue: Venue
    legs: VenueLegs

    def on_order_update(self, update: VenueOrderUpdate) -> None: ...

    def on_position(self, position: VenuePosition) -> None: ...

    async def query(self, client_id: str) -> None: ...

    def venue_error(self, exc: VenueCallError, *, ok_for_breaker: bool) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def owns(self, client_id: str) -> bool: ...


class Reconciler:
    """Runs reconciliations every ``reconcile_interval_s`` (``reconcile_retry_s`` while out of
    sync, at once after ``request``), one at a time; keeps the balance base in the journal.
    """

    def __init__(
        self, config: ExecutionConfig, host: ReconcileHost, clock: Callable[[], int]
    ) -> None:
        self._c = config
        self._host = host
        self._clock = clock
        self.reconciled = False
        self.last: Reconciliation | None = None
        self.balance_base: Decimal | None = None
        self.total = 0
        self._due_ns = 0
        self._running = False

    def restore(self) -> None:
        """Load the balance base kept by an earlier run."""
        base = self._host.journal.get_meta("balance_base")
        self.balance_base = None if base is None else Decimal(base)

    def request(self) -> None:
        """Reconcile at the next housekeeping (after a WS reconnect)."""
        self._due_ns = 0

    def maybe_start(self, now: int) -> None:
        """Start a reconciliation when one is due and none is running."""
        if self._running or now < self._due_ns:
            return
        every = self._c.reconcile_interval_s if self.reconciled else self._c.reconcile_retry_s
        self._due_ns = now + int(every * NS)
        self._host.spawn(self.run())

    def local_balance(self) -> Decimal | None:
        if self.balance_base is None:
            return None
        legs = self._host.positions.snapshots()
        return self.balance_base + sum((p.realised - p.fees + p.funding for p in legs), ZERO)

    async def run(self) -> None:
        self._running = True
        try:
            # a difference the first pass resolved (a cancel or fill racing the snapshot) is
            # gone on an immediate second look; only a lasting one stops trading
            if not await self._once(final=False):
                await self._once(final=True)
        except VenueCallError as exc:
            self._host.venue_error(exc, ok_for_breaker=False)
            log.warning("reconcile failed error=%s", exc)
        finally:
            self._running = False

    async def _once(self, *, final: bool) -> bool:
        h = self._host
        snap = await h.venue.snapshot()
        for vp in snap.positions:
            h.on_position(replace(vp, funding=None))  # position ids; funding is compared below
        if self.balance_base is None and snap.balance is not None:
            legs = h.positions.snapshots()
            booked = sum((p.realised - p.fees + p.funding for p in legs), ZERO)
            self.balance_base = snap.balance - booked
            h.journal.set_meta("balance_base", str(self.balance_base))
        rec = reconcile(
            h.tracker.open_orders(),
            h.positions.snapshots(),
            snap,
            owns=h.owns,
            local_balance=self.local_balance(),
            balance_tolerance=self._c.balance_tolerance_usdt,
            funding_booked=h.legs.booked,
        )
        now = self._clock()
        if not final and not rec.in_sync and self.reconciled:
            await self._resolve(rec)
            return False
        self.last = rec
        for d in rec.differences:
            log.warning("reconcile difference kind=%s symbol=%s client_id=%s detail=%s",
                        d.kind, d.symbol, d.client_id, d.detail)  # fmt: skip
            reason = cast(RefusalReason, f"reconcile.{d.kind}")  # journaled beside refusals
            h.journal.record_refusal(Refusal(reason, d.detail, d.client_id, d.symbol, now))
        await self._resolve(rec)
        was = self.reconciled
        self.reconciled = rec.in_sync
        self.total += 1
        if rec.in_sync != was:
            log.info("reconciled in_sync=%s differences=%d", rec.in_sync, len(rec.differences))
        if not rec.in_sync:
            self._due_ns = now + int(self._c.reconcile_retry_s * NS)
        return True

    async def _resolve(self, rec: Reconciliation) -> None:
        h = self._host
        for action in rec.actions:
            if isinstance(action, QueryOrder):
                await h.query(action.client_id)
            elif isinstance(action, AdoptUpdate):
                h.on_order_update(action.update)
            elif isinstance(action, AdoptFunding):
                h.on_position(action.position)
            elif isinstance(action, CancelVenueOrder):
                h.spawn(self._cancel_foreign(action))

    async def _cancel_foreign(self, a: CancelVenueOrder) -> None:
        try:
            await self._host.venue.cancel(a.symbol, a.client_id)
        except VenueCallError as exc:
            self._host.venue_error(exc, ok_for_breaker=False)
