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

from tests.helpers.books_check import books_agree, fills_once, stop_trading
from tests.helpers.group_run import Group

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

    stop_trading(g, "test end")
    books_agree(g)
    orders_filled, _ = fills_once(g, {})
    assert orders_filled >= 1
