"""``bitrader config check`` refuses every broken group file with 78, naming the field."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path
from typing import Any

import pytest

from procs._config import EXIT_CONFIG, GROUPS, check_file, main_cli
from procs.group.supervise import ROOT
from tests.helpers.group_config import dump_toml, merge

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
DEMO = ROOT / "configs" / "demo.toml"


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("BITRADER_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("BITRADER_NS", "cfgcheck")


def demo() -> dict[str, Any]:
    return tomllib.loads(DEMO.read_text())


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "group.toml"
    path.write_text(data if isinstance(data, str) else dump_toml(data))
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_check_shipped_configs_pass(path):
    assert check_file(path) == []


def test_config_groups_match_supervisord_conf():
    conf = configparser.RawConfigParser()
    conf.read(ROOT / "supervisord.conf")

    groups = {
        name.removeprefix("group:"): tuple(conf[name]["programs"].split(","))
        for name in conf.sections()
        if name.startswith("group:")
    }

    assert groups == dict(GROUPS)


BROKEN = [
    (
        {"execution": {"risk": {"max_order_notional_usdt": "NaN"}}},
        "$.execution.risk.max_order_notional_usdt",
    ),
    ({"execution": {"strategy": {"target_notional_usdt": "-100"}}}, "target_notional_usdt"),
    ({"execution": {"risk": {"max_total_notional_usdt": "Infinity"}}}, "max_total_notional_usdt"),
    ({"execution": {"risk": {"daily_loss_limit_usdt": "0"}}}, "daily_loss_limit_usdt"),
    ({"execution": {"balance_tolerance_usdt": "-0.01"}}, "balance_tolerance_usdt"),
    ({"execution": {"paper": {"taker_fee_rate": "0.5"}}}, "$.execution.paper.taker_fee_rate"),
    ({"execution": {"killswitch_poll_s": float("inf")}}, "$.execution.killswitch_poll_s"),
    ({"execution": {"strategy": {"enter_score": float("nan")}}}, "enter_score"),
    ({"ingest": {"stale_after_s": float("nan")}}, "$.ingest.stale_after_s"),
    ({"ingest": {"ws_url": "htp:/bad url"}}, "$.ingest.ws_url"),
    ({"ingest": {"rest_url": "ws://127.0.0.1:18080"}}, "$.ingest.rest_url"),
    ({"execution": {"venue": {"ws_private_url": "http://x/private/"}}}, "ws_private_url"),
    ({"execution": {"venue": {"rest_url": "https://exa mple.com"}}}, "venue.rest_url"),
    ({"simex": {"accounts": [{"name": "demo", "balance": "-5"}]}}, "$.simex.accounts[0].balance"),
    ({"simex": {"symbols": [{"symbol": "BTCUSDT", "start_price": "nan"}]}}, "start_price"),
    ({"simex": {"market": {"events_per_s": float("inf")}}}, "$.simex.market.events_per_s"),
    ({"simex": {"keys": [{"api_key": "", "secret": "s", "account": "demo"}]}}, "api_key"),
    (
        {
            "simex": {
                "accounts": [{"name": "demo", "balance": "1"}, {"name": "demo", "balance": "2"}]
            }
        },
        "names must be unique",
    ),
    ({"ingest": {"symbols": ["BTCUSDT", "eth usdt"]}}, "$.ingest.symbols[1]"),
    ({"execution": {"symbols": [{"symbol": "", "symbol_id": 0}]}}, "$.execution.symbols[0].symbol"),
    ({"execution": {"symbols": [{"symbol": "BTCUSDT", "symbol_id": 2**40}]}}, "symbol_id"),
    ({"execution": {"inference_pub": "ipc:/nope"}}, "inference_pub"),
    ({"execution": {"inference_pub": "tcp://10.0.0.1:5555"}}, "inference_pub"),
    ({"features": {"ingest_pub": "ipc://{run_dir}/{oops}.pub"}}, "ingest_pub"),
    ({"features": {"runtime": {"metrics_port": 9101}}}, "$.features.runtime.metrics_port"),
    ({"simex": {"control_port": 9105}}, "$.simex.control_port"),
    ({"simex": {"ws_port": 18080}}, "$.simex.ws_port"),
    ({"dashboard": {"port": 9105}}, "$.dashboard.port"),
    (
        {"capture": {"runtime": {"control_endpoint": "ipc://{run_dir}/execution.ctl"}}},
        "$.capture.runtime.control_endpoint",
    ),
    ({"inference": {"runtime": {"pub_endpoint": "tcp://127.0.0.1:9104"}}}, "pub_endpoint"),
]


@pytest.mark.parametrize(("change", "field"), BROKEN, ids=[f for _, f in BROKEN])
def test_config_check_broken_value_exits_78_naming_the_field(tmp_path, caplog, change, field):
    path = write(tmp_path, merge(demo(), change))

    code = main_cli(["check", str(path)])

    assert code == EXIT_CONFIG
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(field in e for e in errors), errors


@pytest.mark.parametrize("section", ["execution", "ingest", "features", "capture", "dashboard"])
def test_config_check_missing_section_exits_78(tmp_path, section):
    data = demo()
    del data[section]
    path = write(tmp_path, data)

    errors = check_file(path)

    assert main_cli(["check", str(path)]) == EXIT_CONFIG
    assert any(f"section [{section}] missing" in e for e in errors), errors


def test_config_check_missing_runtime_table_exits_78(tmp_path):
    data = demo()
    del data["execution"]["runtime"]
    path = write(tmp_path, data)

    errors = check_file(path)

    assert main_cli(["check", str(path)]) == EXIT_CONFIG
    assert any("$.execution.runtime" in e for e in errors), errors


def test_config_check_live_group_does_not_need_simex(tmp_path):
    data = demo()
    del data["simex"]

    assert check_file(write(tmp_path, data), group="live") == []
    assert any(
        "[simex] missing" in e for e in check_file(tmp_path / "group.toml", group="pipeline")
    )


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"]
)
def test_config_check_empty_file_exits_78(tmp_path, text):
    path = write(tmp_path, text)

    assert main_cli(["check", str(path)]) == EXIT_CONFIG
    assert "no sections" in check_file(path)[0]


def test_config_check_unknown_group_exits_78(tmp_path):
    path = write(tmp_path, demo())

    assert main_cli(["check", str(path), "--group", "nope"]) == EXIT_CONFIG
    assert main_cli(["check", str(path), "--group", "pipeline"]) == 0


def test_config_check_simex_alone_is_not_a_group(tmp_path):
    data = {"simex": demo()["simex"]}

    assert check_file(write(tmp_path, data)) == []


def test_up_refuses_a_broken_config_before_starting_anything(tmp_path, capsys):
    from procs.group.supervise import main_up

    path = write(tmp_path, merge(demo(), {"ingest": {"ws_url": "htp:/bad url"}}))
    run_dir = tmp_path / "run"

    code = main_up(["--run-dir", str(run_dir), "--config", str(path)])

    assert code == EXIT_CONFIG
    assert "$.ingest.ws_url" in capsys.readouterr().err
    assert not (run_dir / "supervisord.pid").exists()


def test_demo_refuses_a_broken_config_before_starting_anything(tmp_path, capsys):
    from procs.demo import run

    path = write(tmp_path, merge(demo(), {"execution": {"risk": {"max_drawdown_usdt": "NaN"}}}))
    run_dir = tmp_path / "run"

    code = run("pipeline", path, 1.0, run_dir, "cfgcheck")

    assert code == EXIT_CONFIG
    assert "$.execution.risk.max_drawdown_usdt" in capsys.readouterr().err
    assert not (run_dir / "supervisord.pid").exists()
