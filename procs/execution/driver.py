"""Venue calls for orders: place, cancel (re-sent at most once per ``cancel_timeout_s`` while
the order stays open) and query by clientId; each outcome goes to the tracker and the breaker.

The calls run as tasks on the process's loop (``ExecutionProc.spawn``); the process decides
what to send, this module only carries it out and applies the answers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from procs.execution.breaker import Breaker, BreakerTransition
from procs.execution.config import ExecutionConfig
from procs.execution.metrics import ExecutionMetrics
from procs.execution.model import OrderRequest, OrderStatus
from procs.execution.orders import OrderTracker, OrderTransition
from procs.execution.venue import Venue, VenueCallError, VenueRejected, VenueUnknown

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
CANCELLABLE: Final = frozenset({OrderStatus.SENT, OrderStatus.ACKED, OrderStatus.PART_FILLED})


class DriverHost(Protocol):
    """What the driver needs from the process (``ExecutionProc``)."""

    tracker: OrderTracker
    venue: Venue
    breaker: Breaker
    counters: Counter[str]

    def apply(self, tr: OrderTransition | None, now: int) -> None: ...

    def on_breaker(self, t: BreakerTransition | None) -> None: ...

    def venue_error(self, exc: VenueCallError, *, ok_for_breaker: bool) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


class OrderDriver:
    """Carries out place, cancel and query calls for the process's orders."""

    def __init__(
        self,
        config: ExecutionConfig,
        host: DriverHost,
        metrics: ExecutionMetrics,
        clock: Callable[[], int],
    ) -> None:
        self._c = config
        self._h = host
        self._m = metrics
        self._clock = clock
        self._querying: set[str] = set()
        self._cancel_sent_ns: dict[str, int] = {}

    def querying(self, client_id: str) -> bool:
        return client_id in self._querying

    def prune(self) -> None:
        """Forget cancel times of orders the tracker has forgotten."""
        for cid in [c for c in self._cancel_sent_ns if c not in self._h.tracker]:
            del self._cancel_sent_ns[cid]

    async def send(self, req: OrderRequest) -> None:
        h, cid = self._h, req.client_id
        try:
            order_id = await h.venue.place(req)
        except VenueUnknown as exc:
            # no verdict: it stays SENT, becomes UNKNOWN at the ack timeout, and is queried
            h.venue_error(exc, ok_for_breaker=False)
            log.warning("place outcome unknown client_id=%s error=%s", cid, exc)
            return
        except VenueRejected as exc:
            h.venue_error(exc, ok_for_breaker=not counts_as_rest_error(exc))
            now = self._clock()
            if h.tracker.get(cid).status in (OrderStatus.SENT, OrderStatus.NEW_INTENT):
                h.apply(h.tracker.on_send_failed(cid, f"{exc.kind}: {exc}", now), now)
            h.on_breaker(h.breaker.on_order_result(False, now, str(exc)))
            return
        now = self._clock()
        h.on_breaker(h.breaker.on_rest_result(True, now))
        h.on_breaker(h.breaker.on_order_result(True, now))
        self._m.order_ack_seconds.observe((now - req.ts_order_ns) / NS)
        if req.stamps.ts_recv_ns:
            h.on_breaker(h.breaker.on_latency((now - req.stamps.ts_recv_ns) / NS, now))
        h.apply(h.tracker.on_send_ok(cid, order_id, now), now)

    async def send_cancel(self, symbol: str, client_id: str) -> None:
        h = self._h
        self._cancel_sent_ns[client_id] = self._clock()
        try:
            await h.venue.cancel(symbol, client_id)
        except VenueCallError as exc:
            h.venue_error(exc, ok_for_breaker=not counts_as_rest_error(exc))
            h.spawn(self.query(client_id))  # already filled or gone? ask the venue
            return
        h.on_breaker(h.breaker.on_rest_result(True, self._clock()))

    async def query(self, client_id: str) -> None:
        """Ask the venue about one order and apply its answer (one query per order at a time)."""
        h = self._h
        if client_id in self._querying:
            return
        self._querying.add(client_id)
        try:
            found = await h.venue.query(client_id)
        except VenueCallError as exc:
            h.venue_error(exc, ok_for_breaker=False)
            return
        finally:
            self._querying.discard(client_id)
        now = self._clock()
        h.counters["queries_total"] += 1
        h.on_breaker(h.breaker.on_rest_result(True, now))
        if client_id not in h.tracker:
            return
        h.apply(h.tracker.resolve(client_id, found, now), now)
        o = h.tracker.get(client_id)
        last = self._cancel_sent_ns.get(client_id, 0)
        timeout_ns = int(self._c.cancel_timeout_s * NS)
        if o.ts_cancel_ns and o.status in CANCELLABLE and now - last >= timeout_ns:
            h.counters["cancel_retries_total"] += 1  # still open: at most once per timeout
            h.spawn(self.send_cancel(o.symbol, client_id))


def counts_as_rest_error(exc: VenueCallError) -> bool:
    # a business refusal (bad price, balance) is the venue working; transport trouble is not
    return exc.kind in ("TransportError", "RateLimited", "ServerError", "UnknownOutcome")
