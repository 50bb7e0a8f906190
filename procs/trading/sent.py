"""An order's SENT row and event, written after its send has started (``ExecutionProc.place``).

The send starts as the step that placed the order ends (the live venue: ``TaskRunner.release``
runs its first step there, eagerly) or as a task on the loop's next pass (the paper venue:
``Venue.eager_sends``); the SENT transition's journal row (~50 µs: a transaction) and its
``ord.`` event follow it, on the loop's next pass, not before it. Nothing can come
between them out of order: any journal write takes the deferred rows first, in its own
transaction ahead of its rows (``Journal.defer_order``), and the process emits the deferred
events before any other (``ExecutionProc._next_seq``). The intent is durable before the send,
as ever; after a crash an order journaled NEW_INTENT and one journaled SENT are recovered alike
(UNKNOWN, then queried), so a row not yet written loses nothing.

A cancel request's row (``defer_row``) follows its cancel the same way: it has no event; after
a crash an order whose cancel request was not journaled is recovered open, and reconciliation
answers it from the venue, as for a cancel sent just before the crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from ipc.orders import order_topic
from procs.trading.events import EventSequencer, order_event
from procs.trading.journal import Journal
from procs.trading.model import OrderStatus
from procs.trading.orders import Order, OrderTransition

__all__ = ["SentAfterSend"]


class SentAfterSend:
    """SENT transitions to journal and publish once their sends have started."""

    def __init__(
        self,
        journal: Journal,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[bytes, msgspec.Struct], None],
        seq: EventSequencer,
    ) -> None:
        self._journal = journal
        self._loop = loop
        self._emit = emit  # the process's publish (``ExecutionProc._emit``)
        self._seq = seq  # its sequence: each event takes its seq when it is published
        self._pending: list[tuple[OrderTransition, int]] = []
        self._due = False  # flush is queued on the loop

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, tr: OrderTransition, now: int) -> None:
        """``tr`` (NEW_INTENT → SENT, no fills) at ``now``, its send just spawned (it starts
        after this: see the module's doc)."""
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
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Journal and publish them now (the loop's next pass does it anyway)."""
        self._due = False
        self._journal.flush()  # the rows before their events, as ``ExecutionProc.apply`` does
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        for tr, now in pending:
            self._emit(order_topic(tr.order.symbol), order_event(tr, self._seq.next(), now))
