"""ipc.bitunix clients against a real simex process: every REST endpoint and WS channel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import uvloop

from ipc.bitunix import errors
from ipc.bitunix.requests import ModifyOrder, PlaceOrder, TpslRequest
from ipc.bitunix.rest import RestConfig
from ipc.bitunix.rest_api import BitunixRest
from ipc.bitunix.ws import BitunixWs, WsConfig
from tests.helpers.bitunix_ws_server import until
from tests.helpers.simex_proc import KEYS, SimexProc, control, run_simex, write_config

pytestmark = pytest.mark.integration

WS_FAST = {
    "ping_interval_s": 0.5,
    "reconnect_min_s": 0.05,
    "reconnect_max_s": 0.3,
    "connect_timeout_s": 3.0,
    "login_timeout_s": 3.0,
}


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    cfg = write_config(tmp_path_factory.mktemp("bxsimex"))
    with run_simex(cfg) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _no_faults(sx):
    yield
    control(sx, "/_simex/faults/reset", {})


def rest_run(
    sx: SimexProc, key: int | None, body: Callable[[BitunixRest], Awaitable[Any]], **cfg: Any
) -> Any:
    async def main() -> Any:
        keys = {} if key is None else {"api_key": KEYS[key - 1][0], "secret": KEYS[key - 1][1]}
        config = RestConfig(
            base_url=sx.rest_url, backoff_base_s=0.01, backoff_max_s=0.05, **{**keys, **cfg}
        )
        async with BitunixRest(config) as rest:
            return await body(rest)

    return uvloop.run(main())


def test_simex_market_endpoints_decode(sx):
    async def body(rest: BitunixRest) -> Any:
        return (
            await rest.trading_pairs(["BTCUSDT"]),
            await rest.tickers(),
            await rest.depth("BTCUSDT", 15),
            await rest.klines("BTCUSDT", "1m", limit=5),
            await rest.funding_rate("BTCUSDT"),
            await rest.funding_rates(),
            await rest.funding_rate_history("BTCUSDT", limit=5),
        )

    pairs, tickers, depth, klines, fr, frs, frh = rest_run(sx, None, body)

    assert pairs[0].symbol == "BTCUSDT"
    assert pairs[0].qty_step == Decimal("0.0001")
    assert {t.symbol for t in tickers} >= {"BTCUSDT", "ETHUSDT"}
    assert 0 < len(depth.bids) <= 15
    assert depth.bids[0][0] < depth.asks[0][0]
    assert all(k.high >= k.low for k in klines)
    assert fr is not None
    assert fr.symbol == "BTCUSDT"
    assert {f.symbol for f in frs} >= {"BTCUSDT"}
    assert isinstance(frh, list)


def test_simex_account_and_mode_endpoints(sx):
    async def body(rest: BitunixRest) -> Any:
        before = await rest.account()
        await rest.change_leverage("ETHUSDT", 7)
        lev = await rest.leverage_margin_mode("ETHUSDT")
        await rest.change_margin_mode("ETHUSDT", "CROSS")
        mode = await rest.leverage_margin_mode("ETHUSDT")
        await rest.change_position_mode("HEDGE")
        after = await rest.account()
        await rest.change_position_mode("ONE_WAY")
        return before, lev, mode, after

    before, lev, mode, after = rest_run(sx, 2, body)

    assert before.available == Decimal(100000)
    assert lev.leverage == 7
    assert mode.marginMode == "CROSS"
    assert after.positionMode == "HEDGE"


async def _px(rest: BitunixRest, symbol: str) -> Decimal:
    [t] = await rest.tickers([symbol])
    px = t.markPrice or t.lastPrice
    assert px is not None
    return px


def test_simex_order_lifecycle_endpoints(sx):
    async def body(rest: BitunixRest) -> Any:
        px = await _px(rest, "BTCUSDT")
        low = (px * Decimal("0.8")).quantize(Decimal("0.1"))
        ack = await rest.place_order(
            PlaceOrder(
                symbol="BTCUSDT",
                side="BUY",
                orderType="LIMIT",
                qty=Decimal("0.01"),
                price=low,
                effect="GTC",
            )
        )
        pending = await rest.pending_orders("BTCUSDT")
        detail = await rest.order_detail(client_id=ack.clientId)
        await rest.modify_order(
            ModifyOrder(orderId=ack.orderId, qty=Decimal("0.02"), price=low - 1)
        )
        modified = await rest.order_detail(order_id=ack.orderId)
        cancel = await rest.cancel_orders("BTCUSDT", order_ids=[str(ack.orderId)])
        batch = await rest.batch_place(
            "BTCUSDT",
            [
                PlaceOrder(
                    symbol="BTCUSDT",
                    side="BUY",
                    orderType="LIMIT",
                    qty=Decimal("0.01"),
                    price=low - i,
                )
                for i in range(3)
            ],
        )
        cancel_all = await rest.cancel_all_orders("BTCUSDT")
        history = await rest.history_orders("BTCUSDT")
        return ack, pending, detail, modified, cancel, batch, cancel_all, history

    ack, pending, detail, modified, cancel, batch, cancel_all, history = rest_run(sx, 3, body)

    assert ack.orderId in {o.orderId for o in pending.orderList}
    assert detail is not None
    assert detail.clientId == ack.clientId
    assert modified is not None
    assert modified.qty == Decimal("0.02")
    assert [s.orderId for s in cancel.successList] == [ack.orderId]
    assert len(batch.successList) == 3
    assert len(cancel_all.successList) + len(cancel_all.failureList) >= 0
    assert ack.orderId in {o.orderId for o in history.orderList}


def test_simex_position_and_tpsl_endpoints(sx):
    async def body(rest: BitunixRest) -> Any:
        px = await _px(rest, "BTCUSDT")
        [pos] = await until_async(lambda: _open_long(rest), timeout_s=8)
        tp = await rest.place_tpsl(
            TpslRequest(
                symbol="BTCUSDT",
                positionId=pos.positionId,
                tpPrice=(px * 2).quantize(Decimal("0.1")),
                tpStopType="MARK_PRICE",
                tpOrderType="MARKET",
                tpQty=Decimal("0.01"),
            )
        )
        tpsl_open = await rest.pending_tpsl("BTCUSDT")
        await rest.cancel_tpsl("BTCUSDT", tp.orderId or tp.id or "")
        await rest.place_position_tpsl(
            TpslRequest(
                symbol="BTCUSDT",
                positionId=pos.positionId,
                slPrice=(px / 2).quantize(Decimal("0.1")),
                slStopType="LAST_PRICE",
            )
        )
        trades = await rest.history_trades("BTCUSDT")
        tiers = await rest.position_tiers("BTCUSDT")
        await rest.flash_close_position(pos.positionId)
        closed = await until_async(lambda: _closed(rest, pos.positionId), timeout_s=8)
        tpsl_hist = await rest.history_tpsl("BTCUSDT")
        return pos, tp, tpsl_open, trades, tiers, closed, tpsl_hist

    pos, tp, tpsl_open, trades, tiers, closed, tpsl_hist = rest_run(sx, 4, body)

    assert pos.side == "LONG"
    assert pos.qty == Decimal("0.01")
    assert (tp.orderId or tp.id) in {t.id or t.orderId for t in tpsl_open}
    assert trades.tradeList
    assert isinstance(tiers, list)
    assert pos.positionId in {p.positionId for p in closed.positionList}
    assert isinstance(tpsl_hist, list)


async def _open_long(rest: BitunixRest) -> list[Any]:
    # simex's generated book is thin and can be one-sided for a moment: retry the market order
    positions = await rest.pending_positions("BTCUSDT")
    if not positions:
        await rest.place_order(
            PlaceOrder(symbol="BTCUSDT", side="BUY", orderType="MARKET", qty=Decimal("0.01"))
        )
    return positions


async def _closed(rest: BitunixRest, position_id: str) -> Any:
    hist = await rest.history_positions("BTCUSDT")
    if position_id in {p.positionId for p in hist.positionList}:
        return hist
    await rest.close_all_positions("BTCUSDT")  # the flash close found no bids: try again
    return None


async def until_async(fetch: Callable[[], Awaitable[Any]], timeout_s: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await fetch()):
        if loop.time() > deadline:
            raise AssertionError("no result in time")
        await asyncio.sleep(0.02)  # pacing between polls
    return value


def test_simex_duplicate_client_id_maps_to_typed_error(sx):
    async def body(rest: BitunixRest) -> Any:
        px = await _px(rest, "ETHUSDT")
        o = PlaceOrder(
            symbol="ETHUSDT",
            side="BUY",
            orderType="LIMIT",
            qty=Decimal("0.01"),
            price=(px * Decimal("0.8")).quantize(Decimal("0.01")),
            clientId="dup-1",
        )
        await rest.place_order(o)
        with pytest.raises(errors.DuplicateClientId):
            await rest.place_order(o)
        await rest.cancel_all_orders("ETHUSDT")

    rest_run(sx, 5, body)


def test_simex_wrong_secret_is_signature_error_not_retried(sx):
    async def body(rest: BitunixRest) -> Any:
        with pytest.raises(errors.SignatureError):
            await rest.account()
        return rest.retries_total

    assert rest_run(sx, 6, body, secret="wrong") == 0


def test_simex_5xx_fault_retried_for_get_only(sx):
    control(sx, "/_simex/faults", {"rest_error_rate": 1.0})

    async def body(rest: BitunixRest) -> Any:
        with pytest.raises(errors.ServerError):
            await rest.tickers()
        get_retries = rest.retries_total
        with pytest.raises(errors.ServerError):
            await rest.cancel_all_orders("BTCUSDT")
        return get_retries, rest.retries_total

    assert rest_run(sx, 6, body, get_retries=2) == (2, 2)


def test_simex_slow_ack_makes_place_unknown_outcome(sx):
    control(sx, "/_simex/faults", {"ack_delay_s": 1.0})

    async def body(rest: BitunixRest) -> Any:
        px = await _px(rest, "BTCUSDT")
        with pytest.raises(errors.UnknownOutcome):
            await rest.place_order(
                PlaceOrder(
                    symbol="BTCUSDT",
                    side="BUY",
                    orderType="LIMIT",
                    qty=Decimal("0.01"),
                    price=(px * Decimal("0.8")).quantize(Decimal("0.1")),
                    clientId="slow-1",
                )
            )
        control(sx, "/_simex/faults/reset", {})
        found = await rest.order_detail(client_id="slow-1")
        await rest.cancel_all_orders("BTCUSDT")
        return found

    found = rest_run(sx, 7, body, timeout_s=0.3)

    assert found is not None  # the place did happen: that is why it must not be retried


def ws_run(
    sx: SimexProc,
    body: Callable[[BitunixWs], Awaitable[Any]],
    *,
    key: int | None = None,
    **cfg: Any,
) -> Any:
    async def main() -> Any:
        keys = {} if key is None else {"api_key": KEYS[key - 1][0], "secret": KEYS[key - 1][1]}
        url = sx.ws_public_url if key is None else sx.ws_private_url
        ws = BitunixWs(WsConfig(url=url, **{**WS_FAST, **keys, **cfg}))
        try:
            return await body(ws)
        finally:
            await ws.close()

    return uvloop.run(main())


def _keep_first(seen: dict[str, Any], ch: str) -> Callable[[Any], None]:
    return lambda p: seen.setdefault(ch, p)


def test_simex_public_channels_deliver_typed_pushes(sx):
    seen: dict[str, Any] = {}
    two_sided: list[Any] = []

    def on_depth15(p: Any) -> None:
        seen["depth_book15"] = p
        if p.data.b and p.data.a:
            two_sided.append(p)

    async def body(ws: BitunixWs) -> Any:
        for ch in ("depth_book1", "depth_book5", "trade", "ticker", "tickers", "price"):
            ws.on(ch, _keep_first(seen, ch))
        ws.on("depth_book15", on_depth15)
        ws.on("kline", lambda p: seen.setdefault(p.ch, p))
        ws.on("depth_books", lambda u: seen.setdefault("depth_books", u))
        ws.subscribe_many(
            [
                (c, "BTCUSDT")
                for c in (
                    "depth_book1",
                    "depth_book5",
                    "depth_book15",
                    "depth_books",
                    "trade",
                    "ticker",
                    "tickers",
                    "price",
                    "market_kline_1min",
                    "mark_kline_1min",
                )
            ]
        )
        ws.start()
        await until(lambda: len(seen) == 10 and two_sided, timeout_s=10)
        return dict(ws.dispatcher.decode_errors_total)

    errs = ws_run(sx, body)

    assert set(errs) <= {"crossed_book"}  # simex's thin book may cross between deltas
    d15 = two_sided[0]
    assert 1 <= len(d15.data.b) <= 15
    assert d15.data.b[0][0] < d15.data.a[0][0]
    assert d15.data.b == sorted(d15.data.b, reverse=True)
    assert seen["trade"].data[0].s in ("BUY", "SELL")
    assert seen["price"].data.mp > 0
    assert seen["depth_books"].snapshot
    assert seen["market_kline_1min"].data.h >= seen["market_kline_1min"].data.l


def test_simex_private_login_and_order_push(sx):
    got: list[Any] = []

    async def body(ws: BitunixWs) -> Any:
        ws.on("order", got.append)
        ws.on("balance", got.append)
        ws.subscribe_many([("order", None), ("balance", None), ("position", None), ("tpsl", None)])
        ws.start()
        await ws.wait_ready(5)
        cfg = RestConfig(base_url=sx.rest_url, api_key=KEYS[7][0], secret=KEYS[7][1])
        async with BitunixRest(cfg) as rest:
            px = await _px(rest, "BTCUSDT")
            ack = await rest.place_order(
                PlaceOrder(
                    symbol="BTCUSDT",
                    side="BUY",
                    orderType="LIMIT",
                    qty=Decimal("0.01"),
                    price=(px * Decimal("0.8")).quantize(Decimal("0.1")),
                )
            )
            await until(lambda: any(getattr(p, "ch", "") == "order" for p in got), timeout_s=5)
            await rest.cancel_all_orders("BTCUSDT")
        return ack, ws.logins_total

    ack, logins = ws_run(sx, body, key=8)

    orders = [e for p in got if p.ch == "order" for e in p.items]
    assert logins == 1
    assert orders[0].orderId == ack.orderId
    assert orders[0].side == "BUY"
    assert orders[0].clientId == ack.clientId


def test_simex_drop_reconnects_resubscribes_and_resyncs(sx):
    resyncs: list[int] = []
    pushes: list[Any] = []

    async def body(ws: BitunixWs) -> Any:
        ws._on_resync = lambda: resyncs.append(1)
        ws.on("depth_book5", pushes.append)
        ws.subscribe("depth_book5", "ETHUSDT")
        ws.start()
        await until(lambda: pushes, timeout_s=5)
        control(sx, "/_simex/ws/drop", {"scope": "public"})
        await until(lambda: resyncs, timeout_s=5)
        n = len(pushes)
        await until(lambda: len(pushes) > n, timeout_s=5)
        return ws.reconnects_total

    assert ws_run(sx, body) >= 1
    assert resyncs


def test_simex_stall_triggers_watchdog_reconnect(sx):
    async def body(ws: BitunixWs) -> Any:
        ws.start()
        await ws.wait_ready(5)
        control(sx, "/_simex/faults", {"ws_stall_s": 1.5, "ws_stall_scope": "public"})
        await until(lambda: ws.watchdog_reconnects_total >= 1, timeout_s=5)
        return ws.watchdog_reconnects_total

    assert ws_run(sx, body, ping_interval_s=0.2) >= 1


def test_simex_depth_books_local_book_tracks_depth_book15(sx):
    last15: list[Any] = [None]
    cmp = {"same": 0, "diff": 0}

    def on_books(u: Any) -> None:
        p = last15[0]
        if p is None:
            return
        bids, asks = u.book.top(5)
        cmp["same" if (bids, asks) == (p.data.b[:5], p.data.a[:5]) else "diff"] += 1

    async def body(ws: BitunixWs) -> Any:
        ws.on("depth_book15", lambda p: last15.__setitem__(0, p))
        ws.on("depth_books", on_books)
        ws.subscribe_many([("depth_book15", "ETHUSDT"), ("depth_books", "ETHUSDT")])
        ws.start()
        await until(lambda: cmp["same"] + cmp["diff"] >= 50, timeout_s=10)
        return ws.dispatcher.books["ETHUSDT"].resyncs_total

    resyncs = ws_run(sx, body)

    assert resyncs == 0
    assert cmp["same"] >= 0.9 * (cmp["same"] + cmp["diff"])


def test_simex_client_rate_limiter_never_trips_simex_under_a_burst(sx):
    # 25 public GETs (simex: 10/s per IP) and 12 cancels (5/s per key) fired at once; with
    # retries off, a single 10005/10006 from simex would raise RateLimited here
    async def body(rest: BitunixRest) -> Any:
        gets = [rest.depth("BTCUSDT", limit="5") for _ in range(25)]
        cancels = [rest.cancel_orders("BTCUSDT", client_ids=[f"none-{i}"]) for i in range(12)]
        results = await asyncio.gather(*gets, *cancels, return_exceptions=True)
        return results, dict(rest.errors_total), rest.rate_limit_waits_total

    results, errors_by_class, waits = rest_run(sx, 7, body, get_retries=0)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert errors_by_class == {}
    assert waits > 0  # the burst really exceeded the limits: the client waited, simex never said no
