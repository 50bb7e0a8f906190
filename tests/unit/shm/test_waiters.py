"""Unit tests for shm.waiters: backoff schedule, hybrid spin window, the factory."""

from __future__ import annotations

import ctypes
import threading

import pytest

import shm.waiters as waiters
from shm.waiters import (
    BlockWaiter,
    HybridWaiter,
    SpinWaiter,
    make_waiter,
    sched_slice_ns,
    set_sched_slice,
    set_timer_slack,
)


class FakeNotifier:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.timeouts: list[float] = []

    def wait(self, timeout_s: float) -> bool:
        self.timeouts.append(timeout_s)
        return self.answers.pop(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_block_waiter_sleeps_double_up_to_max_and_reset_restarts():
    slept: list[float] = []
    w = BlockWaiter(min_sleep_s=1e-4, max_sleep_s=5e-4, timer_slack_ns=None, sleep=slept.append)

    for _ in range(5):
        w.idle()
    w.reset()
    w.idle()

    assert slept == [1e-4, 2e-4, 4e-4, 5e-4, 5e-4, 1e-4]


def test_block_waiter_yields_before_sleeping(monkeypatch):
    slept: list[float] = []
    yields: list[int] = []
    monkeypatch.setattr("os.sched_yield", lambda: yields.append(1))
    w = BlockWaiter(yields=2, timer_slack_ns=None, sleep=slept.append)

    for _ in range(3):
        w.idle()

    assert len(yields) == 2
    assert slept == [50e-6]


@pytest.mark.parametrize(
    "kwargs",
    [{"min_sleep_s": 0.0}, {"min_sleep_s": 2e-3, "max_sleep_s": 1e-3}, {"yields": -1}],
)
def test_block_waiter_bad_parameters_rejected(kwargs):
    with pytest.raises(ValueError, match="was"):
        BlockWaiter(**kwargs)


def test_block_waiter_sets_timer_slack_once_per_thread(monkeypatch):
    calls: list[int] = []

    def fake_set(ns: int) -> bool:
        calls.append(ns)
        return True

    monkeypatch.setattr(waiters, "set_timer_slack", fake_set)
    w = BlockWaiter(timer_slack_ns=1, sleep=lambda s: None)

    w.idle()
    w.idle()

    assert calls == [1]


def test_set_timer_slack_takes_effect_on_linux():
    libc = ctypes.CDLL(None)
    before = libc.prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK

    ok = set_timer_slack(1000)
    after = libc.prctl(30, 0, 0, 0, 0)
    set_timer_slack(before)

    assert ok
    assert after == 1000


def test_hybrid_waiter_spins_in_window_then_blocks_on_notifier():
    clock = FakeClock()
    notifier = FakeNotifier([True, False])
    w = HybridWaiter(notifier, spin_s=1e-3, block_timeout_s=0.5, clock=clock)

    w.idle()
    clock.now += 0.5e-3
    w.idle()
    spun = list(notifier.timeouts)
    clock.now += 1e-3
    w.idle()
    w.idle()

    assert spun == []
    assert notifier.timeouts == [0.5, 0.5]
    assert (w.wakeups_total, w.timeouts_total) == (1, 1)


def test_set_sched_slice_takes_effect_on_linux():
    got: list[object] = []

    def on_thread() -> None:  # a thread of its own: the test runner's slice stays as it was
        got.append(set_sched_slice(300_000))
        got.append(sched_slice_ns())

    t = threading.Thread(target=on_thread)
    t.start()
    t.join(timeout=5)

    assert got == [True, 300_000]


def test_hybrid_waiter_reset_opens_a_new_spin_window():
    clock = FakeClock()
    notifier = FakeNotifier([True])
    w = HybridWaiter(notifier, spin_s=1e-3, clock=clock)
    w.idle()
    clock.now += 2e-3
    w.idle()

    w.reset()
    w.idle()

    assert len(notifier.timeouts) == 1


@pytest.mark.parametrize(
    ("kind", "cls"), [("spin", SpinWaiter), ("block", BlockWaiter), ("hybrid", HybridWaiter)]
)
def test_make_waiter_builds_each_kind(kind, cls):
    w = make_waiter(kind, FakeNotifier([]))

    assert isinstance(w, cls)


def test_make_waiter_passes_parameters():
    slept: list[float] = []
    w = make_waiter("block", None, min_sleep_s=1e-4, timer_slack_ns=None, sleep=slept.append)

    w.idle()

    assert slept == [1e-4]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("busy", {}, "must be one of block, hybrid, spin, was 'busy'"),
        ("hybrid", {}, "needs a notifier"),
        ("block", {"bogus_s": 1.0}, "waiter 'block'"),
        ("spin", {"spin_s": 1.0}, "takes no parameters"),
    ],
)
def test_make_waiter_bad_request_rejected(kind, params, message):
    notifier = FakeNotifier([]) if kind != "hybrid" else None

    with pytest.raises(ValueError, match=message):
        make_waiter(kind, notifier, **params)


def test_spin_waiter_returns_at_once():
    w = SpinWaiter()

    w.idle()
    w.reset()
