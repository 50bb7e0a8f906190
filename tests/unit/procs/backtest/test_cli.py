"""``bitrader backtest`` end to end on a seeded capture: byte-for-byte repeatable outputs, the
report's contents, and exit 78 with a clear message for input the live code would refuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from procs.backtest.cli import main
from procs.ml.simcapture import sim_records, write_sim_capture
from procs.tickstore import STREAM_BOOK, STREAM_TRADE
from procs.tickstore.store import CaptureWriter
from tests.helpers.inference_models import metadata, model_bytes

ROOT = Path(__file__).resolve().parents[4]
MODEL = ROOT / "configs" / "models" / "default.onnx"
BACKTEST = """
[backtest]
funding_rate = "0.001"
funding_interval_s = 5.0
progress = "off"
[backtest.latency]
model = "lognormal"
entry_s = 0.002
seed = 3
[backtest.queue]
model = "power"
power = 2.0
"""


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cap")
    write_sim_capture(d, 11, 30.0)
    return d


def config(tmp_path: Path, extra: str = BACKTEST, edit: tuple[str, str] | None = None) -> Path:
    text = (ROOT / "configs" / "demo.toml").read_text() + extra
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    p = tmp_path / "bt.toml"
    p.write_text(text)
    return p


def run(capture: Path, cfg: Path, out: Path, *more: str) -> int:
    return main(
        [
            "--captures",
            str(capture),
            "--config",
            str(cfg),
            "--model",
            str(MODEL),
            "--out",
            str(out),
            *more,
        ]
    )


def test_two_runs_give_the_same_bytes_and_a_full_report(capture, tmp_path):
    cfg = config(tmp_path)
    assert run(capture, cfg, tmp_path / "a") == 0
    assert run(capture, cfg, tmp_path / "b") == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["fills.jsonl", "intents.jsonl", "report.html", "summary.json"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["orders"]["sent"] > 10
    assert s["fills"] > 0
    pnl = s["pnl"]
    assert set(pnl["markouts"]) == {"1s", "10s", "60s"}
    parts = pnl["spread_capture"] + pnl["fees"] + pnl["funding"] + pnl["inventory_and_rest"]
    assert parts == pytest.approx(pnl["net"], abs=1e-6)
    assert pnl["fees"] < 0
    assert pnl["funding"] != 0  # settled every 5 s on held positions
    assert 0 < s["orders"]["fill_ratio_orders"] <= 1
    assert s["max_drawdown_usdt"] >= 0
    assert s["daily"]["days"] == 1
    assert s["daily"]["sharpe"] is None  # one day: said, not faked
    a = s["assumptions"]
    assert a["latency"]["model"] == "lognormal"
    assert a["queue"]["model"] == "power"
    page = (tmp_path / "a" / "report.html").read_text()
    assert page.count("<svg") == 3
    assert "<script" not in page
    assert not re.search(r"(src|href)=\"https?:", page)


def test_a_different_seed_changes_the_result(capture, tmp_path):
    assert run(capture, config(tmp_path), tmp_path / "a") == 0
    other = config(tmp_path, BACKTEST.replace("seed = 3", "seed = 4"))
    assert run(capture, other, tmp_path / "b") == 0
    assert (tmp_path / "a" / "intents.jsonl").read_bytes() != (
        tmp_path / "b" / "intents.jsonl"
    ).read_bytes()


def test_a_config_the_live_code_refuses_exits_78(capture, tmp_path, capsys):
    cfg = config(tmp_path, edit=("[execution.strategy]", "[execution.strategy]\nexit_score = 0.99"))
    assert run(capture, cfg, tmp_path / "o") == 78
    assert "exit_score must not exceed" in capsys.readouterr().err


def test_a_model_with_other_features_exits_78(capture, tmp_path, capsys):
    from procs.featurecalc.engine import FEATURES

    bad = tmp_path / "m.onnx"
    bad.write_bytes(model_bytes(meta=metadata(feature_names=list(reversed(FEATURES)))))
    cfg = config(tmp_path)
    rc = main(
        [
            "--captures",
            str(capture),
            "--config",
            str(cfg),
            "--model",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 78
    assert "model refused" in capsys.readouterr().err


def test_a_capture_with_a_gap_exits_78(tmp_path, capsys):
    books, trades = sim_records(5, 2.0)
    with CaptureWriter(
        tmp_path / "cap",
        streams={STREAM_BOOK: books.dtype, STREAM_TRADE: trades.dtype},
        prefix="g",
        clock_ns=lambda: 1,
    ) as w:
        w.append(STREAM_BOOK, np.delete(books, 5))
        w.append(STREAM_TRADE, trades)
    assert run(tmp_path / "cap", config(tmp_path), tmp_path / "o") == 78
    assert "sequence gap" in capsys.readouterr().err
