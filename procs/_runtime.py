"""The process runtime: exit codes, stop flag, logging, the stage loop and its services.

``run_stage`` is the one loop every process runs. ``Runtime`` is the composition root's helper:
it pins CPUs, binds the process's PUB and control REP, serves ``/metrics``, publishes the
heartbeat and answers ``health``/``stop`` between steps, never more than every ~10 ms.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import psutil  # type: ignore[import-untyped]  # psutil ships no type stubs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    start_http_server,
)

from ipc.endpoints import is_loopback_host, is_remote
from ipc.messages import (
    ENCODER,
    SCHEMA_VERSION,
    ControlResponse,
    Heartbeat,
    Value,
    hb_topic,
    wake_topic,
)
from procs import _sched
from procs._auth import serve_guarded
from procs._config import EXIT_CONFIG, RuntimeConfig
from procs._control import CommandHandler, ControlDispatcher, load_token
from procs._files import private_umask
from procs._redact import RedactingFilter, redact
from procs.observe import (
    NAMESPACE,
    STEP_BUCKETS_S,
    DeferredObservations,
    ProcLabelled,
    RingCollector,
    disable_created_series,
    register_standard,
)
from procs.observe.rings import RingCounters
from shm.waiters import Notifier, Waiter, make_waiter, set_sched_slice

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ipc.sockets import Publisher, Replier, WakeListener, WakeSender

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAULT",
    "EXIT_OK",
    "CommandHandler",
    "HealthReporting",
    "Notifier",
    "Runtime",
    "RuntimeMetrics",
    "Stage",
    "StopFlag",
    "ThrottledLog",
    "Waiter",
    "make_runtime_metrics",
    "run_stage",
    "setup_logging",
]

log = logging.getLogger(__name__)

EXIT_OK: Final = 0  # a requested stop: supervisord does not restart it
EXIT_FAULT: Final = 1  # an unexpected error: supervisord restarts the process
CPU_WINDOW_S: Final = 1.0  # health's cpu_percent is measured over at least this long
CTL_CLOSE_LINGER_S: Final = 0.2  # bound on flushing the last control reply at close
SERVICE_S: Final = 0.01  # heartbeat/control are looked at no more often than this
LOG_FORMAT: Final = "%(asctime)s level=%(levelname)s proc={proc} logger=%(name)s %(message)s"

Counters = dict[str, float | int | str]
MALFORMED_REPLY: Final = ENCODER.encode(
    ControlResponse(ok=False, error="malformed request: one frame of at most 64 KiB expected")
)


class Stage(Protocol):
    """One bounded, non-blocking unit of work per ``step``; returns the items it handled."""

    name: str

    def step(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class HealthReporting(Protocol):
    """Optional: counters for the ``health`` reply; a ``last_seq`` entry feeds the heartbeat."""

    def health(self) -> Counters: ...


class StopFlag:
    """Set by SIGTERM/SIGINT (after ``install``) or by ``set``; the loop polls ``is_set``."""

    def __init__(self) -> None:
        self.is_set = False
        self.reason = ""

    def set(self, reason: str) -> None:
        """Request a stop; the first reason is kept."""
        if not self.is_set:
            self.reason = reason
            self.is_set = True

    def install(self) -> None:
        """Route SIGTERM and SIGINT to this flag (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.set(signal.Signals(signum).name)


class ThrottledLog:
    """At most one warning per ``interval_s`` per key; the next one says how many were held back.

    For the hot path's expected conditions (lapped reader, full HWM): count always, log rarely.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval; return whether."""
        now = self._clock()
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._next[key] = now + self._interval_s
        held = self._held.pop(key, 0)
        self._log.warning(msg + " suppressed=%d", *args, held)
        return True


def setup_logging(proc: str, level: str = "INFO") -> None:
    """Log to stdout as ``key=value`` lines, replacing any earlier handlers."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT.format(proc=proc)))
    handler.addFilter(RedactingFilter())  # secrets never reach a log line
    logging.basicConfig(level=level, handlers=[handler], force=True)


def run_stage(
    stage: Stage,
    waiter: Waiter,
    stop: StopFlag,
    *,
    service: Callable[[], None] | None = None,
    on_fault: Callable[[BaseException], None] | None = None,
) -> int:
    """Call ``stage.step()`` until ``stop`` is set; return EXIT_OK, or EXIT_FAULT on an error.

    ``service`` runs between steps at most every ``SERVICE_S``. ``stage.close()`` always runs.
    """
    log.info("running stage=%s pid=%d", stage.name, os.getpid())
    period_ns, due_ns = int(SERVICE_S * 1e9), 0
    try:
        while not stop.is_set:
            if stage.step():
                waiter.reset()
            else:
                waiter.idle()
            if service is not None and (now := time.monotonic_ns()) >= due_ns:
                service()
                due_ns = now + period_ns
        log.info("stopping (%s)", stop.reason)
        return EXIT_OK
    except Exception as exc:  # the one broad catch: crash, don't limp
        log.exception("stopping (fault) stage=%s", stage.name)
        if on_fault is not None:
            on_fault(exc)
        return EXIT_FAULT
    finally:
        stage.close()
        log.info("stopped stage=%s", stage.name)


@dataclass(frozen=True, slots=True)
class RuntimeMetrics:
    """Collectors every process gets from its runtime."""

    steps: Counter
    step_items: Counter
    step_seconds: Histogram
    heartbeats: Counter
    heartbeat_time: Gauge


def make_runtime_metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    """Register ``bitrader_steps_total`` and friends (the served view adds ``proc``)."""
    p = NAMESPACE
    return RuntimeMetrics(
        steps=Counter(f"{p}_steps", "step() calls", registry=registry),
        step_items=Counter(f"{p}_step_items", "items handled by step()", registry=registry),
        step_seconds=Histogram(
            f"{p}_step_seconds",
            "duration of steps (units of work) that handled at least one item",
            buckets=STEP_BUCKETS_S,
            registry=registry,
        ),
        heartbeats=Counter(f"{p}_heartbeats", "heartbeats published", registry=registry),
        heartbeat_time=Gauge(
            f"{p}_heartbeat_last_timestamp_seconds",
            "wall-clock time of the last heartbeat published (0: none yet)",
            registry=registry,
        ),
    )


class _TimedStage:
    # counts every step and times the ones that did work; counters and the durations reach
    # Prometheus in batches (Runtime.service): a Histogram.observe takes a lock and a bucket
    # search, and a colocated pass (procs.hotpath) ran three of them before its order left
    def __init__(self, stage: Stage, metrics: RuntimeMetrics) -> None:
        self.name = stage.name
        self.inner = stage
        self.steps_total = 0
        self.items_total = 0
        self.pending = DeferredObservations(metrics.step_seconds)  # busy steps' durations

    def step(self) -> int:
        t0 = time.perf_counter_ns()
        n = self.inner.step()
        self.steps_total += 1
        if n:
            self.items_total += n
            self.pending.add(time.perf_counter_ns() - t0)
        return n

    def close(self) -> None:
        self.inner.close()


def _cpus_error(config: RuntimeConfig) -> str | None:
    allowed = os.sched_getaffinity(0)
    for field in ("cpus", "io_cpus"):
        missing = sorted(set(getattr(config, field)) - allowed)
        if missing:
            return f"{field}: cores {missing} do not exist here; allowed {sorted(allowed)}"
    return None


class Runtime:
    """Owns a process's runtime I/O: affinity, PUB, control REP, /metrics, heartbeat.

    Build it in ``main()``; ``start()`` opens everything, ``run()`` runs the stage and closes
    everything. Single-threaded: the sockets live on the thread that calls ``start``.
    """

    def __init__(
        self,
        proc: str,
        config: RuntimeConfig,
        registry: CollectorRegistry,
        *,
        config_path: str | Path | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.proc = proc
        self.config = config
        self.registry = registry
        self.config_path = config_path
        self.stop = StopFlag() if stop is None else stop  # hosted stages share their host's
        self.last_error = ""
        disable_created_series()
        self._metrics = make_runtime_metrics(registry)
        self.rings = RingCollector()
        registry.register(self.rings)
        self._pub: Publisher | None = None
        self._ctl: Replier | None = None
        self._http: tuple[WSGIServer, Any] | None = None
        self._stage: _TimedStage | None = None
        self._health_source: HealthReporting | None = None
        self._ps = psutil.Process()
        self._cpu = (0.0, 0.0)  # (monotonic s of the last measurement, its percent)
        self._started_ns = time.monotonic_ns()
        self._hb_topic = hb_topic(proc)
        self._hb_due_ns = 0
        self._hb_total = 0
        self._flushed = (0, 0)
        self._noted_steps = 0  # note_step's, not yet in Prometheus
        self._noted_items = 0
        self._noted_ns = DeferredObservations(self._metrics.step_seconds)
        # requests other than a local health must be signed with the control token (_control)
        self._token: bytes | None = None
        self.control = ControlDispatcher(
            open_health=not is_remote(config.control_endpoint),
            health=self.health,
            stop=self.stop.set,
            throttled=ThrottledLog(log, 5.0),
        )
        self.sched_wanted = _sched.SchedClass(
            config.sched_policy, config.sched_priority, config.nice
        )
        self.sched_error = ""  # what the host refused of sched_wanted

    def add_command(self, cmd: str, handler: CommandHandler) -> None:
        """Answer control requests ``cmd`` with ``handler(args)``'s data.

        A handler refuses bad arguments by raising ``ValueError`` (the reply says why); any
        other exception is a fault of the process.
        """
        self.control.add(cmd, handler)

    @property
    def publisher(self) -> Publisher:
        """The process's PUB socket; stages send their own topics through it."""
        if self._pub is None:
            raise RuntimeError("Runtime.start() has not run")
        return self._pub

    def start(self) -> None:
        """Set up logging, pin CPUs, bind sockets, serve /metrics, install signal handlers;
        ``SystemExit(EXIT_CONFIG)`` when the configured cores do not exist here."""
        self._start_process()
        self.start_endpoints()

    def _start_process(self) -> None:
        # what belongs to the OS process: done once, by the host in a colocated process
        cfg = self.config
        private_umask()  # sockets, logs, journal, captures: 0600 whatever the caller's umask
        setup_logging(self.proc, cfg.log_level)
        error = _cpus_error(cfg)
        if error is not None:
            log.error("config error proc=%s path=$.%s.runtime.%s", self.proc, self.proc, error)
            raise SystemExit(EXIT_CONFIG)
        if cfg.cpus:
            os.sched_setaffinity(0, cfg.cpus)  # before any thread exists, so all inherit it
        self._apply_sched()  # so do the zmq I/O and /metrics threads (see procs/_sched.py)
        if cfg.sched_slice_us:  # the main thread: the one that runs the stage
            set_sched_slice(cfg.sched_slice_us * 1000)
        from ipc import sockets  # composition root: the only place I/O is opened

        if cfg.io_cpus:
            sockets.pin_io_threads(cfg.io_cpus)
        elif cfg.waiter == "spin" and cfg.cpus:
            # machine-limits §3: the spinner starves its own zmq I/O thread (ms tails)
            log.warning("spin waiter pinned without io_cpus: zmq I/O shares the spinning core")
        self.stop.install()

    def start_endpoints(self) -> None:
        """Bind this stage's PUB and control REP and serve its /metrics (``start`` does this;
        a stage hosted in another stage's process calls only this: procs.hotpath)."""
        from ipc import sockets

        cfg = self.config
        self._token = load_token(self.proc, cfg)  # exits 78 on a bad token file
        if self._token is not None:
            self.control.use_token(self._token)
        remote = cfg.allow_remote_endpoints
        # beyond loopback: only allow_ips may connect (ZAP); requests need the control token
        pub_ips = cfg.allow_ips if is_remote(cfg.pub_endpoint) else []
        ctl_ips = cfg.allow_ips if is_remote(cfg.control_endpoint) else []
        self._pub = sockets.bind_pub(cfg.pub_endpoint, allow_remote=remote, allow_ips=pub_ips)
        self._ctl = sockets.bind_rep(
            cfg.control_endpoint,
            allow_remote=remote,
            malformed_reply=MALFORMED_REPLY,
            allow_ips=ctl_ips,
        )
        if cfg.metrics_port:
            register_standard(self.registry, self.config_path)
            labelled = ProcLabelled(self.registry, self.proc)
            if is_loopback_host(cfg.metrics_host):
                self._http = start_http_server(
                    cfg.metrics_port, cfg.metrics_host, registry=labelled
                )
            else:  # allowlisted peers with the control token as a bearer token only
                self._http = serve_guarded(
                    cfg.metrics_host, cfg.metrics_port, make_wsgi_app(labelled),
                    cfg.allow_ips, self._token or b"",
                )  # fmt: skip
        self._ps.cpu_percent(None)  # prime: the first call always returns 0.0
        log.info(
            "started proc=%s pub=%s control=%s metrics_port=%d cpus=%s waiter=%s sched=%s",
            *(self.proc, cfg.pub_endpoint, cfg.control_endpoint, cfg.metrics_port),
            *(sorted(os.sched_getaffinity(0)), cfg.waiter, _sched.current()),
        )

    def watch_ring(self, name: str, ring: RingCounters) -> None:
        """Export ``ring``'s lag, drops and reattaches as ``ring=name``, read at scrape time."""
        self.rings.watch(name, ring)

    def record_step(self, items: int, seconds: float) -> None:
        """Count one unit of work done outside ``run`` (event-driven processes: ingest, simex)."""
        self._metrics.steps.inc()
        if items:
            self._metrics.step_items.inc(items)
            self._metrics.step_seconds.observe(seconds)

    def note_step(self, items: int, ns: int) -> None:
        """``record_step`` for a hot path: kept here, in Prometheus at the next ``service``
        (three locked metric calls fewer per unit of work)."""
        self._noted_steps += 1
        if items:
            self._noted_items += items
            self._noted_ns.add(ns)

    def _flush_noted(self) -> None:
        m = self._metrics
        if self._noted_steps:
            m.steps.inc(self._noted_steps)
            self._noted_steps = 0
        if self._noted_items:
            m.step_items.inc(self._noted_items)
            self._noted_items = 0
        self._noted_ns.flush()

    def _apply_sched(self) -> None:
        """Give the process (every thread to come) its scheduling class (procs/_sched.py); log what
        the host refused, or exit 78 when the config says the class is required."""
        cfg = self.config
        want = self.sched_wanted
        if want.is_default:
            return
        got, self.sched_error = _sched.apply(want)
        if not self.sched_error:
            return
        if cfg.sched_required:
            log.error("config error proc=%s path=$.%s.runtime.sched_required: class %s "
                      "refused: %s", self.proc, self.proc, want, self.sched_error)  # fmt: skip
            raise SystemExit(EXIT_CONFIG)
        log.warning("scheduling class not applied proc=%s wanted=%s running_as=%s error=%s",
                    self.proc, want, got, self.sched_error)  # fmt: skip

    def wake_sender(self, stream: str) -> WakeSender:
        """Return a Waker that publishes ``wake.<stream>.`` on this process's PUB."""
        from ipc.sockets import WakeSender

        return WakeSender(self.publisher, wake_topic(stream))

    def wake_listener(self, endpoint: str, stream: str) -> WakeListener:
        """Return a Notifier on the writer's PUB ``endpoint`` for ring ``stream``; caller closes."""
        from ipc.sockets import WakeListener

        remote = self.config.allow_remote_endpoints
        return WakeListener(endpoint, wake_topic(stream), allow_remote=remote)

    def make_waiter(self, notifier: Notifier | None = None) -> Waiter:
        """Build the configured waiter; ``hybrid`` blocks on ``notifier`` (a WakeListener).

        Raises ``SystemExit(EXIT_CONFIG)`` for ``hybrid`` without a notifier.
        """
        cfg = self.config
        if cfg.waiter == "spin":
            return make_waiter("spin")
        if cfg.waiter == "block":
            first_s = min(50e-6, cfg.max_sleep_s)
            return make_waiter("block", min_sleep_s=first_s, max_sleep_s=cfg.max_sleep_s)
        if notifier is None:
            log.error(
                "config error proc=%s path=$.%s.runtime.waiter: 'hybrid' needs a wake-up "
                "source and this process has none; use 'block' or 'spin'",
                *(self.proc, self.proc),
            )
            raise SystemExit(EXIT_CONFIG)
        return make_waiter(
            "hybrid", notifier, spin_s=cfg.spin_s, block_timeout_s=cfg.wake_timeout_s
        )

    def adopt(self, stage: Stage) -> Stage:
        """Count and time ``stage``'s steps here (health, ``bitrader_steps_total``); return the
        wrapped stage. ``run`` does it; a colocated host (procs.hotpath) does it per stage."""
        self._stage = _TimedStage(stage, self._metrics)
        return self._stage

    def run(self, stage: Stage, waiter: Waiter) -> int:
        """Run ``stage`` until stopped or faulted, then close everything; return the exit code."""
        timed = self.adopt(stage)
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's generations: shorter pauses
        try:
            self.service()
            return run_stage(timed, waiter, self.stop, service=self.service, on_fault=self.on_fault)
        finally:
            self._flush_counters()  # the registry ends with the final counts
            self.close()

    def service(self) -> None:
        """Flush counters, publish a due heartbeat, answer queued control requests."""
        now = time.monotonic_ns()
        self._flush_counters()
        if now >= self._hb_due_ns:
            self._hb_due_ns = now + int(self.config.heartbeat_s * 1e9)
            self._heartbeat()
        if self._ctl is not None:
            for _ in range(4):  # bounded: a flood of requests never starves the stage
                body = self._ctl.recv(0)
                if body is None:
                    break
                self._ctl.send(ENCODER.encode(self.control.answer(body)))

    def _flush_counters(self) -> None:
        self._flush_noted()
        st = self._stage
        if st is None:
            return
        st.pending.flush()
        steps, items = self._flushed
        if st.steps_total > steps:
            self._metrics.steps.inc(st.steps_total - steps)
        if st.items_total > items:
            self._metrics.step_items.inc(st.items_total - items)
        self._flushed = (st.steps_total, st.items_total)

    def report_health_from(self, source: HealthReporting) -> None:
        """Take health counters (and the heartbeat's ``last_seq``) from ``source``.

        For event-driven processes (asyncio) that call ``service()`` themselves instead of
        handing a step-loop ``Stage`` to ``run()``.
        """
        self._health_source = source

    def _stage_counters(self) -> Counters:
        if self._health_source is not None:
            return self._health_source.health()
        inner = self._stage.inner if self._stage is not None else None
        return inner.health() if isinstance(inner, HealthReporting) else {}

    def _heartbeat(self) -> None:
        if self._pub is None:
            return
        seq = self._stage_counters().get("last_seq")
        if not isinstance(seq, int):
            seq = self._stage.items_total if self._stage is not None else 0
        hb = Heartbeat(proc=self.proc, ts_ns=time.time_ns(), last_seq=seq)
        if self._pub.send(self._hb_topic, ENCODER.encode(hb)):
            self._hb_total += 1
            self._metrics.heartbeats.inc()
            self._metrics.heartbeat_time.set(hb.ts_ns / 1e9)

    def _cpu_percent(self) -> float:
        """CPU % over at least ``CPU_WINDOW_S``: psutil measures since its previous call, so
        two askers a few ms apart (the dashboard, ``bitrader health``) would read noise."""
        now = time.monotonic()
        if now - self._cpu[0] >= CPU_WINDOW_S:
            self._cpu = (now, float(self._ps.cpu_percent(None)))
        return self._cpu[1]

    def health(self) -> dict[str, Value]:
        """Return the ``health`` reply's data: process facts, loop counters, stage counters."""
        st, ctl = self._stage, self._ctl
        return {
            "proc": self.proc,
            "state": "stopping" if self.stop.is_set else "running",
            "pid": os.getpid(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "cpu_percent": self._cpu_percent(),
            "rss_bytes": int(self._ps.memory_info().rss),
            "uptime_s": (time.monotonic_ns() - self._started_ns) / 1e9,
            "heartbeats_total": self._hb_total,
            "steps_total": st.steps_total if st is not None else 0,
            "items_total": st.items_total if st is not None else 0,
            "waiter": self.config.waiter,
            "sched": str(_sched.current()),  # the stage thread's class (health runs on it)
            "sched_wanted": str(self.sched_wanted),
            "sched_error": self.sched_error,
            "schema_version": SCHEMA_VERSION,
            "last_error": redact(self.last_error),  # health output never carries a secret
            "control_errors_total": self.control.errors_total,
            "control_malformed_total": ctl.malformed_total if ctl is not None else 0,
            "control_rebinds_total": ctl.rebinds_total if ctl is not None else 0,
            "control_unauthorized_total": self.control.unauthorized_total,
            "counters": self._stage_counters(),
        }

    def on_fault(self, exc: BaseException) -> None:
        """Keep ``exc`` as ``last_error`` (health); ``run_stage`` calls it on a fault."""
        self.last_error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Close sockets and stop the metrics server; safe to call twice."""
        if self._pub is not None:
            self._pub.close()
            self._pub = None
        if self._ctl is not None:
            # the reply to a `stop` request may still be queued: linger 0 would drop it
            self._ctl.close(linger_s=CTL_CLOSE_LINGER_S)
            self._ctl = None
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=1.0)
            self._http = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
