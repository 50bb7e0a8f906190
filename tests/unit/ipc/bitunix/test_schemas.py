"""Every example in the reference (§3, §4) decodes into its typed schema."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ipc.bitunix.fields import decoder
from ipc.bitunix.rest import _unwrap
from ipc.bitunix.schemas_rest import (
    Account,
    BatchResult,
    DepthSnapshot,
    FundingRate,
    FundingRateHistory,
    Kline,
    OrderAck,
    Position,
    Ticker,
    TradingPair,
)
from ipc.bitunix.schemas_ws import (
    BalancePush,
    DepthPush,
    KlinePush,
    OrderPush,
    PositionPush,
    PricePush,
    TickerPush,
    TickersPush,
    TpslPush,
    TradePush,
)

REST: list[tuple[bytes, Any]] = [
    (
        b'{"code":0,"msg":"Success","data":[{"symbol":"BTCUSDT","base":"BTC","quote":"USDT",'
        b'"minTradeVolume":"0.0001","minBuyPriceOffset":"-0.95","maxSellPriceOffset":"100",'
        b'"maxLimitOrderVolume":"100000","maxMarketOrderVolume":"50000","basePrecision":4,'
        b'"quotePrecision":1,"minLeverage":1,"maxLeverage":125,"defaultLeverage":20,'
        b'"defaultMarginMode":1,"priceProtectScope":"0.02","symbolStatus":"OPEN"}]}',
        list[TradingPair],
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"symbol":"BTCUSDT","markPrice":"1","lastPrice":2,'
        b'"open":"1","last":"2","quoteVol":"3","baseVol":"4","high":"5","low":"0.5"}]}',
        list[Ticker],
    ),
    (
        b'{"code":0,"msg":"Success","data":{"asks":[["60100.1","0.5"],["60100.5","1.2"]],'
        b'"bids":[[60099.9,0.7],["60099.5","1.5"]]}}',
        DepthSnapshot,
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"open":60000,"high":60001,"close":60000,'
        b'"low":59989.2,"time":111111,"quoteVol":"1","baseVol":"60000","type":"LAST_PRICE"}]}',
        list[Kline],
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"symbol":"BTCUSDT","markPrice":"1","lastPrice":"1",'
        b'"fundingRate":"0.0001","fundingInterval":8,"nextFundingTime":"1772449200000"}]}',
        list[FundingRate],
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"fundingRate":"-0.00001191",'
        b'"fundingTime":"1772449200000","markPrice":"66286.6"}]}',
        list[FundingRateHistory],
    ),
    (
        b'{"code":0,"msg":"Success","data":{"marginCoin":"USDT","available":"1000","frozen":"0",'
        b'"margin":"10","transfer":"1000","positionMode":"HEDGE","crossUnrealizedPNL":"2",'
        b'"isolationUnrealizedPNL":"0","bonus":"0"}}',
        Account | list[Account],
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"marginCoin":"USDT","available":"1000"}]}',
        Account | list[Account],
    ),
    (b'{"code":0,"msg":"Success","data":{"orderId":"11111","clientId":"22222"}}', OrderAck),
    (
        b'{"code":0,"msg":"Success","data":{"successList":[{"orderId":"11111","clientId":"22222"}],'
        b'"failureList":[{"orderId":"11112","clientId":"22223","errorMsg":"Order status error",'
        b'"errorCode":10013}]}}',
        BatchResult,
    ),
    (
        b'{"code":0,"msg":"Success","data":[{"positionId":"12345678","symbol":"BTCUSDT",'
        b'"qty":"0.5","entryValue":"30000","side":"LONG","positionMode":"HEDGE",'
        b'"marginMode":"ISOLATION","leverage":100,"fee":"0.1","funding":"-0.2",'
        b'"realizedPNL":"102.9","margin":"300","unrealizedPNL":"1.5","liqPrice":"22209",'
        b'"marginRate":"0.01","avgOpenPrice":"1.0","ctime":1691382137448,"mtime":1691382137448}]}',
        list[Position],
    ),
]


@pytest.mark.parametrize(("raw", "typ"), REST)
def test_reference_rest_example_decodes(raw, typ):
    out = decoder(typ).decode(_unwrap("/x", 200, raw))

    assert out


def test_batch_failure_keeps_error_code_and_money_is_decimal():
    batch = decoder(BatchResult).decode(_unwrap("/x", 200, REST[9][0]))
    [pos] = decoder(list[Position]).decode(_unwrap("/x", 200, REST[10][0]))

    assert batch.failureList[0].errorCode == 10013
    assert pos.realizedPNL == Decimal("102.9")
    assert isinstance(pos.qty, Decimal)


WS: list[tuple[bytes, Any]] = [
    (
        b'{"ch":"depth_book1","symbol":"BTCUSDT","ts":1732178884994,"data":{"b":[["7403.89",'
        b'"0.002"]],"a":[["7405.96","3.340"]]}}',
        DepthPush,
    ),
    (
        b'{"ch":"trade","symbol":"BTCUSDT","ts":1775540872598,"data":[{"t":"2026-04-07T05:47:52Z",'
        b'"p":"68621.4","v":"0.7142","s":"buy"},{"t":"2026-04-07T05:47:52Z","p":"68621.4",'
        b'"v":"0.0018","s":"sell"}]}',
        TradePush,
    ),
    (
        b'{"ch":"ticker","symbol":"BTCUSDT","ts":1732178884994,"data":{"s":"BTCUSDT","la":"68650.9",'
        b'"o":"69141.6","h":"70319.9","l":"68241.9","b":"26295.3977","q":"1823374525.0193",'
        b'"r":"-0.7097029863"}}',
        TickerPush,
    ),
    (
        b'{"ch":"tickers","ts":1732178884994,"data":[{"s":"BTCUSDT","la":"68650.9","o":"69141.6",'
        b'"h":"70319.9","l":"68241.9","b":"26295.3977","q":"1823374525.0193","r":"-0.70970",'
        b'"bd":"68650.9","ak":"68651","bv":"0.9747","av":"2.3606"}]}',
        TickersPush,
    ),
    (
        b'{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":1775541412718,"data":{"o":"68581.4",'
        b'"c":"68583.4","h":"68590","l":"68579.5","b":"5.2395","q":"359348.14078"}}',
        KlinePush,
    ),
    (
        b'{"ch":"price","symbol":"BTCUSDT","ts":1732178884994,"data":{"ip":"0.0010","mp":"10000",'
        b'"fr":"0.013461","ft":"2024-12-04T11:00:00Z","nft":"2024-12-04T12:00:00Z"}}',
        PricePush,
    ),
    (
        b'{"ch":"balance","ts":1732178884994,"data":{"coin":"USDT","available":"1000.50",'
        b'"frozen":"100.25","isolationFrozen":"20.75","crossFrozen":"79.50","margin":"200.50",'
        b'"isolationMargin":"50.75","crossMargin":"149.75","expMoney":"0"}}',
        BalancePush,
    ),
    (
        b'{"ch":"position","ts":1732178884994,"data":{"event":"UPDATE","positionId":"12345",'
        b'"symbol":"BTCUSDT","marginMode":"ISOLATION","positionMode":"ONE_WAY","side":"LONG",'
        b'"leverage":"20","margin":"500.25","ctime":"2025-04-26T17:06:13.155255000Z","qty":"0.5",'
        b'"entryValue":"20000.50","realizedPNL":"100.25","unrealizedPNL":"200.50","funding":"1.25",'
        b'"fee":"5.75"}}',
        PositionPush,
    ),
    (
        b'{"ch":"tpsl","ts":1645123456000,"data":{"event":"CREATE","positionId":"12345",'
        b'"orderId":"67890","symbol":"BTCUSDT","leverage":"20","side":"BUY",'
        b'"positionMode":"ONE_WAY","status":"NEW","ctime":"2025-04-26T17:06:13.155255000Z",'
        b'"type":"POSITION_TPSL","tpQty":"0.5","slQty":"0.5","tpStopType":"Mark",'
        b'"tpPrice":"50000.00","tpOrderType":"Limit","tpOrderPrice":"49900.00",'
        b'"slStopType":"Last","slPrice":"45000.00","slOrderType":"MARKET","slOrderPrice":"0.00"}}',
        TpslPush,
    ),
]


@pytest.mark.parametrize(("raw", "typ"), WS)
def test_reference_ws_example_decodes(raw, typ):
    out = decoder(typ).decode(raw)

    assert out.ts > 0


def test_private_examples_keep_decimal_money_and_normalised_enums():
    bal = decoder(BalancePush).decode(WS[6][0]).items[0]
    pos = decoder(PositionPush).decode(WS[7][0]).items[0]
    tpsl = decoder(TpslPush).decode(WS[8][0]).items[0]
    price = decoder(PricePush).decode(WS[5][0])

    assert bal.available == Decimal("1000.50")
    assert pos.ctime == 1745687173155
    assert pos.leverage == 20
    assert (tpsl.tpStopType, tpsl.slStopType, tpsl.tpOrderType) == (
        "MARK_PRICE",
        "LAST_PRICE",
        "LIMIT",
    )
    assert price.data.ft == 1733310000000


ORDER = (
    b'{"ch":"order","ts":1732178884994,"data":{"event":"UPDATE","orderId":"11111",'
    b'"clientId":"bot-000123","symbol":"BTCUSDT","side":"BUY","type":"LIMIT","qty":"0.01",'
    b'"price":"60000","dealAmount":"0.004"%s}}'
)


@pytest.mark.parametrize(
    ("status", "want"),
    [
        (b',"orderStatus":"PART_FILLED"', "PART_FILLED"),  # the docs and the Java demo
        (b',"status":"PART_FILLED"', "PART_FILLED"),  # the Python and Go demos
        (b',"status":"filled"', "FILLED"),
        (b',"orderStatus":"NEW","status":"NEW"', "NEW"),
    ],
    ids=["orderStatus", "status", "status-lowercase", "both"],
)
def test_order_push_status_under_either_name_decodes(status, want):
    push = decoder(OrderPush).decode(ORDER % status)

    assert push.items[0].orderStatus == want


def test_order_push_without_any_status_is_a_schema_error():
    with pytest.raises(msgspec.ValidationError, match="neither orderStatus nor status"):
        decoder(OrderPush).decode(ORDER % b"")
