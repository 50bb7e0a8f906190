"""Execution against a simex that loses its state (SIGKILL, restart from an older state file):
reconciliation converges (orders the venue forgot are closed as lost, queries back off) or
stops with a reason an operator can act on (`bitrader reconcile adopt`), and its rows are few."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from procs.group.supervise import GroupEnv
from tests.conftest import unique_ns
from tests.helpers.execution_proc import REST_POLL_S, ExecRig
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import run_simex, write_config
from tests.integration.test_execution_simex import active, rest_a_bid, take_until_filled

pytestmark = pytest.mark.integration

FAST = "reconcile_stuck_after_s = 3.0\n"  # a line of [execution] (20 s by default)


class LossySimex:
    """simex with a state file; ``lose()`` SIGKILLs it and restarts it from ``old``."""

    def __init__(self, directory: Path) -> None:
        self.state = directory / "sx-state.json"
        self.old = directory / "sx-state.old.json"
        self.cfg = write_config(directory, "state_save_s = 0.2", state_path=str(self.state))
        self._cm = run_simex(self.cfg)
        self.sx = self._cm.__enter__()
        eventually(self.state.exists, timeout_s=10)
        shutil.copy(self.state, self.old)  # the state before anything the test does

    def lose(self) -> None:
        self.sx.kill()
        self._cm.__exit__(None, None, None)
        shutil.copy(self.old, self.state)
        self._cm = run_simex(self.cfg)
        new = self._cm.__enter__()
        self.sx.proc = new.proc  # the rig holds this object: same ports, new process

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture
def lossy(tmp_path: Path) -> Iterator[LossySimex]:
    ls = LossySimex(tmp_path)
    yield ls
    if ls.sx.proc.poll() is None:
        ls.close()


@pytest.fixture
def rig(lossy: LossySimex, run_dir: Path) -> Iterator[ExecRig]:
    # lines of [execution.breaker]: the seconds simex is down would trip the REST error rate
    # (a true HALT, not what these tests are about)
    r = ExecRig(run_dir, unique_ns("x"), lossy.sx, 1, "rest_error_min_requests = 1000\n")
    yield r
    r.close()


def _start(rig: ExecRig) -> None:
    # reconcile_stuck_after_s lives in [execution]: put it before the first sub-table
    cfg = rig.write_config
    rig.write_config = lambda: _with_fast(cfg())  # type: ignore[method-assign]
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)


def _with_fast(path: Path) -> Path:
    text = path.read_text().replace("[execution]\n", "[execution]\n" + FAST, 1)
    path.write_text(text)
    return path


def _until(rig: ExecRig, cond: Callable[[], object], timeout_s: float) -> None:
    try:
        eventually(cond, timeout_s=timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nhealth: {rig.health()}\n{rig.log()[-3000:]}") from None


def _rows(path: Path, like: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM risk_events WHERE reason LIKE ?", (like,))
                   .fetchone()[0])  # fmt: skip
    finally:
        conn.close()


def test_a_resting_order_the_venue_forgot_is_closed_as_lost_and_trading_resumes(lossy, rig):
    _start(rig)
    rest_a_bid(rig)

    lossy.lose()

    _until(rig, lambda: rig.health()["orders_lost_at_venue_total"] == 1, 30)
    _until(rig, lambda: active(rig), 15)
    h = rig.health()
    assert rig.venue_orders() == []
    assert h["open_orders"] == 0
    assert h["queries_total"] <= 10  # backing off: not 4 a second
    assert _rows(rig.journal_path, "reconcile.%") <= 4
    assert rig.stop() == 0


def test_a_fill_the_venue_forgot_stops_with_a_reason_then_adopt_converges(lossy, rig):
    _start(rig)
    take_until_filled(rig)
    held = rig.venue_position()
    assert held > 0

    lossy.lose()  # the venue forgot the fill: it holds no position now

    h = eventually(lambda: (x := rig.health())["reconcile_stuck"] and x, timeout_s=30)
    assert h["state"] == "reconciling"
    assert "position_mismatch" in h["reconcile_stuck_reason"]
    assert "bitrader reconcile adopt" in h["reconcile_stuck_reason"]
    GroupEnv(rig.directory, rig.directory / "exec.toml", rig.ns, "pipeline").save()
    env = {**os.environ, "BITRADER_RUN_DIR": str(rig.directory)}
    res = subprocess.run(
        [sys.executable, "-m", "procs.cli", "reconcile", "adopt", "--operator", "test"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "adopted: BTCUSDT" in res.stdout
    eventually(lambda: active(rig), timeout_s=15, interval_s=REST_POLL_S)
    assert Decimal(json.loads(rig.health()["positions"])["BTCUSDT"]) == 0
    assert _rows(rig.journal_path, "reconcile.position_mismatch") == 1
    assert _rows(rig.journal_path, "operator.reconcile_adopt") == 1
    assert rig.stop() == 0
