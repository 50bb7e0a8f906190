"""Parity: a capture the live group recorded, replayed by ``bitrader backtest``.

The group trades live against simex for a while and records its capture; after it stops, the
backtest replays the capture with the live config and model and the live journal's round trips
as its latency model, then compares: the capture's ``feat`` and ``sig`` records with its own,
bit for bit, and the journal's intents with its own (``--compare-journal``): execution's steps
replayed where the live ones read (the journal's ``reads``), its orders answered as the live
venue answered them, every intent the same, one for one, client id and decision time included.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from procs.group.supervise import rpc, stop
from tests.helpers.group_run import Group, bitrader

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(480)]

SIGNALS_WANTED = 300
INTENTS_WANTED = 10


def _traded(g: Group) -> bool:
    # the signals the capture holds, not the ones inference published: the group stops all at
    # once, and what inference published after capture's last read is not in the capture
    sigs = g.counter("capture", "sig.records_total") or 0
    intents = len(g.journal.client_ids())
    return g.journal.fills_count() >= 1 and intents >= INTENTS_WANTED and sigs >= SIGNALS_WANTED


def _caught_up(g: Group) -> bool:
    h = g.health("capture")
    return h.get("sig.ring_lag_records") == 0 and h.get("md.book.ring_lag_records") == 0


# colocated: procs.hotpath runs the four hot stages, its passes batched by its own policy
# (inline, per chunk of a read, per read): the capture must replay the same either way
@pytest.mark.parametrize("topology", ["split", "colocated"])
def test_backtest_reproduces_the_groups_feat_sig_and_order_intents(make_group, tmp_path, topology):
    g = make_group({}, topology=topology)
    g.wait_until(
        lambda: _traded(g), 120, f"a fill, {INTENTS_WANTED} intents, {SIGNALS_WANTED} sigs"
    )
    # execution first (a clean stop journals its last reads; colocated: the process that hosts
    # it), then capture has read every signal and book execution read before the rest stops
    first = "pipeline:execution" if topology == "split" else "pipeline-colocated:hotpath"
    with rpc(g.run_dir) as proxy:
        proxy.supervisor.stopProcess(first, True)
    g.wait_until(lambda: _caught_up(g), 10, "capture caught up with the rings")
    assert stop(g.run_dir)
    # kept beside the outputs (pytest keeps the last runs' tmp_path): replayable by hand
    captures = shutil.copytree(g.cfg.capture_dir, tmp_path / "capture")
    journal = tmp_path / "live.sqlite"
    with sqlite3.connect(g.cfg.journal_path) as src, sqlite3.connect(journal) as dst:
        src.backup(dst)  # the WAL's pages too
    out = tmp_path / "bt"
    bt = tmp_path / "bt.toml"
    bt.write_text(
        g.cfg.path.read_text()
        + f'\n[backtest]\nprogress = "off"\n[backtest.latency]\nmodel = "journal"\n'
        f'journal = "{journal}"\n'
    )
    res = bitrader(
        "backtest", "--captures", str(captures), "--config", str(bt),
        "--out", str(out), "--compare-journal", str(journal), timeout_s=360,
    )  # fmt: skip
    why = f"rc={res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    assert res.returncode == 0, why
    s = json.loads((out / "summary.json").read_text())
    parity = s["parity"]
    why = f"{json.dumps(parity, indent=1)[:6000]}\n{why}"
    for stream in ("feat", "sig"):
        p = parity[stream]
        assert p["compared"] >= SIGNALS_WANTED, why
        assert p["live_unmatched"] == 0, why  # every live record has its backtest twin
        assert p["differing"] == 0, why  # bit for bit
        assert p["identical"] == p["live_records"], why
    j = parity["journal"]
    assert j["followed"], why  # the live steps were replayed, not guessed
    assert {"client_id", "ts_ns", "price", "qty", "side"} <= set(j["fields"]), why
    assert j["replay"]["steps_replayed"] >= 10, why
    assert j["live_intents"] >= 1, why
    assert j["differences"] == [], why  # one for one
    assert j["matching"] == j["live_intents"] == j["backtest_intents"], why
    # every step is replayable: capture had read everything execution read before it stopped
    assert j["replay"]["steps_outside_capture"] == 0, why
    assert j["live_outside_capture"] == [], why
    assert j["live_intents"] == _count(journal, "intents") >= INTENTS_WANTED, why
    assert j["replay"]["steps_replayed"] == _steps(journal), why
    assert s["assumptions"]["latency"]["model"] == "journal", why
    assert "difference(s) from the live journal" not in res.stderr, why


def _steps(journal) -> int:
    with sqlite3.connect(journal) as c:
        return sum(len(json.loads(t)) for (t,) in c.execute("SELECT steps FROM reads"))


def _count(journal, table: str) -> int:
    with sqlite3.connect(journal) as c:
        return int(c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
