"""The group under a real supervisord: start, health, restart on fault, FATAL on bad config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from procs.group.supervise import CONF, ROOT, GroupEnv, process_info, start, stop
from shm.segment import list_segments
from tests.conftest import free_port
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("supervisord")]


def _program_block(name: str, command: str) -> str:
    """Our real [program:producer] settings with another name and command."""
    text = CONF.read_text()
    block = re.search(r"\[program:producer\]\n(.*?)(?=\n\[|\Z)", text, re.S)
    assert block is not None
    body = re.sub(r"^command=.*$", f"command={command}", block.group(1), flags=re.M)
    # %(here)s in an included file is that file's folder: run from the repository instead
    body = re.sub(r"^directory=.*$", f"directory={ROOT}", body, flags=re.M)
    return f"[program:{name}]\n{body}\n"


def _dummy_config(path: Path, run_dir: Path, extra: str) -> Path:
    path.write_text(
        f"""
[dummy]
{extra}

[dummy.runtime]
pub_endpoint = "ipc://{run_dir}/{path.stem}.pub"
control_endpoint = "ipc://{run_dir}/{path.stem}.ctl"
max_sleep_s = 0.001
"""
    )
    return path


def _info(run_dir: Path, name: str) -> dict:
    [info] = [p for p in process_info(run_dir) if p["name"] == name]
    return info


def _bitrader(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "procs.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


@pytest.fixture
def transport_config(tmp_path: Path) -> Path:
    text = (ROOT / "configs" / "transport.toml").read_text()
    text = text.replace("metrics_port = 9181", f"metrics_port = {free_port()}")
    text = text.replace("metrics_port = 9182", f"metrics_port = {free_port()}")
    path = tmp_path / "transport.toml"
    path.write_text(text)
    return path


def test_transport_group_runs_reports_healthy_and_stops_clean(run_dir, ns, transport_config):
    env = GroupEnv(run_dir, transport_config, ns, "transport")
    start(env)
    try:
        eventually(lambda: _bitrader("status", "--run-dir", str(run_dir)).returncode == 0, 30)

        def consumer_receives():
            res = _bitrader("health", "--run-dir", str(run_dir), "--json")
            rows = {r["name"]: r for r in json.loads(res.stdout or "[]")}
            got = rows.get("consumer", {}).get("counters", {}).get("received_total", 0)
            return res if res.returncode == 0 and got > 100 else None

        res = eventually(consumer_receives, 30)
        assert f"{ns}.producer.bench" in list_segments(ns)
    finally:
        stop(run_dir)

    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} == {"producer", "consumer"}
    assert all(r["healthy"] and r["heartbeat_age_s"] < 3 for r in rows)
    assert [r["cores"] for r in rows if r["name"] == "consumer"] == [[1]]
    assert list_segments(ns) == []  # the writer unlinked its ring on a clean stop
    assert _bitrader("status", "--run-dir", str(run_dir)).returncode == 3


def test_supervisord_restarts_a_faulting_process(run_dir, ns, tmp_path):
    # ~4000 idle steps at a 1 ms backoff: the fault comes after startsecs, so it is a crash
    cfg = _dummy_config(tmp_path / "faulty.toml", run_dir, "fault_after_steps = 4000")
    cmd = f"%(ENV_BITRADER_PYTHON)s -m tests.helpers.dummy_proc {cfg}"
    (run_dir / "supervisor.d").mkdir()
    (run_dir / "supervisor.d" / "t.conf").write_text(
        _program_block("faulty", cmd) + "[group:selftest]\nprograms=faulty\n"
    )
    start(GroupEnv(run_dir, cfg, ns, "selftest"))
    try:
        first = eventually(lambda: _info(run_dir, "faulty")["pid"] or None, 20)

        def restarted():
            info = _info(run_dir, "faulty")
            return info if info["pid"] not in (0, first) else None

        info = eventually(restarted, 40)
    finally:
        stop(run_dir)

    assert info["statename"] in ("STARTING", "RUNNING")
    log = (run_dir / "supervisord.log").read_text()
    assert "success: faulty entered RUNNING state" in log  # it ran past startsecs first
    assert "exited: faulty (exit status 1; not expected)" in log
    program_log = "".join(p.read_text() for p in (run_dir / "logs").glob("faulty*.log"))
    assert "Traceback" in program_log
    assert "injected fault" in program_log


def test_bad_config_ends_fatal_after_retries(run_dir, ns, tmp_path):
    cfg = _dummy_config(tmp_path / "broken.toml", run_dir, "no_such_key = 1")
    cmd = f"%(ENV_BITRADER_PYTHON)s -m tests.helpers.dummy_proc {cfg}"
    (run_dir / "supervisor.d").mkdir()
    (run_dir / "supervisor.d" / "t.conf").write_text(
        _program_block("broken", cmd) + "[group:selftest]\nprograms=broken\n"
    )
    start(GroupEnv(run_dir, cfg, ns, "selftest"))
    try:
        info = eventually(lambda: _info(run_dir, "broken")["statename"] == "FATAL", 40)
        info = _info(run_dir, "broken")
    finally:
        stop(run_dir)

    assert info["statename"] == "FATAL"
    log = (run_dir / "supervisord.log").read_text()
    assert log.count("exited: broken (exit status 78; not expected)") == 4  # 1 + startretries
    log_text = "".join(p.read_text() for p in (run_dir / "logs").glob("broken*.log"))
    assert "no_such_key" in log_text


def test_a_late_config_error_is_not_restarted(run_dir, ns, tmp_path):
    # exit 78 after startsecs (2 s): supervisord must not take it for a crash and loop on it
    cfg = _dummy_config(tmp_path / "late.toml", run_dir, "config_error_after_s = 3.0")
    cmd = f"%(ENV_BITRADER_PYTHON)s -m tests.helpers.dummy_proc {cfg}"
    (run_dir / "supervisor.d").mkdir()
    (run_dir / "supervisor.d" / "t.conf").write_text(
        _program_block("late", cmd) + "[group:selftest]\nprograms=late\n"
    )
    start(GroupEnv(run_dir, cfg, ns, "selftest"))
    try:
        eventually(lambda: _info(run_dir, "late")["statename"] == "EXITED", 40)
        info = _info(run_dir, "late")
    finally:
        stop(run_dir)

    assert info["statename"] == "EXITED"
    assert info["exitstatus"] == 78
    log = (run_dir / "supervisord.log").read_text()
    assert "success: late entered RUNNING state" in log  # it ran past startsecs first
    assert log.count("spawned: 'late'") == 1
    assert "exited: late (exit status 78; expected)" in log
