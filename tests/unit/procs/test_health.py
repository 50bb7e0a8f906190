"""``bitrader health``'s verdicts: the trading state judged, the exit code per cause."""

from __future__ import annotations

from procs.group import health
from procs.group.health import ProcHealth, _fill, exit_code


def _row(counters: dict[str, object], state: str = "running") -> ProcHealth:
    row = ProcHealth(name="execution", state="RUNNING")
    _fill(row, {"state": state, "counters": counters}, reconcile_deadline_s=30.0)
    return row


def test_health_trading_states_are_problems_with_their_codes():
    assert _row({"state": "active"}).healthy
    assert _row({"state": "active"}).proc_state == "active"
    assert _row({"state": "halted", "breaker": "HALTED"}).causes == [health.EXIT_HALTED]
    assert _row({"state": "killed"}).causes == [health.EXIT_KILLED]
    assert _row({"state": "reducing"}).causes == [health.EXIT_REDUCING]
    assert _row({"state": "reconciling", "reconciling_s": 5.0}).healthy
    assert _row({"state": "reconciling", "reconciling_s": 31.0}).causes == [health.EXIT_RECONCILING]
    stuck = _row({"state": "reconciling", "reconciling_s": 1.0, "reconcile_stuck_reason": "x"})
    assert stuck.causes == [health.EXIT_RECONCILING]
    assert "x" in stuck.problems[0]


def test_health_exit_code_most_urgent_cause_wins_then_generic():
    halted, dead, stale = _row({"state": "halted"}), _row({}), _row({"stale_symbols": 1})
    dead.problem("control plane dead", health.EXIT_CONTROL_DEAD)

    assert exit_code([_row({"state": "active"})]) == 0
    assert exit_code([halted, dead, stale]) == health.EXIT_CONTROL_DEAD
    assert exit_code([stale, halted]) == health.EXIT_HALTED
    assert exit_code([stale]) == health.EXIT_UNHEALTHY
    assert exit_code([]) == health.EXIT_UNHEALTHY
