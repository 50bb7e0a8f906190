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
from collections.abc import Callable
from typing import Final, Protocol

from procs._runtime import EXIT_FAULT, EXIT_OK, SERVICE_S, Stage, StopFlag

__all__ = ["LoopRunner", "WakeSource"]

log = logging.getLogger(__name__)

SERVICE_NS: Final = int(SERVICE_S * 1e9)


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
    flag's and the service's latency). ``service`` runs after a pass at most every
    ``SERVICE_S``. A step that raises ends the loop with EXIT_FAULT (``on_fault`` first).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stage: Stage,
        stop: StopFlag,
        *,
        timeout_s: float,
        service: Callable[[], None],
        on_fault: Callable[[BaseException], None],
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
        self.passes_total = 0

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
            if (now := time.monotonic_ns()) >= self._due_ns:
                self._due_ns = now + SERVICE_NS
                self._service()
        except Exception as exc:  # the one broad catch: crash, don't limp
            log.exception("stopping (fault) stage=%s", self._stage.name)
            self._on_fault(exc)
            self._code = EXIT_FAULT
            self._end()
            return
        finally:
            self._in_pass = False
        if self._stop.is_set:
            log.info("stopping (%s)", self._stop.reason)
            self._end()

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
