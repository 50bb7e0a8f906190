"""Runtime: the stage loop, stop flag, waiter wiring, control answers, metrics (no sockets)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ipc.messages import (
    ENCODER,
    RESPONSE_DECODER,
    ControlRequest,
    ControlResponse,
    Value,
    decode,
)
from procs import _runtime
from procs._auth import sign
from procs._config import RuntimeConfig
from procs._redact import register_secret
from procs._runtime import (
    EXIT_CONFIG,
    EXIT_FAULT,
    EXIT_OK,
    SERVICE_S,
    Runtime,
    StopFlag,
    ThrottledLog,
    _cpus_error,
    make_runtime_metrics,
    run_stage,
)
from shm.waiters import BlockWaiter, HybridWaiter, SpinWaiter


class CountingWaiter:
    def __init__(self) -> None:
        self.resets = 0
        self.idles = 0

    def reset(self) -> None:
        self.resets += 1

    def idle(self) -> None:
        self.idles += 1


class ScriptedStage:
    """Returns the scripted counts, then sets the stop flag (or raises if told to)."""

    name = "scripted"

    def __init__(self, counts: list[int], stop: StopFlag, *, fail_at: int | None = None) -> None:
        self._counts = list(counts)
        self._stop = stop
        self._fail_at = fail_at
        self.steps = 0
        self.closed = 0

    def step(self) -> int:
        self.steps += 1
        if self.steps == self._fail_at:
            raise ValueError("boom")
        if self.steps >= len(self._counts):
            self._stop.set("test")
        return self._counts[self.steps - 1] if self.steps <= len(self._counts) else 0

    def health(self):
        return {"steps": self.steps, "last_seq": 99}

    def close(self) -> None:
        self.closed += 1


class FakeNotifier:
    def wait(self, timeout_s: float) -> bool:
        return False


def _config(**kw: Any) -> RuntimeConfig:
    return RuntimeConfig(
        pub_endpoint="ipc:///tmp/unused/t.pub", control_endpoint="ipc:///tmp/unused/t.ctl", **kw
    )


def test_run_stage_stop_requested_returns_ok_and_closes():
    stop = StopFlag()
    stage = ScriptedStage([3, 0, 0, 5], stop)
    waiter = CountingWaiter()

    rc = run_stage(stage, waiter, stop)

    assert rc == EXIT_OK
    assert stage.closed == 1
    assert (waiter.resets, waiter.idles) == (2, 2)


def test_run_stage_already_stopped_never_steps_but_closes():
    stop = StopFlag()
    stop.set("early")
    stage = ScriptedStage([1], stop)

    rc = run_stage(stage, CountingWaiter(), stop)

    assert (rc, stage.steps, stage.closed) == (EXIT_OK, 0, 1)


def test_run_stage_exception_returns_fault_closes_and_reports():
    stop = StopFlag()
    stage = ScriptedStage([1] * 10, stop, fail_at=4)
    faults: list[BaseException] = []

    rc = run_stage(stage, CountingWaiter(), stop, on_fault=faults.append)

    assert rc == EXIT_FAULT
    assert stage.closed == 1
    assert [str(e) for e in faults] == ["boom"]


def test_run_stage_services_at_most_every_service_period():
    stop = StopFlag()
    stage = ScriptedStage([1] * 20_000, stop)
    calls: list[int] = []
    t0 = time.monotonic()

    run_stage(stage, CountingWaiter(), stop, service=lambda: calls.append(1))
    elapsed = time.monotonic() - t0

    assert 1 <= len(calls) <= elapsed / SERVICE_S + 2
    assert stage.steps == 20_000


def test_stop_flag_keeps_first_reason():
    stop = StopFlag()

    stop.set("control")
    stop.set("SIGTERM")

    assert (stop.is_set, stop.reason) == (True, "control")


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_flag_installed_signal_sets_flag_with_its_name(restore_signals, sig):
    stop = StopFlag()
    stop.install()

    os.kill(os.getpid(), sig)  # handled in the main thread before the next bytecode

    assert (stop.is_set, stop.reason) == (True, sig.name)


def test_make_runtime_metrics_registers_prefixed_names():
    registry = CollectorRegistry()
    m = make_runtime_metrics(registry)

    m.steps.inc(2)
    m.step_seconds.observe(3e-6)

    assert registry.get_sample_value("bitrader_steps_total") == 2
    assert registry.get_sample_value("bitrader_step_seconds_bucket", {"le": "3e-06"}) == 1
    assert registry.get_sample_value("bitrader_heartbeats_total") == 0


@pytest.mark.parametrize(
    ("kind", "cls"), [("spin", SpinWaiter), ("block", BlockWaiter), ("hybrid", HybridWaiter)]
)
def test_make_waiter_builds_configured_kind(kind, cls):
    rt = Runtime("t", _config(waiter=kind), CollectorRegistry())

    waiter = rt.make_waiter(FakeNotifier())

    assert isinstance(waiter, cls)


def test_make_waiter_hybrid_without_notifier_exits_78():
    rt = Runtime("t", _config(waiter="hybrid"), CollectorRegistry())

    with pytest.raises(SystemExit) as info:
        rt.make_waiter(None)

    assert info.value.code == EXIT_CONFIG


def test_cpus_error_names_missing_core():
    error = _cpus_error(_config(cpus=[0, 4096]))

    assert error is not None
    assert error.startswith("cpus: cores [4096] do not exist here")


def test_cpus_error_none_for_allowed_cores():
    assert _cpus_error(_config(cpus=sorted(os.sched_getaffinity(0)))) is None


def _ask(rt: Runtime, req: ControlRequest | bytes) -> ControlResponse:
    body = req if isinstance(req, bytes) else ENCODER.encode(req)
    return decode(RESPONSE_DECODER, ENCODER.encode(rt.control.answer(body)))


def test_control_health_reports_process_and_stage_counters():
    rt = Runtime("t", _config(), CollectorRegistry())

    resp = _ask(rt, ControlRequest(cmd="health"))

    assert resp.ok
    assert resp.data["pid"] == os.getpid()
    assert resp.data["affinity"] == sorted(os.sched_getaffinity(0))
    assert isinstance(resp.data["rss_bytes"], int)
    assert resp.data["rss_bytes"] > 0
    assert resp.data["state"] == "running"
    assert resp.data["counters"] == {}


TOKEN = bytes(range(32))


def test_control_signed_stop_sets_flag_and_is_audited():
    rt = Runtime("t", _config(), CollectorRegistry())
    rt.control.use_token(TOKEN)
    audited = []
    rt.control.on_control = lambda *a: audited.append(a)

    resp = _ask(rt, ControlRequest(cmd="stop", args=sign(TOKEN, "stop", {"why": "op"})))

    assert resp.ok
    assert (rt.stop.is_set, rt.stop.reason) == (True, "control")
    assert audited == [("stop", {"why": "op"}, True, "")]


@pytest.mark.parametrize(
    "args",
    [{}, sign(bytes(32), "stop", {}), sign(TOKEN, "health", {})],
    ids=["unsigned", "other-token", "signed-for-another-command"],
)
def test_control_stop_without_valid_credentials_is_refused_and_counted(args):
    rt = Runtime("t", _config(), CollectorRegistry())
    rt.control.use_token(TOKEN)
    audited = []
    rt.control.on_control = lambda *a: audited.append(a)

    resp = _ask(rt, ControlRequest(cmd="stop", args=args))

    assert not resp.ok
    assert resp.error.startswith("unauthorized")
    assert not rt.stop.is_set
    assert rt.control.unauthorized_total == 1
    assert audited == []


def test_control_without_a_token_refuses_stop_but_answers_health():
    rt = Runtime("t", _config(), CollectorRegistry())

    stop = _ask(rt, ControlRequest(cmd="stop"))
    health = _ask(rt, ControlRequest(cmd="health"))

    assert (stop.ok, health.ok) == (False, True)


def test_control_unknown_command_is_refused():
    rt = Runtime("t", _config(), CollectorRegistry())
    rt.control.use_token(TOKEN)

    resp = _ask(rt, ControlRequest(cmd="dance", args=sign(TOKEN, "dance", {})))

    assert (resp.ok, resp.error) == (False, "unknown command 'dance'")


def test_control_garbage_is_refused_not_raised():
    rt = Runtime("t", _config(), CollectorRegistry())

    resp = _ask(rt, b"\xc1\x00")

    assert not resp.ok
    assert resp.error.startswith("bad request")


def test_runtime_run_counts_steps_and_reports_stage_health():
    registry = CollectorRegistry()
    rt = Runtime("t", _config(), registry)
    stage = ScriptedStage([2, 0, 3], rt.stop)
    try:
        rc = rt.run(stage, CountingWaiter())
    finally:
        gc.unfreeze()
    health = rt.health()

    assert rc == EXIT_OK
    assert registry.get_sample_value("bitrader_steps_total") == 3
    assert registry.get_sample_value("bitrader_step_items_total") == 5
    assert registry.get_sample_value("bitrader_step_seconds_count") == 2
    assert health["counters"] == {"steps": 3, "last_seq": 99}
    assert (health["steps_total"], health["items_total"]) == (3, 5)


def test_record_step_counts_event_driven_work_and_times_only_work():
    registry = CollectorRegistry()
    rt = Runtime("t", _config(), registry)

    rt.record_step(4, 2e-6)
    rt.record_step(0, 1e-6)  # a step that found nothing: counted, not timed

    assert registry.get_sample_value("bitrader_steps_total") == 2
    assert registry.get_sample_value("bitrader_step_items_total") == 4
    assert registry.get_sample_value("bitrader_step_seconds_count") == 1
    assert registry.get_sample_value("bitrader_step_seconds_bucket", {"le": "2e-06"}) == 1


def test_note_step_reaches_prometheus_at_the_next_service_not_before():
    registry = CollectorRegistry()
    rt = Runtime("t", _config(), registry)

    rt.note_step(4, 2_000)
    rt.note_step(0, 1_000)  # counted, not timed
    before = registry.get_sample_value("bitrader_steps_total")
    rt.service()

    assert before == 0
    assert registry.get_sample_value("bitrader_steps_total") == 2
    assert registry.get_sample_value("bitrader_step_items_total") == 4
    assert registry.get_sample_value("bitrader_step_seconds_count") == 1
    assert registry.get_sample_value("bitrader_step_seconds_bucket", {"le": "2e-06"}) == 1


def test_adopted_stage_durations_are_observed_at_service():
    registry = CollectorRegistry()
    rt = Runtime("t", _config(), registry)
    stage = rt.adopt(ScriptedStage([2, 0, 3], rt.stop))

    for _ in range(3):
        stage.step()
    before = registry.get_sample_value("bitrader_step_seconds_count")
    rt.service()

    assert before == 0
    assert registry.get_sample_value("bitrader_step_seconds_count") == 2
    assert registry.get_sample_value("bitrader_steps_total") == 3


def test_watch_ring_exports_the_readers_counters():
    class Ring:
        dropped_total = 7
        lag_records = 3

    registry = CollectorRegistry()
    rt = Runtime("t", _config(), registry)
    rt.watch_ring("md.book", Ring())

    assert (
        registry.get_sample_value("bitrader_ring_dropped_records_total", {"ring": "md.book"}) == 7
    )
    assert registry.get_sample_value("bitrader_ring_lag_records", {"ring": "md.book"}) == 3


def test_runtime_run_fault_records_last_error():
    rt = Runtime("t", _config(), CollectorRegistry())
    stage = ScriptedStage([1] * 5, rt.stop, fail_at=2)
    try:
        rc = rt.run(stage, CountingWaiter())
    finally:
        gc.unfreeze()

    assert rc == EXIT_FAULT
    assert rt.last_error == "ValueError: boom"
    assert stage.closed == 1


@pytest.mark.parametrize(("slice_us", "calls"), [(0, []), (250, [250_000])])
def test_runtime_start_sets_the_configured_sched_slice(
    monkeypatch, run_dir, restore_signals, slice_us, calls
):
    got: list[int] = []
    monkeypatch.setattr(_runtime, "set_sched_slice", lambda ns: got.append(ns) or True)
    cfg = RuntimeConfig(
        pub_endpoint=f"ipc://{run_dir}/s.pub",
        control_endpoint=f"ipc://{run_dir}/s.ctl",
        sched_slice_us=slice_us,
    )

    with Runtime("slice", cfg, CollectorRegistry()) as rt:
        rt.start()

    assert got == calls


def test_runtime_publisher_before_start_raises():
    rt = Runtime("t", _config(), CollectorRegistry())

    with pytest.raises(RuntimeError, match="start"):
        _ = rt.publisher


def test_throttled_log_one_line_per_interval_per_key_counts_the_rest(caplog):
    now = [100.0]
    throttle = ThrottledLog(logging.getLogger("t.throttle"), interval_s=1.0, clock=lambda: now[0])

    with caplog.at_level(logging.WARNING, logger="t.throttle"):
        first = [throttle.warning("lapped", "lapped ring=%s", "a") for _ in range(5)]
        other = throttle.warning("hwm", "full hwm")
        now[0] += 1.0
        later = throttle.warning("lapped", "lapped ring=%s", "a")

    assert first == [True, False, False, False, False]
    assert (other, later) == (True, True)
    assert [r.getMessage() for r in caplog.records] == [
        "lapped ring=a suppressed=0",
        "full hwm suppressed=0",
        "lapped ring=a suppressed=4",
    ]


class RecordingNotifier:
    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def wait(self, timeout_s: float) -> bool:
        self.timeouts.append(timeout_s)
        return False


def test_make_waiter_hybrid_blocks_on_notifier_for_wake_timeout():
    notifier = RecordingNotifier()
    cfg = _config(waiter="hybrid", spin_s=0.0, wake_timeout_s=0.25)
    waiter = Runtime("t", cfg, CollectorRegistry()).make_waiter(notifier)

    waiter.idle()
    waiter.idle()

    assert notifier.timeouts == [0.25, 0.25]


def test_control_added_command_answers_and_refuses_bad_args_with_its_reason():
    rt = Runtime("t", _config(), CollectorRegistry())

    def double(args: dict[str, str]) -> dict[str, Value]:
        return {"n": int(args["n"]) * 2}  # int("x") raises ValueError: a refusal

    rt.add_command("double", double)
    rt.control.use_token(TOKEN)

    ok = _ask(rt, ControlRequest(cmd="double", args=sign(TOKEN, "double", {"n": "21"})))
    bad = _ask(rt, ControlRequest(cmd="double", args=sign(TOKEN, "double", {"n": "x"})))

    assert (ok.ok, ok.data) == (True, {"n": 42})
    assert not bad.ok
    assert "invalid literal" in bad.error
    assert rt.health()["control_errors_total"] == 1


def test_control_add_command_refuses_a_taken_name():
    rt = Runtime("t", _config(), CollectorRegistry())

    with pytest.raises(ValueError, match="already taken"):
        rt.add_command("health", lambda args: {})


class _CountingProcess:
    """psutil.Process stand-in: each cpu_percent call returns the next number."""

    def __init__(self) -> None:
        self.calls = 0

    def cpu_percent(self, interval: float | None) -> float:
        self.calls += 1
        return float(self.calls)


def test_cpu_percent_is_measured_at_most_once_per_window(monkeypatch):
    import procs._runtime as runtime_module

    clock = [100.0]
    monkeypatch.setattr(runtime_module.time, "monotonic", lambda: clock[0])
    rt = Runtime("t", _config(), CollectorRegistry())
    rt._ps = _CountingProcess()  # type: ignore[assignment]  # fake psutil process

    first, again = rt._cpu_percent(), rt._cpu_percent()
    clock[0] += runtime_module.CPU_WINDOW_S
    later = rt._cpu_percent()

    assert (first, again, later) == (1.0, 1.0, 2.0)


def test_health_last_error_is_redacted():
    register_secret("runtime-planted-secret-1")
    rt = Runtime("t", _config(), CollectorRegistry())
    rt.last_error = "ValueError: bad signature for runtime-planted-secret-1"

    resp = _ask(rt, ControlRequest(cmd="health"))

    assert "runtime-planted-secret-1" not in resp.data["last_error"]
    assert resp.data["last_error"].startswith("ValueError: bad signature")
