"""The execution process against simex: funding settlements booked once (also across a restart)
and agreeing with simex's positions and balance; hedge-mode closes that name the positionId.
"""

from __future__ import annotations

import signal
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_ns
from tests.helpers.execution_proc import REST_POLL_S, SYMBOL, ExecRig
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import control, rest, run_simex, write_config
from tests.integration.test_execution_simex import THROUGH, active, journal_position

pytestmark = pytest.mark.integration

RATE = Decimal("0.01")  # per settlement: large, so a missed booking shows in the balance check


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    with run_simex(write_config(tmp_path_factory.mktemp("sxf"))) as s:
        yield s


class HedgeRig(ExecRig):
    """An ExecRig whose process runs in hedge position mode."""

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text().replace(
            'mode = "live"\n', 'mode = "live"\nposition_mode = "HEDGE"\n'
        )
        path.write_text(text)
        return path


@pytest.fixture
def make(sx, run_dir):
    rigs: list[ExecRig] = []

    def build(key: int, cls: type[ExecRig] = ExecRig) -> ExecRig:
        rig = cls(run_dir, unique_ns("f"), sx, key)
        rigs.append(rig)
        return rig

    yield build
    for r in rigs:
        r.close()


def venue_legs(rig: ExecRig) -> list[dict[str, Any]]:
    _, body = rest(rig.sx, "GET", "/position/get_pending_positions", {}, key=rig.key)
    return list(body["data"] or [])


def journal_funding(path: Path) -> list[tuple[str, Decimal]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT event_id, amount FROM funding ORDER BY id").fetchall()
        return [(str(e), Decimal(a)) for e, a in rows]
    finally:
        conn.close()


def open_long(rig: ExecRig) -> Decimal:
    """IOC-buy through the venue's ask until a position is open; return its qty."""
    for _ in range(3):
        bid, ask = rig.venue_top()
        rig.tick(0.95, bid, ask + THROUGH)
        try:
            eventually(lambda: rig.health()["fills_total"] >= 1, timeout_s=5)
            break
        except AssertionError:
            continue
    held: Decimal = eventually(rig.venue_position, timeout_s=5, interval_s=REST_POLL_S)
    eventually(lambda: journal_position(rig.journal_path) == held, timeout_s=5)
    return held


def test_execution_funding_settlement_is_booked_once_and_agrees_with_simex(make):
    rig = make(1)
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    open_long(rig)

    out = control(rig.sx, "/_simex/funding/settle", {"rates": {SYMBOL: str(RATE)}})

    assert out["settled"] >= 1
    [leg] = venue_legs(rig)
    venue_funding = Decimal(leg["funding"])
    assert venue_funding < 0  # a positive rate: the long pays
    eventually(lambda: sum(a for _, a in journal_funding(rig.journal_path)) == venue_funding, 5)
    [(event_id, _)] = journal_funding(rig.journal_path)
    assert event_id.startswith(f"fund:{leg['positionId']}:")
    h = rig.health()
    assert h["funding_events_total"] == 1
    assert Decimal(str(h["funding"])) == venue_funding
    # reconciliation (every 0.5 s) compares funding per position and balance incl. funding
    eventually(lambda: rig.health()["reconcile_differences"] == 0, timeout_s=5)
    assert rig.health()["state"] == "active"

    # a restart replays the journal and sees the same venue figure: nothing is booked twice
    assert rig.stop(signal.SIGKILL) == -signal.SIGKILL
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    assert rig.health()["funding_events_total"] == 0
    assert len(journal_funding(rig.journal_path)) == 1
    assert Decimal(str(rig.health()["funding"])) == venue_funding

    # a second settlement while we run is booked as the change of the venue's running total
    control(rig.sx, "/_simex/funding/settle", {"rates": {SYMBOL: str(-RATE)}})
    [leg] = venue_legs(rig)
    eventually(lambda: rig.health()["funding_events_total"] == 1, timeout_s=5)
    assert sum(a for _, a in journal_funding(rig.journal_path)) == Decimal(leg["funding"])
    eventually(lambda: rig.health()["reconcile_differences"] == 0, timeout_s=5)
    assert rig.stop() == 0


def test_execution_hedge_close_names_position_id_and_simex_accepts_it(make):
    rig = make(2, HedgeRig)
    status, body = rest(
        rig.sx, "POST", "/account/change_position_mode", {"positionMode": "HEDGE"}, key=rig.key
    )
    assert status == 200
    assert body["code"] == 0, body
    rig.start()
    eventually(lambda: active(rig), timeout_s=15)
    open_long(rig)
    [leg] = venue_legs(rig)
    assert leg["side"] in ("LONG", "BUY")

    for _ in range(3):  # a strong sell signal closes the long first (reduce-only IOC)
        bid, ask = rig.venue_top()
        rig.tick(-0.95, bid - THROUGH, ask)
        try:
            eventually(lambda: rig.venue_position() == 0, timeout_s=5, interval_s=REST_POLL_S)
            break
        except AssertionError:
            continue

    assert rig.venue_position() == 0
    eventually(lambda: journal_position(rig.journal_path) == 0, timeout_s=5)
    closes = [o for o in rig.venue_history() if o.get("tradeSide") == "CLOSE"]
    assert closes
    assert closes[0]["status"] == "FILLED", closes
    assert rig.health()["venue_errors_total"] == 0
    eventually(lambda: rig.health()["reconcile_differences"] == 0, timeout_s=5)
    assert rig.stop() == 0
