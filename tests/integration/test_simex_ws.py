"""simex WebSocket over a real socket: greeting, ping, login, subscribe, limits, pushes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.helpers.simex_proc import SimexProc, rest, run_simex, write_config, ws_login_msg

pytestmark = pytest.mark.integration

EXTRA = """
[[simex.symbols]]
symbol = "BTCUSDT"
start_price = "60000"
[[simex.symbols]]
symbol = "ETHUSDT"
start_price = "3000"
base_precision = 3
quote_precision = 2
min_qty = "0.001"
[[simex.symbols]]
symbol = "SOLUSDT"
start_price = "150"
base_precision = 2
quote_precision = 3
min_qty = "0.01"
[[simex.symbols]]
symbol = "XRPUSDT"
start_price = "0.6"
base_precision = 1
quote_precision = 4
min_qty = "1"
[simex.market]
events_per_s = 400.0
"""


@pytest.fixture(scope="module")
def sx(tmp_path_factory) -> SimexProc:
    cfg = write_config(tmp_path_factory.mktemp("simexws"), EXTRA)
    with run_simex(cfg) as proc:
        yield proc


def recv_json(ws: ClientConnection, timeout: float = 3.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@contextmanager
def open_ws(url: str) -> Iterator[ClientConnection]:
    with connect(url, ping_interval=None, open_timeout=5, close_timeout=1) as ws:
        assert recv_json(ws) == {"op": "connect", "data": {"result": True}}
        yield ws


def wait_for(ws: ClientConnection, pred, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg


def test_public_greeting_then_ping_echoes_pong_and_server_seconds(sx):
    with open_ws(sx.ws_public_url) as ws:
        ws.send(json.dumps({"op": "ping", "ping": 1732519687}))

        reply = recv_json(ws)

    assert reply["op"] == "ping"
    assert reply["pong"] == 1732519687
    assert abs(reply["ping"] - time.time()) < 5


def test_depth_book15_and_trade_pushes_have_documented_shapes(sx):
    with open_ws(sx.ws_public_url) as ws:
        sub = [{"symbol": "BTCUSDT", "ch": "depth_book15"}, {"symbol": "BTCUSDT", "ch": "trade"}]
        ws.send(json.dumps({"op": "subscribe", "args": sub}))

        depth = wait_for(ws, lambda m: m.get("ch") == "depth_book15")
        trade = wait_for(ws, lambda m: m.get("ch") == "trade", timeout=5)

    assert depth["symbol"] == "BTCUSDT"
    assert isinstance(depth["ts"], int)
    assert 0 < len(depth["data"]["b"]) <= 15
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in depth["data"]["a"])
    t = trade["data"][0]
    assert t["s"] in ("buy", "sell")
    assert t["t"].endswith("Z")
    assert "T" in t["t"]
    assert isinstance(t["p"], str)


def test_depth_books_sends_snapshot_then_deltas(sx):
    with open_ws(sx.ws_public_url) as ws:
        ws.send(
            json.dumps({"op": "subscribe", "args": [{"symbol": "ETHUSDT", "ch": "depth_books"}]})
        )

        snap = wait_for(ws, lambda m: m.get("ch") == "depth_books")
        delta = wait_for(ws, lambda m: m.get("ch") == "depth_books")

    assert len(snap["data"]["b"]) + len(snap["data"]["a"]) > 10
    assert len(delta["data"]["b"]) + len(delta["data"]["a"]) >= 1


def test_kline_ticker_and_price_channels_push(sx):
    with open_ws(sx.ws_public_url) as ws:
        args = [
            {"symbol": "BTCUSDT", "ch": "market_kline_1min"},
            {"symbol": "BTCUSDT", "ch": "last_kline_1min"},
            {"symbol": "BTCUSDT", "ch": "ticker"},
            {"symbol": "BTCUSDT", "ch": "tickers"},
            {"symbol": "BTCUSDT", "ch": "price"},
        ]
        ws.send(json.dumps({"op": "subscribe", "args": args}))
        seen: dict[str, dict] = {}

        wait_for(ws, lambda m: seen.setdefault(m.get("ch"), m) and len(seen) >= 5, timeout=4)

    assert set(seen["market_kline_1min"]["data"]) == {"o", "c", "h", "l", "b", "q"}
    assert "last_kline_1min" in seen
    assert seen["ticker"]["data"]["s"] == "BTCUSDT"
    assert {"bd", "ak"} <= set(seen["tickers"]["data"][0])
    assert {"ip", "mp", "fr", "ft", "nft"} == set(seen["price"]["data"])


@pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
def test_private_login_accepts_seconds_or_ms_timestamps(sx, unit):
    ts = int(time.time()) if unit == "seconds" else int(time.time() * 1000)
    with open_ws(sx.ws_private_url) as ws:
        ws.send(ws_login_msg(key=1, ts=ts))

        reply = recv_json(ws)

    assert reply == {"op": "login", "data": {"result": True}}


def test_private_login_with_bad_signature_is_false(sx):
    with open_ws(sx.ws_private_url) as ws:
        ws.send(ws_login_msg(key=1, sign="00" * 32))

        reply = recv_json(ws)

    assert reply["op"] == "login"
    assert reply["data"]["result"] is False


def drain_until_closed(ws: ClientConnection) -> None:
    for _ in range(20):
        ws.recv(timeout=3)


def test_more_than_5_messages_per_second_disconnects(sx):
    with open_ws(sx.ws_public_url) as ws:
        for i in range(7):
            try:
                ws.send(json.dumps({"op": "ping", "ping": i}))
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed):
            drain_until_closed(ws)


def test_subscriptions_beyond_300_are_refused(sx):
    prefixes = ("market_kline_", "last_kline_", "mark_kline_")
    intervals = ("1min", "3min", "5min", "15min", "30min", "60min", "2h", "4h", "6h", "8h", "12h")
    intervals += ("1day", "3day", "1week", "1month", "1m", "3m", "5m", "15m", "30m", "1h", "2h")
    intervals += ("4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
    channels = [p + i for p in prefixes for i in intervals]
    channels += ["depth_book1", "depth_book5", "depth_book15", "trade", "ticker", "price"]
    args = [
        {"symbol": s, "ch": c}
        for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
        for c in channels
    ]
    assert len(args) > 300
    with open_ws(sx.ws_public_url) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": args}))

        refusal = wait_for(ws, lambda m: m.get("op") == "subscribe", timeout=5)

    assert refusal["data"]["result"] is False
    assert "too many" in refusal["msg"]


def test_private_order_balance_position_pushes_follow_a_rest_order(sx):
    with open_ws(sx.ws_private_url) as ws:
        ws.send(ws_login_msg(key=2))
        assert recv_json(ws)["data"]["result"] is True
        subs = [{"ch": "order"}, {"ch": "balance"}, {"ch": "position"}]
        ws.send(json.dumps({"op": "subscribe", "args": subs}))
        order = {"symbol": "BTCUSDT", "side": "BUY", "orderType": "MARKET", "qty": "0.01"}
        _, placed = rest(sx, "POST", "/trade/place_order", order, key=2)
        oid = placed["data"]["orderId"]
        got: dict[str, dict] = {}

        def collect(m: dict) -> bool:
            ch = m.get("ch")
            if ch == "order" and m["data"]["orderId"] == oid:
                got.setdefault(m["data"]["event"], m)
            elif ch in ("balance", "position"):
                got.setdefault(ch, m)
            return {"CREATE", "CLOSE", "balance", "position"} <= set(got)

        wait_for(ws, collect, timeout=5)

    assert got["CREATE"]["data"]["orderStatus"] == "NEW"
    assert got["CLOSE"]["data"]["orderStatus"] == "FILLED"
    assert got["CLOSE"]["data"]["reductionOnly"] is False
    assert got["position"]["data"]["event"] == "OPEN"
    assert got["position"]["data"]["side"] == "LONG"
    assert set(got["balance"]["data"]) >= {"coin", "available", "frozen", "margin"}
