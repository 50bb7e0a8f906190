"""The sweep's checks before it runs anything: the grid file, each point's config decoded by
the live types (exit 78 naming the point), periods cut from capture spans, and the ranking and
sensitivity read from a results table (out-of-sample rows only in walk-forward)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from procs.backtest.grid import Grid, GridError, apply, read_grid
from procs.backtest.sources import DAY_NS, NS, CaptureInfo, parse_period, split_periods
from procs.backtest.sweep import SweepError, SweepSpec, make_task, prepare
from procs.backtest.sweep_cli import main
from procs.backtest.sweep_report import rank, selection, sensitivity
from procs.backtest.walkforward import _model_for, check_periods

ROOT = Path(__file__).resolve().parents[4]
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z


def grid_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "grid.toml"
    p.write_text(text)
    return p


def test_grid_keys_are_dotted_paths_and_points_their_product(tmp_path):
    g = read_grid(
        grid_file(
            tmp_path,
            'strategy.enter_score = [0.2, 0.3]\n"backtest.latency.entry_s" = [0.001, 0.002, 0.01]\n'
            "[execution.risk]\nmax_open_orders = [4]\n",
        )
    )
    assert g.keys == (
        "execution.strategy.enter_score",  # a path outside the sections is under [execution]
        "backtest.latency.entry_s",
        "execution.risk.max_open_orders",
    )
    pts = g.points()
    assert len(pts) == g.size() == 6
    assert pts[0] == {
        "execution.strategy.enter_score": 0.2,
        "backtest.latency.entry_s": 0.001,
        "execution.risk.max_open_orders": 4,
    }
    assert pts[1]["backtest.latency.entry_s"] == 0.002  # the last key varies fastest
    doc = apply({"execution": {"strategy": {"target_notional_usdt": "100"}}}, pts[5])
    assert doc["execution"]["strategy"] == {"target_notional_usdt": "100", "enter_score": 0.3}
    assert doc["backtest"]["latency"]["entry_s"] == 0.01


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("strategy.edge_bps = [1, 2]", "[execution.strategy] has no field 'edge_bps'"),
        ("backtest.latency.nope = [1]", "[backtest.latency] has no field 'nope'"),
        ("strategy.enter_score = 0.2", "must be a non-empty list"),
        ("strategy.enter_score = []", "must be a non-empty list"),
        ("strategy.enter_score = [0.2, 0.2]", "lists a value twice"),
        ("execution.symbols = [[]]", "a list of tables"),
        ("execution.mode.x = [1]", "is not a table"),
        ("execution = [1]", "a whole section cannot be swept"),
        ("strategy.enter_score = [1", "grid.toml"),
    ],
)
def test_a_bad_grid_is_refused_with_its_key(tmp_path, text, said):
    with pytest.raises(GridError, match=r"grid\.toml") as e:
        read_grid(grid_file(tmp_path, text))
    assert said in str(e.value)


def config(tmp_path: Path) -> Path:
    p = tmp_path / "bt.toml"
    p.write_text((ROOT / "configs" / "demo.toml").read_text() + '\n[backtest]\nprogress = "off"\n')
    return p


def sweep(tmp_path: Path, grid: str, *more: str) -> int:
    return main(
        [
            "--grid",
            str(grid_file(tmp_path, grid)),
            "--captures",
            str(tmp_path / "no-such-captures"),  # never read: refused before the scan
            "--config",
            str(config(tmp_path)),
            "--out",
            str(tmp_path / "out"),
            "--progress",
            "off",
            *more,
        ]
    )


def test_a_value_the_live_config_refuses_exits_78_naming_the_point(tmp_path, capsys):
    rc = sweep(tmp_path, "strategy.exit_score = [0.05, 0.99]\nstrategy.enter_score = [0.3]")
    assert rc == 78
    err = capsys.readouterr().err
    assert "1 of 2 grid point(s) refused (nothing was run)" in err
    assert (
        'point 1 {"execution.strategy.enter_score":0.3,"execution.strategy.exit_score":0.99}' in err
    )
    assert "exit_score must not exceed" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_and_a_refused_model_exit_78(tmp_path, capsys):
    assert sweep(tmp_path, "strategy.edge_bps = [1, 2, 3]") == 78
    assert "has no field 'edge_bps'" in capsys.readouterr().err
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not onnx")
    assert sweep(tmp_path, "strategy.enter_score = [0.3]", "--model", str(bad)) == 78
    assert "model refused" in capsys.readouterr().err
    assert sweep(tmp_path, "risk.max_open_orders = [0]") == 78  # msgspec's bound, as live
    assert "Expected `int` >= 1" in capsys.readouterr().err


def info(name: str, first_s: float, last_s: float) -> CaptureInfo:
    return CaptureInfo(name, 1, "0", T0 + int(first_s * NS), T0 + int(last_s * NS))


def test_periods_are_cut_from_the_capture_spans():
    files = [
        info("a", 10, 20),
        info("b", 86_400 + 5, 86_400 + 30),
        info("c", 3 * 86_400, 3 * 86_400 + 1),
    ]
    days = split_periods(files, parse_period("day"))
    assert [p.label for p in days] == ["2026-01-01", "2026-01-02", "2026-01-04"]  # none empty
    assert [[f.url for f in p.files] for p in days] == [["a"], ["b"], ["c"]]
    assert days[0].start_ns == T0
    assert days[0].end_ns == T0 + DAY_NS
    tens = split_periods([info("a", 10, 29)], parse_period("10s"))
    assert [p.label for p in tens] == [
        "2026-01-01T00:00:10Z",
        "2026-01-01T00:00:20Z",
    ]
    assert all(p.files == tens[0].files for p in tens)  # one file, sliced by time
    (whole,) = split_periods(files, parse_period("all"))
    assert whole.label == "all"
    assert len(whole.files) == 3
    for bad in ("0s", "1w", "daily", "-5m"):
        with pytest.raises(ValueError, match="--period"):
            parse_period(bad)


def test_walk_forward_refuses_a_file_across_its_training_period():
    check_periods(split_periods([info("a", 10, 20), info("b", 86_410, 86_420)], DAY_NS))
    with pytest.raises(SweepError, match="at least two periods"):
        check_periods(split_periods([info("a", 10, 20)], DAY_NS))
    across = split_periods([info("a", 10, 86_405), info("b", 86_410, 86_420)], DAY_NS)
    with pytest.raises(SweepError, match="a has books outside period 2026-01-01"):
        check_periods(across)


def test_the_gate_decides_what_a_walk_forward_period_trades_with():
    (p,) = split_periods([info("a", 10, 20)], DAY_NS)
    ok = {"status": "ok", "onnx": b"model", "card": {"promotable": True}}
    model, err = _model_for(p, ok, "fallback")
    assert err is None
    assert model is not None
    assert model[0] == b"model"
    refused = {
        "status": "ok",
        "onnx": b"model",
        "card": {"promotable": False, "gate": {"reasons": ["12 held-out moves, fewer than 1000"]}},
    }
    model, err = _model_for(p, refused, "fallback")
    assert err is None
    assert model is not None
    assert model[0] is None  # never traded: the rule scorer instead
    assert "rule scorer" in model[1]
    assert "fewer than 1000" in model[1]
    model, err = _model_for(p, refused, "fail")
    assert model is None
    assert err is not None
    assert "did not pass the promotion gate" in err
    model, err = _model_for(p, {"status": "failed", "error": "ValueError: one-sided"}, "fallback")
    assert model is None
    assert err == "training on period 2026-01-01 failed: ValueError: one-sided"


def results(rows: list[tuple[str, float, str, str, float | None]]) -> pd.DataFrame:
    """(params, x, sample, status, pnl) rows in the sweep table's layout."""
    return pd.DataFrame(
        [
            {
                "params": p,
                "param:x": x,
                "sample": s,
                "status": st,
                "pnl_net": v,
                "max_drawdown_usdt": None if v is None else -v,
            }
            for p, x, s, st, v in rows
        ]
    )


def test_ranking_reads_out_of_sample_rows_only_and_puts_failures_last():
    df = results(
        [
            ("A", 1.0, "in", "ok", 100.0),  # best in sample: must not help A
            ("A", 1.0, "out", "ok", 1.0),
            ("A", 1.0, "out", "ok", 3.0),
            ("B", 2.0, "in", "ok", -50.0),
            ("B", 2.0, "out", "ok", 4.0),
            ("B", 2.0, "out", "ok", 6.0),
            ("C", 3.0, "out", "ok", 90.0),
            ("C", 3.0, "out", "failed", None),  # a failed period ranks C after complete sets
        ]
    )
    r = rank(df, ["x"], "pnl_net")
    assert r["params"].tolist() == ["B", "A", "C"]
    assert r["pnl_net_mean"].tolist()[:2] == [5.0, 2.0]
    assert r["pnl_net_worst"].tolist()[:2] == [4.0, 1.0]
    assert r["periods"].tolist() == [2, 2, 2]
    assert r["failed"].tolist() == [0, 0, 1]
    dd = rank(df, ["x"], "max_drawdown_usdt")  # lower is better
    assert dd["params"].tolist()[:2] == ["B", "A"]
    s = sensitivity(df, ["x"], "pnl_net")["x"]
    assert s["means"]["value"].tolist() == [1.0, 2.0, 3.0]
    assert s["means"]["mean"].tolist() == [2.0, 5.0, 90.0]
    assert s["spread"] == 88.0
    assert math.isnan(sensitivity(df[df["params"] == "zz"], ["x"], "pnl_net")["x"]["spread"])
    assert Grid((), ()).points() == [{}]


def test_the_cache_key_changes_with_code_config_captures_period_and_model(tmp_path):
    spec = SweepSpec(
        config=str(config(tmp_path)),
        grid=str(grid_file(tmp_path, "strategy.enter_score = [0.2, 0.3]")),
        captures=(),
        out=tmp_path / "out",
        model=str(ROOT / "configs" / "models" / "default.onnx"),
    )
    prep = prepare(spec)
    a, b = prep.points
    (p,) = split_periods([info("a.h5", 10, 20)], DAY_NS)
    f = p.files[0]
    (p_touched,) = split_periods([CaptureInfo("a.h5", f.size, "1", f.first_ns, f.last_ns)], DAY_NS)
    (p_all,) = split_periods([info("a.h5", 10, 20)], None)
    model = (a.model, a.model_source, a.model_id)
    rule = (None, "the rule scorer", "rule")
    key = make_task(prep, a, p, spec, "v1", model).key
    assert make_task(prep, a, p, spec, "v1", model).key == key  # the same inputs: the same key
    others = {
        make_task(prep, b, p, spec, "v1", model).key,  # another point's config
        make_task(prep, a, p, spec, "v2", model).key,  # other code
        make_task(prep, a, p_touched, spec, "v1", model).key,  # the file changed
        make_task(prep, a, p_all, spec, "v1", model).key,  # another period
        make_task(prep, a, p, spec, "v1", rule).key,  # another model
    }
    assert len(others) == 5
    assert key not in others
    task = make_task(prep, a, p, spec, "v1", model)
    assert task.files == ("a.h5",)  # a name, never records
    assert (task.from_ns, task.to_ns) == (p.start_ns, p.end_ns)
    assert task.model is not None
    assert len(task.model) < 10_000


def test_walk_forward_trains_its_own_models(tmp_path, capsys):
    assert sweep(tmp_path, "strategy.enter_score = [0.3]", "--walk-forward", "--model", "m") == 78
    assert "walk-forward trains each period's model itself" in capsys.readouterr().err
    assert sweep(tmp_path, "strategy.enter_score = [0.3]", "--walk-forward", "--gate-z", "-1") == 78
    assert "gate z must be >= 0" in capsys.readouterr().err


def test_walk_forward_selection_chooses_in_sample_and_judges_out_of_sample():
    df = results(
        [
            ("A", 1.0, "in", "ok", 10.0),  # day 1: A best in sample ...
            ("B", 2.0, "in", "ok", 5.0),
            ("A", 1.0, "out", "ok", -2.0),  # ... and worse than B on day 2
            ("B", 2.0, "out", "ok", 3.0),
            ("A", 1.0, "in", "ok", 1.0),  # day 2: B best in sample and on day 3
            ("B", 2.0, "in", "ok", 4.0),
            ("A", 1.0, "out", "ok", 0.0),
            ("B", 2.0, "out", "ok", 6.0),
        ]
    )
    df["train_period"] = ["d1", "d1", "d1", "d1", "d2", "d2", "d2", "d2"]
    df["period"] = ["d1", "d1", "d2", "d2", "d2", "d2", "d3", "d3"]
    s = selection(df, "pnl_net")
    assert s["chosen"].tolist() == ["A", "B"]
    assert s["test_period"].tolist() == ["d2", "d3"]
    assert s["pnl_net_out"].tolist() == [-2.0, 6.0]
    assert s["best_out"].tolist() == ["B", "B"]
    assert s["regret"].tolist() == [5.0, 0.0]
    assert selection(df[df["sample"] == "out"], "pnl_net").empty  # nothing chosen in sample
