"""procs.hotpath killed (SIGKILL) while it trades: no order or fill lost or booked twice.

The colocated topology writes execution's rows that book no fill (SENT, acknowledgements,
cancels) at idle, a few milliseconds after the step (``procs.hotpath.JournalFlush``); a kill
loses the rows still waiting. This kills the one process that hosts the four hot stages three
times while it trades against simex, lets supervisord restart it, and checks what the chaos
test checks of the split group: it reconciles, and at the end the journal and simex agree on
every order, fill, position and the cash.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from decimal import Decimal

from tests.helpers.group_config import START_BALANCE
from tests.helpers.group_run import REST_POLL_S, Group, bitrader
from tests.helpers.group_venue import duplicates

KILLS = 3


def _pid(g: Group) -> int:
    return int(g.info("hotpath")["pid"])


def _orders(g: Group) -> int:
    return len(g.journal.client_ids())


def test_hotpath_killed_while_trading_loses_no_order_or_fill(make_group):
    g = make_group({}, topology="colocated")
    g.wait_until(lambda: g.journal.fills_count() >= 1, 90, "a first fill")
    for k in range(KILLS):
        before, pid = _orders(g), _pid(g)
        g.wait_until(lambda b=before: _orders(g) >= b + 3, 60, f"orders before kill {k + 1}")
        os.kill(pid, signal.SIGKILL)
        g.wait_until(lambda p=pid: _pid(g) not in (0, p), 60, f"hotpath restarted ({k + 1})")
        g.wait_until(g.all_running, 60, "every program RUNNING")
        g.wait_until(lambda: g.exec_state() == "active", 90, f"reconciled after kill {k + 1}")

    res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "test end")
    assert res.returncode == 0, res.stdout + res.stderr
    g.wait_until(lambda: g.exec_state() == "killed", 30, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 30, "no open order at simex", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 30, "none open here")
    g.wait_until(
        lambda: g.journal.positions() == g.simex.positions(), 30, "journal == simex", REST_POLL_S
    )
    ids = g.journal.client_ids()
    venue = {o["clientId"]: o for o in g.simex.all_orders()}
    assert duplicates(ids) == {}
    assert set(venue) <= set(ids), "simex has orders the journal lacks"
    booked: Counter[str] = Counter()
    for cid, qty in g.journal.rows("SELECT client_id, qty FROM fills"):
        booked[cid] += Decimal(qty)  # type: ignore[assignment]
    for cid, o in venue.items():  # every fill booked once: per order, as much as simex filled
        assert booked.get(cid, Decimal(0)) == Decimal(o["tradeQty"]), (cid, o, booked.get(cid))
    assert set(booked) <= set(venue), "fills of orders simex never had"
    wallet, cash = g.simex.wallet(), g.journal.cash()
    assert abs(wallet - (Decimal(START_BALANCE) + cash)) <= Decimal("0.01"), (wallet, cash)
    assert sum(1 for q in booked.values() if q) >= 1
