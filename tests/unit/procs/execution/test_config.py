"""ExecutionConfig: decodes from TOML, rejects unknown fields and inconsistent thresholds."""

from __future__ import annotations

import tomllib
from decimal import Decimal

import msgspec
import pytest

from procs.trading.config import ExecutionConfig

TOML = """
[execution]
mode = "paper"
journal_path = "/tmp/x.sqlite"
symbols = [{symbol = "BTCUSDT", symbol_id = 1, max_position_qty = "0.05"}]

[execution.risk]
max_order_notional_usdt = "250.5"
max_open_orders = 4

[execution.strategy]
enter_score = 0.4
exit_score = 0.2
"""


def load(text: str) -> ExecutionConfig:
    return msgspec.convert(tomllib.loads(text)["execution"], ExecutionConfig)


def test_config_decodes_decimals_and_defaults():
    c = load(TOML)
    assert c.risk.max_order_notional_usdt == Decimal("250.5")
    assert c.symbol("BTCUSDT").max_position_qty == Decimal("0.05")
    assert c.breaker.max_consecutive_rejects == 5
    assert c.strategy.exit_score == 0.2


def test_config_unknown_field_names_its_path():
    with pytest.raises(msgspec.ValidationError, match=r"max_order_notionl"):
        load(TOML.replace("max_order_notional_usdt", "max_order_notionl"))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("exit_score = 0.2", "exit_score = 0.5", "exit_score"),
        ("max_open_orders = 4", "max_open_orders = 0", "max_open_orders"),
        ("symbol_id = 1, max", "symbol_id = -1, max", "symbol_id"),
        ('mode = "paper"', 'mode = "yolo"', "mode"),
    ],
)
def test_config_bad_values_rejected(old, new, match):
    with pytest.raises(msgspec.ValidationError, match=match):
        load(TOML.replace(old, new))


def test_config_duplicate_symbol_ids_rejected():
    text = TOML.replace(
        'symbols = [{symbol = "BTCUSDT", symbol_id = 1, max_position_qty = "0.05"}]',
        'symbols = [{symbol = "BTCUSDT", symbol_id = 1}, {symbol = "ETHUSDT", symbol_id = 1}]',
    )
    with pytest.raises(msgspec.ValidationError, match="unique"):
        load(text)
