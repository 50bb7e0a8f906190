"""BitunixRest against a real loopback HTTP server: signing, error mapping, retries, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from ipc.bitunix import errors
from ipc.bitunix.requests import PlaceOrder
from ipc.bitunix.rest import RestConfig
from ipc.bitunix.rest_api import BitunixRest
from tests.helpers.bitunix_rest_server import FakeRestServer, Reply, fail, ok

pytestmark = pytest.mark.integration

P = "/api/v1/futures"
ORDER = PlaceOrder(
    symbol="BTCUSDT",
    side="BUY",
    orderType="LIMIT",
    qty=Decimal("0.010"),
    price=Decimal("60000.5"),
    effect="GTC",
)


def run(body: Callable[[FakeRestServer, BitunixRest], Awaitable[Any]], **cfg: Any) -> Any:
    async def main() -> Any:
        server = FakeRestServer()
        base = await server.start()
        config = RestConfig(
            base_url=base,
            api_key=server.api_key,
            secret=server.secret,
            timeout_s=cfg.pop("timeout_s", 1.0),
            backoff_base_s=0.01,
            backoff_max_s=0.02,
            **cfg,
        )
        try:
            async with BitunixRest(config) as rest:
                return await body(server, rest)
        finally:
            await server.close()

    return asyncio.run(main())


def test_get_signed_query_matches_bytes_sent_and_decodes():
    async def body(server, rest):
        server.script(
            f"{P}/account",
            ok(
                [
                    {
                        "marginCoin": "USDT",
                        "available": "1000.5",
                        "frozen": 0,
                        "margin": "10",
                        "positionMode": "hedge",
                    }
                ]
            ),
        )
        return await rest.account("USDT"), server.calls(f"{P}/account")

    acct, [seen] = run(body)

    assert seen.sign_ok
    assert seen.query == "marginCoin=USDT"
    assert seen.body == b""
    assert acct.available == Decimal("1000.5")
    assert acct.positionMode == "HEDGE"


def test_get_query_params_sent_in_signed_sorted_order():
    async def body(server, rest):
        server.script(f"{P}/trade/get_pending_orders", ok({"orderList": [], "total": 0}))
        await rest.pending_orders("BTCUSDT", limit=5, clientId="a b&c", skip=0)
        return server.calls(f"{P}/trade/get_pending_orders")

    [seen] = run(body)

    assert seen.sign_ok
    assert [kv.split("=")[0] for kv in seen.query.split("&")] == [
        "clientId",
        "limit",
        "skip",
        "symbol",
    ]


def test_place_order_body_is_compact_json_signed_once_with_client_id():
    async def body(server, rest):
        server.script(f"{P}/trade/place_order", ok({"orderId": 11111}))
        ack = await rest.place_order(ORDER)
        return ack, server.calls(f"{P}/trade/place_order")

    ack, [seen] = run(body)

    sent = json.loads(seen.body)
    assert seen.sign_ok
    assert b" " not in seen.body
    assert sent["qty"] == "0.010"
    assert sent["price"] == "60000.5"
    assert sent["clientId"]
    assert ack.clientId == sent["clientId"]
    assert ack.orderId == "11111"
    assert seen.query == ""


def test_place_order_generates_unique_client_ids():
    async def body(server, rest):
        server.always(f"{P}/trade/place_order", ok({"orderId": "1"}))
        return [(await rest.place_order(ORDER)).clientId for _ in range(5)]

    ids = run(body)

    assert len(set(ids)) == 5


@pytest.mark.parametrize(
    ("code", "exc"),
    [
        (10005, errors.RateLimited),
        (10006, errors.RateLimited),
        (10007, errors.SignatureError),
        (10004, errors.IpWhitelistError),
        (10002, errors.ParameterError),
        (20003, errors.InsufficientBalance),
        (20007, errors.OrderNotFound),
        (30042, errors.DuplicateClientId),
        (20006, errors.ModeChangeBlocked),
        (20009, errors.ModeChangeBlocked),
        (99999, errors.VenueError),
    ],
)
def test_post_envelope_code_maps_to_typed_error(code, exc):
    async def body(server, rest):
        server.script(f"{P}/trade/place_order", fail(code, "nope"))
        with pytest.raises(exc) as info:
            await rest.place_order(ORDER)
        return info.value, len(server.calls(f"{P}/trade/place_order")), rest.errors_total

    err, calls, counted = run(body)

    assert err.code == code
    assert calls == 1
    assert counted[exc.__name__] == 1


def test_get_retries_on_5xx_then_succeeds_and_counts():
    async def body(server, rest):
        server.script(
            f"{P}/market/tickers",
            Reply(status=502, body=b"bad gateway"),
            fail(10006),
            ok([{"symbol": "BTCUSDT", "lastPrice": "1.5"}]),
        )
        out = await rest.tickers(["BTCUSDT"])
        return out, len(server.calls(f"{P}/market/tickers")), rest.retries_total

    out, calls, retries = run(body)

    assert out[0].lastPrice == Decimal("1.5")
    assert (calls, retries) == (3, 2)


def test_get_gives_up_after_capped_retries():
    async def body(server, rest):
        server.always(f"{P}/market/depth", Reply(status=503))
        with pytest.raises(errors.ServerError):
            await rest.depth("BTCUSDT")
        return len(server.calls(f"{P}/market/depth")), rest.retries_total

    calls, retries = run(body, get_retries=2)

    assert (calls, retries) == (3, 2)


def test_get_signature_error_is_not_retried():
    async def body(server, rest):
        server.always(f"{P}/account", fail(10007, "Signature Error"))
        with pytest.raises(errors.SignatureError):
            await rest.account()
        return len(server.calls(f"{P}/account"))

    assert run(body) == 1


def test_post_5xx_is_not_retried():
    async def body(server, rest):
        server.always(f"{P}/trade/cancel_orders", Reply(status=500))
        with pytest.raises(errors.ServerError):
            await rest.cancel_orders("BTCUSDT", order_ids=["1"])
        return len(server.calls(f"{P}/trade/cancel_orders")), rest.retries_total

    assert run(body) == (1, 0)


def test_place_order_timeout_raises_unknown_outcome_once():
    async def body(server, rest):
        server.script(f"{P}/trade/place_order", Reply(delay_s=1.0, body=b'{"code":0}'))
        with pytest.raises(errors.UnknownOutcome):
            await rest.place_order(ORDER)
        return len(server.calls(f"{P}/trade/place_order")), rest.retries_total

    assert run(body, timeout_s=0.2) == (1, 0)


def test_get_timeout_is_retried():
    async def body(server, rest):
        server.script(
            f"{P}/market/trading_pairs",
            Reply(delay_s=1.0),
            ok(
                [
                    {
                        "symbol": "BTCUSDT",
                        "basePrecision": 4,
                        "quotePrecision": 1,
                        "minTradeVolume": "0.0001",
                        "defaultMarginMode": 1,
                    }
                ]
            ),
        )
        out = await rest.trading_pairs()
        return out, rest.retries_total

    [pair], retries = run(body, timeout_s=0.2)

    assert retries == 1
    assert pair.tick_size == Decimal("0.1")
    assert pair.qty_step == Decimal("0.0001")
    assert pair.defaultMarginMode == "ISOLATION"


def test_connect_refused_raises_transport_error():
    async def main() -> None:
        from tests.conftest import free_port

        config = RestConfig(base_url=f"http://127.0.0.1:{free_port()}", get_retries=0)
        async with BitunixRest(config) as rest:
            with pytest.raises(errors.TransportError):
                await rest.place_order(ORDER)

    asyncio.run(main())


def test_token_bucket_keeps_burst_under_endpoint_limit():
    async def body(server, rest):
        server.always(f"{P}/trade/cancel_orders", ok({"successList": [], "failureList": []}))
        await asyncio.gather(
            *(rest.cancel_orders("BTCUSDT", order_ids=[str(i)]) for i in range(12))
        )
        return [s.t_mono for s in server.calls(f"{P}/trade/cancel_orders")], rest

    stamps, rest = run(body)

    assert len(stamps) == 12
    # cancel_orders is 5/s: no 1-second window may hold more than 5
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= 5
    assert rest.rate_limit_waits_total > 0


def test_endpoints_decode_reference_examples():
    async def body(server, rest):
        server.script(
            f"{P}/position/get_pending_positions",
            ok(
                [
                    {
                        "positionId": "12345678",
                        "symbol": "BTCUSDT",
                        "qty": "0.5",
                        "entryValue": "30000",
                        "side": "SELL",
                        "positionMode": "HEDGE",
                        "marginMode": "ISOLATION",
                        "leverage": 100,
                        "liqPrice": "22209",
                        "ctime": "1691382137448",
                        "mtime": 1691382137448,
                    }
                ]
            ),
        )
        server.script(
            f"{P}/market/kline",
            ok(
                [
                    {
                        "open": 2,
                        "high": 3,
                        "close": 2,
                        "low": 1,
                        "time": 2000,
                        "type": "LAST_PRICE",
                    },
                    {
                        "open": 60000,
                        "high": 60001,
                        "close": 60000,
                        "low": 59989.2,
                        "time": "1000",
                        "quoteVol": "1",
                        "baseVol": "60000",
                        "type": "Last",
                    },
                ]
            ),
        )
        server.script(
            f"{P}/trade/get_history_orders",
            ok(
                {
                    "orderList": [
                        {
                            "orderId": "1",
                            "symbol": "BTCUSDT",
                            "qty": "0.01",
                            "side": "Sell",
                            "orderType": "Market",
                            "price": "market",
                            "status": "FILLED",
                            "ctime": 1,
                        }
                    ],
                    "total": 1,
                }
            ),
        )
        server.script(
            f"{P}/trade/batch_order",
            ok(
                {
                    "successList": [{"orderId": "1", "clientId": "a"}],
                    "failureList": [{"clientId": "b", "errorMsg": "x", "errorCode": "30042"}],
                }
            ),
        )
        pos = await rest.pending_positions("BTCUSDT")
        kl = await rest.klines("BTCUSDT", "1m")
        hist = await rest.history_orders("BTCUSDT")
        batch = await rest.batch_place("BTCUSDT", [ORDER, ORDER])
        sent = json.loads(server.calls(f"{P}/trade/batch_order")[0].body)
        return pos, kl, hist, batch, sent

    pos, kl, hist, batch, sent = run(body)

    assert pos[0].side == "SHORT"
    assert pos[0].ctime == 1691382137448
    assert [k.time for k in kl] == [1000, 2000]
    assert kl[0].type == "LAST_PRICE"
    assert hist.orderList[0].price is None
    assert hist.orderList[0].orderType == "MARKET"
    assert batch.failureList[0].errorCode == 30042
    assert "symbol" not in sent["orderList"][0]
    assert sent["symbol"] == "BTCUSDT"
    assert len({o["clientId"] for o in sent["orderList"]}) == 2


def test_batch_place_rejects_more_than_twenty():
    async def body(server, rest):
        with pytest.raises(ValueError, match=r"1\.\.20"):
            await rest.batch_place("BTCUSDT", [ORDER] * 21)

    run(body)


def test_malformed_body_raises_decode_error():
    async def body(server, rest):
        server.script(f"{P}/account", Reply(body=b"<html>oops"))
        with pytest.raises(errors.DecodeError):
            await rest.account()

    run(body, get_retries=0)


def test_decimals_sent_in_plain_notation_and_ids_from_responses_accepted():
    async def body(server, rest):
        server.always(f"{P}/trade/place_order", ok({"orderId": 5}))
        server.always(f"{P}/trade/cancel_orders", ok({"successList": [], "failureList": []}))
        ack = await rest.place_order(
            PlaceOrder(
                symbol="X",
                side="SELL",
                orderType="LIMIT",
                qty=Decimal("1E-8"),
                price=Decimal("6E+4"),
            )
        )
        await rest.cancel_orders("X", order_ids=[ack.orderId])
        return [json.loads(s.body) for s in server.seen]

    placed, cancel = run(body)

    assert (placed["qty"], placed["price"]) == ("0.00000001", "60000")
    assert cancel["orderList"] == [{"orderId": "5"}]
