"""hotpath: ingest, features, inference and execution in one OS process, on one thread: reads
the venue's WS, writes rings md.book, md.trade, feat and sig and the orders, like the four.

The ``colocated`` topology (docs/architecture.md, "Topologies"). On a host with fewer cores
than hot stages, each hop between stage processes waits for a core another stage computes on;
this process runs the four stages' own code (the builders the programs run, from their
libraries: ``marketdata.serve``, ``featurecalc.stage``, ``models.build``, ``trading.compose``)
on one thread and one asyncio loop. A WS frame is received and normalised by ingest's callbacks
on the loop; ingest's flush queues a pass (``procs._looprun.LoopRunner``) that publishes what
ingest holds (``IngestFlush``), then steps features → inference → execution, with no wake-up
between them; the stages' wake-ups for readers outside the process leave after the pass's
orders (``DeferredWakes``). What no tick waits for (the garbage collector's young and middle
collections, execution's housekeeping, ingest's tick, the runtimes' service) runs when the loop
is idle (``idle_jobs``, ``procs._idle``), after the pass's orders have gone to their send tasks.
Each stage keeps its runtime endpoints (PUB with its heartbeat, wake-ups
and events; control socket; ``/metrics`` port) and its rings, so capture, the dashboard,
``bitrader health`` and Prometheus see the same group as under ``split``. The process takes
its placement and scheduling class from ``[execution.runtime]``: one thread has one class.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry

from ipc.messages import WAKE_MD
from procs._config import config_file, load_section
from procs._idle import IDLE, NO, NOW, IdleGC, IdleJob, PeriodicJob
from procs._looprun import SERVICE_NS, LoopRunner
from procs._runtime import EXIT_FAULT, Runtime, Stage, StopFlag, setup_logging
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.stage import build as build_features
from procs.marketdata.config import IngestConfig
from procs.marketdata.serve import open_rings, serve
from procs.marketdata.stage import IngestProc
from procs.models.build import build as build_inference
from procs.models.config import InferenceConfig
from procs.trading.compose import build as build_execution
from procs.trading.compose import load_config as load_execution_config
from procs.trading.config import ExecutionConfig
from procs.trading.sent import SentAfterSend
from shm.waiters import Waker

log = logging.getLogger("procs.hotpath")

NAME: Final = "hotpath"
STAGES: Final = ("ingest", "features", "inference", "execution")
STOP_INGEST_S: Final = 5.0  # bound on ingest's own shutdown (WS close, last flush)
INLINE_BOOKS: Final = 4  # books per turn of the loop whose pass runs inside their frame's callback
INLINE_BUSY_MAX: Final = 0.9  # ... while this thread was busy less than this share of a window
INLINE_WINDOW_NS: Final = 20_000_000
# past those (or busy), a pass every ``chunk`` books of a turn of the loop, the chunk kept by
# this thread's CPU: it doubles after a 20 ms window busier than CHUNK_BUSY[1] (over 95 % the
# kernel's real-time throttle would stop the thread for tens of ms) and halves after one under
# CHUNK_BUSY[0]. Once features' engine was C (its call ~100 µs cheaper hot for a chunk), at
# 10 k msg/s on the 2-core host inline passes up to 90 % busy and chunks from 2 gave tick-to-order
# p50 / p99 242 / 720 µs against 316 / 825 with the earlier 60 %, 4 and 12 (the thread at 85 %
# against 78 %, the feed kept up, 0 dropped; docs/benchmarks.md, "the feature engine in C")
CHUNK_MIN: Final = 2
CHUNK_START: Final = 4
CHUNK_MAX: Final = 48
CHUNK_BUSY: Final = (0.8, 0.9)
# a full collection (every 10 middle ones by default) stopped this thread for 3.8 ms p50, 10.9
# max, three times in 20 s at 1 k msg/s (docs/benchmarks.md, "the colocated pass against (b)"):
# ten times rarer; the young and middle generations (~0.1-0.2 ms pauses) as before
GC_FULL_AFTER: Final = 100
# the runtimes' service (counters to Prometheus, heartbeat, control) runs at idle; a loop that is
# never idle (10 k msg/s) runs it after a pass once it is this late (a service's cost grows with
# what it flushes: later would mean rarer, longer stops)
SERVICE_LATE_NS: Final = SERVICE_NS
# execution's deferred rows (JournalFlush): at idle once this old, after a pass once late
JOURNAL_IDLE_NS: Final = 2_000_000
JOURNAL_LATE_NS: Final = 10_000_000


class HotPath:
    """One step of each step-loop stage, in data-flow order: what features publishes in a
    pass, inference scores and execution reads in the same pass, with no wake-up between;
    then the wake-ups the pass owes readers outside this process (``wakes``).

    ``close`` does nothing: the host closes the stages once ingest (a task on the loop) has
    stopped publishing (``main``).
    """

    name = NAME

    def __init__(self, stages: Sequence[Stage], wakes: DeferredWakes) -> None:
        self._stages = tuple(stages)
        self._wakes = wakes

    def step(self) -> int:
        n = 0
        for stage in self._stages:
            n += stage.step()
        self._wakes.after_pass()
        return n

    def close(self) -> None:
        pass


class DeferredWakes:
    """The stages' wake-ups (``wake.md.``, ``wake.feat.``, ``wake.sig.``), sent after the pass
    instead of inside it: with ``call_soon`` (the loop's), from a loop callback queued at the
    end of the pass, so after the callbacks the pass queued (its orders' send tasks); without,
    at the end of the pass.

    Nothing in this process waits on them (the stages after each one run in the same pass);
    they are for readers outside it (capture, a dashboard, a split reader of the rings), to
    whom a pass later (~0.1 ms) changes nothing. Sent inline, each one (a zmq send and the
    direct wake datagrams, ~10 µs on a cold cache, measured) sat between a tick's receipt and
    its order: one per flush, one per features record, one per inference batch; sent at the
    end of the pass, they still came before the pass's orders left (their send tasks run
    after the pass). Each waker sends once per callback (not once per record or pass): the
    passes of one read (inline books, chunks) share it, and a reader is woken after the
    batches are in the ring."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], object] | None = None) -> None:
        self._due: list[_Deferred] = []
        self._call_soon = call_soon
        self._queued = False

    def wrap(self, waker: Waker) -> Waker:
        return _Deferred(waker, self._due)

    def after_pass(self) -> None:
        """The end of a pass: send what is due now, or queue its callback (once)."""
        if not self._due or self._queued:
            return
        if self._call_soon is None:
            self.send()
        else:
            self._queued = True
            self._call_soon(self._send_queued)

    def _send_queued(self) -> None:
        self._queued = False
        self.send()

    def send(self) -> None:
        due = self._due
        if due:
            for d in due:
                d.due = False
                d.inner.notify()
            due.clear()


class _Deferred:
    def __init__(self, inner: Waker, due: list[_Deferred]) -> None:
        self.inner = inner
        self.due = False
        self._queue = due

    def notify(self) -> None:
        if not self.due:
            self.due = True
            self._queue.append(self)


class IngestFlush:
    """The pass's first step: publish what ingest received since its last flush (the frames
    read in this loop iteration), so the stages after it see them in the same pass instead of
    one pass later (ingest's own flush is a loop callback queued behind this pass)."""

    name = "ingest"

    def __init__(self, rt: Runtime) -> None:
        self.proc: IngestProc | None = None
        self._record = rt.note_step

    def set(self, proc: IngestProc | None) -> None:
        self.proc = proc

    def step(self) -> int:
        if self.proc is None:
            return 0
        t0 = time.perf_counter_ns()
        n = self.proc.flush()
        if n:
            self._record(n, time.perf_counter_ns() - t0)
        return n

    def close(self) -> None:
        pass


class InlineBooks:
    """ingest's ``on_book``: when a book's pass runs, inside its frame's callback or after the
    read (``False``: ingest queues its flush and the pass as before).

    While this thread has CPU to spare, the first ``limit`` books of a turn of the loop run the
    pass at once, inside their frame's callback (publish, features, inference, execution: the
    book's order leaves before the next frame is handled, as a single-process bot does it).
    Past them, or busy for more than ``busy_max`` of the last window (this thread's CPU time
    over the wall time), a pass runs every ``chunk`` books of the turn: a pass per book costs
    more than a pass per burst (each stage's step, inference's model call), so a process that
    is behind batches, but a read of many frames (what piled up in the socket during a long
    pass) is no longer decoded whole and then computed breadth-first as one pass, with its
    first book waiting for every other one's decoding, features and model. The books of the
    turn past the last whole chunk wait for the read's end (one pass, queued). The chunk
    follows the CPU: it doubles (up to ``CHUNK_MAX``) after a window busier than
    ``CHUNK_BUSY[1]`` and halves (down to ``CHUNK_MIN``) after one under ``CHUNK_BUSY[0]``: small
    chunks while the thread has time (a book waits for fewer others), larger ones before the
    passes' fixed costs take it past what it can keep up with.

    Without it every book of a read waited for the whole read to be decoded, then for the
    features and inference of every other book of the read (breadth-first), and its receipt
    stamp was the read's, not the moment its turn came."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        runner: LoopRunner,
        limit: int = INLINE_BOOKS,
        busy_max: float = INLINE_BUSY_MAX,
        chunk: tuple[int, int, int] = (CHUNK_MIN, CHUNK_START, CHUNK_MAX),
        chunk_busy: tuple[float, float] = CHUNK_BUSY,
        *,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        cpu_ns: Callable[[], int] = time.thread_time_ns,
    ) -> None:
        self._loop = loop
        self._runner = runner
        self._limit = limit
        self._busy_max = busy_max
        self._chunk_min = max(1, chunk[0])
        self._chunk_max = max(self._chunk_min, chunk[2])
        # books per pass past the inline ones (adapted per window)
        self.chunk = min(max(chunk[1], self._chunk_min), self._chunk_max)
        self._chunk_busy = chunk_busy
        self._mono = mono_ns
        self._cpu = cpu_ns
        self._turn = False  # a book was seen in this turn of the loop
        self._used = 0  # inline passes in this turn
        self._held = 0  # books of this turn not yet in a pass
        self._on = True
        self._window = (mono_ns(), cpu_ns())
        self.inline_total = 0  # books whose pass ran inline
        self.chunks_total = 0  # passes run for a chunk of a turn's books
        self.windows_off_total = 0  # windows in which no book ran inline (busy)

    def __call__(self) -> bool:
        if not self._turn:
            self._turn = True
            now = self._mono()
            if now - self._window[0] >= INLINE_WINDOW_NS:
                self._measure(now)
            self._loop.call_soon(self._reset)  # after this turn's I/O callbacks
        self._held += 1
        if self._on and self._used < self._limit:
            if not self._runner.run_now():
                return False
            self._used += 1
            self.inline_total += 1
        elif self._held >= self.chunk:
            if not self._runner.run_now():
                return False
            self.chunks_total += 1
        else:
            return False
        self._held = 0
        return True

    def _measure(self, now: int) -> None:
        t0, cpu0 = self._window
        cpu = self._cpu()
        busy = (cpu - cpu0) / (now - t0)
        self._on = busy < self._busy_max
        self.windows_off_total += not self._on
        self._window = (now, cpu)
        if busy > self._chunk_busy[1]:
            self.chunk = min(self.chunk * 2, self._chunk_max)
        elif busy < self._chunk_busy[0]:
            self.chunk = max(self.chunk // 2, self._chunk_min)

    def _reset(self) -> None:
        self._turn = False
        self._used = 0
        self._held = 0

    def busy(self) -> bool:
        """Whether the last window measured the thread busier than ``busy_max``."""
        return not self._on


class InputWaiting:
    """Whether a book waits for ingest's queued flush, or the venue's WS socket holds bytes the
    loop has not read yet (a zero-timeout ``poll``, ~1 µs): the runner's idle work waits while
    one does (its pass comes first). The socket is ingest's current connection
    (``IngestProc.input_fd``)."""

    def __init__(self) -> None:
        self.proc: IngestProc | None = None
        self._fd = -1
        self._poll = select.poll()

    def __call__(self) -> bool:
        proc = self.proc
        if proc is None:
            return False
        if proc.flush_pending:
            return True
        fd = proc.input_fd()
        if fd != self._fd:
            if self._fd >= 0:
                self._poll.unregister(self._fd)
            if fd >= 0:
                self._poll.register(fd, select.POLLIN)
            self._fd = fd
        return fd >= 0 and bool(self._poll.poll(0))


class JournalFlush:
    """Execution's deferred journal rows and order events (``procs.trading.sent``: SENT rows,
    acknowledgements, cancels), written at idle: one transaction for what a few orders and
    their venue answers left, after the frames waiting, instead of a transaction in a loop
    callback per write (~100-160 µs each, measured, that a frame arriving behind it waited
    for). At idle once the oldest is ``idle_ns`` old, after a pass once it is ``late_ns`` old;
    while ``busy()`` (a loop that is seldom idle runs its due jobs after each pass) only then.
    A transaction's fixed cost is most of it: written at every idle gap, or after every pass
    when busy, the rows of 10 k msg/s took 5-6 % of the thread (py-spy, 12 s at 500 Hz)."""

    name = "journal"

    def __init__(
        self,
        sent: SentAfterSend,
        late_ns: int = JOURNAL_LATE_NS,
        busy: Callable[[], bool] = lambda: False,
        idle_ns: int = JOURNAL_IDLE_NS,
    ) -> None:
        self._sent = sent
        self._late = late_ns
        self._idle = idle_ns
        self._busy = busy
        sent.flush_at_idle()

    def wanted(self, now_ns: int) -> int:
        if not self._sent.due:
            return NO
        age = now_ns - self._sent.since_ns
        if age >= self._late:
            return NOW
        return NO if age < self._idle or self._busy() else IDLE

    def run(self, now_ns: int) -> None:
        self._sent.flush()


def idle_jobs(
    gc_job: IdleGC,
    housekeeping: Callable[[], None],
    housekeeping_ns: int,
    services: Sequence[tuple[str, Callable[[], None]]],
    now_ns: int,
    journal: IdleJob | None = None,
) -> list[IdleJob]:
    """The runner's idle work: the collector's young and middle collections; execution's
    deferred journal rows (``JournalFlush``); its housekeeping every ``housekeeping_ns`` (at
    once after a pass once half a period late); each runtime's service as its own job every
    ``SERVICE_NS``, due together (run back to back: spread over the period, each cooled the
    caches of the pass after it, +50-80 µs p50)."""
    jobs: list[IdleJob] = [
        gc_job,
        *(() if journal is None else (journal,)),
        PeriodicJob(
            "housekeeping",
            housekeeping,
            housekeeping_ns,
            late_ns=housekeeping_ns // 2,
            start_ns=now_ns,
        ),
    ]
    for name, fn in services:
        jobs.append(
            PeriodicJob(f"service {name}", fn, SERVICE_NS, late_ns=SERVICE_LATE_NS, start_ns=now_ns)
        )
    return jobs


class Wakers:
    """Notify every waker: ingest's ``wake.md.`` on its PUB (for any reader outside; sent after
    the pass) and the loop runner that runs the stages."""

    def __init__(self, *wakers: Waker) -> None:
        self._wakers = wakers

    def notify(self) -> None:
        for w in self._wakers:
            w.notify()


@dataclass(frozen=True)
class Configs:
    ingest: IngestConfig
    features: FeaturesConfig
    inference: InferenceConfig
    execution: ExecutionConfig


def _runtimes(cfg: Configs, path: str | Path | None, stop: StopFlag) -> dict[str, Runtime]:
    """One Runtime per stage (its endpoints, metrics registry, health), one stop flag."""
    tables = {
        "ingest": cfg.ingest.runtime,
        "features": cfg.features.runtime,
        "inference": cfg.inference.runtime,
        "execution": cfg.execution.runtime,
    }
    out = {}
    for name in STAGES:
        table = tables[name]
        assert table is not None  # load_execution_config checked execution's
        out[name] = Runtime(name, table, CollectorRegistry(), config_path=path, stop=stop)
    return out


def _build(
    cfg: Configs,
    rts: dict[str, Runtime],
    loop: asyncio.AbstractEventLoop,
    argv: list[str] | None,
    closers: ExitStack,
    gc_job: IdleGC,
) -> tuple[LoopRunner, asyncio.Task[int]]:
    """The stages, by their programs' own builders, in data-flow order; ingest as a task."""
    rings = open_rings(cfg.ingest, closers)
    r = rts
    wakes = DeferredWakes(loop.call_soon)
    features = build_features(cfg.features, r["features"], r["features"].registry, wakes.wrap)
    closers.callback(features.close)
    inference = build_inference(
        cfg.inference, r["inference"], r["inference"].registry, closers, wakes.wrap
    )
    closers.callback(inference.close)
    execution = build_execution(
        cfg.execution, r["execution"], r["execution"].registry, loop, argv, closers
    )
    closers.callback(execution.close)
    execution.housekeeping_in_step = False  # at idle: idle_jobs
    flush = IngestFlush(r["ingest"])
    hot = HotPath(
        [
            flush,
            r["features"].adopt(features),
            r["inference"].adopt(inference),
            r["execution"].adopt(execution),
        ],
        wakes,
    )

    def watch_ingest() -> None:
        if ingest.done() and not r["execution"].stop.is_set:  # ingest ended on its own: a fault
            ingest.result()  # re-raises its error
            raise RuntimeError("ingest stopped on its own")
        if flush.proc is not None:  # ingest's watchdog and metrics, then its runtime's service
            flush.proc.tick()
            r["ingest"].service()

    def on_fault(exc: BaseException) -> None:
        for rt in r.values():
            rt.on_fault(exc)

    def busy() -> bool:
        return inline.busy()

    services = [("ingest", watch_ingest)] + [(n, r[n].service) for n in STAGES[1:]]
    waiting = InputWaiting()
    runner = LoopRunner(
        loop, hot, r["execution"].stop, timeout_s=cfg.execution.wake_timeout_s,
        service=None, on_fault=on_fault,
        idle=idle_jobs(
            gc_job, execution.housekeeping, int(cfg.execution.housekeeping_s * 1e9),
            services, time.monotonic_ns(),
            JournalFlush(execution.sent_later, busy=busy),
        ),
        input_waiting=waiting, busy=busy,
    )  # fmt: skip
    wake = Wakers(wakes.wrap(r["ingest"].wake_sender(WAKE_MD)), runner)
    inline = InlineBooks(loop, runner)

    def on_proc(proc: IngestProc | None) -> None:
        flush.set(proc)
        waiting.proc = proc
        if proc is not None:
            proc.on_book = inline
            proc.tick_in_run = False  # at idle: watch_ingest

    ingest = loop.create_task(
        serve(cfg.ingest, r["ingest"], r["ingest"].registry, rings, wake, on_proc)
    )
    return runner, ingest


def _run(
    runner: LoopRunner,
    ingest: asyncio.Task[int],
    rts: dict[str, Runtime],
    loop: asyncio.AbstractEventLoop,
    gc_job: IdleGC,
) -> int:
    gc.collect()
    gc.freeze()  # start-up objects leave the collector's generations: shorter pauses
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GC_FULL_AFTER)
    gc_job.install()  # the collections at idle, not inside a pass
    log.info("hosting stages=%s", ",".join(STAGES))
    try:
        code = runner.run()
    finally:
        gc_job.uninstall()
    log.info(
        "idle work: jobs=%d deferred_for_input=%d gc_by_generation=%s gc_forced=%d",
        runner.idle_runs_total, runner.idle_deferred_total, gc_job.collections_total,
        gc_job.forced_total,
    )  # fmt: skip
    rts["execution"].stop.set("host stopped")
    try:  # ingest sees the stop within its service period: it closes the WS, flushes
        loop.run_until_complete(asyncio.wait_for(ingest, STOP_INGEST_S))
    except Exception:  # a fault the runner already reported, or a late one
        log.exception("ingest stopped with an error")
        code = EXIT_FAULT
    for name in STAGES[1:]:
        rts[name].service()  # the registries end with the final counts
    return code


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until execution's reload handler is in place
    try:
        cfg = Configs(
            load_section(argv, "ingest", IngestConfig),
            load_section(argv, "features", FeaturesConfig),
            load_section(argv, "inference", InferenceConfig),
            load_execution_config(argv),
        )
    except SystemExit as exc:
        return int(exc.code or 0)
    rts = _runtimes(cfg, config_file(argv), StopFlag())
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    with ExitStack() as stack:
        stack.callback(loop.close)
        for rt in rts.values():
            stack.callback(rt.close)
        host = rts["execution"]
        host.start()  # the process: pinning, scheduling class, signals (execution's table)
        setup_logging(NAME, host.config.log_level)
        for name in STAGES[:-1]:
            rts[name].start_endpoints()
        closers = stack.enter_context(ExitStack())  # the stages: closed after ingest stopped
        gc_job = IdleGC()
        try:
            runner, ingest = _build(cfg, rts, loop, argv, closers, gc_job)
        except SystemExit as exc:
            return EXIT_FAULT if exc.code == EXIT_FAULT else int(exc.code or 0)
        return _run(runner, ingest, rts, loop, gc_job)


if __name__ == "__main__":
    sys.exit(main())
