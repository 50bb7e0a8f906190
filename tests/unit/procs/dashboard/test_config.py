"""The ``[dashboard]`` section and the password rule."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from procs.dashboard.__main__ import limits_from, password_for
from procs.dashboard.config import DashboardConfig, is_loopback
from procs.trading.config import ExecutionConfig, RiskConfig, SymbolConfig


def _cfg(**kw) -> DashboardConfig:
    return msgspec.convert(kw, DashboardConfig)


@pytest.mark.parametrize(
    ("host", "loop"),
    [("127.0.0.1", True), ("127.5.0.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.1", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"host": "0.0.0.0"}, "allowlist required"),
        ({"host": "0.0.0.0", "allow_dev_password": True, "allowlist": ["10.0.0.0/8"]}, "loopback"),
        ({"allowlist": ["10.0.0.300/8"]}, "not an address"),
        ({"port": 0}, "port"),
        ({"passwrd_env": "X"}, "passwrd_env"),
    ],
)
def test_config_rejects_unsafe_or_unknown_settings(kw, message):
    with pytest.raises(msgspec.ValidationError, match=message):
        _cfg(**kw)


def test_config_beyond_loopback_with_an_allowlist_is_accepted():
    cfg = _cfg(host="0.0.0.0", allowlist=["10.0.0.0/8"])

    assert cfg.allowlist == ["10.0.0.0/8"]


def test_password_comes_from_the_environment_first():
    cfg = _cfg(allow_dev_password=True)

    assert password_for(cfg, {"BITRADER_DASHBOARD_PASSWORD": "pw"}) == "pw"


def test_no_password_and_no_dev_flag_means_none():
    assert password_for(_cfg(), {}) is None
    assert password_for(_cfg(), {"BITRADER_DASHBOARD_PASSWORD": ""}) is None


def test_dev_flag_on_loopback_generates_a_fresh_password():
    cfg = _cfg(allow_dev_password=True)

    a, b = password_for(cfg, {}), password_for(cfg, {})

    assert a
    assert b
    assert a != b


def test_limits_are_executions_own():
    ex = ExecutionConfig(
        symbols=[
            SymbolConfig(symbol="BTCUSDT", symbol_id=0, max_position_qty=Decimal("0.05")),
            SymbolConfig(symbol="ETHUSDT", symbol_id=1),
        ],
        risk=RiskConfig(
            max_position_notional_usdt=Decimal(700), max_total_notional_usdt=Decimal(900)
        ),
    )

    limits = limits_from(ex)

    assert limits.position_notional == {"BTCUSDT": 700.0, "ETHUSDT": 700.0}
    assert limits.position_qty == {"BTCUSDT": 0.05, "ETHUSDT": None}
    assert limits.total_notional == 900.0
