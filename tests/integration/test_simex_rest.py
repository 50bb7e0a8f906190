"""simex REST over a real socket: envelopes, auth codes, rate limits, the order lifecycle."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.simex_proc import SimexProc, rest, run_simex, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sx(tmp_path_factory) -> SimexProc:
    cfg = write_config(tmp_path_factory.mktemp("simex"))
    with run_simex(cfg) as proc:
        yield proc


def test_trading_pairs_public_returns_envelope_and_symbol_rules(sx):
    status, body = rest(sx, "GET", "/market/trading_pairs", {"symbols": "BTCUSDT"}, key=None)

    assert status == 200
    assert (body["code"], body["msg"]) == (0, "Success")
    [pair] = body["data"]
    assert pair["symbol"] == "BTCUSDT"
    assert isinstance(pair["minTradeVolume"], str)
    assert pair["basePrecision"] == 4


def test_depth_levels_are_string_pairs_sorted(sx):
    _, body = rest(sx, "GET", "/market/depth", {"symbol": "ETHUSDT", "limit": "15"}, key=None)

    bids, asks = body["data"]["bids"], body["data"]["asks"]
    assert 0 < len(bids) <= 15
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in bids + asks)
    assert [float(p) for p, _ in bids] == sorted((float(p) for p, _ in bids), reverse=True)
    assert float(bids[0][0]) < float(asks[0][0])


def test_unknown_symbol_is_20001(sx):
    _, body = rest(sx, "GET", "/market/depth", {"symbol": "NOPEUSDT"}, key=None)

    assert body["code"] == 20001


def test_private_without_api_key_is_10003(sx):
    status, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=None)

    assert status == 200
    assert body["code"] == 10003


def test_private_with_wrong_secret_is_10007(sx):
    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=1, secret="wrong")

    assert body == {"code": 10007, "msg": "Signature Error", "data": None}


def test_private_with_stale_timestamp_is_10007(sx):
    _, body = rest(
        sx, "GET", "/account", {"marginCoin": "USDT"}, ts_ms=int(time.time() * 1000) - 3_600_000
    )

    assert body["code"] == 10007


def test_private_from_ip_outside_allowlist_is_10004(sx):
    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, api_key="fenced", secret="s")

    assert body["code"] == 10004


def test_account_signed_returns_balances_as_strings(sx):
    _, body = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=2)

    assert body["code"] == 0
    assert body["data"]["available"] == "100000"
    assert body["data"]["positionMode"] == "ONE_WAY"


def test_unknown_path_is_http_404(sx):
    status, _ = rest(sx, "GET", "/market/nothing_here", key=None)

    assert status == 404


def test_order_lifecycle_place_detail_pending_cancel(sx):
    _, book = rest(sx, "GET", "/market/depth", {"symbol": "BTCUSDT", "limit": "1"}, key=None)
    far = f"{float(book['data']['bids'][0][0]) * 0.9:.1f}"
    order = {"symbol": "BTCUSDT", "side": "BUY", "orderType": "LIMIT", "qty": "0.01", "price": far}

    _, placed = rest(sx, "POST", "/trade/place_order", order | {"clientId": "life-1"}, key=3)
    oid = placed["data"]["orderId"]
    _, detail = rest(sx, "GET", "/trade/get_order_detail", {"orderId": oid}, key=3)
    _, pending = rest(sx, "GET", "/trade/get_pending_orders", {"symbol": "BTCUSDT"}, key=3)
    _, dup = rest(sx, "POST", "/trade/place_order", order | {"clientId": "life-1"}, key=3)
    _, cancel = rest(
        sx, "POST", "/trade/cancel_orders", {"symbol": "BTCUSDT", "orderList": [{"id": oid}]}, key=3
    )
    _, after = rest(sx, "GET", "/trade/get_order_detail", {"clientId": "life-1"}, key=3)

    assert placed["code"] == 0
    assert placed["data"]["clientId"] == "life-1"
    assert detail["data"]["status"] == "NEW"
    assert float(detail["data"]["price"]) == float(far)
    assert [o["orderId"] for o in pending["data"]["orderList"]] == [oid]
    assert dup["code"] == 30042
    assert cancel["data"]["successList"] == [{"orderId": oid, "clientId": "life-1"}]
    assert after["data"]["status"] == "CANCELED"


def test_market_order_opens_position_and_flash_close_flattens_it(sx):
    order = {"symbol": "ETHUSDT", "side": "SELL", "orderType": "MARKET", "qty": "0.01"}

    _, placed = rest(sx, "POST", "/trade/place_order", order, key=4)
    _, positions = rest(sx, "GET", "/position/get_pending_positions", {"symbol": "ETHUSDT"}, key=4)
    pid = positions["data"][0]["positionId"]
    _, closed = rest(sx, "POST", "/trade/flash_close_position", {"positionId": pid}, key=4)
    _, after = rest(sx, "GET", "/position/get_pending_positions", {}, key=4)
    _, trades = rest(sx, "GET", "/trade/get_history_trades", {"symbol": "ETHUSDT"}, key=4)

    assert placed["code"] == 0
    assert positions["data"][0]["side"] == "SHORT"
    assert positions["data"][0]["qty"] == "0.01"
    assert closed["code"] == 0
    assert after["data"] == []
    assert trades["data"]["total"] >= 2


def test_min_qty_and_reduce_only_codes_over_the_wire(sx):
    small = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "orderType": "LIMIT",
        "qty": "0.00001",
        "price": "1000",
    }
    reduce = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "orderType": "MARKET",
        "qty": "0.01",
        "reduceOnly": True,
    }

    _, a = rest(sx, "POST", "/trade/place_order", small, key=5)
    _, b = rest(sx, "POST", "/trade/place_order", reduce, key=5)
    _, c = rest(sx, "POST", "/trade/place_order", {"symbol": "BTCUSDT", "side": "BUY"}, key=5)

    assert a["code"] == 10002  # 5 decimals exceed basePrecision 4
    assert b["code"] == 30018
    assert c["code"] == 10002


def test_public_rate_limit_answers_10006_beyond_10_per_second(sx):
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda _: rest(sx, "GET", "/market/tickers", key=None)[1]["code"], range(30))
        )

    assert codes.count(0) >= 10
    assert 10006 in codes


def test_private_rate_limit_is_per_key_and_endpoint(sx):
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=6)[1]["code"],
                range(30),
            )
        )
    _, other_key = rest(sx, "GET", "/account", {"marginCoin": "USDT"}, key=7)

    assert 10006 in codes
    assert codes.count(0) >= 10
    assert other_key["code"] == 0


def test_batch_order_reports_success_and_failure_lists(sx):
    body = {
        "symbol": "BTCUSDT",
        "orderList": [
            {"side": "BUY", "orderType": "LIMIT", "qty": "0.01", "price": "1000", "clientId": "b1"},
            {
                "side": "BUY",
                "orderType": "LIMIT",
                "qty": "0.00001",
                "price": "1000",
                "clientId": "b2",
            },
        ],
    }

    _, out = rest(sx, "POST", "/trade/batch_order", body, key=8)

    assert [x["clientId"] for x in out["data"]["successList"]] == ["b1"]
    assert out["data"]["failureList"][0]["clientId"] == "b2"
    assert out["data"]["failureList"][0]["errorCode"] == 10002


def test_settings_and_tpsl_endpoints_round_trip(sx):
    lev = {"symbol": "ETHUSDT", "leverage": 7, "marginCoin": "USDT"}
    mode = {"symbol": "ETHUSDT", "marginMode": "ISOLATION", "marginCoin": "USDT"}

    _, a = rest(sx, "POST", "/account/change_leverage", lev, key=8)
    _, b = rest(sx, "POST", "/account/change_margin_mode", mode, key=8)
    _, got = rest(
        sx,
        "GET",
        "/account/get_leverage_margin_mode",
        {"symbol": "ETHUSDT", "marginCoin": "USDT"},
        key=8,
    )
    order = {"symbol": "ETHUSDT", "side": "BUY", "orderType": "MARKET", "qty": "0.02"}
    rest(sx, "POST", "/trade/place_order", order, key=8)
    _, pos = rest(sx, "GET", "/position/get_pending_positions", {"symbol": "ETHUSDT"}, key=8)
    pid = pos["data"][0]["positionId"]
    tp = {"symbol": "ETHUSDT", "positionId": pid, "tpPrice": "99999", "tpStopType": "LAST_PRICE"}
    _, placed = rest(sx, "POST", "/tpsl/place_order", tp, key=8)
    _, pending = rest(sx, "GET", "/tpsl/get_pending_orders", {"symbol": "ETHUSDT"}, key=8)
    cancel = {"symbol": "ETHUSDT", "orderId": placed["data"]["orderId"]}
    _, canceled = rest(sx, "POST", "/tpsl/cancel_order", cancel, key=8)
    _, history = rest(sx, "GET", "/tpsl/get_history_orders", {"symbol": "ETHUSDT"}, key=8)
    _, busy = rest(sx, "POST", "/account/change_position_mode", {"positionMode": "HEDGE"}, key=8)
    _, tiers = rest(sx, "GET", "/position/get_position_tiers", {"symbol": "ETHUSDT"}, key=8)

    assert (a["code"], b["code"]) == (0, 0)
    assert (got["data"]["leverage"], got["data"]["marginMode"]) == (7, "ISOLATION")
    assert pos["data"][0]["marginMode"] == "ISOLATION"
    assert pos["data"][0]["leverage"] == 7
    assert [t["id"] for t in pending["data"]] == [placed["data"]["orderId"]]
    assert pending["data"][0]["tpPrice"] == "99999"
    assert canceled["code"] == 0
    assert history["data"]["orderList"][0]["status"] == "CANCELED"
    assert busy["code"] == 20009
    assert tiers["data"][0]["symbol"] == "ETHUSDT"
