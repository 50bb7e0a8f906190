"""The whole group under supervisord, faulted: SIGKILL of each stage, kill switch, loss breaker.

Each test starts its own group (tests/e2e/conftest.py ``make_group``) against simex, with
execution live and trading on small scores. Windows of "nothing was sent" are measured in
signals that execution saw and refused, never in wall time.
"""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest

from procs.group.supervise import stop
from shm.segment import list_segments
from tests.helpers.group_config import START_BALANCE
from tests.helpers.group_run import REST_POLL_S, Group, bitrader
from tests.helpers.group_venue import duplicates

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(240)]

STAGES = ("ingest", "features", "inference", "execution", "capture")
SIGNALS_RESUMED = 100  # new signals after a restart that show the chain flows again
WINDOW_SIGNALS = 300  # signals (~1-2 s) over which nothing may be sent
WINDOW_REFUSALS = 3  # ... and that many orders execution wanted but refused


def _signals(g: Group) -> int:
    return int(g.counter("inference", "records_total") or 0)


def _sent(g: Group) -> int:
    return int(g.health("execution")["orders_sent_total"])


def _restarted(g: Group, name: str, old_pid: int) -> dict[str, object] | None:
    info = g.info(name)
    return info if info["statename"] == "RUNNING" and info["pid"] not in (0, old_pid) else None


def _kill_switch(g: Group, action: str) -> None:
    res = bitrader("kill-switch", action, "--run-dir", str(g.run_dir), "--reason", "e2e")
    assert res.returncode == 0, res.stdout + res.stderr  # acknowledged by execution, on disk


def _quiesce_and_reconcile(g: Group) -> None:
    """Kill switch on, nothing open anywhere, then journal == simex (positions and cash)."""
    _kill_switch(g, "on")
    g.wait_until(lambda: g.exec_state() == "killed", 10, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 10, "no open order at simex", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 10, "none open here")
    g.wait_until(
        lambda: g.journal.positions() == g.simex.positions(), 10, "journal == simex", REST_POLL_S
    )
    wallet, cash = g.simex.wallet(), g.journal.cash()
    assert abs(wallet - (Decimal(START_BALANCE) + cash)) <= Decimal("0.01"), (
        f"simex wallet {wallet} vs journal cash {cash}\n{g.why('execution')}"
    )


def _window_sends_nothing(g: Group, what: str) -> None:
    """While signals flow and execution refuses orders, no order is journaled or reaches simex."""
    sent, intents = _sent(g), len(g.journal.client_ids())
    venue = len(g.simex.all_orders())
    sigs, refused = _signals(g), int(g.health("execution")["refusals_total"])

    def window_over() -> bool:
        h = g.health("execution")
        return _signals(g) >= sigs + WINDOW_SIGNALS and (
            int(h.get("refusals_total", 0)) >= refused + WINDOW_REFUSALS
        )

    g.wait_until(window_over, 30, f"{what}: signals flow and orders are refused")
    why = f"{what}\n{g.why('execution')}"
    assert _sent(g) == sent, why
    assert len(g.journal.client_ids()) == intents, why
    assert len(g.simex.all_orders()) == venue, why
    assert g.simex.open_orders() == [], why


def test_group_sigkill_each_stage_restarts_and_orders_reconcile(make_group):
    g = make_group({})
    g.wait_until(lambda: g.journal.fills_count() >= 1, 60, "a first fill")
    for name in STAGES:
        old = int(g.info(name)["pid"])
        os.kill(old, signal.SIGKILL)
        g.wait_until(lambda n=name, o=old: _restarted(g, n, o), 30, f"{name} restarted")
        base = _signals(g)  # the restarted inference counts from 0: base is then small
        g.wait_until(
            lambda b=base: _signals(g) >= b + SIGNALS_RESUMED, 30, f"signals after {name} kill"
        )
        if name == "capture":
            g.wait_until(
                lambda: (g.counter("capture", "records_total") or 0) > 0, 10, "capture records"
            )
        g.wait_until(lambda: g.exec_state() == "active", 30, f"execution active after {name}")
    # the last execution process trades too: it sent orders of its own after its restart
    g.wait_until(lambda: _sent(g) >= 1, 30, "an order from the restarted execution")

    log = (g.run_dir / "supervisord.log").read_text()
    for name in STAGES:
        assert f"exited: {name} (terminated by SIGKILL; not expected)" in log, log[-3000:]
    _quiesce_and_reconcile(g)
    ids = g.journal.client_ids()
    venue_ids = [o["clientId"] for o in g.simex.all_orders()]
    assert duplicates(ids) == {}, ids
    assert duplicates(venue_ids) == {}, venue_ids
    assert set(venue_ids) <= set(ids), f"orders simex has that the journal lacks: {venue_ids}"
    assert stop(g.run_dir)
    # every writer was SIGKILLed once: its restart re-created the ring, the clean stop unlinked it
    assert list_segments(g.ns) == []


def _kill_with_resting(g: Group) -> dict[str, str]:
    """Kill switch on while orders rest; returns their closed statuses at simex.

    Each resting order is cancelled, unless a fill beats the cancel to it.
    """
    resting = g.wait_until(g.simex.open_orders, 60, "a resting order at simex", REST_POLL_S)
    _kill_switch(g, "on")
    g.wait_until(lambda: g.exec_state() == "killed", 10, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 10, "resting orders cancelled", REST_POLL_S)
    closed = {o["clientId"]: o["status"] for o in g.simex.history_orders()}
    done = {"CANCELED", "PART_FILLED_CANCELED", "FILLED"}
    assert all(closed.get(o["clientId"]) in done for o in resting), (resting, closed)
    return {o["clientId"]: closed[o["clientId"]] for o in resting}


KILL_TRIES = 4  # a busy CI host can let every resting order fill before the cancel lands


def test_group_kill_switch_cancels_resting_and_sends_nothing(make_group):
    g = make_group({})
    tries: list[dict[str, str]] = []
    for _ in range(KILL_TRIES):
        tries.append(_kill_with_resting(g))
        if {"CANCELED", "PART_FILLED_CANCELED"} & set(tries[-1].values()):
            break
        # every order filled before its cancel: nothing was shown cancelled, so try again
        _kill_switch(g, "off")
        g.wait_until(lambda: g.exec_state() == "active", 10, "execution active again")
    else:
        pytest.fail(f"the kill switch cancelled no resting order in {KILL_TRIES} tries: {tries}")
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 10, "none open here")
    _window_sends_nothing(g, "kill switch on")
    reasons = {r[0] for r in g.journal.rows("SELECT reason FROM risk_events")}
    assert "kill_switch" in reasons, reasons

    _kill_switch(g, "off")  # the window above was live: trading resumes once it is off
    sent = _sent(g)
    g.wait_until(lambda: g.exec_state() == "active", 10, "execution active again")
    g.wait_until(lambda: _sent(g) > sent, 30, "orders again after the switch is off")


def test_group_loss_limit_halts_trading(make_group):
    # any loss at all halts (equal limits: no REDUCING band in between); fees make one soon
    breaker = {"reducing_loss_usdt": "0.00001", "halt_loss_usdt": "0.00001"}
    g = make_group({"execution": {"breaker": breaker}})
    g.wait_until(lambda: g.health("execution").get("breaker") == "HALTED", 60, "breaker HALTED")
    g.wait_until(lambda: g.exec_state() == "halted", 10, "execution halted")
    events = g.journal.breaker_events()
    assert any(new == "HALTED" and trig == "loss_limit" for _, new, trig, _ in events), events
    assert g.journal.fills_count() >= 1, g.why("execution")
    g.wait_until(lambda: g.simex.open_orders() == [], 10, "open orders cancelled", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 10, "none open here")
    _window_sends_nothing(g, "breaker HALTED")
    assert g.health("execution")["breaker"] == "HALTED"
    reasons = {r[0] for r in g.journal.rows("SELECT reason FROM risk_events")}
    assert "breaker_halted" in reasons, reasons
