"""Work a hot loop owes but no tick waits for, done when the loop has nothing else to do.

``procs._looprun.LoopRunner`` asks its ``IdleJob``s after every pass: a job that has waited past
its bound runs at once (after the pass: its orders have left); the others run later, one per
turn of the loop, while no input is waiting. Two kinds:

- ``PeriodicJob``: a callable due every ``period_ns`` (a runtime's service: counters to
  Prometheus, heartbeat, control requests), run at idle, at once once ``late_ns`` overdue.
- ``IdleGC``: the cyclic garbage collector's young and middle collections. CPython runs a
  collection inside whichever allocation crosses the threshold, which on a hot path is inside a
  pass, between a tick and its order (84 µs p50 young, 225 µs middle in procs.hotpath at 1 k
  msg/s, docs/benchmarks.md). ``install`` turns the automatic collector off; the job collects
  the same generations at the same counts, at idle, and at once after a pass when the
  allocations since the last collection pass a hard bound (``hard_factor`` times the young
  threshold): memory stays bounded when the loop is never idle. (CPython's extra condition on
  a full collection, a quarter of the long-lived objects new, is not readable: not applied.)
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["IDLE", "NO", "NOW", "IdleGC", "IdleJob", "PeriodicJob"]

NO: Final = 0  # nothing to do
IDLE: Final = 1  # due: run when the loop is idle
NOW: Final = 2  # past its bound: run after this pass, idle or not

# young threshold times this: collect after the pass, idle or not. A young collection walks the
# gen-0 objects still alive, so a larger bound would mean rarer but longer pauses in a busy loop
GC_HARD_FACTOR: Final = 2


class IdleJob(Protocol):
    name: str

    def wanted(self, now_ns: int) -> int:
        """NO, IDLE or NOW (a cheap check: called after every pass)."""
        ...

    def run(self, now_ns: int) -> None: ...


class PeriodicJob:
    """``fn`` every ``period_ns``, first due ``offset_ns`` after ``start_ns`` (jobs of one
    period staggered by their offsets run in separate turns of the loop, not back to back)."""

    def __init__(
        self,
        name: str,
        fn: Callable[[], None],
        period_ns: int,
        *,
        late_ns: int,
        start_ns: int,
        offset_ns: int = 0,
    ) -> None:
        self.name = name
        self._fn = fn
        self._period = period_ns
        self._late = late_ns
        self.due_ns = start_ns + offset_ns
        self.runs_total = 0
        self.late_total = 0  # runs that waited past late_ns (ran after a pass, not at idle)

    def wanted(self, now_ns: int) -> int:
        if now_ns < self.due_ns:
            return NO
        return NOW if now_ns >= self.due_ns + self._late else IDLE

    def run(self, now_ns: int) -> None:
        self.late_total += now_ns >= self.due_ns + self._late
        self.runs_total += 1
        self.due_ns = now_ns + self._period
        self._fn()


class IdleGC:
    """The young and middle (and, as rarely as configured, full) collections at idle.

    ``install`` reads the thresholds the process set (``gc.set_threshold``) and disables the
    automatic collector; the generation to collect is chosen as CPython does (the oldest whose
    count passed its threshold), so collections are as frequent as before, only moved.
    ``uninstall`` gives the process its automatic collector back."""

    name = "gc"

    def __init__(
        self,
        hard_factor: int = GC_HARD_FACTOR,
        *,
        get_count: Callable[[], tuple[int, int, int]] = gc.get_count,
        collect: Callable[[int], int] = gc.collect,
    ) -> None:
        self._hard_factor = hard_factor
        self._count = get_count
        self._collect = collect
        self._thresholds = (700, 10, 10)
        self._young = 700
        self._hard = 700 * hard_factor
        self.collections_total = [0, 0, 0]  # by generation
        self.forced_total = 0  # run after a pass at the hard bound, not at idle

    def install(self) -> None:
        t0, t1, t2 = gc.get_threshold()
        self.set_thresholds(t0, t1, t2)
        gc.disable()

    def uninstall(self) -> None:
        gc.enable()

    def set_thresholds(self, young: int, middle: int, full: int) -> None:
        young = max(young, 1)
        self._thresholds = (young, middle, full)
        self._young = young
        self._hard = young * self._hard_factor

    def wanted(self, now_ns: int) -> int:
        n = self._count()[0]
        if n < self._young:
            return NO
        return NOW if n >= self._hard else IDLE

    def run(self, now_ns: int) -> None:
        counts = self._count()
        self.forced_total += counts[0] >= self._hard
        _, t1, t2 = self._thresholds
        gen = 0  # as CPython picks: the oldest generation whose count passed its threshold
        if counts[1] > t1:
            gen = 2 if counts[2] > t2 else 1
        self.collections_total[gen] += 1
        self._collect(gen)
