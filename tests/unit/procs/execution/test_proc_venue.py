"""Venue adapter pieces that need no network: wire mapping, error mapping, the loop waiter."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest

from ipc.bitunix.errors import (
    DuplicateClientId,
    InsufficientBalance,
    RateLimited,
    ServerError,
    UnknownOutcome,
)
from ipc.bitunix.fields import decoder
from ipc.bitunix.schemas_rest import Order as RestOrder
from ipc.bitunix.schemas_ws import OrderPush
from procs.trading.compose import LoopWaiter
from procs.trading.config import VenueConfig
from procs.trading.keys import load_keys
from procs.trading.model import Side
from procs.trading.venue import (
    VenueRejected,
    VenueUnknown,
    _call,
    update_from_push,
    update_from_rest,
)

PUSH = (
    b'{"ch":"order","ts":1732178884994,"data":{"event":"UPDATE","orderId":"11111",'
    b'"clientId":"br-1-1","symbol":"BTCUSDT","positionType":"CROSS","positionMode":"ONE_WAY",'
    b'"side":"BUY","effect":"GTC","type":"LIMIT","qty":"0.01","reductionOnly":false,'
    b'"price":"60000","ctime":"2024-05-16T08:13:09.123456789Z",'
    b'"mtime":"2024-05-16T08:13:10.000000000Z","leverage":"20","orderStatus":"PART_FILLED",'
    b'"fee":"0.12","averagePrice":"60000","dealAmount":"0.004"}}'
)


def test_update_from_push_maps_cumulative_fill_as_plain_decimals():
    push = decoder(OrderPush).decode(PUSH)
    [e] = push.items
    u = update_from_push(e, push.ts)
    assert (u.client_id, u.order_id, u.status) == ("br-1-1", "11111", "PART_FILLED")
    assert (u.filled_qty, u.avg_price, u.fee) == (Decimal("0.004"), Decimal(60000), Decimal("0.12"))
    assert u.side is Side.BUY
    assert type(u.filled_qty) is Decimal  # not the wire's subclass: our encoders need Decimal
    assert u.mtime_ms > 0


def test_update_from_rest_reads_trade_qty_and_market_price():
    raw = (
        b'{"orderId":"7","symbol":"BTCUSDT","qty":"0.5","tradeQty":"0.5","side":"SELL",'
        b'"price":"market","clientId":"br-1-2","status":"FILLED","avgPrice":"59000","fee":"1"}'
    )
    o = decoder(RestOrder).decode(raw)
    u = update_from_rest(o)
    assert (u.status, u.filled_qty, u.price, u.side) == ("FILLED", Decimal("0.5"), None, Side.SELL)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (UnknownOutcome("timeout"), VenueUnknown),
        (ServerError("HTTP 503", code=503), VenueUnknown),
        (DuplicateClientId("dup", code=30042), VenueUnknown),  # it exists: ask, don't assume
        (RateLimited("slow down", code=10005), VenueRejected),
        (InsufficientBalance("poor", code=20003), VenueRejected),
    ],
)
def test_venue_errors_map_to_unknown_or_rejected(exc, expected):
    async def fail() -> None:
        raise exc

    with pytest.raises(expected) as info:
        asyncio.run(_call(fail()))
    assert info.value.kind == type(exc).__name__


def test_load_keys_reads_env_names_or_key_file(tmp_path):
    cfg = VenueConfig(api_key_env="K", secret_env="S")
    assert load_keys(cfg, {"K": "key", "S": "sec"}) == ("key", "sec")
    f = tmp_path / "keys.toml"
    f.write_text('api_key = "fk"\nsecret = "fs"\n')
    f.chmod(0o600)
    assert load_keys(VenueConfig(key_file=str(f)), {}) == ("fk", "fs")


def test_loop_waiter_wake_from_another_thread_ends_idle_early():
    loop = asyncio.new_event_loop()
    waiter = LoopWaiter(loop, timeout_s=5.0)
    try:
        t = threading.Timer(0.05, waiter.wake)
        t.start()
        t0 = time.monotonic()
        waiter.idle()
        t.join()
        assert time.monotonic() - t0 < 2.0
        assert waiter.wakes_total == 1
    finally:
        loop.close()


def test_loop_waiter_idle_runs_pending_callbacks():
    loop = asyncio.new_event_loop()
    waiter = LoopWaiter(loop, timeout_s=0.001)
    seen: list[int] = []
    try:
        loop.call_soon(seen.append, 1)
        waiter.idle()
        assert seen == [1]
    finally:
        loop.close()
