"""simex lifecycle: state saved on SIGTERM and restored at start; exit codes 0 and 78."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers.poll import eventually
from tests.helpers.simex_proc import rest, run_simex, write_config

pytestmark = pytest.mark.integration


def snapshot(sx) -> dict:
    _, acct = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=1)
    _, pending = rest(sx, "GET", "/trade/get_pending_orders", {}, key=1)
    _, positions = rest(sx, "GET", "/position/get_pending_positions", {}, key=1)
    for p in positions["data"]:
        p.pop("unrealizedPNL")
    a = acct["data"]
    return {
        "balances": (a["available"], a["frozen"], a["margin"]),
        "orders": [
            (o["orderId"], o["clientId"], o["price"], o["qty"])
            for o in pending["data"]["orderList"]
        ],
        "positions": positions["data"],
    }


def test_state_survives_sigterm_and_restart(tmp_path):
    state = tmp_path / "state.json"
    cfg = write_config(tmp_path, state_path=str(state))
    resting = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "orderType": "LIMIT",
        "qty": "0.01",
        "price": "1000",
    }
    market = {"symbol": "ETHUSDT", "side": "BUY", "orderType": "MARKET", "qty": "0.05"}
    with run_simex(cfg) as sx:
        rest(
            sx,
            "POST",
            "/account/change_leverage",
            {"symbol": "ETHUSDT", "leverage": 5, "marginCoin": "USDT"},
        )
        assert (
            rest(sx, "POST", "/trade/place_order", resting | {"clientId": "keep-me"})[1]["code"]
            == 0
        )
        assert rest(sx, "POST", "/trade/place_order", market)[1]["code"] == 0
        before = snapshot(sx)

    with run_simex(cfg) as sx:
        after = snapshot(sx)
        _, lev = rest(
            sx,
            "GET",
            "/account/get_leverage_margin_mode",
            {"symbol": "ETHUSDT", "marginCoin": "USDT"},
        )
        _, dup = rest(sx, "POST", "/trade/place_order", resting | {"clientId": "keep-me"})

    assert state.exists()
    assert before["orders"]
    assert before["positions"]
    assert after == before
    assert lev["data"]["leverage"] == 5
    assert dup["code"] == 30042


def test_sigint_exits_zero(tmp_path):
    cfg = write_config(tmp_path)
    with run_simex(cfg) as sx:
        sx.proc.send_signal(signal.SIGINT)
        assert sx.proc.wait(timeout=15) == 0


def test_unknown_config_field_exits_78_naming_it(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[simex]\nrest_prot = 1\n")

    out = subprocess.run(
        [sys.executable, "-m", "procs.simex", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert out.returncode == 78
    assert "rest_prot" in out.stdout + out.stderr


def test_state_file_for_unknown_account_exits_78(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(
        '{"version":1,"saved_at_ms":0,"next_id":5,"last_price":{},"accounts":[{"name":"ghost",'
        '"wallet":"1","initial":"1","fees_total":"0","pnl_total":"0","position_mode":"ONE_WAY",'
        '"leverage":{},"margin_mode":{},"open_orders":[],"positions":[],"tpsl":[]}]}'
    )
    cfg = write_config(tmp_path, state_path=str(state))

    out = subprocess.run(
        [sys.executable, "-m", "procs.simex", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert out.returncode == 78
    assert "ghost" in out.stdout + out.stderr


def test_periodic_save_survives_sigkill(tmp_path):
    state = tmp_path / "state.json"
    cfg = write_config(tmp_path, "state_save_s = 0.3", state_path=str(state))
    resting = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "orderType": "LIMIT",
        "qty": "0.01",
        "price": "999999",
    }
    with run_simex(cfg) as sx:
        _, placed = rest(sx, "POST", "/trade/place_order", resting)
        oid = placed["data"]["orderId"]
        eventually(lambda: state.exists() and oid in state.read_text(), timeout_s=5)
        sx.kill()

    with run_simex(cfg) as sx:
        _, detail = rest(sx, "GET", "/trade/get_order_detail", {"orderId": oid})

    assert detail["data"]["status"] == "NEW"


def test_closed_orders_are_found_by_client_id_after_a_restart(tmp_path):
    # the venue's history outlives a restart: execution queries orders it missed the end of
    state = tmp_path / "state.json"
    cfg = write_config(tmp_path, state_path=str(state))
    market = {"symbol": "ETHUSDT", "side": "BUY", "orderType": "MARKET", "qty": "0.05"}
    with run_simex(cfg) as sx:
        assert (
            rest(sx, "POST", "/trade/place_order", market | {"clientId": "filled-1"})[1]["code"]
            == 0
        )

    with run_simex(cfg) as sx:
        _, detail = rest(sx, "GET", "/trade/get_order_detail", {"clientId": "filled-1"})

    assert detail["code"] == 0, detail
    assert detail["data"]["status"] == "FILLED"
    assert detail["data"]["tradeQty"] == "0.05"
