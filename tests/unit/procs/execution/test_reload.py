"""Hot reload: a good file applies risk and strategy with every change journaled; a bad file
changes nothing and is counted; settings that need a restart are reported, not applied."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from procs._config import Env, decode_section, read_toml
from procs.trading.config import ExecutionConfig, RiskConfig, StrategyConfig
from procs.trading.reload import Reloader

BASE = """
[execution]
mode = "paper"
[[execution.symbols]]
symbol = "BTCUSDT"
symbol_id = 1
[execution.risk]
max_open_orders = 20
max_order_notional_usdt = "500"
[execution.strategy]
enter_score = 0.3
"""


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record_event(self, kind: str, body: dict[str, Any], ts_ns: int = 0) -> None:
        self.rows.append((kind, body))


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "exec.toml"
    path.write_text(BASE)
    env = Env(run_dir=str(tmp_path), ns="t")
    start = decode_section(read_toml(path), "execution", ExecutionConfig, path=path, env=env)
    applied: list[tuple[RiskConfig, StrategyConfig]] = []
    events = Events()
    registry = CollectorRegistry()
    reloader = Reloader(path, env, start, lambda r, s: applied.append((r, s)), events, registry)
    return path, reloader, applied, events, registry


def test_reload_applies_changed_limits_and_journals_old_and_new(rig):
    path, reloader, applied, events, registry = rig
    path.write_text(BASE.replace("max_open_orders = 20", "max_open_orders = 3").replace(
        "enter_score = 0.3", "enter_score = 0.5"
    ))  # fmt: skip

    result = reloader.reload()

    assert result.ok
    [(risk, strategy)] = applied
    assert (risk.max_open_orders, strategy.enter_score) == (3, 0.5)
    assert risk.max_order_notional_usdt == Decimal(500)
    [(kind, body)] = events.rows
    assert kind == "reload"
    assert body["changes"] == {
        "risk": {"max_open_orders": [20, 3]},
        "strategy": {"enter_score": [0.3, 0.5]},
    }
    assert registry.get_sample_value("bitrader_config_reloads_total", {"result": "applied"}) == 1


def test_reload_twice_compares_with_what_is_in_force(rig):
    path, reloader, applied, events, _ = rig
    path.write_text(BASE.replace("max_open_orders = 20", "max_open_orders = 3"))
    reloader.reload()

    again = reloader.reload()

    assert again.ok
    assert again.changes == {}
    assert len(applied) == 1
    assert len(events.rows) == 1


@pytest.mark.parametrize(
    "bad",
    [
        BASE.replace("max_open_orders = 20", "max_open_orders = 0"),  # out of range
        BASE.replace("max_open_orders = 20", "max_open_orderz = 3"),  # unknown field
        BASE.replace("enter_score = 0.3", "enter_score = 0.3\nexit_score = 0.9"),  # exit > enter
        BASE + "[[[ not toml",
    ],
    ids=["range", "unknown-field", "cross-field", "bad-toml"],
)
def test_reload_bad_file_keeps_old_values_and_counts(rig, bad):
    path, reloader, applied, events, registry = rig
    path.write_text(bad)

    result = reloader.reload()

    assert not result.ok
    assert applied == []
    assert reloader.failed_total == 1
    assert [k for k, _ in events.rows] == ["reload_refused"]
    assert registry.get_sample_value("bitrader_config_reloads_total", {"result": "refused"}) == 1


def test_reload_reports_settings_that_need_a_restart(rig):
    path, reloader, applied, _, _ = rig
    path.write_text(BASE.replace('mode = "paper"', 'mode = "paper"\nbatch_max = 7'))

    result = reloader.reload()

    assert result.ok
    assert result.ignored == ["batch_max"]
    assert applied == []
