"""``bitrader backtest sweep`` on real Dask clusters over seeded captures: a 2×2 grid × 2 days
on a 2-worker ``LocalCluster``; a failing point reported while the others complete; a rerun
taken from the cache; each run's figures those of ``bitrader backtest`` itself; captures read
where the workers run (URLs only the workers can open); walk-forward ranked out of sample, with
the promotion gate applied to each period's model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from procs.backtest.cli import main as backtest_main
from procs.backtest.sweep import Cache, Runner, SweepSpec, run_sweep
from procs.backtest.sweep_cli import LOOPBACK
from procs.ml.simcapture import write_sim_capture
from procs.ml.synth import START_NS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "configs" / "models" / "default.onnx"
DAY = 86_400 * 1_000_000_000
BASE = """
[backtest]
progress = "off"
[backtest.latency]
journal = "/nonexistent/live-journal.sqlite"
"""


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> Path:
    """Three UTC days, 10 s of simulated market each, one capture file a day."""
    d = tmp_path_factory.mktemp("caps")
    for i in range(3):
        write_sim_capture(d, 40 + i, 10.0, start_ns=START_NS + i * DAY)
    return d


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process: cheap on 2 shared cores."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, **LOOPBACK) as cluster,
        Client(cluster) as c,
    ):
        yield c


def config(tmp_path: Path, strategy: str = "", name: str = "bt.toml") -> Path:
    text = (ROOT / "configs" / "demo.toml").read_text() + BASE
    assert text.count("[execution.strategy]\n") == 1
    p = tmp_path / name
    p.write_text(text.replace("[execution.strategy]\n", f"[execution.strategy]\n{strategy}"))
    return p


def grid(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "grid.toml"
    p.write_text(text)
    return p


def two_days(captures: Path, tmp_path: Path) -> Path:
    d = tmp_path / "two"
    d.mkdir()
    for f in sorted(captures.glob("*.h5"))[:2]:
        (d / f.name).symlink_to(f)
    return d


def test_a_grid_over_two_days_on_two_workers_with_a_failing_point(
    captures, client, tmp_path, capsys
):
    spec = SweepSpec(
        config=str(config(tmp_path)),
        grid=str(
            grid(
                tmp_path,
                "strategy.enter_score = [0.2, 0.4]\n"
                # the journal model needs a live journal the workers do not have: those runs fail
                'backtest.latency.model = ["constant", "journal"]\n',
            )
        ),
        captures=(f"file://{two_days(captures, tmp_path)}",),
        out=tmp_path / "out",
        model=str(MODEL),
        progress="on",
    )
    res = run_sweep(spec, client)
    assert re.search(r"sweep: 100%.* 8/8 ", capsys.readouterr().err)  # progress as runs complete
    df = res["table"]
    assert len(df) == 8  # 2 × 2 points × 2 days
    assert sorted(set(df["period"])) == ["2026-01-01", "2026-01-02"]
    failed = df[df["status"] == "failed"]
    ok = df[df["status"] == "ok"]
    assert len(ok) == 4
    assert len(failed) == 4
    assert set(failed["param:backtest.latency.model"]) == {"journal"}
    assert all("no such journal" in e for e in failed["error"])
    assert ok["pnl_net"].notna().all()
    assert (ok["orders_sent"] > 0).all()
    assert ok["pnl_net"].nunique() > 1  # the points differ
    info = res["info"]
    assert (info["submitted"], info["cached"], info["ok"], info["failed"]) == (8, 0, 4, 4)
    # tasks carry names and small values, never capture records: each a few kB against MBs
    biggest = max(f.stat().st_size for f in captures.glob("*.h5"))
    assert 0 < info["payload_bytes_max"] < biggest / 100

    # the same figures, byte for byte, as `bitrader backtest` over the same day and config
    row = ok[(ok["period"] == "2026-01-02") & (ok["param:execution.strategy.enter_score"] == 0.4)]
    (summary,) = [json.loads(s) for s in row["summary"]]
    one = config(tmp_path, "enter_score = 0.4\n", "one.toml")
    assert (
        backtest_main(
            [
                "--captures",
                str(sorted(captures.glob("*.h5"))[1]),
                "--config",
                str(one),
                "--model",
                str(MODEL),
                "--from",
                "2026-01-02T00:00:00Z",
                "--to",
                "2026-01-03T00:00:00Z",
                "--out",
                str(tmp_path / "one"),
            ]
        )
        == 0
    )
    cli = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary.pop("captures") != cli.pop("captures")  # the URL as given; a local path
    assert summary == cli

    # one table: Parquet and a self-contained page
    back = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(back) == 8
    assert {"param:execution.strategy.enter_score", "period", "status", "error", "pnl_net"} <= set(
        back.columns
    )
    page = (tmp_path / "out" / "results.html").read_text()
    assert "Best sets" in page
    assert "execution.strategy.enter_score: spread" in page
    assert "no such journal" in page
    assert "<script" not in page
    assert not re.search(r"(src|href)=\"https?:", page)
    ranking = res["ranking"]
    assert ranking["failed"].tolist() == [0, 0, 2, 2]  # the journal sets rank last

    again = run_sweep(spec, client)
    info = again["info"]
    assert (info["submitted"], info["cached"]) == (4, 4)  # only the failed runs run again
    assert info["failed"] == 4
    a = again["table"]
    assert a["cached"].tolist() == df["status"].eq("ok").tolist()
    pd.testing.assert_series_equal(a["pnl_net"], df["pnl_net"])


def _lost(task: str) -> dict[str, object]:
    raise MemoryError(f"{task}: the worker ran out of memory")  # as Dask reports a lost task


def test_a_task_dask_loses_is_a_failed_row_and_the_others_finish(client, tmp_path):
    runner = Runner(client, Cache(tmp_path / "cache"))
    got: dict[str, dict[str, object]] = {}
    runner.submit(_lost, "run a", "lost-a", lambda r: got.setdefault("a", r))
    runner.submit(dict, {"status": "ok"}, "fine-b", lambda r: got.setdefault("b", r))
    runner.wait()
    assert got == {
        "a": {"status": "failed", "error": "MemoryError: run a: the worker ran out of memory"},
        "b": {"status": "ok"},
    }


def _put_in_memory(files: dict[str, bytes]) -> int:
    fs = fsspec.filesystem("memory")
    for name, data in files.items():
        fs.pipe(f"/caps/{name}", data)
    return len(files)


def test_captures_are_read_where_the_workers_run(captures, tmp_path):
    """Worker processes hold the captures at memory:// URLs the client cannot open: the sweep
    completes, so no capture went through the client or the scheduler (and the CLI reaches a
    running cluster by its address)."""
    files = {f.name: f.read_bytes() for f in sorted(captures.glob("*.h5"))[:2]}
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            **LOOPBACK,
        ) as cluster,
        Client(cluster) as c,
    ):
        assert set(c.run(_put_in_memory, files).values()) == {2}
        assert not fsspec.filesystem("memory").exists("/caps")  # not in this process
        rc = backtest_main(
            [
                "sweep",
                "--grid",
                str(grid(tmp_path, "strategy.enter_score = [0.3]\n")),
                "--captures",
                "memory://caps",
                "--config",
                str(config(tmp_path)),
                "--model",
                str(MODEL),
                "--out",
                str(tmp_path / "out"),
                "--scheduler",
                cluster.scheduler_address,
                "--progress",
                "off",
            ]
        )
    assert rc == 0
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert df["status"].tolist() == ["ok", "ok"]
    assert df["period"].tolist() == ["2026-01-01", "2026-01-02"]
    summary = json.loads(df["summary"].iloc[0])
    assert summary["captures"][0].startswith("memory://")
    assert summary["events"]["books"] > 1000


@pytest.fixture(scope="module")
def wf_captures(tmp_path_factory) -> Path:
    """Two days long enough to train on (the features warm up for 60 s), a short third."""
    d = tmp_path_factory.mktemp("wf")
    for i, seconds in enumerate((70.0, 70.0, 15.0)):
        write_sim_capture(d, 50 + i, seconds, start_ns=START_NS + i * DAY)
    return d


def test_walk_forward_trains_on_each_day_and_ranks_out_of_sample(wf_captures, client, tmp_path):
    spec = SweepSpec(
        config=str(config(tmp_path)),
        grid=str(grid(tmp_path, "strategy.enter_score = [0.2, 0.4]\n")),
        captures=(str(wf_captures),),
        out=tmp_path / "out",
        walk_forward=True,
        progress="off",
    )
    res = run_sweep(spec, client)
    df = res["table"]
    info = res["info"]
    assert info["trained"] == 2  # days 1 and 2; day 3 is only tested on
    assert info["failed"] == 0
    out = df[df["sample"] == "out"]
    assert len(out) == len(df)  # no in-sample runs unless asked
    assert sorted(zip(out["train_period"], out["period"], strict=True)) == [
        ("2026-01-01", "2026-01-02"),
        ("2026-01-01", "2026-01-02"),
        ("2026-01-02", "2026-01-03"),
        ("2026-01-02", "2026-01-03"),
    ]
    # 10 s of market is too little for the gate: the model is kept but never traded
    card = json.loads((tmp_path / "out" / "models" / "2026-01-01.card.json").read_text())
    assert card["promotable"] is False
    assert (tmp_path / "out" / "models" / "2026-01-01.onnx").stat().st_size > 0
    for m, tp in zip(out["model"], out["train_period"], strict=True):
        assert m.startswith(
            "the rule scorer (procs.models.scoring.fallback_score): the model trained "
        )
        assert f"on {tp} did not pass the promotion gate" in m
    # the ranking reads out-of-sample rows only
    means = out.groupby("params")["pnl_net"].mean()
    r = res["ranking"]
    assert r["pnl_net_mean"].tolist() == sorted(means.tolist(), reverse=True)
    assert dict(zip(r["params"], r["pnl_net_mean"], strict=True)) == pytest.approx(means.to_dict())
    assert (r["periods"] == 2).all()  # two test days per set, no training day among them

    strict = SweepSpec(**{**spec.__dict__, "gate_fail": "fail", "in_sample": True})
    res = run_sweep(strict, client)
    df = res["table"]
    info = res["info"]
    assert (info["trained"], info["submitted"]) == (0, 0)  # the models came from the cache
    assert len(df) == 8  # and each model on its own training day too, as asked
    ins = df[df["sample"] == "in"]
    assert (ins["train_period"] == ins["period"]).tolist() == [True] * 4
    assert (df["status"] == "failed").all()  # never traded: the runs fail with the reasons
    assert all("did not pass the promotion gate" in e for e in df["error"])
    assert res["ranking"]["periods"].tolist() == [2, 2]  # still the out-of-sample days only
