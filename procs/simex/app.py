"""Compose simex: engine + generator + REST + WS + control on one uvloop event loop.

``Simex(config)`` is fixture-friendly: ``await start()`` binds (ports of 0 pick free ones),
the ``*_url`` properties say where, ``await stop()`` saves state and closes everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Final, Protocol

from aiohttp import web

from procs.exchange.engine import Exchange
from procs.exchange.marketgen import Action, BookView, GenSymbol, MarketGenerator, apply_action
from procs.simex.config import SimexConfig
from procs.simex.faults import Faults
from procs.simex.funding import next_funding_ms, settle_funding
from procs.simex.replay import load_replay
from procs.simex.rest import RestServer
from procs.simex.state import load_state, save_state
from procs.simex.venue import Venue
from procs.simex.ws import Hub, start_ws_server

__all__ = ["Simex"]

log = logging.getLogger(__name__)

PERIODIC_S: Final = 0.5
STEP_MAX_NS: Final = 50_000_000  # market time one step may cover: keeps the loop responsive
LAG_MAX_NS: Final = 1_000_000_000  # further behind than this, the generator skips ahead
WARMUP_NS: Final = 2_000_000_000  # generator flow replayed before the servers open


class MarketSource(Protocol):
    """The generator or a capture replay: actions in time order around the shared books."""

    @property
    def time_ns(self) -> int: ...
    def skip_to(self, t_ns: int) -> None: ...
    def actions_until(self, t_ns: int, books: Mapping[str, BookView]) -> Iterator[Action]: ...


class Simex:
    """The whole exchange in one process; owns every server and task it starts."""

    def __init__(self, config: SimexConfig) -> None:
        self.config = config
        self.faults = Faults(config.fault_seed)
        specs = [s.spec() for s in config.symbols]
        self.exchange = Exchange(
            specs,
            {a.name: a.balance for a in config.accounts},
            funding_interval_ms=max(1, round(config.funding_interval_s * 1000)),
        )
        self.funding_settled_total = 0  # position settlements
        keys = {k.api_key: k for k in config.keys}
        self.hub = Hub(self.faults, keys, config.limits, self.faults.now_ms, strict=config.strict)
        self.venue = Venue(self.exchange, self.hub, self.faults.now_ms)
        self.hub.venue = self.venue
        self.rest = RestServer(self.venue, self.faults, keys, config.limits, strict=config.strict)
        self.rest.on_flush(self.hub.flush_writes)
        self.generator: MarketSource | None = None
        self.actions_total = 0
        self.step_max_s = 0.0  # longest market step: how far pushes can trail the generator
        self.on_step: Callable[[int, float], None] | None = None  # (actions, seconds) per step
        self.skipped_ns_total = 0  # market time skipped because simex could not keep up
        self.rest_port = self.ws_port = self.control_port = 0
        self._runners: list[web.AppRunner] = []
        self._ws_server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.rest_port}"

    @property
    def ws_public_url(self) -> str:
        return f"ws://{self.config.host}:{self.ws_port}/public/"

    @property
    def ws_private_url(self) -> str:
        return f"ws://{self.config.host}:{self.ws_port}/private/"

    @property
    def control_url(self) -> str:
        return f"http://{self.config.host}:{self.control_port}"

    async def start(self) -> None:
        """Restore state (if configured), seed the book, bind every server, start the market."""
        cfg = self.config
        restored = self._restore()
        self.generator = self._make_generator()
        self._warm_up()
        from procs.simex.control import make_control_app

        self.rest_port = await self._serve(self.rest.make_app(), cfg.rest_port)
        self._ws_server = await start_ws_server(self.hub, cfg.host, cfg.ws_port)
        self.ws_port = int(self._ws_server.sockets[0].getsockname()[1])
        self.control_port = await self._serve(make_control_app(self), cfg.control_port)
        self._tasks = [
            asyncio.create_task(self._market_loop(), name="simex-market"),
            asyncio.create_task(self._periodic_loop(), name="simex-periodic"),
        ]
        self._started = True
        log.info(
            "running rest=%s ws=%s control=%s restored=%s",
            self.rest_url, self.ws_public_url, self.control_url, restored,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop the market, save state, close the servers. Safe to call twice."""
        if not self._started:
            return
        self._started = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.save()
        if self._ws_server is not None:
            self.hub.drop("all")
            self._ws_server.close()
            await self._ws_server.wait_closed()
        for r in self._runners:
            await r.cleanup()
        self._runners.clear()

    def health(self) -> dict[str, float | int | str]:
        """Counters for the runtime's health reply and heartbeat (``last_seq``: pushes sent)."""
        hub = self.hub
        return {
            "last_seq": hub.sent_total,
            "connections": len(hub.conns),
            "pushes_sent_total": hub.sent_total,
            "rest_requests_total": self.rest.requests_total,
            "generator_actions_total": self.actions_total,
            "market_skipped_s_total": self.skipped_ns_total / 1e9,
            "slow_disconnects_total": hub.slow_disconnects_total,
            "funding_settled_total": self.funding_settled_total,
            "strict": int(self.config.strict),
            "rest_bad_requests_total": self.rest.bad_requests_total,
            "ws_bad_messages_total": hub.bad_messages_total,
        }

    def save(self, quiet: bool = False) -> Path | None:
        """Write the state file now (when configured); return its path."""
        if not self.config.state_path:
            return None
        path = Path(self.config.state_path)
        save_state(self.exchange, path, self.faults.now_ms())
        log.log(logging.DEBUG if quiet else logging.INFO, "state saved path=%s", path)
        return path

    def _restore(self) -> bool:
        path = self.config.state_path
        if not path or not self.config.restore or not Path(path).exists():
            return False
        load_state(self.exchange, path)
        return True

    def _make_generator(self) -> MarketSource:
        m = self.config.market
        if m.source == "replay":
            return load_replay(
                m.replay_path, self.exchange.specs, start_ns=time.time_ns() - WARMUP_NS,
                speed=m.replay_speed, loop=m.replay_loop,
            )  # fmt: skip
        symbols = [
            GenSymbol(
                symbol=s.symbol,
                start_price=self.exchange.last_price.get(s.symbol, s.start_price),
                tick=s.spec().tick,
                min_qty=s.min_qty,
                step=s.spec().step,
                volatility_bps_per_s=s.volatility_bps_per_s,
                lot_qty=s.lot_qty(),
            )
            for s in self.config.symbols
        ]
        return MarketGenerator(
            symbols, m.seed, events_per_s=m.events_per_s, levels=m.levels,
            burst_prob=m.burst_prob, trade_frac=m.trade_frac, start_ns=time.time_ns() - WARMUP_NS,
        )  # fmt: skip

    def _warm_up(self) -> None:
        # two seconds of flow before anyone connects, so the first depth push has a book
        gen = self.generator
        assert gen is not None
        now = time.time_ns()
        self.exchange.drain()
        for a in gen.actions_until(now, self.exchange.books):
            apply_action(self.exchange, a, now // 1_000_000)
        self.venue.flush()

    def _step(self, now_ns: int) -> int:
        gen = self.generator
        assert gen is not None
        if self.faults.state.pause_md:
            gen.skip_to(now_ns)
            return 0
        behind = now_ns - gen.time_ns
        if behind > LAG_MAX_NS:  # overloaded: skip market time instead of trailing forever
            gen.skip_to(now_ns - STEP_MAX_NS)
            self.skipped_ns_total += behind - STEP_MAX_NS
        target = min(now_ns, gen.time_ns + STEP_MAX_NS)
        ts_ms = self.faults.now_ms()
        prev: Action | None = None
        n = 0
        for a in gen.actions_until(target, self.exchange.books):
            # one push per market instant: a replayed snapshot is several actions at one time
            if prev is not None and a.ts_ns != prev.ts_ns:
                self.venue.flush()
            apply_action(self.exchange, a, ts_ms)
            prev = a
            n += 1
        if prev is not None:
            self.venue.flush()
        self.hub.flush_writes()
        self.actions_total += n
        return n

    async def _market_loop(self) -> None:
        tick = self.config.market.tick_s
        while True:
            await asyncio.sleep(tick)
            t0 = time.perf_counter()
            n = self._step(time.time_ns())
            dt = time.perf_counter() - t0
            self.step_max_s = max(self.step_max_s, dt)
            if self.on_step is not None:  # the runtime's step_seconds: one market step
                self.on_step(n, dt)

    def settle_funding(self, ts_ms: int, rates: dict[str, Decimal] | None = None) -> int:
        """Settle funding on every open position now and push the changes; return how many."""
        n = settle_funding(self.exchange, ts_ms, rates)
        self.funding_settled_total += n
        self.venue.flush()
        self.hub.flush_writes()
        log.info("funding settled positions=%d ts_ms=%d", n, ts_ms)
        return n

    async def _periodic_loop(self) -> None:
        every = self.config.state_save_s
        next_save = time.monotonic() + every
        next_funding = next_funding_ms(self.exchange, self.faults.now_ms())
        while True:
            await asyncio.sleep(PERIODIC_S)
            if self.faults.now_ms() >= next_funding:
                self.settle_funding(next_funding)
                next_funding = next_funding_ms(self.exchange, self.faults.now_ms())
            self.hub.periodic()
            self.hub.flush_writes()
            if every and time.monotonic() >= next_save:
                next_save = time.monotonic() + every
                self.save(quiet=True)

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, port)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[-1][1])
