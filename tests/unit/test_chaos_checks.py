"""The chaos suite's verdicts (tests/helpers/chaos_checks.py) pass clean runs and catch each
injected violation: none of them is a check that cannot fail."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ipc.bitunix.ratelimit import limit_for
from tests.helpers.chaos_checks import (
    BookMark,
    SentOrder,
    aged_orders,
    backoff_breaches,
    crash_loop_findings,
    max_rates,
    orders_in_stale_windows,
    rate_breaches,
    stale_windows,
    supervisor_events,
)

NS = 1_000_000_000
PLACE = "/api/v1/futures/trade/place_order"
CANCEL = "/api/v1/futures/trade/cancel_orders"
T0 = 1_700_000_000 * NS


def _req(t_s: float, path: str = PLACE, code: int = 0, who: str = "k", ro: int = 0) -> list[Any]:
    ns = T0 + int(t_s * NS)
    return [ns + 2_000_000, ns // 1_000_000, who, path, code, ro]


def test_rate_within_the_documented_limit_passes_and_one_more_fails():
    # ten place_order in one second (the limit), then a pause: fine
    ok = [_req(i * 0.1) for i in range(10)] + [_req(1.5 + i * 0.1) for i in range(10)]
    assert rate_breaches(ok, limit_for) == []
    assert max_rates(ok)[f"k {PLACE}"] == 10
    bad = [*ok, _req(0.95)]  # an 11th inside the first second
    found = rate_breaches(bad, limit_for)
    assert len(found) == 1
    assert "11 requests" in found[0]
    # cancel_orders has half the budget: six in a second breach it
    assert rate_breaches([_req(i * 0.15, CANCEL) for i in range(6)], limit_for)
    # per key: two keys at the limit each are fine
    both = ok + [_req(i * 0.1, who="other") for i in range(10)]
    assert rate_breaches(both, limit_for) == []


def test_backoff_after_a_rate_limit_answer():
    answered = [_req(0.0, code=10005)]
    backed_off = [*answered, _req(0.05), _req(1.2)]  # in flight at once, then after the back-off
    found, answers = backoff_breaches(backed_off, 1.0, 0.25, "k")
    assert (found, answers) == ([], 1)
    reduce_only = [*answered, _req(0.5, ro=1)]  # the venue refuses it too: it must wait
    assert len(backoff_breaches(reduce_only, 1.0, 0.25, "k")[0]) == 1
    no_backoff = [*answered, _req(0.5)]
    found, _ = backoff_breaches(no_backoff, 1.0, 0.25, "k")
    assert len(found) == 1
    assert "0.498s after" in found[0]
    assert backoff_breaches(no_backoff, 1.0, 0.25, "someone else") == ([], 0)


def test_orders_on_aged_data_are_found():
    fresh = SentOrder("a", "BTCUSDT", T0 + NS, T0 + NS - 300_000_000)
    flatten = SentOrder("b", "BTCUSDT", T0 + NS, 0)  # no market data behind it
    assert aged_orders([fresh, flatten], 2.0) == ([], 1)
    old = SentOrder("c", "BTCUSDT", T0 + 5 * NS, T0 + 2 * NS)
    found, judged = aged_orders([fresh, old], 2.0)
    assert judged == 2
    assert len(found) == 1
    assert found[0].startswith("c BTCUSDT")


def _marks(spec: list[tuple[int, str, float, bool]]) -> list[BookMark]:
    return [BookMark(sym, seq, T0 + int(t * NS), stale) for seq, sym, t, stale in spec]


def test_stale_windows_and_orders_inside_them():
    marks = _marks(
        [
            (0, "BTCUSDT", 0.0, False),
            (1, "BTCUSDT", 1.0, True),  # stale from 1.0
            (2, "ETHUSDT", 1.5, False),
            (3, "BTCUSDT", 3.0, True),  # still stale (a repeat)
            (4, "BTCUSDT", 4.0, False),  # clean again at 4.0
        ]
    )
    windows = stale_windows(marks)
    assert windows == [("BTCUSDT", T0 + NS, T0 + 4 * NS)]
    before = SentOrder("ok1", "BTCUSDT", T0 + int(0.9 * NS), T0)
    other_symbol = SentOrder("ok2", "ETHUSDT", T0 + 2 * NS, T0 + int(1.5 * NS))
    at_the_edge = SentOrder("ok3", "BTCUSDT", T0 + int(1.1 * NS), T0)  # within grace
    inside = SentOrder("bad", "BTCUSDT", T0 + 2 * NS, T0)
    assert orders_in_stale_windows([before, other_symbol, at_the_edge], windows, 0.25) == []
    found = orders_in_stale_windows([before, inside], windows, 0.25)
    assert len(found) == 1
    assert found[0].startswith("bad BTCUSDT")


def test_a_window_the_capture_did_not_see_whole_is_left_out():
    marks = _marks(
        [(0, "BTCUSDT", 0.0, True), (5, "ETHUSDT", 2.0, False), (6, "BTCUSDT", 3.0, False)]
    )
    assert stale_windows(marks) == []  # seq 1-4 missing: the clean record may be among them
    still_open = _marks([(0, "BTCUSDT", 0.0, True), (1, "ETHUSDT", 2.0, False)])
    assert stale_windows(still_open) == [("BTCUSDT", T0, T0 + 2 * NS)]


LOG = """\
2026-12-06 05:00:00,001 INFO spawned: 'execution' with pid 10
2026-12-06 05:00:02,001 INFO success: execution entered RUNNING state
2026-12-06 05:00:09,001 WARN exited: execution (terminated by SIGKILL; not expected)
2026-12-06 05:00:09,101 INFO spawned: 'execution' with pid 11
2026-12-06 05:00:20,000 INFO stopped: execution (terminated by SIGTERM)
2026-12-06 05:00:21,000 INFO spawned: 'execution' with pid 12
2026-12-06 05:00:21,500 WARN exited: execution (exit status 78; not expected)
2026-12-06 05:00:22,000 INFO spawned: 'execution' with pid 13
2026-12-06 05:00:22,500 WARN exited: execution (exit status 78; not expected)
2026-12-06 05:00:23,500 INFO gave up: execution entered FATAL state, too many start retries
2026-12-06 05:00:30,000 INFO spawned: 'execution' with pid 14
2026-12-06 05:00:00,001 INFO spawned: 'ingest' with pid 20
"""


def test_supervisor_log_exits_and_fatal_match_what_the_test_caused():
    events = supervisor_events(LOG)
    assert events["execution"].spawned == 5
    assert events["execution"].exits == Counter({"terminated by SIGKILL": 1, "exit status 78": 2})
    assert events["execution"].fatal == 1
    caused = {"execution": Counter({"terminated by SIGKILL": 1, "exit status 78": 2})}
    stops = {"execution": 2}  # a stop before the corruption, a start after the restore
    assert crash_loop_findings(events, caused, {"execution": 1}, stops) == []
    # a crash of its own, a FATAL nobody caused, a restart loop: each is found
    crashed = supervisor_events(LOG + "x WARN exited: ingest (exit status 1; not expected)\n")
    assert any("ingest" in f for f in crash_loop_findings(crashed, caused, {"execution": 1}, stops))
    assert crash_loop_findings(events, caused, {}, stops)  # FATAL not expected
    assert crash_loop_findings(events, {}, {"execution": 1}, stops)  # exits not caused
    looping = supervisor_events(LOG + "x INFO spawned: 'ingest' with pid 21\n" * 3)
    found = crash_loop_findings(looping, caused, {"execution": 1}, stops)
    assert found == ["ingest: spawned 4 times > 1 (a restart loop)"]
