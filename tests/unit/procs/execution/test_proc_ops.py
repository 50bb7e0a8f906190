"""ExecutionProc for the operator: rate-limit back-off, venue state loss (lost orders, throttled
queries and rows, a stuck reconciliation that says why), adoption, and the control commands."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from procs.trading.breaker import BreakerState
from procs.trading.control import OperatorCommands
from procs.trading.model import OrderStatus
from procs.trading.reconcile import VenuePosition
from tests.helpers.execution_fakes import book_records, make_rig, reconciled

from .helpers import req

D = Decimal


@pytest.fixture
def rig(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    assert reconciled(r)
    yield r
    r.close()


def _rows(rig, table: str, where: str = "1") -> list[tuple[object, ...]]:
    conn = sqlite3.connect(rig.proc._c.journal_path)
    try:
        return list(conn.execute(f"SELECT reason, detail FROM {table} WHERE {where}"))
    finally:
        conn.close()


def test_rate_limit_answers_back_off_instead_of_halting(rig):
    rig.venue.mode = "ratelimit"
    for _ in range(8):  # more than max_consecutive_rejects (5) signals wanting an order
        rig.tick(0.5)
        rig.advance(0.06)
    limited = len(rig.venue.placed)

    assert rig.proc.breaker.state is BreakerState.ACTIVE
    assert rig.proc.state == "active"
    assert limited == 1  # the others waited out the back-off
    h = rig.proc.health()
    assert h["rate_limited_total"] == 1
    assert h["rate_limited_deferred_total"] >= 5
    assert h["breaker_backoff_s"] > 0

    rig.venue.mode = "ack"
    rig.advance(1.0)  # past the first back-off
    rig.tick(0.5)

    assert len(rig.venue.placed) == 2
    assert rig.proc.health()["breaker_backoff_s"] == 0


def test_rate_limit_back_off_doubles_while_the_venue_keeps_refusing(rig):
    b = rig.proc.breaker
    assert [b.on_rate_limited(rig.now()) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def _rest_an_order(rig) -> str:
    rig.tick(0.5)
    [req] = rig.venue.placed
    rig.run()
    assert rig.proc.tracker.get(req.client_id).status is OrderStatus.ACKED
    return req.client_id


def _pass(rig, seconds: float = 0.06) -> None:
    rig.advance(seconds)
    rig.book_w.publish(book_records(59999.9, 60000.1, rig.now()))  # market data stays fresh
    rig.run(3)


def test_venue_state_loss_an_order_it_forgot_is_closed_as_lost_and_trading_resumes(rig):
    cid = _rest_an_order(rig)
    rig.venue.known.clear()  # simex restarted from an old state: it forgot the order
    rig.proc.reconciler.request()

    for _ in range(200):  # 12 s of housekeeping at 60 ms
        _pass(rig)

    o = rig.proc.tracker.get(cid)
    assert o.status is OrderStatus.CANCELED
    assert "lost at venue" in o.reason
    assert rig.proc.reconciled
    assert rig.proc.state == "active"
    h = rig.proc.health()
    assert h["orders_lost_at_venue_total"] == 1
    assert rig.venue.queries.count(cid) <= 6  # backing off, not 4 a second
    rows = _rows(rig, "risk_events", "reason LIKE 'reconcile.%'")
    assert 1 <= len(rows) <= 2  # journaled when it appeared, not once per pass


def test_venue_position_loss_gets_stuck_with_a_reason_then_adopt_converges(rig):
    rig.venue.positions = [VenuePosition(symbol="BTCUSDT", qty=D("0.01"), avg_price=D(60000))]
    rig.proc.reconciler.request()
    passes = 0
    while rig.proc.health()["reconcile_stuck"] == 0 and passes < 1000:
        _pass(rig, 0.25)
        passes += 1
    h = rig.proc.health()

    assert h["state"] == "reconciling"
    assert h["reconciling_s"] >= rig.proc._c.reconcile_stuck_after_s
    assert "position_mismatch" in str(h["reconcile_stuck_reason"])
    assert "bitrader reconcile adopt" in str(h["reconcile_stuck_reason"])
    rows = _rows(rig, "risk_events", "reason = 'reconcile.position_mismatch'")
    assert len(rows) == 1  # one row for a lasting difference, however many passes
    total = rig.proc.reconciler.total
    _pass(rig, 5.0)
    assert rig.proc.reconciler.total == total  # stuck: it retries every reconcile_interval_s

    ops = OperatorCommands(rig.proc, rig.now)
    done = ops.reconcile_adopt({"operator": "ops"})
    for _ in range(5):
        _pass(rig)

    assert "BTCUSDT BOTH: 0 -> 0.01" in str(done["adopted"])
    assert rig.proc.reconciled
    assert rig.proc.state == "active"
    assert rig.proc.positions.net_qty("BTCUSDT") == D("0.01")
    assert rig.proc.health()["reconcile_stuck"] == 0
    assert _rows(rig, "risk_events", "reason = 'operator.reconcile_adopt'")


def test_adopt_is_refused_while_orders_are_open(rig):
    _rest_an_order(rig)
    rig.venue.positions = [VenuePosition(symbol="BTCUSDT", qty=D("0.01"), avg_price=D(60000))]
    rig.proc.reconciler.request()
    _pass(rig)

    with pytest.raises(ValueError, match="orders open"):
        OperatorCommands(rig.proc, rig.now).reconcile_adopt({"operator": "ops"})


def test_kill_switch_command_acks_cancels_and_audits(rig):
    cid = _rest_an_order(rig)
    ops = OperatorCommands(rig.proc, rig.now)

    ack = ops.kill_switch({"on": "1", "reason": "test", "source": "cli"})
    rig.run()  # the cancel call runs on the loop

    assert ack["state"] == "killed"
    assert ack["persisted"] == 1
    assert rig.venue.cancels == [cid]
    assert _rows(rig, "risk_events", "reason = 'operator.kill_switch'")
    with pytest.raises(ValueError, match="on=1 or on=0"):
        ops.kill_switch({"on": "maybe"})


def test_breaker_reset_command_returns_to_active_and_is_journaled(rig):
    rig.proc.on_breaker(rig.proc.breaker.trip("test", rig.now()))
    assert rig.proc.state == "halted"
    ops = OperatorCommands(rig.proc, rig.now)

    ack = ops.breaker_reset({"operator": "ops", "reason": "checked"})

    assert ack == {"old": "HALTED", "new": "ACTIVE", "state": "active"}
    assert _rows(rig, "risk_events", "reason = 'operator.breaker_reset'")
    with pytest.raises(ValueError, match="operator"):
        ops.breaker_reset({})


def test_a_reduce_only_order_waits_out_a_rate_limit_but_not_a_ws_outage(rig):
    # the chaos suite saw reduce-only orders hammer a venue answering 10005 at the bucket's
    # 8/s, each refusal doubling the back-off up to 30 s
    b, now = rig.proc.breaker, rig.now()
    b.on_rate_limited(now)
    assert b.hold_reason(now, reduce_only=True) == "rate_limited"
    close = req("br-ro-1", reduce_only=True)
    assert rig.proc.place(close, now) is False
    assert rig.proc.health()["rate_limited_deferred_total"] == 1
    assert rig.venue.placed == []
    later = now + 2_000_000_000  # past the back-off, the private WS down: reduce-only may go
    b.on_ws(False, later)
    assert b.hold_reason(later, reduce_only=True) == ""
    assert b.hold_reason(later) == "ws_down"


def test_a_stuck_reconciliation_on_a_refusing_journal_names_the_journal_and_refuses_adopt(rig):
    # a fill the full disk kept out of the journal looks like a venue position gap
    rig.venue.positions = [VenuePosition(symbol="BTCUSDT", qty=D("0.01"), avg_price=D(60000))]
    rig.proc.journal.write_error = "OperationalError: database or disk is full"
    rig.proc.reconciler.request()
    passes = 0
    while rig.proc.health()["reconcile_stuck"] == 0 and passes < 1000:
        _pass(rig, 0.25)
        passes += 1
    reason = str(rig.proc.health()["reconcile_stuck_reason"])

    assert reason.startswith("the journal refuses writes"), reason
    assert "database or disk is full" in reason
    assert "position_mismatch" in reason
    with pytest.raises(ValueError, match="journal refuses writes"):
        OperatorCommands(rig.proc, rig.now).reconcile_adopt({"operator": "ops"})
    assert rig.proc.positions.net_qty("BTCUSDT") == 0
