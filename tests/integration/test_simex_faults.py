"""Each simex fault is observable from a client, set through the control API or simctl."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.helpers.poll import eventually
from tests.helpers.simex_proc import SimexProc, control, rest, run_simex, write_config, ws_login_msg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sx_module(tmp_path_factory) -> Iterator[SimexProc]:
    cfg = write_config(tmp_path_factory.mktemp("simexf"), "[simex.market]\nevents_per_s = 300.0\n")
    with run_simex(cfg) as proc:
        yield proc


@pytest.fixture
def sx(sx_module) -> Iterator[SimexProc]:
    yield sx_module
    control(sx_module, "/_simex/faults/reset", {})


@contextmanager
def open_ws(url: str) -> Iterator[ClientConnection]:
    with connect(url, ping_interval=None, open_timeout=5, close_timeout=1) as ws:
        assert json.loads(ws.recv(timeout=3))["op"] == "connect"
        yield ws


def simctl(sx: SimexProc, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "procs.cli", "simctl", "--url", sx.control_url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)


def test_rest_error_rate_one_answers_http_5xx_then_reset_recovers(sx):
    control(sx, "/_simex/faults", {"rest_error_rate": 1.0, "rest_error_status": 502})

    status, _ = rest(sx, "GET", "/market/tickers", key=None)
    control(sx, "/_simex/faults/reset", {})
    after, body = rest(sx, "GET", "/market/tickers", key=None)

    assert status == 502
    assert (after, body["code"]) == (200, 0)


def test_rate_limit_fault_answers_10005(sx):
    control(sx, "/_simex/faults", {"rate_limit_rate": 1.0})

    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=1)

    assert body["code"] == 10005


def test_rest_error_rate_half_is_seeded_and_partial(sx):
    control(sx, "/_simex/faults", {"rest_error_rate": 0.5})

    statuses = [rest(sx, "GET", "/market/tickers", key=None)[0] for _ in range(8)]

    assert 503 in statuses
    assert 200 in statuses


def test_reject_signatures_fails_valid_rest_and_ws_login(sx):
    control(sx, "/_simex/faults", {"reject_signatures": True})

    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=2)
    with open_ws(sx.ws_private_url) as ws:
        ws.send(ws_login_msg(key=2))
        login = json.loads(ws.recv(timeout=3))

    assert body["code"] == 10007
    assert login["data"]["result"] is False


def test_ack_delay_delays_trade_responses(sx):
    control(sx, "/_simex/faults", {"ack_delay_s": 0.4})
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "orderType": "LIMIT",
        "qty": "0.01",
        "price": "1000",
    }

    t0 = time.monotonic()
    _, body = rest(sx, "POST", "/trade/place_order", order, key=3)
    elapsed = time.monotonic() - t0

    assert body["code"] == 0
    assert elapsed >= 0.4


def test_push_delay_delays_private_pushes(sx):
    control(sx, "/_simex/faults", {"push_delay_s": 0.5})
    with open_ws(sx.ws_private_url) as ws:
        ws.send(ws_login_msg(key=4))
        assert json.loads(ws.recv(timeout=3))["data"]["result"] is True
        order = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "orderType": "LIMIT",
            "qty": "0.01",
            "price": "1000",
        }
        rest(sx, "POST", "/trade/place_order", order, key=4)
        t0 = time.monotonic()

        push = json.loads(ws.recv(timeout=3))
        elapsed = time.monotonic() - t0

    assert push["ch"] in ("order", "balance")
    assert elapsed >= 0.3


def test_clock_skew_shifts_server_time(sx):
    control(sx, "/_simex/faults", {"clock_skew_ms": 3_600_000})
    with open_ws(sx.ws_public_url) as ws:
        ws.send(json.dumps({"op": "ping", "ping": 1}))
        reply = json.loads(ws.recv(timeout=3))

    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=5)

    assert abs(reply["ping"] - (time.time() + 3600)) < 10
    assert body["code"] == 10007  # our clock is now an hour behind the venue's window


def recv_until_silent(ws: ClientConnection) -> None:
    for _ in range(10_000):
        ws.recv(timeout=0.5)


def test_pause_md_stops_market_data_pushes(sx):
    with open_ws(sx.ws_public_url) as ws:
        ws.send(
            json.dumps({"op": "subscribe", "args": [{"symbol": "BTCUSDT", "ch": "depth_book1"}]})
        )
        json.loads(ws.recv(timeout=3))
        control(sx, "/_simex/faults", {"pause_md": True})
        with pytest.raises(TimeoutError):
            recv_until_silent(ws)  # pushes already in flight, then silence
        control(sx, "/_simex/faults", {"pause_md": False})

        resumed = json.loads(ws.recv(timeout=3))

    assert resumed["ch"] == "depth_book1"


def test_drop_ws_disconnects_clients(sx):
    with open_ws(sx.ws_public_url) as ws:
        out = control(sx, "/_simex/ws/drop", {"scope": "public"})

        with pytest.raises(ConnectionClosed):
            recv_until_closed(ws)

    assert out["dropped"] >= 1


def recv_until_closed(ws: ClientConnection) -> None:
    for _ in range(100_000):
        ws.recv(timeout=3)


def test_stall_ws_withholds_replies_until_it_ends(sx):
    with open_ws(sx.ws_public_url) as ws:
        control(sx, "/_simex/faults", {"ws_stall_s": 1.0})
        ws.send(json.dumps({"op": "ping", "ping": 7}))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        eventually(
            lambda: (
                not control(sx, "/_simex/status")["faults"]["ws_stall_until_ns"]
                or time.time_ns() > control(sx, "/_simex/status")["faults"]["ws_stall_until_ns"]
            ),
            timeout_s=3,
        )

        ws.send(json.dumps({"op": "ping", "ping": 8}))
        reply = json.loads(ws.recv(timeout=3))

    assert reply["pong"] == 8


def test_simctl_sets_and_resets_faults(sx):
    set_out = simctl(sx, "set", "rate_limit_rate=1", "ack_delay_s=0")
    _, limited = rest(sx, "GET", "/market/tickers", key=None)
    reset_out = simctl(sx, "reset")
    _, ok = rest(sx, "GET", "/market/tickers", key=None)
    bad = simctl(sx, "set", "no_such_fault=1")

    assert set_out.returncode == 0, set_out.stderr
    assert json.loads(set_out.stdout)["rate_limit_rate"] == 1.0
    assert limited["code"] == 10005
    assert reset_out.returncode == 0
    assert ok["code"] == 0
    assert bad.returncode == 1


def test_unknown_fault_field_is_refused_with_400(sx):
    from tests.helpers.simex_proc import http

    status, out = http("POST", sx.control_url + "/_simex/faults", b'{"rest_eror_rate": 1}')

    assert status == 400
    assert "rest_eror_rate" in out["error"]
