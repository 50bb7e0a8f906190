"""Scheduling classes: applied by ``Runtime.start`` to the stage's thread, shown in health,
refused without privileges (logged, or exit 78 when required).

Each case runs in a forked child: a class is a property of the thread that gets it, and the
test process must keep its own. The refused cases drop privileges in the child first
(``setuid(nobody)`` when run as root, ``RLIMIT_RTPRIO`` 0), so they hold for any user.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from procs import _sched
from procs._config import RuntimeConfig
from procs._runtime import EXIT_CONFIG, Runtime
from procs.group.health import ProcHealth, table

NOBODY = 65534


def _in_child(fn: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            child.send(("ok", fn()))
        except SystemExit as exc:
            child.send(("exit", exc.code))
        except BaseException as exc:  # reported to the test, not swallowed
            child.send(("error", repr(exc)))

    p = ctx.Process(target=target)
    p.start()
    try:
        assert parent.poll(timeout_s), "the child did not answer"
        return parent.recv()
    finally:
        p.join(timeout_s)


def _unprivileged() -> None:
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)  # root's CAP_SYS_NICE goes with it


def _config(run_dir: Path, **kw: Any) -> RuntimeConfig:
    return RuntimeConfig(
        pub_endpoint=f"ipc://{run_dir}/s.pub", control_endpoint=f"ipc://{run_dir}/s.ctl", **kw
    )


def _start_and_report(cfg: RuntimeConfig, *, threads: bool = False) -> dict[str, Any]:
    with Runtime("sched", cfg, CollectorRegistry()) as rt:
        rt.start()
        h = rt.health()
        out = {k: h[k] for k in ("sched", "sched_wanted", "sched_error")}
        if threads:  # the other threads' policies, while they run (zmq I/O ...)
            tids = [int(t) for t in os.listdir("/proc/self/task") if int(t) != os.getpid()]
            out["other_threads"] = len(tids)
            out["others_fifo"] = all(os.sched_getscheduler(t) == os.SCHED_FIFO for t in tids)
        return out


def test_config_realtime_needs_a_priority_and_only_realtime_takes_one(run_dir):
    with pytest.raises(msgspec.ValidationError, match="needs sched_priority"):
        msgspec.convert(
            {"pub_endpoint": f"ipc://{run_dir}/a", "control_endpoint": f"ipc://{run_dir}/b",
             "sched_policy": "fifo"}, RuntimeConfig)  # fmt: skip
    with pytest.raises(msgspec.ValidationError, match="fifo/rr only"):
        msgspec.convert(
            {"pub_endpoint": f"ipc://{run_dir}/a", "control_endpoint": f"ipc://{run_dir}/b",
             "sched_policy": "batch", "sched_priority": 3}, RuntimeConfig)  # fmt: skip
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {"pub_endpoint": f"ipc://{run_dir}/a", "control_endpoint": f"ipc://{run_dir}/b",
             "nice": -21}, RuntimeConfig)  # fmt: skip


def test_background_class_needs_no_privilege_and_shows_in_health(run_dir):
    cfg = _config(run_dir, sched_policy="batch", nice=10)

    def child() -> dict[str, Any]:
        _unprivileged_but_keep_files(run_dir)
        return _start_and_report(cfg)

    assert _in_child(child) == (
        "ok",
        {"sched": "batch nice 10", "sched_wanted": "batch nice 10", "sched_error": ""},
    )


def _unprivileged_but_keep_files(run_dir: Path) -> None:
    os.chmod(run_dir, 0o777)  # the dropped user still binds its sockets here
    _unprivileged()


def test_realtime_refused_is_logged_and_the_process_runs_on(run_dir):
    cfg = _config(run_dir, sched_policy="fifo", sched_priority=10, nice=-5)

    def child() -> dict[str, Any]:
        _unprivileged_but_keep_files(run_dir)
        return _start_and_report(cfg)

    status, got = _in_child(child)
    assert status == "ok"
    inherited = os.getpriority(os.PRIO_PROCESS, 0)  # `nice make test` hands its level down
    assert got["sched"] == ("other" if inherited == 0 else f"other nice {inherited}")
    assert got["sched_wanted"] == "fifo:10 nice -5"
    assert "policy fifo:10" in got["sched_error"]
    assert "RLIMIT_RTPRIO >= 10" in got["sched_error"]
    assert "nice -5" in got["sched_error"]


def test_realtime_refused_when_required_exits_78(run_dir):
    cfg = _config(run_dir, sched_policy="rr", sched_priority=5, sched_required=True)

    def child() -> dict[str, Any]:
        _unprivileged_but_keep_files(run_dir)
        return _start_and_report(cfg)

    assert _in_child(child) == ("exit", EXIT_CONFIG)


def test_realtime_applied_to_the_stage_thread_where_permitted(run_dir):
    def permitted() -> bool:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            return False
        return True

    if _in_child(permitted) != ("ok", True):
        pytest.skip("no CAP_SYS_NICE or RLIMIT_RTPRIO here: the refused cases cover this host")
    cfg = _config(run_dir, sched_policy="fifo", sched_priority=7)

    status, got = _in_child(lambda: _start_and_report(cfg, threads=True))
    assert status == "ok"
    assert (got["sched"], got["sched_wanted"], got["sched_error"]) == ("fifo:7", "fifo:7", "")
    # the threads start() went on to create (zmq I/O, ...) inherit it: none holds the GIL as
    # "other" where a neighbour could preempt it
    assert got["other_threads"] >= 1
    assert got["others_fifo"]


def test_sched_class_text():
    assert str(_sched.SchedClass("fifo", 47)) == "fifo:47"
    assert str(_sched.SchedClass("batch", 0, 10)) == "batch nice 10"
    assert str(_sched.SchedClass()) == "other"
    assert _sched.SchedClass().is_default


def test_health_table_shows_the_class_and_marks_one_not_granted():
    rows = [
        ProcHealth(name="ingest", state="RUNNING", sched="fifo:47", sched_wanted="fifo:47"),
        ProcHealth(name="features", state="RUNNING", sched="other", sched_wanted="fifo:48"),
        ProcHealth(name="simex", state="RUNNING"),
    ]
    lines = table(rows).splitlines()
    assert "sched" in lines[0]
    assert " fifo:47 " in lines[1]
    assert " other! " in lines[2]
    assert lines[3].split()[5] == "-"  # name, super, state, pid, core, sched


def test_health_row_takes_the_class_and_the_refusal_from_the_health_reply():
    from procs.group.health import _fill

    row = ProcHealth(name="features", state="RUNNING")
    _fill(row, {"state": "running", "sched": "other", "sched_wanted": "fifo:42",
                "sched_error": "policy fifo:42: Operation not permitted"}, 30.0)  # fmt: skip

    assert (row.sched, row.sched_wanted) == ("other", "fifo:42")
    assert "sched fifo:42 refused: policy fifo:42" in row.last_error
    assert row.healthy  # running unprotected is reported, not a fault
