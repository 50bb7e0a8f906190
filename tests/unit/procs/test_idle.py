"""procs._idle: the idle jobs (a periodic job, the collector at idle) and how ``LoopRunner`` runs
them (after a pass when past their bound, otherwise one a turn of the loop while no input
waits)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

import pytest
import uvloop

from procs._idle import IDLE, NO, NOW, IdleGC, PeriodicJob
from procs._looprun import LoopRunner
from procs._runtime import EXIT_FAULT, EXIT_OK, StopFlag


def test_a_periodic_job_is_due_at_idle_then_at_once_past_its_bound():
    ran: list[int] = []
    job = PeriodicJob("svc", lambda: ran.append(1), 10, late_ns=40, start_ns=100, offset_ns=5)

    assert job.wanted(104) == NO
    assert job.wanted(105) == IDLE
    assert job.wanted(144) == IDLE
    assert job.wanted(145) == NOW

    job.run(150)  # late: counted
    assert (ran, job.runs_total, job.late_total) == ([1], 1, 1)
    assert job.wanted(159) == NO  # due a period after it ran, not after it was due
    assert job.wanted(160) == IDLE
    job.run(160)
    assert job.late_total == 1


class FakeGc:
    """gc.get_count and gc.collect over counts the test sets, with CPython's bookkeeping: a
    collection of generation g zeroes the counts up to g and adds one to g + 1's."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.collected: list[int] = []

    def get_count(self) -> tuple[int, int, int]:
        return self.counts[0], self.counts[1], self.counts[2]

    def collect(self, gen: int) -> int:
        self.collected.append(gen)
        for g in range(gen + 1):
            self.counts[g] = 0
        if gen < 2:
            self.counts[gen + 1] += 1
        return 0


def _idle_gc(young=100, middle=2, full=3, hard_factor=4):
    fake = FakeGc()
    job = IdleGC(hard_factor, get_count=fake.get_count, collect=fake.collect)
    job.set_thresholds(young, middle, full)
    return job, fake


def test_the_idle_collector_waits_for_the_young_threshold_and_forces_at_the_hard_bound():
    job, fake = _idle_gc(young=100, hard_factor=4)

    fake.counts[0] = 99
    assert job.wanted(0) == NO
    fake.counts[0] = 100
    assert job.wanted(0) == IDLE  # collected when the loop is idle
    fake.counts[0] = 399
    assert job.wanted(0) == IDLE
    fake.counts[0] = 400
    assert job.wanted(0) == NOW  # allocations past the hard bound: after this pass

    job.run(0)
    assert fake.collected == [0]
    assert job.forced_total == 1
    assert job.wanted(0) == NO  # the collection zeroed the young count


def test_the_idle_collector_picks_generations_as_cpython_does():
    job, fake = _idle_gc(young=10, middle=2, full=3)

    for _ in range(40):
        fake.counts[0] = 10
        job.run(0)

    # a middle collection in place of a young one once the young ones since the last middle
    # one passed 2 (every 4th), a full one in place of a middle one once the middle ones since
    # the last full one passed 3 (every 5th): 20 collections a cycle
    cycle = [0, 0, 0, 1] * 4 + [0, 0, 0, 2]
    assert fake.collected == cycle * 2
    assert job.collections_total == [30, 8, 2]
    assert job.forced_total == 0


def test_install_turns_the_automatic_collector_off_with_the_process_thresholds():
    before = gc.get_threshold()
    job = IdleGC()
    try:
        gc.set_threshold(500, 7, 42)
        job.install()
        assert not gc.isenabled()
        gc.collect()
        assert job.wanted(0) == NO  # nothing allocated since
        junk = [[] for _ in range(600)]  # tracked objects: the young count passes 500
        assert job.wanted(0) == IDLE
        job.run(0)  # a real young collection
        assert job.collections_total == [1, 0, 0]
        assert job.wanted(0) == NO
        del junk
    finally:
        job.uninstall()
        gc.set_threshold(*before)
    assert gc.isenabled()


# -- LoopRunner with idle jobs ------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


class Job:
    """Due (IDLE) while ``due`` is positive, NOW when ``now`` is set; each run takes one."""

    def __init__(self, name: str, log: list[str], due: int = 0) -> None:
        self.name, self.log, self.due, self.now = name, log, due, False

    def wanted(self, now_ns: int) -> int:
        if self.now:
            return NOW
        return IDLE if self.due > 0 else NO

    def run(self, now_ns: int) -> None:
        self.log.append(f"run {self.name}")
        self.due -= 1
        self.now = False


class LogStage:
    name = "fake"

    def __init__(self, log: list[str], work: int = 0) -> None:
        self.log, self.work = log, work

    def step(self) -> int:
        self.log.append("pass")
        if self.work:
            self.work -= 1
            return 1
        return 0

    def close(self) -> None:
        pass


def _runner(loop, stage, stop, jobs, waiting=None):
    return LoopRunner(
        loop, stage, stop, timeout_s=10.0, service=None, on_fault=lambda exc: None,
        idle=jobs, input_waiting=waiting, idle_scan_ns=0,
    )  # fmt: skip


def test_due_jobs_run_back_to_back_after_the_passes_and_stop_for_waiting_input(loop):
    import select

    log: list[str] = []
    stop = StopFlag()
    a, b = Job("a", log, due=2), Job("b", log, due=1)
    rd, wr = os.pipe()
    os.set_blocking(rd, False)
    poll = select.poll()
    poll.register(rd, select.POLLIN)
    r = _runner(loop, LogStage(log, work=2), stop, [a, b], waiting=lambda: bool(poll.poll(0)))

    def on_input() -> None:  # a frame: read, then its pass
        os.read(rd, 8)
        log.append("input")
        r.notify()

    loop.add_reader(rd, on_input)
    orig = a.run

    def run_a(now_ns: int) -> None:
        orig(now_ns)
        if a.due == 1:
            os.write(wr, b"x")  # a frame arrives while the first job runs

    a.run = run_a  # type: ignore[method-assign]
    loop.call_later(0.05, lambda: (stop.set("test"), r.notify()))
    try:
        assert r.run() == EXIT_OK
    finally:
        loop.remove_reader(rd)
        os.close(rd)
        os.close(wr)

    # the busy passes first (each queues the next: a queued pass goes before idle work); then
    # the due jobs back to back until input waits; the input's pass; the rest, from where it
    # stopped
    assert log[:3] == ["pass", "pass", "pass"]
    assert log[3:8] == ["run a", "input", "pass", "run b", "run a"]
    assert (r.idle_runs_total, r.idle_deferred_total) == (3, 1)


def test_a_job_past_its_bound_runs_after_the_pass_even_while_input_waits(loop):
    log: list[str] = []
    stop = StopFlag()
    job = Job("gc", log, due=1)
    waiting = [True]
    r = _runner(loop, LogStage(log), stop, [job], waiting=lambda: waiting[0])

    def later() -> None:
        assert log == ["pass"]  # the timer's pass; the idle turn found input waiting
        assert r.idle_deferred_total == 1
        job.now = True
        r.notify()
        loop.call_soon(lambda: (stop.set("test"), r.notify()))

    loop.call_later(0.02, later)
    assert r.run() == EXIT_OK

    assert log[:3] == ["pass", "pass", "run gc"]  # after the second pass, in it


def test_a_job_that_raises_ends_the_loop_with_exit_fault(loop):
    stop = StopFlag()
    faults: list[BaseException] = []

    def boom() -> None:
        raise RuntimeError("ingest stopped on its own")

    job = PeriodicJob("svc", boom, 1, late_ns=10**12, start_ns=0)
    r = LoopRunner(
        loop, LogStage([]), stop, timeout_s=10.0, service=None, on_fault=faults.append,
        idle=[job],
    )  # fmt: skip

    assert r.run() == EXIT_FAULT  # no stop needed: the fault ends the loop
    assert [str(e) for e in faults] == ["ingest stopped on its own"]


def test_a_stop_set_by_an_idle_job_ends_the_loop(loop):
    stop = StopFlag()
    job = PeriodicJob("control", lambda: stop.set("control stop"), 1, late_ns=10**12, start_ns=0)
    r = _runner(loop, LogStage([]), stop, [job])

    assert r.run() == EXIT_OK
    assert stop.reason == "control stop"
    assert job.runs_total == 1


def test_jobs_are_asked_after_a_pass_at_most_once_per_scan_period(loop):
    log: list[str] = []
    job = Job("gc", log)
    asked: list[int] = []
    inner = job.wanted

    def wanted(now_ns: int) -> int:
        asked.append(now_ns)
        return inner(now_ns)

    job.wanted = wanted  # type: ignore[method-assign]
    r = LoopRunner(
        loop, LogStage(log), StopFlag(), timeout_s=10.0, service=None,
        on_fault=lambda exc: None, idle=[job], idle_scan_ns=1000,
    )  # fmt: skip

    r._after_pass(5000)
    job.now = True
    r._after_pass(5999)  # inside the scan period: not asked, not run
    assert (asked, log) == ([5000], [])
    r._after_pass(6000)
    assert (asked, log) == ([5000, 6000], ["run gc"])


def test_a_busy_loop_runs_every_due_job_after_the_pass(loop):
    log: list[str] = []
    job = Job("service", log, due=1)
    busy = [True]
    r = LoopRunner(
        loop, LogStage(log), StopFlag(), timeout_s=10.0, service=None,
        on_fault=lambda exc: None, idle=[job], idle_scan_ns=0, busy=lambda: busy[0],
    )  # fmt: skip

    r._after_pass(0)  # due at idle, but the thread has no CPU to spare: now
    assert log == ["run service"]
    job.due = 1
    busy[0] = False
    r._after_pass(1)  # not busy: left for an idle turn of the loop
    assert log == ["run service"]
