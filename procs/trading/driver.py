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

from procs.trading.breaker import Breaker, BreakerTransition
from procs.trading.config import ExecutionConfig
from procs.trading.metrics import ExecutionMetrics
from procs.trading.model import OrderRequest, OrderStatus
from procs.trading.orders import OrderTracker, OrderTransition
from procs.trading.venue import Venue, VenueCallError, VenueRejected, VenueUnknown

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
QUERY_BACKOFF_MIN_S: Final = 0.5  # after a not-found answer, query the order again at most
QUERY_BACKOFF_MAX_S: Final = 30.0  # ... this often, doubling up to this
LOST_AFTER_NOT_FOUND: Final = 4  # an acknowledged order not found this often (~3.5 s) is lost
RATE_LIMITED: Final = "RateLimited"  # VenueCallError.kind of a 10005/10006/HTTP 429 answer
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
        self._not_found_n: dict[str, int] = {}  # consecutive not-found answers per order
        self._query_due_ns: dict[str, int] = {}  # no query of the order before this

    def querying(self, client_id: str) -> bool:
        return client_id in self._querying

    def prune(self) -> None:
        """Forget cancel times of orders the tracker has forgotten."""
        for table in (self._cancel_sent_ns, self._not_found_n, self._query_due_ns):
            for cid in [c for c in table if c not in self._h.tracker]:
                del table[cid]

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
            now = self._clock()
            limited = exc.kind == RATE_LIMITED
            if limited:  # no verdict on the order or the venue: back off, count nothing else
                h.counters["rate_limited_total"] += 1
                h.breaker.on_rate_limited(now)
            else:
                h.venue_error(exc, ok_for_breaker=not counts_as_rest_error(exc))
            if h.tracker.get(cid).status in (OrderStatus.SENT, OrderStatus.NEW_INTENT):
                h.apply(h.tracker.on_send_failed(cid, f"{exc.kind}: {exc}", now), now)
            if not limited:
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
            if exc.kind == RATE_LIMITED:
                h.counters["rate_limited_total"] += 1
                h.breaker.on_rate_limited(self._clock())
            else:
                h.venue_error(exc, ok_for_breaker=not counts_as_rest_error(exc))
            h.spawn(self.query(client_id))  # already filled or gone? ask the venue
            return
        h.on_breaker(h.breaker.on_rest_result(True, self._clock()))

    async def query(self, client_id: str) -> None:
        """Ask the venue about one order and apply its answer (one query per order at a time,
        and after a not-found answer not again before a back-off that doubles each time)."""
        h = self._h
        if client_id in self._querying or self._clock() < self._query_due_ns.get(client_id, 0):
            h.counters["query_throttled_total"] += 1
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
        if found is None:
            self._not_found(client_id, now)
        else:
            self._not_found_n.pop(client_id, None)
            self._query_due_ns.pop(client_id, None)
        h.apply(h.tracker.resolve(client_id, found, now), now)
        o = h.tracker.get(client_id)
        last = self._cancel_sent_ns.get(client_id, 0)
        timeout_ns = int(self._c.cancel_timeout_s * NS)
        if o.ts_cancel_ns and o.status in CANCELLABLE and now - last >= timeout_ns:
            h.counters["cancel_retries_total"] += 1  # still open: at most once per timeout
            h.spawn(self.send_cancel(o.symbol, client_id))

    def _not_found(self, client_id: str, now: int) -> None:
        """The venue has no such order: back off; an acknowledged order it keeps denying is one
        the venue lost (its state was reset): closed here as lost, so reconciliation converges.
        """
        h = self._h
        n = self._not_found_n[client_id] = self._not_found_n.get(client_id, 0) + 1
        backoff_s = min(QUERY_BACKOFF_MAX_S, QUERY_BACKOFF_MIN_S * 2 ** (n - 1))
        self._query_due_ns[client_id] = now + int(backoff_s * NS)
        o = h.tracker.get(client_id)
        if n >= LOST_AFTER_NOT_FOUND and o.status in (OrderStatus.ACKED, OrderStatus.PART_FILLED):
            h.counters["orders_lost_at_venue_total"] += 1
            log.warning("order lost at venue client_id=%s status=%s not_found=%d: closed here",
                        client_id, o.status, n)  # fmt: skip
            h.apply(
                h.tracker.close_lost(client_id, f"lost at venue: not found {n} times", now), now
            )


def counts_as_rest_error(exc: VenueCallError) -> bool:
    # a business refusal (bad price, balance) is the venue working; transport trouble is not;
    # a rate limit is neither (the breaker backs off instead: Breaker.on_rate_limited)
    return exc.kind in ("TransportError", "ServerError", "UnknownOutcome")
