"""``LoopWaiter`` watching a ``WakeListener`` on the event loop (no wake-up thread)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
import uvloop

from ipc.sockets import WakeListener, WakeSender, bind_pub
from procs.trading.compose import LoopWaiter
from tests.helpers.poll import eventually

TOPIC = b"wake.sig."


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


class PipeSource:
    """A wake source on a pipe: one byte is one wake-up (level-triggered)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.closed = False
        self.waits = 0

    @property
    def fds(self) -> list[int]:
        return [self.r]

    def wait(self, timeout_s: float) -> bool:
        self.waits += 1
        try:
            return bool(os.read(self.r, 64))
        except BlockingIOError:
            return False

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def source() -> Iterator[PipeSource]:
    s = PipeSource()
    yield s
    s.release()


def _idle_timed(waiter: LoopWaiter) -> float:
    t0 = time.monotonic()
    waiter.idle()
    return time.monotonic() - t0


def test_loop_waiter_watched_direct_wake_ends_idle_early(loop, run_dir):
    endpoint = f"ipc://{run_dir}/inf.pub"
    pub = bind_pub(endpoint)
    waiter = LoopWaiter(loop, timeout_s=5.0)
    waiter.watch(WakeListener(endpoint, TOPIC))
    sender = WakeSender(pub, TOPIC)
    try:
        for _ in range(3):  # every wake-up, not only the first
            before = waiter.wakes_total
            sender.notify()
            elapsed = _idle_timed(waiter)
            assert elapsed < 2.0
            assert waiter.wakes_total == before + 1
    finally:
        waiter.close()
        pub.close()


def test_loop_waiter_watched_zmq_only_wakes_each_time(loop, ns):
    # inproc: no direct socket, only zmq's edge-triggered descriptor; each wake must re-arm it
    endpoint = f"inproc://{ns}"
    pub = bind_pub(endpoint)
    listener = WakeListener(endpoint, TOPIC)
    assert listener.direct is False
    waiter = LoopWaiter(loop, timeout_s=0.01)
    waiter.watch(listener)

    def probe() -> bool:  # the PUB drops until the subscription has propagated
        pub.send(TOPIC, b"")
        waiter.idle()
        return waiter.wakes_total > 0

    try:
        eventually(probe, timeout_s=5)
        waiter._timeout_s = 5.0  # from here a lost wake-up would show as a 5 s idle
        for _ in range(3):
            before = waiter.wakes_total
            pub.send(TOPIC, b"")
            elapsed = _idle_timed(waiter)
            assert elapsed < 2.0
            assert waiter.wakes_total == before + 1
        waiter.close()
    finally:
        pub.close()


def test_loop_waiter_without_wake_returns_after_timeout(loop, source):
    waiter = LoopWaiter(loop, timeout_s=0.02)
    waiter.watch(source)
    try:
        elapsed = _idle_timed(waiter)
    finally:
        waiter.close()

    assert 0.015 <= elapsed < 2.0
    assert waiter.wakes_total == 0


def test_loop_waiter_wake_queued_before_watch_is_not_lost(loop, source):
    os.write(source.w, b"x")
    waiter = LoopWaiter(loop, timeout_s=5.0)
    waiter.watch(source)  # drains once at once: the wake-up is noted
    try:
        elapsed = _idle_timed(waiter)
    finally:
        waiter.close()

    assert elapsed < 2.0
    assert waiter.wakes_total == 1


def test_loop_waiter_wake_during_reset_ends_next_idle_at_once(loop, source):
    waiter = LoopWaiter(loop, timeout_s=5.0)
    waiter.watch(source)
    try:
        os.write(source.w, b"x")
        waiter.reset()  # the loop's pass reads the wake-up; it must not stop the pass itself
        elapsed = _idle_timed(waiter)
    finally:
        waiter.close()

    assert elapsed < 2.0
    assert waiter.wakes_total == 1


def test_loop_waiter_close_removes_readers_and_closes_source(loop, source):
    waiter = LoopWaiter(loop, timeout_s=0.01)
    waiter.watch(source)

    waiter.close()
    waiter.close()  # idempotent
    waits = source.waits
    os.write(source.w, b"x")
    loop.run_until_complete(asyncio.sleep(0.02))  # a registered reader would fire here

    assert source.closed is True
    assert source.waits == waits
    assert waiter.wakes_total == 0


def test_loop_waiter_idle_runs_loop_callbacks_until_woken(loop, source):
    waiter = LoopWaiter(loop, timeout_s=5.0)
    waiter.watch(source)
    seen: list[int] = []
    loop.call_soon(seen.append, 1)
    loop.call_later(0.01, os.write, source.w, b"x")
    try:
        elapsed = _idle_timed(waiter)
    finally:
        waiter.close()

    assert seen == [1]
    assert elapsed < 2.0


def test_loop_waiter_wake_in_the_stopping_pass_leaves_loop_usable(loop, source):
    # a second wake-up read in the loop's last pass (after the first one's stop took effect)
    # must not leave a stop queued for the next run of the loop
    waiter = LoopWaiter(loop, timeout_s=5.0)
    waiter.watch(source)
    wait = source.wait

    def wait_then_wake_again(timeout_s: float) -> bool:
        got = wait(timeout_s)
        if got and waiter.wakes_total % 2 == 0:  # the next wake-up, one loop pass later
            loop.call_soon(os.write, source.w, b"y")
        return got

    source.wait = wait_then_wake_again  # type: ignore[method-assign]
    try:
        for _ in range(3):
            os.write(source.w, b"x")
            waiter.idle()
            waiter.reset()  # a queued stop would end this pass before it completes
    finally:
        waiter.close()

    assert waiter.wakes_total == 6
