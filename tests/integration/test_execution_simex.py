"""The execution process against simex over real sockets: orders, fills, kill switch, restarts."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from procs.group.control import main_kill_switch
from procs.group.supervise import GroupEnv
from procs.trading.killswitch import FileStore
from tests.conftest import unique_ns
from tests.helpers.execution_proc import REST_POLL_S, ExecRig
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import run_simex, write_config

pytestmark = pytest.mark.integration

TICK = Decimal("0.1")
THROUGH = 20 * TICK  # an IOC priced this far through the best still fills if the market moved


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    with run_simex(write_config(tmp_path_factory.mktemp("sx"))) as s:
        yield s


@pytest.fixture
def make(sx, run_dir):
    rigs: list[ExecRig] = []

    def build(key: int, extra_toml: str = "") -> ExecRig:
        rig = ExecRig(run_dir, unique_ns("x"), sx, key, extra_toml)
        rigs.append(rig)
        return rig

    yield build
    for r in rigs:
        r.close()


def active(rig: ExecRig) -> bool:
    return bool(rig.health()["state"] == "active")


def journal_position(path: Path) -> Decimal:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total = Decimal(0)
        for side, qty in conn.execute("SELECT side, qty FROM fills"):
            total += Decimal(qty) if side == "BUY" else -Decimal(qty)
        return total
    finally:
        conn.close()


def rest_a_bid(rig: ExecRig) -> Decimal:
    """Feed a book 1500 ticks under the venue's bid: our post-only quote rests there."""
    bid, _ask = rig.venue_top()
    ours = bid - 1500 * TICK  # 25 bps: the generated market rarely reaches it in seconds
    rig.tick(0.5, ours, ours + 20 * TICK)
    eventually(lambda: len(rig.venue_orders()) == 1, timeout_s=10, interval_s=REST_POLL_S)
    return ours


def take_until_filled(rig: ExecRig, attempts: int = 3) -> int:
    """IOC-buy through the venue's ask until a fill lands; return how many orders it took.

    simex's generated book can be thin for a moment (an IOC then expires unfilled): a fresh top
    and a fresh order is a new attempt, not a weaker check.
    """
    for n in range(1, attempts + 1):
        bid, ask = rig.venue_top()
        rig.tick(0.95, bid, ask + THROUGH)  # strong signal: IOC buy through the venue's ask
        try:
            eventually(lambda: rig.health()["fills_total"] >= 1, timeout_s=5)
        except AssertionError:
            if n == attempts:
                raise
            eventually(lambda n=n: rig.health()["orders_sent_total"] >= n, timeout_s=5)
            continue
        return n
    raise AssertionError("unreachable")


def test_execution_take_fills_via_private_ws_and_agrees_with_simex(make):
    rig = make(2)
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)

    tries = take_until_filled(rig)

    h = rig.health()
    assert h["orders_sent_total"] == tries
    held: Decimal = eventually(rig.venue_position, timeout_s=5, interval_s=REST_POLL_S)
    assert held > 0
    eventually(lambda: journal_position(rig.journal_path) == held, timeout_s=5)
    assert json.loads(rig.health()["positions"])["BTCUSDT"] == str(held)
    # periodic reconciliation (every 0.5 s) compares positions and balance with simex
    eventually(lambda: rig.health()["reconcile_differences"] == 0, timeout_s=5)
    assert rig.health()["state"] == "active"
    assert rig.health()["last_tick_to_order_us"] > 0
    assert rig.stop() == 0


def _as_group(rig: ExecRig) -> dict[str, str]:
    """Make the rig's directory look like a started group; the env the README's commands use."""
    cfg = rig.directory / "exec.toml"
    GroupEnv(rig.directory, cfg, rig.ns, "pipeline").save()
    return {**os.environ, "BITRADER_RUN_DIR": str(rig.directory)}


def _bitrader(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "procs.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_execution_kill_switch_cancels_resting_and_blocks_new(make):
    rig = make(3)
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    ours = rest_a_bid(rig)
    env = _as_group(rig)

    res = _bitrader(env, "kill-switch", "on")  # as the README writes it: no --file

    assert res.returncode == 0, res.stdout + res.stderr
    assert "acknowledged by execution (state=killed" in res.stdout
    assert FileStore(rig.killswitch_path).read().on
    eventually(lambda: rig.venue_orders() == [], timeout_s=10, interval_s=REST_POLL_S)
    assert rig.health()["state"] == "killed"
    sent = rig.health()["orders_sent_total"]
    eventually(lambda: rig.health()["open_orders"] == 0, timeout_s=5)  # the cancel's push
    rig.tick(0.5, ours - 5 * TICK, ours + 20 * TICK)
    eventually(lambda: rig.health()["refusals_total"] >= 1, timeout_s=5)
    assert rig.health()["orders_sent_total"] == sent
    assert rig.venue_orders() == []
    assert rig.stop() == 0
    rig.start()  # it persists across a restart
    eventually(lambda: rig.health()["state"] == "killed", timeout_s=15)
    off = _bitrader(env, "kill-switch", "off", "--reason", "all clear")
    assert off.returncode == 0, off.stdout + off.stderr
    eventually(lambda: active(rig), timeout_s=5)
    assert rig.stop() == 0
    reasons = _risk_reasons(rig.journal_path)
    assert reasons.count("operator.kill_switch") == 2


def test_execution_kill_switch_on_a_full_disk_acts_over_the_control_socket(
    make, monkeypatch, capsys
):
    rig = make(6)
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    _as_group(rig)

    def enospc(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # the CLI's disk is full (the seam); execution's own write of the slot still lands
    monkeypatch.setattr("procs.group.control.FileStore", lambda p: FileStore(p, pwrite=enospc))
    rc = main_kill_switch(["on", "--run-dir", str(rig.directory)])

    out = capsys.readouterr()
    assert rc == 0, out
    assert "No space left on device" in out.err
    assert "Traceback" not in out.err
    assert rig.health()["state"] == "killed"
    assert FileStore(rig.killswitch_path).read().on  # written by execution itself
    assert rig.stop() == 0


def test_execution_kill_switch_without_an_answer_says_so_loudly(make, tmp_path):
    rig = make(7)
    rig.write_config()
    env = _as_group(rig)  # a group whose execution is not running

    res = _bitrader(env, "kill-switch", "on", "--timeout-s", "0.5")

    assert res.returncode == 3
    assert "did NOT acknowledge" in res.stderr
    assert FileStore(rig.killswitch_path).read().on  # it acts once execution starts


def _risk_reasons(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r for (r,) in conn.execute("SELECT reason FROM risk_events ORDER BY id")]
    finally:
        conn.close()


def test_execution_sigkill_restart_keeps_client_ids_unique_and_reconciles(make):
    rig = make(4)
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    ours = rest_a_bid(rig)
    [resting] = rig.venue_orders()

    assert rig.stop(signal.SIGKILL) == -signal.SIGKILL
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    # the quote may have filled while we were down: either way both sides agree now
    venue_open = [o["clientId"] for o in rig.venue_orders()]
    assert venue_open in ([], [resting["clientId"]])
    assert rig.health()["open_orders"] == len(venue_open)
    assert journal_position(rig.journal_path) == rig.venue_position()
    rig.tick(0.5, ours, ours + 20 * TICK)  # same target, same quote: nothing new goes out
    rig.tick(0.5, ours, ours + 20 * TICK)
    eventually(lambda: rig.health()["reconcile_differences"] == 0, timeout_s=5)
    assert rig.health()["orders_sent_total"] == 0
    ids = [o["clientId"] for o in rig.venue_orders() + rig.venue_history()]
    assert ids == [resting["clientId"]]
    assert rig.stop() == 0


def test_execution_loss_limit_halts_trading(make):
    # lines appended to [execution.breaker]: a fee alone crosses these
    rig = make(5, 'reducing_loss_usdt = "0.00001"\nhalt_loss_usdt = "0.00002"\n')
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    take_until_filled(rig)  # a taker fill pays a fee: today's PnL turns negative
    eventually(lambda: rig.health()["state"] == "halted", timeout_s=5)
    assert rig.health()["breaker"] == "HALTED"
    sent = rig.health()["orders_sent_total"]
    bid, ask = rig.venue_top()
    rig.tick(-0.95, bid - THROUGH, ask)
    eventually(lambda: rig.health()["refusals_total"] >= 1, timeout_s=5)
    assert rig.health()["orders_sent_total"] == sent
    env = _as_group(rig)
    res = _bitrader(env, "breaker", "reset", "--reason", "test", "--operator", "ops")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "breaker HALTED -> ACTIVE" in res.stdout
    assert rig.stop() == 0
    assert "operator.breaker_reset" in _risk_reasons(rig.journal_path)
    conn = sqlite3.connect(f"file:{rig.journal_path}?mode=ro", uri=True)
    triggers = [t for (t,) in conn.execute("SELECT trigger FROM breaker_events ORDER BY id")]
    conn.close()
    # the reset follows the trip (and if today's loss still stands, another trip follows it)
    assert triggers[0] == "loss_limit"
    assert triggers[1] == "reset"


def test_execution_paper_mode_fills_locally_and_sends_nothing(make):
    rig = make(6)
    rig.mode = "paper"
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    bid = Decimal(60000)
    rig.tick(0.5, bid, bid + 2 * TICK)  # post-only bid at 60000 rests in the paper book
    eventually(lambda: rig.health()["open_orders"] == 1, timeout_s=5)
    rig.tick(0.5, bid - 2 * TICK, bid - TICK)  # the ask trades through our bid
    eventually(lambda: rig.health()["fills_total"] == 1, timeout_s=5)
    assert json.loads(rig.health()["positions"])["BTCUSDT"] == "0.0016"
    assert journal_position(rig.journal_path) == Decimal("0.0016")
    assert rig.venue_orders() == []
    assert rig.venue_history() == []  # no order ever reached the venue
    assert rig.stop() == 0


def test_execution_live_started_before_simex_waits_for_it_quietly(tmp_path, run_dir):
    sx_cfg = write_config(tmp_path)
    ports = tomllib.loads(sx_cfg.read_text())["simex"]
    not_yet = SimpleNamespace(
        rest_url=f"http://127.0.0.1:{ports['rest_port']}",
        ws_private_url=f"ws://127.0.0.1:{ports['ws_port']}/private/",
    )
    rig = ExecRig(run_dir, unique_ns("x"), not_yet, 1)  # type: ignore[arg-type]
    try:
        rig.start()  # answers health while it waits
        eventually(lambda: "to accept connections" in rig.log(), timeout_s=20)
        with run_simex(sx_cfg) as sx:
            rig.sx = sx
            eventually(lambda: active(rig), timeout_s=30)
            rc = rig.stop()
    finally:
        rig.close()
    log = rig.log()

    assert rc == 0, log
    assert "waiting up to 30s for the venue at 127.0.0.1:" in log
    assert "the venue accepts connections after" in log
    for noise in ("Connect call failed", "ConnectionRefused", "level=WARNING", "level=ERROR"):
        assert noise not in log, log
