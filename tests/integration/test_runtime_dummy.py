"""The runtime across a real process boundary: exit codes, lifecycle, heartbeat, health, metrics."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipc.messages import (
    ENCODER,
    PUB_DECODER,
    RESPONSE_DECODER,
    SCHEMA_VERSION,
    ControlRequest,
    ControlResponse,
    Heartbeat,
    decode,
    hb_topic,
)
from ipc.sockets import bind_pub, connect_sub, request
from procs._auth import signed_args
from tests.conftest import ROOT, free_port
from tests.helpers.poll import eventually
from tests.helpers.systools import require_tool

pytestmark = pytest.mark.integration

RUNTIME = """
[dummy.runtime]
pub_endpoint = "ipc://{run_dir}/dummy.pub"
control_endpoint = "ipc://{run_dir}/dummy.ctl"
heartbeat_s = 0.05
max_sleep_s = 0.002
"""


class Dummy:
    def __init__(self, proc: subprocess.Popen[str], run_dir: Path) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self.pub = f"ipc://{run_dir}/dummy.pub"
        self.ctl = f"ipc://{run_dir}/dummy.ctl"

    def ask(self, cmd: str, timeout_s: float = 0.5) -> ControlResponse | None:
        # the process made the run dir's control token at start; an operator signs with it
        token = self.run_dir / "control.token"
        args = signed_args(token, cmd) if cmd != "health" and token.exists() else {}
        reply = request(self.ctl, ENCODER.encode(ControlRequest(cmd=cmd, args=args)), timeout_s)
        return None if reply is None else decode(RESPONSE_DECODER, reply)

    def finish(self, timeout_s: float = 10) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out


def _env(run_dir: Path, ns: str) -> dict[str, str]:
    return {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dummy.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def start_dummy(tmp_path: Path, run_dir: Path, ns: str) -> Iterator[Callable[..., Dummy]]:
    started: list[subprocess.Popen[str]] = []

    def start(dummy_lines: str = "", runtime_lines: str = "") -> Dummy:
        text = "[dummy]\n" + dummy_lines + RUNTIME + runtime_lines
        cmd = [sys.executable, "-m", "tests.helpers.dummy_proc", str(_write(tmp_path, text))]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=_env(run_dir, ns),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        return Dummy(proc, run_dir)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _running(dummy: Dummy) -> ControlResponse:
    resp = eventually(lambda: dummy.ask("health"), timeout_s=15)
    assert resp is not None
    return resp


def _run_to_exit(tmp_path: Path, run_dir: Path, ns: str, text: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "tests.helpers.dummy_proc", str(_write(tmp_path, text))]
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=_env(run_dir, ns),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode, done.stdout


@pytest.mark.parametrize(
    ("dummy_lines", "runtime_lines", "field"),
    [
        ("bogus = 1\n", "", "`$.dummy`"),
        ('fault_after_steps = "x"\n', "", "`$.dummy.fault_after_steps`"),
        ("fault_after_steps = -3\n", "", "`$.dummy.fault_after_steps`"),
        ("", 'waiter = "busy"\n', "`$.dummy.runtime.waiter`"),
        ("", "cpus = [4096]\n", "$.dummy.runtime.cpus: cores [4096]"),
    ],
)
def test_dummy_bad_config_exits_78_naming_the_field(
    tmp_path, run_dir, ns, dummy_lines, runtime_lines, field
):
    text = "[dummy]\n" + dummy_lines + RUNTIME + runtime_lines

    rc, out = _run_to_exit(tmp_path, run_dir, ns, text)

    assert rc == 78
    assert field in out
    assert "Traceback" not in out


def test_dummy_missing_config_file_exits_78_naming_it(tmp_path, run_dir, ns):
    missing = tmp_path / "absent.toml"
    cmd = [sys.executable, "-m", "tests.helpers.dummy_proc", str(missing)]

    done = subprocess.run(
        cmd, cwd=ROOT, env=_env(run_dir, ns), capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 78
    assert f"file={missing}: no such file" in done.stdout + done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dummy_signal_stops_with_exit_0_and_lifecycle_lines(start_dummy, sig):
    dummy = start_dummy()
    _running(dummy)

    dummy.proc.send_signal(sig)
    rc, out = dummy.finish()

    assert rc == 0
    lines = [line.split(" logger=")[-1] for line in out.splitlines()]
    running = next(i for i, ln in enumerate(lines) if " running stage=dummy" in ln)
    stopping = lines.index(f"procs._runtime stopping ({sig.name})")
    stopped = next(i for i, ln in enumerate(lines) if " stopped stage=dummy" in ln)
    assert running < stopping < stopped


def test_dummy_control_stop_exits_0(start_dummy):
    dummy = start_dummy()
    _running(dummy)

    resp = dummy.ask("stop", timeout_s=5)
    rc, out = dummy.finish()

    assert resp is not None, out
    assert resp.ok
    assert rc == 0
    assert "stopping (control)" in out


def test_dummy_injected_fault_exits_1_with_traceback(start_dummy):
    dummy = start_dummy("fault_after_steps = 5\n")

    rc, out = dummy.finish(timeout_s=30)

    assert rc == 1
    assert "Traceback" in out
    assert "RuntimeError: injected fault after 5 steps" in out
    assert "stopped stage=dummy" in out


def test_dummy_publishes_heartbeats_on_its_topic(start_dummy):
    dummy = start_dummy()
    sub = connect_sub(dummy.pub, [hb_topic("dummy")])
    beats: list[Heartbeat] = []

    def three_beats() -> bool:
        got = sub.recv(0.1)
        if got is not None:
            msg = decode(PUB_DECODER, got[1], got[0])
            assert isinstance(msg, Heartbeat)
            beats.append(msg)
        return len(beats) >= 3

    try:
        eventually(three_beats, timeout_s=15, interval_s=0)
    finally:
        sub.close()

    assert all(b.proc == "dummy" and b.schema_version == SCHEMA_VERSION for b in beats)
    gaps_s = [(b.ts_ns - a.ts_ns) / 1e9 for a, b in itertools.pairwise(beats)]
    assert all(0.04 <= g < 1.0 for g in gaps_s)


def test_dummy_health_over_control_socket(start_dummy):
    dummy = start_dummy('label = "hello"\n', "cpus = [0]\n")

    first = _running(dummy)
    resp = eventually(lambda: _with_steps(dummy), timeout_s=10)

    assert resp is not None
    assert first.ok
    assert resp.data["pid"] == dummy.proc.pid
    assert resp.data["affinity"] == [0]
    assert isinstance(resp.data["rss_bytes"], int)
    assert resp.data["rss_bytes"] > 1_000_000
    assert resp.data["state"] == "running"
    counters = resp.data["counters"]
    assert isinstance(counters, dict)
    assert counters["label"] == "hello"
    assert isinstance(counters["steps"], int)
    assert counters["steps"] > 0


def _with_steps(dummy: Dummy) -> ControlResponse | None:
    resp = dummy.ask("health")
    counters = resp.data.get("counters") if resp is not None else None
    return resp if isinstance(counters, dict) and counters.get("steps", 0) else None


def test_dummy_serves_metrics_on_configured_port(start_dummy):
    port = free_port()
    dummy = start_dummy("", f"metrics_port = {port}\n")
    _running(dummy)

    def scrape() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
        return body if 'bitrader_heartbeats_total{proc="dummy"}' in body else None

    body = eventually(scrape, timeout_s=10)

    assert body is not None
    assert 'bitrader_steps_total{proc="dummy"}' in body
    assert 'bitrader_step_seconds_bucket{le="1e-06",proc="dummy"}' in body
    assert 'process_resident_memory_bytes{proc="dummy"}' in body
    assert "bitrader_build_info{config_hash=" in body
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"],
        input=body, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_runtime_wake_sender_reaches_wake_listener_of_another_runtime(run_dir, ns):
    # in-process but over real ipc sockets: the wiring procs use for hybrid waiters
    from prometheus_client import CollectorRegistry

    from procs._config import RuntimeConfig
    from procs._runtime import Runtime

    cfg = RuntimeConfig(
        pub_endpoint=f"ipc://{run_dir}/w.pub", control_endpoint=f"ipc://{run_dir}/w.ctl"
    )
    rt = Runtime("writer", cfg, CollectorRegistry())
    rt._pub = bind_pub(cfg.pub_endpoint)  # start() would also install signals and logging
    listener = rt.wake_listener(cfg.pub_endpoint, "md.book")
    try:
        waker = rt.wake_sender("md.book")

        def notify_then_wait() -> bool:
            waker.notify()
            return listener.wait(0.01)

        woke = eventually(notify_then_wait, timeout_s=5)

        assert woke is True
    finally:
        listener.close()
        rt.close()
