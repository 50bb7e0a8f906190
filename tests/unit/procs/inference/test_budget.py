"""The latency budget judges the model, not the host: CPU time of the call, in strikes.

A model that really is too slow (it burns CPU past the budget on every call) is benched after
``latency_strikes`` calls and the fallback scores alone for ``latency_bench_s``; a model whose
calls take long on the wall clock because the process was not on a core (asleep, or preempted
by a spinning neighbour on the same core) never is.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

import numpy as np
import pytest

from shm.records import FLAG_FALLBACK
from tests.helpers.inference_feats import make_feats

BUDGET_S = 1e-3


class _Timed:
    """Wraps the loaded champion: burns ``cpu_s`` of thread CPU or sleeps ``sleep_s`` first."""

    def __init__(self, inner: Any, *, cpu_s: float = 0.0, sleep_s: float = 0.0) -> None:
        self._inner, self._cpu_ns, self._sleep_s = inner, int(cpu_s * 1e9), sleep_s
        self.calls = 0
        self.walls_ns: list[int] = []

    def score(self, x: Any) -> Any:
        self.calls += 1
        w = time.perf_counter_ns()
        if self._sleep_s:  # a stall off the CPU, as a preempted call has (not a wait for anything)
            threading.Event().wait(self._sleep_s)
        t = time.thread_time_ns()
        while time.thread_time_ns() - t < self._cpu_ns:
            pass  # a model that needs this much CPU
        y = self._inner.score(x)
        self.walls_ns.append(time.perf_counter_ns() - w)
        return y

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _batch(rig: Any, start: int) -> np.ndarray:
    rig.feat.publish(make_feats(start, 1))
    rig.proc.step()
    [sig] = rig.sig.poll(10)
    return sig


def test_model_slow_on_the_cpu_is_benched_after_the_strikes(make_rig):
    rig = make_rig(batch_max=1, latency_budget_s=BUDGET_S, latency_strikes=3, latency_bench_s=2.0)
    slow = _Timed(rig.proc.champion, cpu_s=3 * BUDGET_S)
    rig.proc._champion = slow

    # the first call, late on the wall clock, is not judged (its CPU time was not read) and
    # starts the CPU timing; the next two are strikes: late, but their answers are used
    first = [_batch(rig, i) for i in range(3)]
    assert not any(int(s["flags"]) & FLAG_FALLBACK for s in first)
    assert all(int(s["model_version"]) == 1 for s in first)
    assert rig.proc.health()["late_calls_total"] == 2

    third = _batch(rig, 3)  # the third strike: fallback, and benched
    assert int(third["flags"]) & FLAG_FALLBACK
    assert rig.proc.health()["benched"] == 1

    calls = slow.calls
    benched = [_batch(rig, 4 + i) for i in range(3)]
    assert slow.calls == calls  # not called while benched: its time is saved
    assert all(int(s["flags"]) & FLAG_FALLBACK for s in benched)
    assert rig.metric("bitrader_inference_fallback_batches_total", reason="latency") == 4

    rig.clock.advance(2.5)  # past the bench: tried again
    back = _batch(rig, 7)
    assert slow.calls == calls + 1
    assert not int(back["flags"]) & FLAG_FALLBACK  # a new first strike: its answer is used
    h = rig.proc.health()
    assert h["late_calls_total"] == 4
    assert h["last_model_cpu_us"] >= 3 * BUDGET_S * 1e6


def test_model_within_the_budget_never_reads_the_cpu_clock(make_rig, monkeypatch):
    rig = make_rig(batch_max=1, latency_budget_s=1.0, latency_strikes=1)
    reads: list[int] = []
    real = time.thread_time_ns

    def counted() -> int:
        reads.append(1)
        return real()

    monkeypatch.setattr(time, "thread_time_ns", counted)
    sigs = [_batch(rig, i) for i in range(5)]
    assert not reads  # the wall clock already shows every call within the budget
    assert not any(int(s["flags"]) & FLAG_FALLBACK for s in sigs)
    assert 0 < rig.proc.health()["last_model_cpu_us"] < 1e6  # the wall time: an upper bound


def test_model_waiting_off_the_cpu_is_not_too_slow(make_rig):
    rig = make_rig(batch_max=1, latency_budget_s=BUDGET_S, latency_strikes=3)
    waits = _Timed(rig.proc.champion, sleep_s=3 * BUDGET_S)
    rig.proc._champion = waits

    sigs = [_batch(rig, i) for i in range(10)]

    assert min(waits.walls_ns) > BUDGET_S * 1e9  # every call was late on the wall clock
    assert not any(int(s["flags"]) & FLAG_FALLBACK for s in sigs)
    assert rig.proc.health()["late_calls_total"] == 0
    assert rig.metric("bitrader_inference_fallback_batches_total", reason="latency") == 0


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


def test_model_preempted_by_a_neighbour_on_its_core_is_not_too_slow(make_rig):
    core = min(os.sched_getaffinity(0))
    rig = make_rig(batch_max=1, latency_budget_s=BUDGET_S, latency_strikes=1)
    model = _Timed(rig.proc.champion, cpu_s=0.3 * BUDGET_S)  # well inside the budget on CPU
    rig.proc._champion = model
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    was = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    neighbour = ctx.Process(target=_spin, args=(stop,), daemon=True)
    neighbour.start()  # inherits the one core: the two share it
    try:
        sigs = [_batch(rig, i) for i in range(40)]
    finally:
        stop.set()
        neighbour.join(5)
        os.sched_setaffinity(0, was)

    if max(model.walls_ns) <= BUDGET_S * 1e9:
        pytest.skip("the neighbour never preempted a call here: nothing to show")
    # a wall-clock budget would have tripped (strikes=1); the CPU budget does not
    assert not any(int(s["flags"]) & FLAG_FALLBACK for s in sigs)
    assert rig.proc.health()["late_calls_total"] == 0
