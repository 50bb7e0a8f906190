"""``bitrader health`` under a real supervisord: a state column and a distinct exit code per
cause (a trading state that is not trading, a control plane that does not answer)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from procs.group import health
from procs.group.supervise import ROOT, GroupEnv, start, stop
from tests.e2e.test_supervisord import _dummy_config, _program_block
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("supervisord")]


def _health(run_dir, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "procs.cli", "health", "--run-dir", str(run_dir), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def test_health_exit_code_names_the_cause(run_dir, ns, tmp_path):
    state = tmp_path / "state"
    state.write_text("active")
    cfg = _dummy_config(tmp_path / "exe.toml", run_dir, f'state_file = "{state}"\n')
    cmd = f"%(ENV_BITRADER_PYTHON)s -m tests.helpers.dummy_proc {cfg}"
    (run_dir / "supervisor.d").mkdir()
    (run_dir / "supervisor.d" / "t.conf").write_text(
        _program_block("dummy", cmd) + "[group:selftest]\nprograms=dummy\n"
    )
    start(GroupEnv(run_dir, cfg, ns, "selftest"))
    seen: dict[str, tuple[int, str]] = {}
    try:
        green = eventually(lambda: (r := _health(run_dir)).returncode == 0 and r, 30)
        seen["active"] = (green.returncode, green.stdout)
        for words, code in [
            ("halted", health.EXIT_HALTED),
            ("killed", health.EXIT_KILLED),
            ("reducing", health.EXIT_REDUCING),
            ("reconciling 5", health.EXIT_HEALTHY),  # within the deadline: still healthy
            ("reconciling 45", health.EXIT_RECONCILING),
            ("hang", health.EXIT_CONTROL_DEAD),
        ]:
            state.write_text(words)
            res = eventually(lambda code=code: (r := _health(run_dir)).returncode == code and r, 30)
            seen[words] = (res.returncode, res.stdout)
        dead = _health(run_dir, "--json")
    finally:
        stop(run_dir)

    assert "state" in seen["active"][1].splitlines()[0]  # the state column
    assert " active " in seen["active"][1]
    assert " halted " in seen["halted"][1]
    assert "not trading: halted" in seen["halted"][1]
    assert "not trading: reconciling for 45s" in seen["reconciling 45"][1]
    [row] = json.loads(dead.stdout)
    assert dead.returncode == health.EXIT_CONTROL_DEAD
    assert row["proc_state"] == "no answer"
    assert any(p.startswith("control plane dead") for p in row["problems"])
