"""The whole pipeline group under supervisord against simex: it trades, and every view agrees.

One group, one test, four checks in order (each failure names its check and shows the group):
health is green for every program, every process serves its ``bitrader_*`` metrics, orders are
placed and filled and the journal agrees with simex's positions and wallet, and after ``stop``
the capture file holds every stream. One test rather than four sharing a module-scoped group:
xdist would split those across workers (see tests/helpers/group_run.py ``group_lock``).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import numpy as np
import pytest

from procs.capture.proc import KIND_FILL
from procs.group.health import query_health
from procs.group.supervise import stop
from procs.tickstore.store import list_captures, open_capture
from shm.segment import list_segments
from tests.helpers.group_config import START_BALANCE
from tests.helpers.group_run import PROGRAMS, REST_POLL_S, Group, bitrader
from tests.helpers.group_venue import duplicates

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(240)]

FILLS_WANTED = 3
HOT = ("ingest", "features", "inference", "execution")  # procs.hotpath's stages when colocated
STAGES = ("ingest", "capture", "features", "inference", "execution")  # each counts its work
BALANCE_TOLERANCE = Decimal("0.01")  # execution's own balance_tolerance_usdt


def _pid(g: Group, stage: str) -> int:
    """The pid that answers ``stage``'s control socket."""
    return int(query_health(g.cfg.control_endpoint(stage), 5.0)["pid"])


def _fills_and_signals(g: Group) -> bool:
    sigs = g.counter("inference", "records_total") or 0
    return g.journal.fills_count() >= FILLS_WANTED and sigs > 100


def _check_health(g: Group) -> None:
    def green():
        res = bitrader("health", "--run-dir", str(g.run_dir), "--json")
        return res if res.returncode == 0 else None

    res = g.wait_until(green, 30, "bitrader health exit 0", interval_s=0.5)
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) == set(PROGRAMS), res.stdout
    for name, row in rows.items():
        assert row["healthy"], row
        assert row["state"] == "RUNNING", row
        assert row["problems"] == [], row
        if name in g.cfg.metrics_ports:  # under the runtime: heartbeats, control socket
            assert row["heartbeat_age_s"] is not None, row
            assert row["heartbeat_age_s"] < 3, row
            assert row["ring_dropped_total"] == 0, row
    assert rows["execution"]["counters"]["mode"] == "live"
    assert rows["simex"]["counters"]["strict"] == 1  # as strict as the venue's docs
    assert rows["inference"]["counters"]["model_ok"] == 1
    assert rows["ingest"]["counters"]["stale_symbols"] == 0
    assert f"{g.ns}.inference.sig" in list_segments(g.ns)


def _check_metrics(g: Group) -> None:
    assert set(g.cfg.metrics_ports) >= set(STAGES)
    for proc in g.cfg.metrics_ports:
        text = g.metrics(proc)
        label = f'proc="{proc}"'
        beats = re.search(rf"^bitrader_heartbeats_total{{{label}}} (\S+)$", text, re.M)
        assert beats, f"{proc}:\n{text[:2000]}"
        assert float(beats.group(1)) > 0, f"{proc}:\n{text[:2000]}"
        if proc not in STAGES:
            continue  # simex serves the runtime's metrics only
        work = [  # counters of work done (not heartbeats): some must have counted
            float(v)
            for name, v in re.findall(r"^(bitrader_\w+_total)\{(?:.*)\} (\S+)$", text, re.M)
            if "heartbeat" not in name
        ]
        assert sum(work) > 0, f"{proc}:\n{text[:3000]}"
    text = g.metrics("execution")
    count = re.search(
        r'^bitrader_tick_to_order_seconds_count\{proc="execution"\} (\S+)$', text, re.M
    )
    assert count, text
    assert float(count.group(1)) >= 1, text
    assert 'bitrader_tick_to_order_seconds_bucket{le="5e-06",proc="execution"}' in text


def _check_journal_agrees_with_simex(g: Group) -> None:
    filled = [o for o in g.simex.history_orders() if o["status"] in ("FILLED", "PART_FILLED")]
    assert filled, g.why("execution")

    # quiesce: the kill switch cancels every resting order and stops new ones
    res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "e2e")
    assert res.returncode == 0, res.stderr
    g.wait_until(lambda: g.exec_state() == "killed", 10, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 10, "no open order at simex", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 10, "no open order here")

    def agree():
        return g.journal.positions() == g.simex.positions()

    g.wait_until(agree, 10, "journal positions == simex positions", REST_POLL_S)
    journal_pos, venue_pos = g.journal.positions(), g.simex.positions()
    wallet, cash = g.simex.wallet(), g.journal.cash()
    health = g.health("execution")
    ids = g.journal.client_ids()
    venue_ids = [o["clientId"] for o in g.simex.all_orders()]
    why = f"journal {journal_pos} simex {venue_pos} wallet {wallet} cash {cash}\n{g.why()}"

    assert journal_pos == venue_pos, why
    assert abs(wallet - (Decimal(START_BALANCE) + cash)) <= BALANCE_TOLERANCE, why
    held = {s: Decimal(v) for s, v in json.loads(health["positions"]).items() if Decimal(v)}
    assert held == journal_pos, why
    assert duplicates(ids) == {}, why
    assert duplicates(venue_ids) == {}, why
    assert set(venue_ids) <= set(ids), why  # every order simex saw was journaled first
    assert health["fills_total"] >= FILLS_WANTED, why
    assert g.journal.fills_count() == health["fills_total"], why


def _check_capture_after_stop(g: Group) -> None:
    fill_ids = {r[0] for r in g.journal.rows("SELECT fill_id FROM fills")}
    assert stop(g.run_dir)
    assert list_segments(g.ns) == [], "the ring writers unlink their rings on a clean stop"

    paths = list_captures(g.cfg.capture_dir)
    assert paths, f"no capture file in {g.cfg.capture_dir}\n{g.log_tail('capture')}"
    counts: dict[str, int] = {}
    orders = []
    seqs: dict[str, list[np.ndarray]] = {}
    gap_rows: list[np.ndarray] = []
    trade_ts: list[np.ndarray] = []
    for path in paths:
        cap = open_capture(path)
        assert cap.clean, f"{path} was not closed cleanly\n{g.log_tail('capture')}"
        for stream, recs in cap.streams.items():
            counts[stream] = counts.get(stream, 0) + len(recs)
            seqs.setdefault(stream, []).append(recs["seq"])
            if stream == "md.trade":
                trade_ts.append(recs["ts_event_ns"])
        gap_rows.append(cap.gaps)
        if "orders" in cap.streams:
            orders.append(cap.streams["orders"])
    why = f"{counts}\n{g.log_tail('capture')}"
    for stream in ("md.book", "md.trade", "feat", "sig", "orders"):
        assert counts.get(stream, 0) > 0, why
    gaps = np.concatenate(gap_rows)
    for stream, parts in seqs.items():  # a break in seq only where the gaps table counts it
        step = np.diff(np.concatenate(parts))
        mine = gaps[gaps["stream"] == stream.encode()]
        assert int(np.count_nonzero(step != 1)) == mine.size, (stream, mine, why)
        assert int((step[step > 1] - 1).sum()) == int(mine["lost"].sum()), (stream, mine)
    # trade event times are the push's ms stamp, not the ticks' whole seconds
    assert np.any(np.concatenate(trade_ts) % 1_000_000_000 != 0), why
    rows = np.concatenate(orders)
    captured_fills = {f.decode() for f in rows["fill_id"][rows["kind"] == KIND_FILL] if f}
    assert captured_fills, why
    assert captured_fills <= fill_ids, f"{captured_fills} vs {fill_ids}"


@pytest.mark.parametrize("topology", ["split", "colocated"])
def test_group_trades_reports_green_and_captures_everything(make_group, topology):
    g = make_group({}, topology)
    if topology == "colocated":  # one process hosts the four hot stages, each with its socket
        pids = {_pid(g, s) for s in HOT}
        assert pids == {g.info("hotpath")["pid"]}, g.why()
    _check_health(g)
    g.wait_until(lambda: _fills_and_signals(g), 60, f"{FILLS_WANTED} fills and 100 signals")
    _check_metrics(g)
    _check_journal_agrees_with_simex(g)
    _check_capture_after_stop(g)
