"""Journal rows and events written after the step that caused them: an order's SENT row once
its send has started (``ExecutionProc.place``), and every order transition that books no fill
(an acknowledgement, a cancel's confirmation, a rejection, an expiry).

The send starts as the step that placed the order ends (the live venue: ``TaskRunner.release``
runs its first step there, eagerly) or as a task on the loop's next pass (the paper venue:
``Venue.eager_sends``); the SENT transition's journal row (~50 µs: a transaction) and its
``ord.`` event follow it, on the loop's next pass, not before it. A transition without fills
is written the same way, with whatever else is waiting: one transaction for what is waiting,
not one each (procs.hotpath writes them at idle, a few orders' rows at a time:
``flush_at_idle``).
Nothing can come between them out of order: any journal write takes the deferred rows first,
in its own transaction ahead of its rows (``Journal.defer_order``), and the process emits the
deferred events before any other (``ExecutionProc._next_seq``).

Why nothing is lost: the intent is durable before the send, as ever, and a fill is journaled
before it is booked (``ExecutionProc.apply`` writes a transition with fills at once: to the
intent log, with every deferred row not there yet, in a durable journal; its rows are committed
with the next transaction, as these are, and an event published before them finds its row in
that line: ``publish``). A row
not yet written when the process dies is one the venue still knows: after a crash an order
journaled NEW_INTENT and one journaled SENT are recovered alike (UNKNOWN, then queried), and an
order recovered open that the venue has acknowledged, cancelled, rejected or expired is
answered by reconciliation from the venue, as for an order that changed while the process was
down. The process's own state (the order tracker) changes at once; only the row and the event
wait.

A cancel request's row (``defer_row``) follows its cancel the same way: it has no event; after
a crash an order whose cancel request was not journaled is recovered open, and reconciliation
answers it from the venue, as for a cancel sent just before the crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from ipc.orders import order_topic
from procs.trading.events import EventSequencer, order_event
from procs.trading.journal import Journal
from procs.trading.model import OrderStatus
from procs.trading.orders import Order, OrderTransition

__all__ = ["SentAfterSend"]


class SentAfterSend:
    """Transitions (SENT, and any without fills) to journal and publish after their step."""

    def __init__(
        self,
        journal: Journal,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[bytes, msgspec.Struct], None],
        seq: EventSequencer,
    ) -> None:
        self._journal = journal
        self._emit = emit  # the process's publish (``ExecutionProc._emit``)
        self._seq = seq  # its sequence: each event takes its seq when it is published
        self._pending: list[tuple[OrderTransition, int]] = []
        self._due = False  # something waits for ``flush`` (queued on the loop, or at idle)
        self._soon: Callable[[Callable[[], None]], object] | None = loop.call_soon
        self.since_ns = 0  # time.monotonic_ns() when the oldest waiting row or event came

    @property
    def due(self) -> bool:
        """A row or an event waits for ``flush``."""
        return self._due

    def flush_at_idle(self) -> None:
        """The host calls ``flush`` (an idle job of procs.hotpath, once ``due``) instead of a
        loop callback per write: a turn's rows in one transaction, after its frames."""
        self._soon = None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, tr: OrderTransition, now: int) -> None:
        """``tr`` (no fills: NEW_INTENT → SENT as its send was just spawned, an acknowledgement,
        a cancel's confirmation...) at ``now``: its row and event with the next write."""
        assert not tr.fills, "a fill is journaled before it is booked (ExecutionProc.apply)"
        self._journal.defer_order(tr.order, tr.old, tr.cause, now)
        self._pending.append((tr, now))
        self._flush_soon()

    def defer_row(self, order: Order, old: OrderStatus, cause: str, now: int) -> None:
        """A row without an event (a cancel request), its call just spawned: journaled with
        the next write, or on the loop's next pass (``Journal.defer_order``)."""
        self._journal.defer_order(order, old, cause, now)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._due:
            self._due = True
            self.since_ns = time.monotonic_ns()
            if self._soon is not None:
                self._soon(self.flush)

    def rows_later(self) -> None:
        """The journal deferred rows of its own (a fill's, in the intent log: ``Journal.
        record_transition``): commit them with the next flush, as these rows are."""
        if self._journal.pending:
            self._flush_soon()

    def publish(self) -> None:
        """Publish the waiting events now (another event follows them). Their rows go first:
        already in the intent log (a fill's line took them), or journaled now (``flush``)."""
        if not self._journal.secured:
            self.flush()
        else:  # their rows: committed with the next flush (``_due``)
            self._emit_pending()

    def flush(self) -> None:
        """Journal and publish them now (the loop's next pass does it anyway)."""
        self._due = False
        self._journal.flush()  # the rows before their events, as ``ExecutionProc.apply`` does
        self._emit_pending()

    def _emit_pending(self) -> None:
        pending, self._pending = self._pending, []
        for tr, now in pending:
            self._emit(order_topic(tr.order.symbol), order_event(tr, self._seq.next(), now))
