"""Compose the execution stage over a started ``Runtime``: the journal (verified), the venue
(live or paper), the rings, the kill switch, operator commands, SIGHUP reload; reconcile.

Run by the execution program (``python -m procs.execution``) and by procs.hotpath. Also
``LoopWaiter``: the asyncio loop driven between steps of ``run_stage`` (in-process sessions:
tests, tools), and the venue URLs execution opens at start-up (``venue_urls``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import ExitStack
from decimal import Decimal
from typing import IO, Protocol

from prometheus_client import CollectorRegistry

from procs._config import EXIT_CONFIG, config_file, load_env, load_section
from procs._runtime import EXIT_FAULT, Runtime
from procs.keystore.store import KeyFileError, KeyStoreError, Secrets
from procs.trading.config import ExecutionConfig
from procs.trading.control import OperatorCommands, journal_control
from procs.trading.engine import ExecutionProc
from procs.trading.guard import open_verified, start_backups
from procs.trading.keys import load_secrets
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics
from procs.trading.reload import Reloader, apply_to
from procs.trading.venue import LiveVenue, PaperVenueAdapter, Venue, VenueCallError

__all__ = [
    "LoopWaiter",
    "WakeSource",
    "build",
    "build_venue",
    "load_config",
    "paper_needs_public",
    "venue_urls",
]

log = logging.getLogger("procs.execution")


class WakeSource(Protocol):
    """What ``LoopWaiter.watch`` needs of ``ipc.sockets.WakeListener``."""

    @property
    def fds(self) -> list[int]: ...

    def wait(self, timeout_s: float) -> bool: ...

    def close(self) -> None: ...


class LoopWaiter:
    """Runs the asyncio loop while the stage is idle, until a wake-up or the timeout.

    ``watch`` puts a wake listener's descriptors on the loop (``add_reader``): a wake-up is
    read on the loop's own thread, which stops the idle pass at once (no thread, no
    ``call_soon_threadsafe``). ``wake`` may be called from any thread. ``timeout_s`` bounds
    every idle pass, so the periodic step still runs and a lost wake-up costs at most that.
    After a busy step ``reset`` gives the loop one pass, so orders scheduled by the step leave
    at once. ``close`` removes the readers and closes the listener.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._woken = False
        self._idling = False
        self._source: WakeSource | None = None
        self._fds: list[int] = []
        self.wakes_total = 0

    def watch(self, source: WakeSource) -> None:
        """Wake on ``source``'s wake-ups, read on the loop; the waiter closes it in ``close``."""
        self._source = source
        self._fds = list(source.fds)
        for fd in self._fds:
            self._loop.add_reader(fd, self._on_ready)
        self._on_ready()  # zmq's descriptor is edge-triggered: drain (re-arms) once now

    def _on_ready(self) -> None:
        source = self._source
        if source is not None and source.wait(0):  # drains every queued wake-up, re-arms
            self._on_wake()

    def wake(self) -> None:
        """Thread-safe: end the current (or the next) idle wait."""
        self._loop.call_soon_threadsafe(self._on_wake)

    def notify(self) -> None:
        """Same thread (a ``Waker`` for a stage on this loop: procs.hotpath's ingest): end the
        current idle pass, or skip the next one."""
        self._on_wake()

    def _on_wake(self) -> None:
        self._woken = True
        self.wakes_total += 1
        self._end_idle()

    def _end_idle(self) -> None:
        # one stop per idle pass: a second one, queued after the first took effect, would stop
        # the loop's next run (reset's, or close's) before its future completes
        if self._idling:
            self._idling = False
            self._loop.stop()  # ends run_forever after this pass of the loop

    def idle(self) -> None:
        if self._woken:
            self._woken = False
            self.reset()
            return
        loop = self._loop
        timer = loop.call_later(self._timeout_s, self._end_idle)
        self._idling = True
        try:
            loop.run_forever()
        finally:
            self._idling = False
            timer.cancel()
            self._woken = False

    def reset(self) -> None:
        self._loop.run_until_complete(asyncio.sleep(0))

    def close(self) -> None:
        """Remove the readers and close the watched listener (idempotent)."""
        if not self._loop.is_closed():
            for fd in self._fds:
                self._loop.remove_reader(fd)
        self._fds = []
        if self._source is not None:
            self._source.close()
            self._source = None


def paper_needs_public(config: ExecutionConfig) -> bool:
    """Paper mode calls the venue's public REST only for missing trading rules or funding."""
    rules = all(s.tick and s.step and s.min_qty for s in config.symbols)
    return not rules or config.paper.settle_funding


def venue_urls(config: ExecutionConfig) -> list[str]:
    """The venue URLs execution opens at start-up: what it waits for (procs.venue_wait)."""
    v = config.venue
    if config.mode != "paper":
        return [v.rest_url, v.ws_private_url]
    return [v.rest_url] if paper_needs_public(config) else []


def build_venue(
    config: ExecutionConfig, proc_ref: list[ExecutionProc], secrets: Secrets | None
) -> Venue:
    """The live adapter (REST + private WS) or the paper adapter, from config."""
    from ipc.bitunix.rest import RestConfig
    from ipc.bitunix.rest_api import BitunixRest

    v = config.venue
    if config.mode == "paper":
        public = BitunixRest(RestConfig(base_url=v.rest_url, timeout_s=v.rest_timeout_s))
        return PaperVenueAdapter(
            config.paper,
            local=lambda cid: proc_ref[0].tracker.get(cid) if cid in proc_ref[0].tracker else None,
            positions=lambda: proc_ref[0].positions.snapshots(),
            balance=lambda: proc_ref[0].local_balance() or Decimal(0),
            public_rest=public if paper_needs_public(config) else None,
        )  # fmt: skip
    from ipc.bitunix.ws import BitunixWs, WsConfig

    key, secret = (secrets.api_key, secrets.secret) if secrets else ("", "")
    if not key or not secret:
        log.error("config error: no API key (set %s/%s or key_file)", v.api_key_env, v.secret_env)
        raise SystemExit(EXIT_CONFIG)
    rest = BitunixRest(
        RestConfig(base_url=v.rest_url, api_key=key, secret=secret, timeout_s=v.rest_timeout_s)
    )
    ws = BitunixWs(
        WsConfig(
            url=v.ws_private_url,
            api_key=key,
            secret=secret,
            ping_interval_s=v.ws_ping_interval_s,
            pong_timeout_s=v.ws_pong_timeout_s,
        ),
        on_resync=lambda: proc_ref[0].on_resync(),
    )
    return LiveVenue(
        rest,
        ws,
        margin_coin=v.margin_coin,
        hedge=config.position_mode == "HEDGE",
        ready_timeout_s=v.ws_ready_timeout_s,
    )


def _secrets(config: ExecutionConfig) -> Secrets | None:
    """Load the venue's secrets when live or a keystore is configured; exit 78 when bad."""
    if config.mode == "paper" and not config.venue.keystore_path:
        return None
    try:
        return load_secrets(config.venue, dict(os.environ))
    except KeyFileError as exc:
        log.error("config error: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None
    except KeyStoreError as exc:  # a wrong passphrase is a configuration error too
        log.error("config error: keystore: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None


def build(
    config: ExecutionConfig,
    rt: Runtime,
    registry: CollectorRegistry,
    loop: asyncio.AbstractEventLoop,
    argv: list[str] | None,
    stack: ExitStack,
) -> ExecutionProc:
    """Open the journal, the venue, the rings (``rt`` started); reconcile; return the stage
    (the caller drives it: ``procs._looprun.LoopRunner``). Raises ``SystemExit`` with
    EXIT_CONFIG or EXIT_FAULT. Used by ``main`` and procs.hotpath."""
    from shm.records import BOOK_V1, SIG_V1
    from shm.ring import attach_reader

    ref: list[ExecutionProc] = []
    secrets = _secrets(config)  # exits 78 on a bad keystore or key file
    journal, audit_key = open_verified(config, secrets)  # exits 78 on a broken audit chain
    backups = start_backups(config, audit_key)
    if backups is not None:
        stack.callback(backups.close)
    # every authenticated state-changing request is in the audited journal
    rt.control.on_control = journal_control(journal)
    venue = build_venue(config, ref, secrets)  # exits 78 without keys
    sig = attach_reader(config.sig_ring, SIG_V1, config.attach_timeout_s)
    book = attach_reader(config.book_ring, BOOK_V1, config.attach_timeout_s)
    rt.watch_ring("sig", sig)
    rt.watch_ring("md.book", book)
    ks_store = FileStore(config.killswitch_path)
    try:
        ks_store.preallocate()  # the slot exists before any disk fills: writes go in place
    except OSError as exc:
        log.error("kill-switch file %s cannot be created: %s", config.killswitch_path, exc)
    event_file: IO[bytes] | None = None
    if config.events_log_path:
        event_file = open(config.events_log_path, "ab", buffering=0)  # noqa: SIM115
        stack.callback(event_file.close)
    proc = ExecutionProc(
        config,
        sig=sig,
        book=book,
        venue=venue,
        journal=journal,
        publisher=rt.publisher,
        killswitch=KillSwitch(ks_store, config.killswitch_poll_s),
        metrics=make_metrics(registry),
        loop=loop,
        event_log=None if event_file is None else event_file.write,
    )
    ref.append(proc)
    OperatorCommands(proc, time.time_ns).register(rt.add_command)
    if urls := venue_urls(config):  # wait (bounded) for the venue to listen: venue_wait
        from procs.venue_wait import wait_accepting

        loop.run_until_complete(
            wait_accepting(urls, stop=lambda: rt.stop.is_set, service=rt.service)
        )
    try:
        loop.run_until_complete(proc.open())
    except VenueCallError as exc:
        log.error("start-up failed: %s", exc)
        proc.close()
        raise SystemExit(EXIT_FAULT) from None
    reloader = Reloader(
        config_file(argv) or "", load_env(config_file(argv) or ""),
        config, apply_to(proc), journal, registry,
    )  # fmt: skip
    # SIGHUP (supervisorctl signal HUP): the reload runs on the loop, between steps. Not
    # loop.add_signal_handler: uvloop watches signals only while the loop runs, and this
    # loop runs only in the idle passes (a signal in between was lost)
    signal.signal(signal.SIGHUP, lambda *_: loop.call_soon_threadsafe(reloader.reload))
    rt.add_command("reload", reloader.command)
    return proc


def load_config(argv: list[str] | None) -> ExecutionConfig:
    """The ``[execution]`` section; ``SystemExit(EXIT_CONFIG)`` without its runtime table."""
    config = load_section(argv, "execution", ExecutionConfig)
    if config.runtime is None:
        logging.basicConfig()
        log.error("config error path=$.execution.runtime: the [execution.runtime] table is missing")
        raise SystemExit(EXIT_CONFIG)
    return config
