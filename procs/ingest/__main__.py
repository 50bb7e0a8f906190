"""``python -m procs.ingest CONFIG.toml``: run ingest on uvloop until SIGTERM (exit 0).

Exit codes: 0 asked to stop, 1 fault (traceback logged), 78 bad configuration.
"""

from __future__ import annotations

import gc
import logging
import sys
from contextlib import ExitStack

from prometheus_client import CollectorRegistry

from procs._config import config_file, load_section
from procs._runtime import EXIT_FAULT, EXIT_OK, Runtime
from procs.ingest.config import IngestConfig
from shm.records import BOOK_V1, TRADE_V1
from shm.ring import RingSpec, RingWriter
from shm.waiters import Waker

__all__ = ["main", "open_rings", "serve"]

log = logging.getLogger("procs.ingest")


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
) -> int:
    """Wait for the venue, then receive, normalise and publish until ``rt.stop`` (``rt``
    started; ``waker`` wakes the rings' readers). Used by ``main`` and by procs.hotpath."""
    from ipc.bitunix.rest import RestConfig
    from ipc.bitunix.rest_api import BitunixRest
    from ipc.bitunix.ws import BitunixWs, WsConfig
    from procs.ingest.proc import IngestProc, make_metrics
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
        proc.on_step = rt.record_step
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's generations: shorter pauses
        try:
            await proc.run(ws, service=rt.service, stop=rt.stop)
        finally:
            rt.service()  # last counters out before the rings go
    return EXIT_OK


async def _serve(config: IngestConfig, rt: Runtime, registry: CollectorRegistry) -> int:
    from ipc.messages import WAKE_MD, wake_topic
    from ipc.sockets import WakeSender

    with ExitStack() as stack:
        rings = open_rings(config, stack)
        return await serve(
            config, rt, registry, rings, WakeSender(rt.publisher, wake_topic(WAKE_MD))
        )


def main(argv: list[str] | None = None) -> int:
    """Run ingest with the ``[ingest]`` section of the config file named in ``argv``."""
    config = load_section(argv, "ingest", IngestConfig)  # exits 78 on a bad config
    registry = CollectorRegistry()
    rt = Runtime("ingest", config.runtime, registry, config_path=config_file(argv))
    with rt:
        rt.start()  # exits 78 when the configured cores do not exist
        import uvloop

        try:
            code = uvloop.run(_serve(config, rt, registry))
        except Exception as exc:  # the process's one broad catch: crash, don't limp
            log.exception("stopping (fault)")
            rt.last_error = f"{type(exc).__name__}: {exc}"
            code = EXIT_FAULT
        log.info("stopped")
        return code


if __name__ == "__main__":
    sys.exit(main())
