"""Replaying a run's recorded steps (``procs.backtest.follow``) and ``--compare-journal``.

The "live" run here is a backtest with its ``reads`` on: ``ExecutionProc`` against the matcher
on a seeded capture, its journal written as live execution writes one. Followed, its steps give
the same intents one for one (ids and decision times included); a journal edited after the run
makes the comparison name each edit.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from procs.backtest.cli import _recorded_latency, load_configs, main
from procs.backtest.compare import compare_journal
from procs.backtest.follow import follow_live
from procs.backtest.latency import make_latency
from procs.backtest.livejournal import FollowError, LiveRun
from procs.backtest.replay import load_market
from procs.backtest.run import run_execution
from procs.backtest.signals import compute_signals, live_batches
from procs.ml.simcapture import write_sim_capture

ROOT = Path(__file__).resolve().parents[4]
BACKTEST = """
[backtest]
progress = "off"
[backtest.latency]
entry_s = 0.002
response_s = 0.001
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict[str, Any]:
    """A run with reads recorded: its journal, and the market and signals it traded on."""
    d = tmp_path_factory.mktemp("follow")
    write_sim_capture(d / "cap", 11, 10.0)
    cfg = d / "bt.toml"
    cfg.write_text((ROOT / "configs" / "demo.toml").read_text() + BACKTEST)
    feat_c, inf_c, exe_c, bt = load_configs(str(cfg))
    market = load_market([d / "cap"])
    # the signals exactly as `bitrader backtest` computes them without a model file
    f, g = market.feat, market.sig
    feat_ns = _recorded_latency(f["ts_feat_ns"], f["ts_recv_ns"], bt.feat_latency_default_s)
    sig_ns = _recorded_latency(g["ts_sig_ns"], g["ts_feat_ns"], bt.sig_latency_default_s)
    _, sigs = compute_signals(
        market.books, market.trades, n_symbols=feat_c.n_symbols,
        mark_degenerate_stale=feat_c.mark_degenerate_stale, model=None,
        batch_max=inf_c.batch_max,
        feat_latency_ns=feat_ns, sig_latency_ns=sig_ns,
        chunk_books=bt.chunk_books,
        feat_batches=live_batches(market.books, f, "ts_feat_ns"),
        sig_batches=live_batches(market.books, g, "ts_sig_ns"),
        recorded=g,
    )  # fmt: skip
    assert exe_c.journal.reads_flush_s > 0  # recorded, as live execution does by default
    work = d / "live"
    work.mkdir()
    res = run_execution(exe_c, bt, make_latency(bt.latency), market.books, market.trades, sigs,
                        work_dir=work)  # fmt: skip
    return {"journal": work / "journal.sqlite", "exe": exe_c, "bt": bt, "market": market,
            "sigs": sigs, "intents": res.intents, "dir": d}  # fmt: skip


def _follow(live: dict[str, Any], journal: Path, tmp_path: Path) -> dict[str, Any]:
    run = LiveRun.load(journal)
    f = follow_live(live["exe"], live["bt"], run, live["market"].books, live["sigs"],
                    work_dir=tmp_path)  # fmt: skip
    out = compare_journal(journal, f.intents, followed=True, outside_ns=f.outside_ns)
    out["replay"] = f.describe()
    return out


def test_following_a_runs_steps_gives_its_intents_one_for_one(live, tmp_path):
    got = _follow(live, live["journal"], tmp_path)
    n = len(live["intents"])
    assert n > 20  # it traded: quotes, takes, replacements
    assert got["differences"] == []
    assert got["matching"] == got["live_intents"] == got["backtest_intents"] == n
    assert "client_id" in got["fields"]
    assert "ts_ns" in got["fields"]
    assert got["replay"]["steps_outside_capture"] == 0
    assert got["replay"]["orders_without_live_twin"] == 0
    assert _follow(live, live["journal"], tmp_path / "again") == got  # deterministic


def _edited(live: dict[str, Any], tmp_path: Path, *queries: str, name: str = "edited") -> Path:
    p = tmp_path / f"{name}.sqlite"
    shutil.copy(live["journal"], p)
    with sqlite3.connect(p) as c:
        for q in queries:
            c.execute(q)
    return p


def test_a_journal_with_a_changed_price_is_listed_as_that_difference(live, tmp_path):
    cid = live["intents"][5]["client_id"]
    p = _edited(live, tmp_path, f"UPDATE intents SET price = '1.5' WHERE client_id = '{cid}'")

    got = compare_journal(p, live["intents"], followed=True)

    [diff] = got["differences"]
    assert diff.startswith("differs: ")
    assert cid in diff
    assert "price live=1.5 backtest=" in diff
    assert got["matching"] == len(live["intents"]) - 1


def test_a_missing_and_an_extra_intent_are_listed(live, tmp_path):
    gone, moved = live["intents"][3]["client_id"], live["intents"][7]["client_id"]
    p = _edited(
        live, tmp_path,
        f"DELETE FROM intents WHERE client_id = '{gone}'",
        f"UPDATE intents SET ts_recv_ns = ts_recv_ns + 1 WHERE client_id = '{moved}'",
    )  # fmt: skip

    got = compare_journal(p, live["intents"], followed=True)

    diffs = got["differences"]
    assert sum(d.startswith("only backtest: ") and gone in d for d in diffs) == 1
    assert sum(d.startswith("only live: ") and moved in d for d in diffs) == 1  # other signal
    assert sum(d.startswith("only backtest: ") and moved in d for d in diffs) == 1
    assert len(diffs) == 3


def test_a_step_read_at_another_moment_changes_what_the_replay_decides(live, tmp_path):
    # the first step that placed an order: recorded 50 ms later, its decision moves with it
    first = live["intents"][0]
    p = _edited(live, tmp_path)
    with sqlite3.connect(p) as c:
        for rid, text in c.execute("SELECT id, steps FROM reads").fetchall():
            steps = json.loads(text)
            for step in steps:
                if step[3] == first["ts_ns"]:
                    step[3] += 50_000_000
            c.execute("UPDATE reads SET steps = ? WHERE id = ?", (json.dumps(steps), rid))

    got = _follow(live, p, tmp_path)

    assert any(first["client_id"] in d for d in got["differences"])


def test_a_journal_without_reads_cannot_be_followed(live, tmp_path):
    p = _edited(live, tmp_path, "DELETE FROM reads")
    with pytest.raises(FollowError, match="no reads recorded"):
        LiveRun.load(p)
    p2 = _edited(live, tmp_path, "DROP TABLE reads", name="schema2")
    with pytest.raises(FollowError, match="schema 2 or older"):
        LiveRun.load(p2)


def test_reads_off_records_none(live, tmp_path):
    exe = msgspec.structs.replace(
        live["exe"], journal=msgspec.structs.replace(live["exe"].journal, reads_flush_s=0.0)
    )
    m = live["market"]
    run_execution(exe, live["bt"], make_latency(live["bt"].latency), m.books[:2000],
                  m.trades[:0], live["sigs"][:2000], work_dir=tmp_path)  # fmt: skip
    with sqlite3.connect(tmp_path / "journal.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM reads").fetchone() == (0,)
        assert c.execute("SELECT COUNT(*) FROM intents").fetchone()[0] > 0


def test_the_cli_prints_every_difference_of_an_edited_journal(live, tmp_path, capsys):
    cid = live["intents"][2]["client_id"]
    p = _edited(live, tmp_path, f"UPDATE intents SET qty = '7' WHERE client_id = '{cid}'")
    args = ["--captures", str(live["dir"] / "cap"), "--config", str(live["dir"] / "bt.toml"),
            "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "out")]  # fmt: skip

    assert main([*args, "--compare-journal", str(live["journal"])]) == 0
    clean = capsys.readouterr().err
    assert main([*args, "--compare-journal", str(p)]) == 0
    err = capsys.readouterr().err

    assert "difference" not in clean
    assert "1 difference(s) from the live journal:" in err
    assert "  differs: " in err
    assert f"{cid}: qty live=7 backtest=" in err
