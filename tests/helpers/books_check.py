"""The end of a whole-group trading test: trading stopped, the journal's books against simex's.

``stop_trading`` engages the kill switch and waits until nothing is open here or at simex and
the journal's positions equal simex's; ``books_agree`` then checks the orders and the cash, and
``fills_once`` the fills per order (used by test_chaos and test_colocated_kill).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from tests.helpers.group_config import START_BALANCE
from tests.helpers.group_run import REST_POLL_S, Group, bitrader
from tests.helpers.group_venue import duplicates


def stop_trading(g: Group, reason: str) -> None:
    res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", reason)
    assert res.returncode == 0, res.stdout + res.stderr
    g.wait_until(lambda: g.exec_state() == "killed", 30, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 30, "no open order at simex", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 30, "none open here")
    g.wait_until(
        lambda: g.journal.positions() == g.simex.positions(), 30, "journal == simex", REST_POLL_S
    )


def books_agree(g: Group) -> tuple[list[str], list[str]]:
    """No client id twice on either side, every simex order journaled, simex's wallet equal to
    the start balance plus the journal's cash; returns (journal ids, simex ids)."""
    ids = g.journal.client_ids()
    venue_ids = [o["clientId"] for o in g.simex.all_orders()]
    assert duplicates(ids) == {}
    assert duplicates(venue_ids) == {}
    assert set(venue_ids) <= set(ids), "simex has orders the journal lacks"
    wallet, cash = g.simex.wallet(), g.journal.cash()
    assert abs(wallet - (Decimal(START_BALANCE) + cash)) <= Decimal("0.01"), (wallet, cash)
    return ids, venue_ids


def fills_once(g: Group, seen: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Per order, the journal's fills add up to what simex filled: nothing counted twice.

    Orders simex knows at the end must match exactly. Orders it forgot across a restart (its
    history is not in its state file) were seen before it: what was filled then is a floor,
    the order's qty a ceiling. Positions and cash are compared exactly by the caller.
    """
    booked: Counter[str] = Counter()
    for cid, qty in g.journal.rows("SELECT client_id, qty FROM fills"):
        booked[cid] += Decimal(qty)  # type: ignore[assignment]
    final = {o["clientId"]: o for o in g.simex.all_orders()}
    for cid, o in final.items():
        assert booked.get(cid, Decimal(0)) == Decimal(o["tradeQty"]), (cid, o, booked.get(cid))
    for cid, o in seen.items():
        if cid not in final:
            got = booked.get(cid, Decimal(0))
            assert Decimal(o["tradeQty"]) <= got <= Decimal(o["qty"]), (cid, o, got)
    unknown = set(booked) - set(final) - set(seen)
    assert not unknown, f"fills of orders simex never showed: {unknown}"
    return sum(1 for q in booked.values() if q), int(g.journal.fills_count())
