"""Parity: a capture the live group recorded, replayed by ``bitrader backtest``.

The group trades live against simex for a while and records its capture; after it stops, the
backtest replays the capture with the live config and model and the live journal's round trips
as its latency model, then compares: the capture's ``feat`` and ``sig`` records with its own,
bit for bit, and the journal's intents with its own (``--compare-journal``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from procs.group.supervise import stop
from tests.helpers.group_run import Group, bitrader

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(480)]

SIGNALS_WANTED = 300


def _traded(g: Group) -> bool:
    # the signals the capture holds, not the ones inference published: the group stops all at
    # once, and what inference published after capture's last read is not in the capture
    sigs = g.counter("capture", "sig.records_total") or 0
    return g.journal.fills_count() >= 1 and sigs >= SIGNALS_WANTED


def test_backtest_reproduces_the_groups_feat_and_sig_and_lists_intent_differences(
    make_group, tmp_path
):
    g = make_group({})
    g.wait_until(lambda: _traded(g), 90, f"a fill and {SIGNALS_WANTED} signals")
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
    assert j["live_intents"] >= 1, why
    # every intent on either side is accounted for: matched, or listed as a difference
    listed = len(j["differences"])
    assert j["matching"] + listed >= max(j["live_intents"], j["backtest_intents"]), why
    assert s["assumptions"]["latency"]["model"] == "journal", why
    # the CLI prints every difference, one a line
    assert res.stderr.count("\n  ") >= listed, why
