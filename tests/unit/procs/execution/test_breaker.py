"""Breaker transitions for every trigger, what each state allows, and the operator reset."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from procs.trading.breaker import Breaker, BreakerState, BreakerTrigger
from procs.trading.config import BreakerConfig

D = Decimal
A, RD, H = BreakerState.ACTIVE, BreakerState.REDUCING, BreakerState.HALTED
T = BreakerTrigger
SEC = 1_000_000_000
CFG = BreakerConfig(
    max_consecutive_rejects=3,
    rest_error_rate_max=0.5,
    rest_error_window_s=10.0,
    rest_error_min_requests=4,
    ws_reducing_after_s=2.0,
    ws_halt_after_s=10.0,
    stale_data_s=5.0,
    latency_spike_s=0.5,
    latency_spike_count=2,
    reducing_loss_usdt=D(100),
    halt_loss_usdt=D(200),
)


def test_breaker_allows_per_state():
    b = Breaker(CFG)
    allowed = {}
    for state in (A, RD, H):
        b.state = state
        allowed[state] = (b.allows(), b.allows(reduce_only=True), b.allows(cancel=True))
    assert allowed == {
        A: (True, True, True),
        RD: (False, True, True),
        H: (False, False, True),
    }


def test_breaker_consecutive_rejects_halt_and_accept_resets_count():
    b = Breaker(CFG)
    assert b.on_order_result(False, 1) is None
    assert b.on_order_result(False, 2) is None
    assert b.on_order_result(True, 3) is None
    b.on_order_result(False, 4)
    b.on_order_result(False, 5)
    t = b.on_order_result(False, 6, "30016 qty below minimum")
    assert (t.old, t.new, t.trigger, t.ts_ns) == (A, H, T.CONSECUTIVE_REJECTS, 6)
    assert "30016" in t.detail
    assert b.state is H


def test_breaker_rest_error_rate_needs_min_requests_and_window():
    b = Breaker(CFG)
    assert b.on_rest_result(False, 1 * SEC) is None
    assert b.on_rest_result(False, 2 * SEC) is None
    assert b.on_rest_result(False, 3 * SEC) is None  # 3 < min requests
    assert b.on_rest_result(True, 4 * SEC) is not None  # 3/4 > 0.5
    assert b.state is H
    b2 = Breaker(CFG)
    for i in range(4):
        b2.on_rest_result(i % 2 == 0, i * SEC)  # 2/4 = 0.5: not over
    assert b2.state is A
    b2.on_rest_result(False, 20 * SEC)  # the old ones left the window
    assert b2.state is A


def test_breaker_ws_disconnect_reduces_then_halts_reconnect_stops_clock():
    b = Breaker(CFG)
    assert b.on_ws(False, 0) is None
    assert b.tick(2 * SEC - 1) is None
    t = b.tick(2 * SEC)
    assert (t.new, t.trigger) == (RD, T.WS_DISCONNECTED)
    t = b.tick(10 * SEC)
    assert (t.old, t.new) == (RD, H)
    b2 = Breaker(CFG)
    b2.on_ws(False, 0)
    b2.on_ws(True, SEC)
    assert b2.tick(20 * SEC) is None


def test_breaker_stale_data_reduces():
    b = Breaker(CFG)
    assert b.on_data_age(5.0, 1) is None
    t = b.on_data_age(5.01, 2)
    assert (t.new, t.trigger) == (RD, T.STALE_DATA)


def test_breaker_latency_spike_run_reduces():
    b = Breaker(CFG)
    assert b.on_latency(0.6, 1) is None
    assert b.on_latency(0.4, 2) is None  # run broken
    assert b.on_latency(0.6, 3) is None
    t = b.on_latency(0.7, 4)
    assert (t.new, t.trigger) == (RD, T.LATENCY_SPIKE)


def test_breaker_loss_limits_reduce_then_halt():
    b = Breaker(CFG)
    assert b.on_pnl(D("-99.99"), 1) is None
    assert b.on_pnl(D(-100), 2).new is RD
    assert b.on_pnl(D(-150), 3) is None  # already reducing
    t = b.on_pnl(D(-200), 4)
    assert (t.old, t.new, t.trigger) == (RD, H, T.LOSS_LIMIT)


def test_breaker_never_deescalates_by_itself_and_reset_returns_active():
    b = Breaker(CFG)
    b.trip("operator says stop", 1)
    assert b.on_data_age(99.0, 2) is None  # HALTED does not drop to REDUCING
    assert b.state is H
    t = b.reset("alice", 3)
    assert (t.old, t.new, t.trigger) == (H, A, T.RESET)
    assert "alice" in t.detail
    assert b.reset("alice", 4) is None
    assert b.transitions_total == 2


def test_breaker_reset_clears_counters():
    b = Breaker(CFG)
    b.on_order_result(False, 1)
    b.on_order_result(False, 2)
    b.state = RD
    b.reset("bob", 3)
    assert b.on_order_result(False, 4) is None  # count started again


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4 * SEC), st.booleans()), max_size=40))
def test_breaker_rest_error_count_matches_a_full_window_scan(results):
    b = Breaker(CFG)
    now = 0
    for ok, dt, reset in results:
        now += dt
        b.on_rest_result(ok, now)
        assert b._rest_errors == sum(1 for _, good in b._rest if not good)
        if reset:
            b.reset("test", now)
            assert b._rest_errors == 0
