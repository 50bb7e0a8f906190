"""Run a step-loop stage inside an asyncio loop, on the loop's own thread, in one
``run_forever``: a pass of ``step()`` whenever a wake-up or a timer asks for one.

``LoopRunner`` is the waiting strategy of a process whose I/O lives on an asyncio loop
(execution's venue calls; procs.hotpath: ingest's WS client too). Re-entering the loop for
every idle wait (``run_forever`` per pass, as ``procs.trading.compose.LoopWaiter`` does for
in-process sessions) costs uvloop a socket pair and a ``set_wakeup_fd`` per run (signal
set-up, ~20-25 µs each, measured), and the wake-up has to unwind the loop before the stage
runs; here the stage runs from a loop callback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from procs._idle import NO, NOW, IdleJob
from procs._runtime import EXIT_FAULT, EXIT_OK, SERVICE_S, Stage, StopFlag

__all__ = ["LoopRunner", "WakeSource"]

log = logging.getLogger(__name__)

SERVICE_NS: Final = int(SERVICE_S * 1e9)
IDLE_SCAN_NS: Final = 1_000_000  # idle jobs are asked after a pass at most this often


class WakeSource(Protocol):
    """What ``watch`` needs of ``ipc.sockets.WakeListener``."""

    @property
    def fds(self) -> list[int]: ...

    def wait(self, timeout_s: float) -> bool: ...

    def close(self) -> None: ...


class LoopRunner:
    """Calls ``stage.step()`` from loop callbacks until ``stop`` is set; returns the exit code.

    ``notify`` (same thread; a ``Waker``) queues a pass; a pass that did work queues the next
    one, so the loop's I/O callbacks run between passes and a burst is drained in bounded
    steps. A timer queues a pass every ``timeout_s`` too (the bound on a lost wake-up, the stop
    flag's and the service's latency). ``service`` (if any) runs after a pass at most every
    ``SERVICE_S``. A step that raises ends the loop with EXIT_FAULT (``on_fault`` first).

    ``idle`` jobs (``procs._idle``): after a pass (at most every ``idle_scan_ns``), a job past
    its bound runs at once; the other due ones run later, back to back from one loop callback
    queued after the pass's own, each only while ``input_waiting()`` is false (a frame in the
    socket is handled first; its pass asks again). While ``busy()`` (the thread has no CPU to
    spare) every due job runs after the pass, as a loop without idle jobs would run it. A job
    that raises is a fault like a step.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stage: Stage,
        stop: StopFlag,
        *,
        timeout_s: float,
        service: Callable[[], None] | None,
        on_fault: Callable[[BaseException], None],
        idle: Sequence[IdleJob] = (),
        input_waiting: Callable[[], bool] | None = None,
        idle_scan_ns: int = IDLE_SCAN_NS,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self._loop = loop
        self._stage = stage
        self._stop = stop
        self._timeout_s = timeout_s
        self._service = service
        self._on_fault = on_fault
        self._queued = False
        self._ended = False
        self._in_pass = False
        self._due_ns = 0
        self._code = EXIT_OK
        self._sources: list[WakeSource] = []
        self._idle = tuple(idle)
        self._input_waiting = input_waiting
        self._idle_queued = False
        self._idle_next = 0  # round robin: the job asked first at the next idle turn
        self._idle_scan_ns = idle_scan_ns
        self._busy = busy
        self._scan_due_ns = 0
        self.passes_total = 0
        self.idle_runs_total = 0  # jobs run at idle
        self.idle_deferred_total = 0  # idle turns skipped: input was waiting

    def notify(self) -> None:
        """Queue a pass (once, however often it is called before the pass runs)."""
        if not self._queued:
            self._queued = True
            self._loop.call_soon(self._pass)

    def watch(self, source: WakeSource) -> None:
        """Queue a pass on each of ``source``'s wake-ups (its descriptors on the loop)."""
        self._sources.append(source)
        for fd in source.fds:
            self._loop.add_reader(fd, self._on_ready, source)
        self._on_ready(source)  # zmq's descriptor is edge-triggered: drain (re-arms) once now

    def _on_ready(self, source: WakeSource) -> None:
        if source.wait(0):  # drains every queued wake-up, re-arms
            self.notify()

    def _tick(self) -> None:
        self.notify()
        if not self._ended:
            self._loop.call_later(self._timeout_s, self._tick)

    def _end(self) -> None:
        # once: a second loop.stop() queued after the first took effect would stop the loop's
        # next run (the stage's close runs the loop to finish its venue calls) before it is done
        if not self._ended:
            self._ended = True
            self._loop.stop()

    def run_now(self) -> bool:
        """Run a pass at once, on the caller's stack (the loop's thread, inside a callback): a
        producer on this loop (procs.hotpath's ingest) hands its record to the stage with no
        turn of the loop's queue between. False (nothing run) inside a pass or after the end.
        A pass already queued still runs (and finds less to do)."""
        if self._ended or self._in_pass:
            return False
        self._run_pass()
        return True

    def _pass(self) -> None:
        self._queued = False
        if self._ended:
            return
        self._run_pass()

    def _run_pass(self) -> None:
        self.passes_total += 1
        self._in_pass = True
        try:
            if self._stage.step():
                self.notify()
            now = time.monotonic_ns()
            if self._service is not None and now >= self._due_ns:
                self._due_ns = now + SERVICE_NS
                self._service()
            if self._idle:
                self._after_pass(now)
        except Exception as exc:  # the one broad catch: crash, don't limp
            self._fault(exc)
            return
        finally:
            self._in_pass = False
        if self._stop.is_set:
            log.info("stopping (%s)", self._stop.reason)
            self._end()

    def _fault(self, exc: Exception) -> None:
        log.error("stopping (fault) stage=%s", self._stage.name, exc_info=exc)
        self._on_fault(exc)
        self._code = EXIT_FAULT
        self._end()

    def _after_pass(self, now: int) -> None:
        if now < self._scan_due_ns:  # 10 k msg/s runs thousands of passes a second
            return
        self._scan_due_ns = now + self._idle_scan_ns
        # a busy loop is seldom idle: waiting would only make the jobs later and longer
        urgent = self._busy is not None and self._busy()
        due = False
        for job in self._idle:
            want = job.wanted(now)
            if want == NOW or (urgent and want != NO):
                job.run(now)
            elif want != NO:
                due = True
        if due and not self._idle_queued:
            self._idle_queued = True
            self._loop.call_soon(self._on_idle)

    def _on_idle(self) -> None:
        # a loop callback: the frames of the read that ran the pass have been handled, and the
        # pass's own callbacks (its orders' send tasks) ran first. The due jobs run back to
        # back (one cache-cold stretch instead of one per job before as many passes), with a
        # look at the input before each: a waiting frame stops the run, its pass asks again
        self._idle_queued = False
        if self._ended or self._queued:  # a pass is queued: it asks again after it ran
            return
        jobs = self._idle
        n = len(jobs)
        start = self._idle_next
        for i in range(n):
            k = (start + i) % n
            job = jobs[k]
            now = time.monotonic_ns()
            if job.wanted(now) == NO:
                continue
            if self._input_waiting is not None and self._input_waiting():
                self._idle_next = k  # this one first next time
                self.idle_deferred_total += 1
                return
            try:
                job.run(now)
            except Exception as exc:  # as in a pass: crash, don't limp
                self._fault(exc)
                return
            self.idle_runs_total += 1
            if self._stop.is_set:  # a control request to stop, say
                log.info("stopping (%s)", self._stop.reason)
                self._end()
                return
        self._idle_next = (start + 1) % n

    def run(self) -> int:
        """Run the loop until stopped or faulted; the stage is closed by its owner."""
        log.info("running stage=%s pid=%d", self._stage.name, os.getpid())
        self._tick()
        try:
            self._loop.run_forever()
        finally:
            for source in self._sources:
                for fd in source.fds:
                    self._loop.remove_reader(fd)
                source.close()
            self._sources = []
        return self._code
