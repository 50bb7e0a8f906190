"""Compose and run ingest's stage over a started ``Runtime``: create rings md.book and md.trade,
wait for the venue, receive, normalise, publish. Run by the ingest program (its own uvloop) and
by procs.hotpath (as a task on the hot path's loop).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from procs._runtime import EXIT_OK, Runtime
from procs.marketdata.config import IngestConfig
from shm.records import BOOK_V1, TRADE_V1
from shm.ring import RingSpec, RingWriter
from shm.waiters import Waker

if TYPE_CHECKING:
    from procs.marketdata.stage import IngestProc

__all__ = ["open_rings", "serve"]


def open_rings(config: IngestConfig, stack: ExitStack) -> tuple[RingWriter, RingWriter]:
    """Create ingest's rings md.book and md.trade (closed, and unlinked, by ``stack``)."""
    c = config
    book = RingSpec(name=c.book_ring, dtype=BOOK_V1, capacity=c.book_capacity_records)
    trade = RingSpec(name=c.trade_ring, dtype=TRADE_V1, capacity=c.trade_capacity_records)
    return stack.enter_context(RingWriter(book)), stack.enter_context(RingWriter(trade))


async def serve(
    config: IngestConfig,
    rt: Runtime,
    registry: CollectorRegistry,
    rings: tuple[RingWriter, RingWriter],
    waker: Waker,
    on_proc: Callable[[IngestProc | None], None] | None = None,
) -> int:
    """Wait for the venue, then receive, normalise and publish until ``rt.stop`` (``rt``
    started; ``waker`` wakes the rings' readers). ``on_proc`` is given the stage while it runs
    (None after): a host on the same loop may flush it (procs.hotpath)."""
    from ipc.bitunix.rest import RestConfig
    from ipc.bitunix.rest_api import BitunixRest
    from ipc.bitunix.ws import BitunixWs, WsConfig
    from procs.marketdata.stage import IngestProc, make_metrics
    from procs.venue_wait import wait_accepting

    c = config
    ws_config = WsConfig(
        url=c.ws_url,
        ping_interval_s=c.ping_interval_s,
        watchdog_intervals=c.watchdog_intervals,
        send_rate_per_s=c.send_rate_per_s,
        reconnect_min_s=c.reconnect_min_s,
        reconnect_max_s=c.reconnect_max_s,
        connect_timeout_s=c.connect_timeout_s,
    )
    rest_config = RestConfig(
        base_url=c.rest_url, timeout_s=c.rest_timeout_s, get_retries=c.rest_retries
    )
    # the rings exist (readers attach); simex may be started but not listening yet: wait,
    # bounded, rather than open with connection-refused warnings
    await wait_accepting(
        [c.ws_url, c.rest_url], stop=lambda: rt.stop.is_set, service=rt.service, what="venue"
    )
    if rt.stop.is_set:
        return EXIT_OK
    async with BitunixRest(rest_config) as rest:
        proc = IngestProc(
            c,
            book_ring=rings[0],
            trade_ring=rings[1],
            waker=waker,
            rest=rest,
            metrics=make_metrics(registry),
        )
        ws = BitunixWs(ws_config, on_resync=proc.on_resync, on_book_resync=proc.on_book_resync)
        rt.report_health_from(proc)
        proc.on_step = rt.note_step  # in Prometheus at the next service, off the publish path
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's generations: shorter pauses
        if on_proc is not None:
            on_proc(proc)
        try:
            await proc.run(ws, service=rt.service, stop=rt.stop)
        finally:
            if on_proc is not None:
                on_proc(None)
            rt.service()  # last counters out before the rings go
    return EXIT_OK
