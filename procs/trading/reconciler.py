"""The reconciliation loop of the execution process: when to compare with the venue, what to
journal about a difference, and how its resolutions are carried out (``reconcile.py`` decides).

Trading is allowed only once a reconciliation finds no difference (``Reconciler.reconciled``).
Out of sync for longer than ``reconcile_stuck_after_s`` it is *stuck*: it keeps comparing, but only
every ``reconcile_interval_s``, and ``stuck_reason`` says what differs and what an operator can
do about it. A difference is journaled (``risk_events``) and logged when it first appears and
again at most every ``REPEAT_ROW_S`` while it lasts, not on every pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final, Protocol, cast

from procs.trading.config import ExecutionConfig
from procs.trading.journal import Journal
from procs.trading.legs import VenueLegs
from procs.trading.model import ZERO, Fill, VenueOrderUpdate
from procs.trading.orders import OrderTracker
from procs.trading.positions import PositionBook, PositionSnapshot
from procs.trading.reconcile import (
    AdoptFunding,
    AdoptUpdate,
    CancelVenueOrder,
    Difference,
    DiffKind,
    QueryOrder,
    Reconciliation,
    VenuePosition,
    VenueSnapshot,
    adoption_fill,
    reconcile,
)
from procs.trading.risk import Refusal, RefusalReason
from procs.trading.venue import Venue, VenueCallError

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
JOURNAL_REFUSED: Final = (
    "the journal refuses writes: fills and orders since then are not booked here; free space, "
    "then restart execution (it queries the venue for them), and only then consider adopt"
)
REPEAT_ROW_S: Final = 60.0  # a lasting difference is journaled again this often
_HINTS: Final = {
    DiffKind.POSITION_MISMATCH: "the venue's position differs from the journal (venue state "
    "lost, or fills missed): check the account's fills at the venue; if the venue is right, "
    "`bitrader reconcile adopt` books its positions",
    DiffKind.BALANCE_MISMATCH: "the wallet differs from the journal's cash: check transfers and "
    "fees at the venue; if the venue is right, `bitrader reconcile adopt` rebases the balance",
    DiffKind.ORDER_MISSING_AT_VENUE: "an order the journal holds open is unknown to the venue: "
    "it is queried (backing off) and closed as lost after repeated not-found answers",
    DiffKind.ORDER_UNRESOLVED: "an order in flight is being queried at the venue",
    DiffKind.ORDER_UNKNOWN_LOCALLY: "an order of ours the journal does not hold rests at the "
    "venue: it is cancelled there",
    DiffKind.ORDER_FOREIGN: "an order that is not ours (another clientId prefix) rests on this "
    "account: cancel it at the venue or use a dedicated account",
    DiffKind.ORDER_STATE_MISMATCH: "the venue is further on with an order: its state is adopted",
    DiffKind.FUNDING_MISMATCH: "the venue's funding figure differs: it is adopted",
}


class ReconcileHost(Protocol):
    """What the reconciler needs from the process (``ExecutionProc``)."""

    tracker: OrderTracker
    positions: PositionBook
    journal: Journal
    venue: Venue
    legs: VenueLegs

    def on_order_update(self, update: VenueOrderUpdate) -> None: ...

    def on_position(self, position: VenuePosition) -> None: ...

    def book_fill(self, fill: Fill, now: int) -> None: ...

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
        self.out_of_sync_since_ns = 0  # 0 while in sync (or before the first pass)
        self.stuck_reason = ""
        self.rows_skipped_total = 0  # differences seen again and not journaled again
        self._due_ns = 0
        self._running = False
        self._journaled: dict[Difference, int] = {}  # difference → when it was last journaled
        self.snapshot: VenueSnapshot | None = None  # the venue's figures of the last pass

    @property
    def stuck(self) -> bool:
        return bool(self.stuck_reason)

    def out_of_sync_s(self, now: int) -> float:
        """How long reconciliation has not agreed (0 when it does)."""
        return 0.0 if not self.out_of_sync_since_ns else (now - self.out_of_sync_since_ns) / NS

    def restore(self) -> None:
        """Load the balance base kept by an earlier run; out of sync from now until a pass."""
        self.out_of_sync_since_ns = self._clock()
        base = self._host.journal.get_meta("balance_base")
        self.balance_base = None if base is None else Decimal(base)

    def request(self) -> None:
        """Reconcile at the next housekeeping (after a WS reconnect)."""
        self._due_ns = 0

    def maybe_start(self, now: int) -> None:
        """Start a reconciliation when one is due and none is running."""
        if self._running or now < self._due_ns:
            return
        slow = self.reconciled or self.stuck
        every = self._c.reconcile_interval_s if slow else self._c.reconcile_retry_s
        self._due_ns = now + int(every * NS)
        self._host.spawn(self.run())

    def local_balance(self) -> Decimal | None:
        if self.balance_base is None:
            return None
        legs = self._host.positions.snapshots()
        return self.balance_base + sum((p.realised - p.fees + p.funding for p in legs), ZERO)

    def adopt(self, now: int) -> list[str]:
        """The operator's decision that the venue is right: book each position gap as a
        synthetic fill at the venue's average price and rebase the balance on the venue's;
        then reconcile again. Refused (``ValueError``) while orders are open or unresolved,
        which could explain a gap, and before a snapshot exists."""
        h, snap = self._host, self.snapshot
        if snap is None or self.reconciled:
            raise ValueError("nothing to adopt: no venue snapshot yet, or in sync")
        if h.journal.write_error:
            raise ValueError(f"{JOURNAL_REFUSED}; adopting now would book the venue's figures "
                             "on top of what the journal never took")  # fmt: skip
        if h.tracker.open_orders():
            raise ValueError(
                f"{len(h.tracker.open_orders())} orders open or unresolved: they may explain "
                "the gap; switch the kill switch on and wait for none, then adopt"
            )
        done: list[str] = []
        venue = {(p.symbol, p.position_side): p for p in snap.positions}
        local = {(p.symbol, p.position_side): p for p in h.positions.snapshots()}
        for key in sorted(venue.keys() | local.keys()):
            vp = venue.get(key) or VenuePosition(symbol=key[0], qty=ZERO, position_side=key[1])
            lp = local.get(key) or PositionSnapshot(symbol=key[0], position_side=key[1])
            fill = adoption_fill(lp, vp, now)
            if fill is not None:
                h.book_fill(fill, now)
                done.append(f"{key[0]} {key[1]}: {lp.qty} -> {vp.qty} at {vp.avg_price}")
        if snap.balance is not None:
            booked = sum((p.realised - p.fees + p.funding for p in h.positions.snapshots()), ZERO)
            self.balance_base = snap.balance - booked
            h.journal.set_meta("balance_base", str(self.balance_base))
            done.append(f"balance base {self.balance_base} (venue {snap.balance})")
        log.warning("reconcile adopted the venue's figures: %s", "; ".join(done) or "nothing")
        self.request()
        return done

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
            now = self._clock()
            if not self.reconciled and self.out_of_sync_s(now) >= self._c.reconcile_stuck_after_s:
                self.stuck_reason = (
                    f"out of sync {self.out_of_sync_s(now):.0f}s: the venue does not answer "
                    f"({exc.kind}: {exc}): check the venue's status and the network"
                )
        finally:
            self._running = False

    async def _once(self, *, final: bool) -> bool:
        h = self._host
        snap = await h.venue.snapshot()
        self.snapshot = snap
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
        self._journal(rec.differences, now)
        await self._resolve(rec)
        was = self.reconciled
        self.reconciled = rec.in_sync
        self.total += 1
        if rec.in_sync != was:
            log.info("reconciled in_sync=%s differences=%d", rec.in_sync, len(rec.differences))
        self._judge(rec, now)
        if not rec.in_sync:
            every = self._c.reconcile_interval_s if self.stuck else self._c.reconcile_retry_s
            self._due_ns = now + int(every * NS)
        return True

    def _journal(self, differences: list[Difference], now: int) -> None:
        """Journal and log each difference when new, and again every ``REPEAT_ROW_S``."""
        h, repeat = self._host, int(REPEAT_ROW_S * NS)
        seen = self._journaled
        for d in differences:
            if now - seen.get(d, -repeat) < repeat:
                self.rows_skipped_total += 1
                continue
            seen[d] = now
            log.warning("reconcile difference kind=%s symbol=%s client_id=%s detail=%s",
                        d.kind, d.symbol, d.client_id, d.detail)  # fmt: skip
            reason = cast(RefusalReason, f"reconcile.{d.kind}")  # journaled beside refusals
            h.journal.record_refusal(Refusal(reason, d.detail, d.client_id, d.symbol, now))
        for gone in seen.keys() - set(differences):
            del seen[gone]  # resolved: journal it again if it comes back

    def _judge(self, rec: Reconciliation, now: int) -> None:
        """Track how long it has been out of sync; past ``reconcile_stuck_after_s`` say why."""
        if rec.in_sync:
            if self.stuck:
                log.warning("reconcile converged after being stuck")
            self.out_of_sync_since_ns, self.stuck_reason = 0, ""
            return
        if not self.out_of_sync_since_ns:
            self.out_of_sync_since_ns = now
        if self.out_of_sync_s(now) < self._c.reconcile_stuck_after_s:
            return
        reason = stuck_reason(rec.differences, self.out_of_sync_s(now))
        if self._host.journal.write_error:  # the likely cause, and adopt is not the way out
            reason = f"{JOURNAL_REFUSED} ({self._host.journal.write_error}); {reason}"
        if reason.split(";")[0] != self.stuck_reason.split(";")[0]:
            log.error("reconcile stuck: %s", reason)
        self.stuck_reason = reason

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


def stuck_reason(differences: list[Difference], for_s: float) -> str:
    """One line for health and the log: what differs, and what to do about each kind."""
    kinds = sorted({d.kind for d in differences})
    first = {k: next(d for d in differences if d.kind is k) for k in kinds}
    counts = ", ".join(f"{sum(d.kind is k for d in differences)} {k}" for k in kinds)
    parts = [f"out of sync {for_s:.0f}s: {counts}"]
    for k in kinds:
        d = first[k]
        where = " ".join(x for x in (d.symbol, d.client_id, d.detail) if x)
        parts.append(f"{k} ({where}): {_HINTS.get(k, 'see the log')}")
    return "; ".join(parts)
