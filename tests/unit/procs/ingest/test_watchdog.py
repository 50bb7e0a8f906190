"""StalenessWatchdog with an injected clock (plain integers)."""

from __future__ import annotations

import pytest

from procs.marketdata.watchdog import StalenessWatchdog

S = 1_000_000_000


def test_watchdog_quiet_symbol_goes_stale_once_then_repeats_each_interval():
    w = StalenessWatchdog(2, stale_after_s=1.0, start_ns=0)
    w.touch(1, int(0.9 * S))

    before = w.check(int(0.99 * S))
    at = w.check(1 * S)
    again_soon = w.check(int(1.5 * S))
    w.touch(1, int(1.5 * S))
    again_due = w.check(2 * S)

    assert before == ([], [])
    assert at == ([0], [])
    assert again_soon == ([], [])
    assert again_due == ([], [0])
    assert w.stale_count == 1
    assert w.is_stale(0)
    assert not w.is_stale(1)


def test_watchdog_touch_ends_stale_period_and_reports_it():
    w = StalenessWatchdog(1, stale_after_s=0.5, start_ns=0)
    w.check(S)

    ended = w.touch(0, S + 1)
    ended_again = w.touch(0, S + 2)

    assert (ended, ended_again) == (True, False)
    assert w.stale_count == 0
    assert (w.went_stale_total, w.recovered_total) == (1, 1)
    assert w.check(S + 2 + S // 4) == ([], [])


def test_watchdog_never_updated_symbol_counts_from_start():
    w = StalenessWatchdog(1, stale_after_s=2.0, start_ns=10 * S)

    assert w.check(11 * S) == ([], [])
    assert w.check(12 * S) == ([0], [])
    assert w.ages_s(13 * S) == [3.0]


def test_watchdog_ages_are_seconds_since_last_touch():
    w = StalenessWatchdog(2, stale_after_s=5.0, start_ns=0)
    w.touch(0, 2 * S)

    assert w.ages_s(3 * S) == [1.0, 3.0]


@pytest.mark.parametrize(("n", "after"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_watchdog_bad_arguments_raise(n, after):
    with pytest.raises(ValueError, match="must be positive"):
        StalenessWatchdog(n, stale_after_s=after, start_ns=0)
