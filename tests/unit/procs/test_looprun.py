"""``LoopRunner``: a stage stepped from loop callbacks inside one ``run_forever``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import uvloop

from procs._looprun import LoopRunner
from procs._runtime import EXIT_FAULT, EXIT_OK, StopFlag


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


class Stage:
    """Has ``work`` items; one per step; stops the flag when done, or raises at ``fail_at``."""

    name = "fake"

    def __init__(self, stop: StopFlag, work: int, fail_at: int = -1) -> None:
        self.stop, self.work, self.fail_at = stop, work, fail_at
        self.steps = 0
        self.closed = False

    def step(self) -> int:
        self.steps += 1
        if self.steps == self.fail_at:
            raise ValueError("boom")
        if self.work:
            self.work -= 1
            return 1
        self.stop.set("done")
        return 0

    def close(self) -> None:
        self.closed = True


class PipeSource:
    """A wake source on a pipe: one byte is one wake-up."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.closed = False

    @property
    def fds(self) -> list[int]:
        return [self.r]

    def wait(self, timeout_s: float) -> bool:
        try:
            return bool(os.read(self.r, 64))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)
        self.closed = True


def runner(loop, stage, stop, services=None, faults=None, timeout_s=10.0):
    return LoopRunner(
        loop, stage, stop, timeout_s=timeout_s,
        service=lambda: services.append(1) if services is not None else None,
        on_fault=lambda exc: faults.append(exc) if faults is not None else None,
    )  # fmt: skip


def test_work_is_drained_in_passes_then_the_stop_ends_the_loop_once(loop):
    stop = StopFlag()
    stage = Stage(stop, work=5)
    services: list[int] = []
    r = runner(loop, stage, stop, services)

    assert r.run() == EXIT_OK

    assert stage.work == 0
    assert stage.steps == 6  # 5 busy passes, each queuing the next, then the idle one
    assert services  # the service ran after a pass
    assert not stage.closed  # the owner closes the stage
    # one loop.stop(): a later run of the loop (the stage's close does one) completes
    assert loop.run_until_complete(asyncio.sleep(0.01, "after")) == "after"


def test_a_fault_ends_the_loop_with_exit_fault(loop):
    stop = StopFlag()
    stage = Stage(stop, work=10, fail_at=3)
    faults: list[BaseException] = []

    assert runner(loop, stage, stop, faults=faults).run() == EXIT_FAULT

    assert [type(e) for e in faults] == [ValueError]
    assert stage.steps == 3
    assert loop.run_until_complete(asyncio.sleep(0.01, "after")) == "after"


def test_a_wake_up_queues_one_pass_and_the_source_is_closed_at_the_end(loop):
    stop = StopFlag()
    stage = Stage(stop, work=0)
    stage.step = lambda: 0  # type: ignore[method-assign]  # idle: only wake-ups cause passes
    src = PipeSource()
    r = runner(loop, stage, stop, timeout_s=10.0)  # no timer pass within the test
    r.watch(src)
    first = r.passes_total

    def wake_then_stop() -> None:
        os.write(src.w, b"xx")  # two wake-ups before the loop reads them: one pass
        loop.call_later(0.05, lambda: (stop.set("test"), r.notify()))

    loop.call_soon(wake_then_stop)
    assert r.run() == EXIT_OK

    assert r.passes_total - first == 3  # the timer's first pass, the wake-up's, the stop's
    assert src.closed


def test_run_now_runs_a_pass_on_the_callers_stack_and_not_inside_a_pass(loop):
    stop = StopFlag()
    stage = Stage(stop, work=3)
    r = runner(loop, stage, stop)
    nested: list[bool] = []
    inner = stage.step

    def step() -> int:
        nested.append(r.run_now())  # from inside a pass: refused, nothing re-entered
        return inner()

    stage.step = step  # type: ignore[method-assign]

    assert r.run_now() is True  # no loop running: the pass ran here, at once

    assert (stage.steps, stage.work, nested) == (1, 2, [False])
    assert r.passes_total == 1
    assert r.run() == EXIT_OK  # the pass queued by the busy one, and the rest, drain as before
    assert stage.work == 0
    assert r.run_now() is False  # ended: nothing runs
    assert stage.steps == 4


def test_a_fault_in_run_now_ends_the_loop_like_a_queued_pass(loop):
    stop = StopFlag()
    stage = Stage(stop, work=10, fail_at=1)
    faults: list[BaseException] = []
    r = runner(loop, stage, stop, faults=faults)

    assert r.run_now() is True  # the pass ran and faulted; the caller is not raised into

    assert [type(e) for e in faults] == [ValueError]
    assert r.run() == EXIT_FAULT
    assert stage.steps == 1
