"""Chaos: the whole group trading on simex while a seeded random schedule of faults hits it.

Faults (tests/helpers/chaos_run.py): SIGKILL of each stage, a restart of simex (SIGTERM: its
state file is saved; a SIGKILLed simex loses state by design, see test_execution_venue_loss.py),
private/public WS drops and stalls, REST 5xx errors, held REST answers, rate-limit answers
(10005), malformed messages on every process's control socket, hostile WS frames from the venue
side; and, at planned moments, a corrupted journal, a corrupted capture file and a full disk
(tests/helpers/chaos_storage.py). Then it quiesces (kill switch) and checks: no order lost or
duplicated, fills counted once per order, journal positions and cash == simex, no order on stale
data, no rate-limit breach and a back-off after each rate-limit answer, no crash of its own and
no crash loop, health true at every sample (tests/helpers/chaos_checks.py).

``BITRADER_CHAOS_S`` sets the length of the fault phase (``make chaos``: 300 s; the default
run: 30 s), ``BITRADER_CHAOS_SEED`` the schedule, ``BITRADER_CHAOS_KINDS`` a subset of fault
kinds, ``BITRADER_CHAOS_KEEP=DIR`` keeps the logs and simex's request log. It prints a summary
line (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipc.bitunix.ratelimit import limit_for
from procs.group import health
from procs.trading.breaker import RATE_LIMIT_BACKOFF_MIN_S
from tests.helpers.books_check import books_agree, fills_once, stop_trading
from tests.helpers.chaos_checks import (
    aged_orders,
    backoff_breaches,
    crash_loop_findings,
    max_rates,
    orders_in_stale_windows,
    rate_breaches,
    stale_windows,
    supervisor_events,
)
from tests.helpers.chaos_run import (
    Chaos,
    book_marks,
    sent_orders,
    simex_post,
    simex_requests,
    storage_plan,
)
from tests.helpers.chaos_storage import mount_small_disk, unmount
from tests.helpers.group_config import EXEC_KEY, OBSERVER_KEY
from tests.helpers.group_run import Group, bitrader
from tests.helpers.simex_proc import http

CHAOS_S = float(os.environ.get("BITRADER_CHAOS_S", "30"))
SEED = int(os.environ.get("BITRADER_CHAOS_SEED", "0")) or random.SystemRandom().randrange(1 << 30)
# a comma-separated subset of fault kinds (random: kill, simex, drop, stall, rest5xx, held,
# ratelimit, fuzz, fuzzws; storage: journal, capture, disk), to chase one; empty: every kind
ONLY = frozenset(k for k in os.environ.get("BITRADER_CHAOS_KINDS", "").split(",") if k)
DISK_MIB = 512  # the small filesystem for the journal, the kill switch and the captures (RAM
# only for what is written: a 300 s run, each capture restart re-reading its rings, passed 128)
STALE_GRACE_S = 0.5  # a STALE marker's way from ingest's ring into execution, on a loaded box
BACKOFF_GRACE_S = 0.5  # a rate-limit answer's way back into execution's event loop

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("group"),
    pytest.mark.timeout(int(CHAOS_S) + 600),
]


@pytest.fixture
def data_disk(run_dir: Path) -> Iterator[tuple[Path, str]]:
    """``run_dir/data`` on a small tmpfs when this machine allows it (root): (path, why not)."""
    path = run_dir / "data"
    why_not = mount_small_disk(path, DISK_MIB)
    if why_not and os.environ.get("CI") == "true":
        pytest.fail(f"the full-disk fault needs a small filesystem: {why_not}")
    yield path, why_not
    if not why_not:
        unmount(path)


def _stale_data_findings(g: Group, chaos: Chaos) -> dict[str, Any]:
    """No order decided on data older than the limit; none sent inside a STALE window."""
    orders = sent_orders(g)
    max_age_s = float(g.cfg.data["execution"].get("risk", {}).get("max_data_age_s", 2.0))
    aged, judged = aged_orders(orders, max_age_s)
    assert aged == [], aged[:20]
    marks, unreadable = book_marks(g.cfg.capture_dir, chaos.storage_faults.capture_copies)
    windows = stale_windows(marks)
    inside = orders_in_stale_windows(orders, windows, STALE_GRACE_S)
    assert inside == [], inside[:20]
    ages = [(o.ts_order_ns - o.ts_recv_ns) / 1e9 for o in orders if o.ts_recv_ns and o.ts_order_ns]
    return {
        "orders_judged": judged,
        "max_age_s": round(max(ages, default=0.0), 3),  # the margin to max_data_age_s
        "stale_windows": len(windows),
        "stale_s": round(sum(e - s for _, s, e in windows) / 1e9, 1),
        "book_records": len(marks),
        "unreadable_captures": len(unreadable),
    }


def _keep_evidence(g: Group) -> None:
    """``BITRADER_CHAOS_KEEP=DIR``: copy the run's logs and simex's request log there."""
    keep = os.environ.get("BITRADER_CHAOS_KEEP")
    if not keep:
        return
    dest = Path(keep)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(g.run_dir / "logs", dest / "logs")
    shutil.copy(g.run_dir / "supervisord.log", dest)
    (dest / "requests.json").write_text(json.dumps(simex_requests(g)))
    for name in ("evidence",):
        if (g.run_dir / name).exists():
            shutil.copytree(g.run_dir / name, dest / name)


def _rate_findings(g: Group, chaos: Chaos) -> dict[str, Any]:
    """Our own REST requests never beyond the venue's documented limits; a back-off after every
    rate-limit answer to a new order. Over every simex process's request log."""
    logged = chaos.requests_before + simex_requests(g)
    ours = [e for e in logged if e[2] != OBSERVER_KEY[0]]
    breaches = rate_breaches(ours, limit_for)
    assert breaches == [], breaches
    late, answers = backoff_breaches(ours, RATE_LIMIT_BACKOFF_MIN_S, BACKOFF_GRACE_S, EXEC_KEY[0])
    assert late == [], late
    rates = max_rates(ours)
    codes = Counter(int(e[4]) for e in ours)
    return {
        "requests": len(ours),
        "answers": dict(sorted(codes.items())),
        "max_per_s": max(rates.values(), default=0),
        "rate_limit_answers_to_orders": answers,
    }


def _crash_findings(g: Group, chaos: Chaos) -> dict[str, int]:
    """Every exit one the test caused, FATAL only where it caused one, restarts bounded."""
    events = supervisor_events((g.run_dir / "supervisord.log").read_text())
    sf = chaos.storage_faults
    found = crash_loop_findings(events, chaos.expected_exits(), sf.expected_fatal, chaos.stops())
    assert found == [], found
    return {name: ev.spawned for name, ev in sorted(events.items())}


def test_chaos_trading_survives_random_faults_with_the_books_intact(data_disk, make_group):
    rng = random.Random(SEED)
    disk, disk_why_not = data_disk
    # an intent synced before its order leaves, or right after by the log's thread: a kill must
    # lose no order either way (the data disk is tmpfs, where "auto" syncs inline)
    intent_sync = ("after_send", "before_send")[SEED % 2]
    print(
        f"chaos seed={SEED} duration_s={CHAOS_S} full_disk={disk_why_not or 'yes'}"
        f" intent_sync={intent_sync}"
    )
    g = make_group(
        {
            "simex": {"state_path": "{run_dir}/simex-state.json", "restore": True},
            "execution": {
                # REST errors and held answers on purpose: the breaker must not halt the run
                "breaker": {"rest_error_rate_max": 0.9},
                "journal_path": "{run_dir}/data/execution.sqlite",
                "journal": {"intent_sync": intent_sync},
                "killswitch_path": "{run_dir}/data/killswitch.json",
            },
            "capture": {"directory": "{run_dir}/data/capture", "min_free_bytes": 4 << 20},
        }
    )
    g.wait_until(lambda: g.journal.fills_count() >= 1, 90, "a first fill")
    chaos = Chaos(g, rng, None if disk_why_not else disk)
    storage = ["journal", "capture"] + ([] if disk_why_not else ["disk"])
    plan = storage_plan(CHAOS_S, [k for k in storage if not ONLY or k in ONLY])
    t0 = time.monotonic()
    while (now := time.monotonic()) < t0 + CHAOS_S or plan:
        if plan and now >= t0 + plan[0][0]:
            chaos.storage(plan.pop(0)[1])
        else:
            chaos.one(ONLY)
            time.sleep(rng.uniform(0.5, 2.5))  # faults arrive at random moments, not on a beat
        chaos.sample_health()

    simex_post(g, "/_simex/faults/reset", {})
    g.wait_until(g.all_running, 90, "every program RUNNING after the chaos")
    g.wait_until(
        lambda: g.exec_state() in ("active", "reducing", "halted"), 90, "execution reconciled"
    )
    sent_after_chaos = int(g.health("execution")["orders_sent_total"])
    stop_trading(g, "chaos end")
    killed = g.wait_until(
        lambda: (
            (r := bitrader("health", "--run-dir", str(g.run_dir))).returncode == health.EXIT_KILLED
            and r
        ),
        30,
        "health exits 13 (killed)",
    )

    ids, venue_ids = books_agree(g)
    orders_filled, fills = fills_once(g, chaos.seen_orders)
    try:
        spawned = _crash_findings(g, chaos)
        stale = _stale_data_findings(g, chaos)
        rates = _rate_findings(g, chaos)
    finally:
        _keep_evidence(g)
    _, status = http("GET", g.cfg.control_url + "/_simex/status")
    assert status["rate_disconnects_total"] == 0  # no WS send-rate breach by our clients
    if sum(chaos.fuzz_counted.values()):  # counted skips are logged too
        for name in ("ingest", "execution"):
            log = (g.run_dir / "logs" / f"{name}.log").read_text(errors="replace")
            side = "public" if name == "ingest" else "private"
            assert not chaos.fuzz_counted[side] or "ws frame skipped" in log, name
    print(
        f"chaos summary seed={SEED} duration_s={CHAOS_S:.0f} faults={sum(chaos.done.values())} "
        f"{dict(sorted(chaos.done.items()))} sigkills={sum(chaos.kills.values())} "
        f"orders={len(ids)} venue_orders={len(venue_ids)} orders_filled={orders_filled} "
        f"fills={fills} health_samples={dict(sorted(chaos.health_samples.items()))} "
        f"sent_after_chaos={sent_after_chaos} lost=0 duplicated=0 "
        f"health_killed_exit={killed.returncode} injected={status['faults_injected_total']} "
        f"ws_fuzz_frames={status['ws_fuzz_frames_total']} fuzz_counted={dict(chaos.fuzz_counted)} "
        f"stale={stale} rates={rates} spawned={spawned} "
        f"storage_notes={dict(chaos.storage_faults.notes)} full_disk={disk_why_not or 'yes'}"
    )
