"""BitunixWs against a real loopback picows server: session flow, throttle, reconnects, book."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from ipc.bitunix.schemas_ws import DepthPush, KlinePush, OrderPush, TradePush
from ipc.bitunix.ws import BitunixWs, WsConfig
from tests.helpers.bitunix_ws_server import FakeWsServer, until

pytestmark = pytest.mark.integration

FAST = {
    "ping_interval_s": 5.0,
    "reconnect_min_s": 0.05,
    "reconnect_max_s": 0.2,
    "connect_timeout_s": 2.0,
    "login_timeout_s": 2.0,
    "send_rate_per_s": 4.0,
}


def run(
    body: Callable[[FakeWsServer, BitunixWs], Awaitable[Any]],
    *,
    private: bool = False,
    server_kw: dict[str, Any] | None = None,
    **cfg: Any,
) -> Any:
    async def main() -> Any:
        server = FakeWsServer(**(server_kw or {}))
        url = await server.start("/private/" if private else "/public/")
        keys = {"api_key": server.api_key, "secret": cfg.pop("secret", server.secret)}
        config = WsConfig(url=url, **(keys if private else {}), **{**FAST, **cfg})
        client = BitunixWs(config)
        try:
            return await body(server, client)
        finally:
            await client.close()
            await server.close()

    return uvloop.run(main())


def test_public_greeting_then_one_batched_subscribe():
    async def body(server, ws):
        ws.subscribe_many(
            [("depth_book15", "BTCUSDT"), ("trade", "BTCUSDT"), ("ticker", "ETHUSDT")]
        )
        ws.start()
        await ws.wait_ready(2.0)
        await until(lambda: server.ops("subscribe"))
        return server.ops("subscribe"), server.ops("login")

    subs, logins = run(body)

    assert len(subs) == 1
    assert subs[0].msg["args"] == [
        {"symbol": "BTCUSDT", "ch": "depth_book15"},
        {"symbol": "BTCUSDT", "ch": "trade"},
        {"symbol": "ETHUSDT", "ch": "ticker"},
    ]
    assert logins == []


def test_private_login_signed_in_seconds_before_subscribe():
    async def body(server, ws):
        ws.subscribe_many([("order", None), ("position", None), ("balance", None), ("tpsl", None)])
        ws.start()
        await ws.wait_ready(2.0)
        await until(lambda: server.ops("subscribe"))
        return [r.msg for r in server.received], ws.logins_total

    msgs, logins = run(body, private=True)

    assert logins == 1
    assert msgs[0]["op"] == "login"
    assert abs(msgs[0]["args"][0]["timestamp"] - time.time()) < 60
    assert msgs[1] == {
        "op": "subscribe",
        "args": [{"ch": "order"}, {"ch": "position"}, {"ch": "balance"}, {"ch": "tpsl"}],
    }


def test_private_login_refused_never_ready_and_retries():
    async def body(server, ws):
        ws.start()
        await until(lambda: ws.reconnects_total >= 2)
        return ws.ready.is_set(), ws.logins_total

    ready, logins = run(body, private=True, secret="wrong")

    assert (ready, logins) == (False, 0)


def test_json_ping_sent_and_pong_counted():
    async def body(server, ws):
        ws.start()
        await until(lambda: ws.pongs_total >= 3)
        return server.ops("ping")

    pings = run(body, ping_interval_s=0.05)

    assert len(pings) >= 3
    assert all(isinstance(p.msg["ping"], int) for p in pings)
    assert abs(pings[0].msg["ping"] - time.time()) < 60


def test_subscriptions_batched_and_sends_stay_under_five_per_second():
    async def body(server, ws):
        ws.start()
        await ws.wait_ready(2.0)
        ws.subscribe_many([("trade", f"S{i}USDT") for i in range(250)])
        await until(lambda: len(server.sub_args()) == 250, timeout_s=8)
        sent = [t for t, _ in ws.sent_log]
        return [r.t_mono for r in server.received], len(server.ops("subscribe")), sent

    stamps, n_msgs, sent = run(body, max_args_per_message=25)

    assert n_msgs == 10
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= 5
    assert min(b - a for a, b in itertools.pairwise(sent)) >= 0.24  # 4/s, timer slack


def test_reconnect_after_server_drop_resubscribes_and_calls_on_resync():
    resyncs: list[int] = []

    async def body(server, ws):
        ws._on_resync = lambda: resyncs.append(1)
        ws.subscribe_many([("depth_book15", "BTCUSDT"), ("price", "BTCUSDT")])
        ws.start()
        await until(lambda: server.sub_args(conn=0))
        server.drop(0)
        await until(lambda: server.sub_args(conn=1))
        return server, ws

    server, ws = run(body)

    gap = server.connected_at[1] - server.disconnected_at[0]
    assert ws.reconnects_total == 1
    assert 0.05 * 0.9 <= gap <= 0.2 + 1.5  # upper slack: a loaded CI machine
    assert 0.05 <= ws.last_backoff_s <= 0.2
    assert server.sub_args(conn=1) == [("depth_book15", "BTCUSDT"), ("price", "BTCUSDT")]
    assert resyncs == [1]


def test_watchdog_reconnects_when_server_goes_silent():
    async def body(server, ws):
        ws.start()
        await ws.wait_ready(2.0)
        server.answer_pings = False
        await until(lambda: len(server.conns) >= 2, timeout_s=3)
        return ws.watchdog_reconnects_total

    assert run(body, ping_interval_s=0.1) >= 1


def test_pong_deadline_reconnects_a_stalled_socket_long_before_the_silence_watchdog():
    async def body(server, ws):
        ws.start()
        await ws.wait_ready(2.0)
        await until(lambda: ws.pongs_total >= 1, timeout_s=3)
        server.answer_pings = False
        t0 = time.monotonic()
        await until(lambda: len(server.conns) >= 2, timeout_s=5)
        return time.monotonic() - t0, ws.watchdog_reconnects_total

    # silence alone would take 10 x 1 s; the unanswered ping trips at most 1 + 0.3 s after
    took_s, reconnects = run(
        body, private=True, ping_interval_s=1.0, pong_timeout_s=0.3, watchdog_intervals=10.0
    )

    assert reconnects >= 1
    assert took_s < 5.0  # half the silence watchdog's 10 s: only the ping deadline does this


def test_depth_books_snapshot_deltas_and_crossed_resync():
    got: list[tuple[bool, list[Any], list[Any]]] = []
    resynced: list[str] = []

    async def body(server, ws):
        ws._on_book_resync = resynced.append
        ws.on("depth_books", lambda u: got.append((u.snapshot, *u.book.top(5))))
        ws.subscribe("depth_books", "BTCUSDT")
        ws.start()
        await until(lambda: server.sub_args())
        frame = {"ch": "depth_books", "symbol": "BTCUSDT", "ts": 1}
        server.push(
            {**frame, "data": {"b": [["100", "1"], ["99", "2"]], "a": [["101", "1"], ["102", "3"]]}}
        )
        server.push({**frame, "data": {"b": [["100", "0"], ["99.5", "4"]], "a": [["101", "0"]]}})
        await until(lambda: len(got) == 2)
        server.push({**frame, "data": {"b": [["105", "1"]], "a": []}})  # crosses 102
        await until(lambda: server.ops("unsubscribe"))
        server.push({**frame, "data": {"b": [["97", "9"]], "a": []}})  # in flight: skipped
        await until(lambda: len(server.ops("subscribe")) == 2)
        server.push({**frame, "data": {"b": [["98", "1"]], "a": [["103", "1"]]}})
        await until(lambda: len(got) == 3)
        book = ws.dispatcher.books["BTCUSDT"]
        return server.ops("unsubscribe"), ws.dispatcher.decode_errors_total["crossed_book"], book

    unsubs, crossed, book = run(body, send_rate_per_s=1.0)

    assert got[0] == (True, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 3.0)])
    assert got[1] == (False, [(99.5, 4.0), (99.0, 2.0)], [(102.0, 3.0)])
    assert got[2] == (True, [(98.0, 1.0)], [(103.0, 1.0)])
    assert resynced == ["BTCUSDT"]
    assert crossed == 1
    assert unsubs[0].msg["args"] == [{"symbol": "BTCUSDT", "ch": "depth_books"}]
    assert book.held_pushes_total == 1


def test_typed_pushes_delivered_with_receive_stamp():
    seen: dict[str, Any] = {}

    async def body(server, ws):
        ws.on("depth_book15", lambda p: seen.setdefault("depth", p))
        ws.on("trade", lambda p: seen.setdefault("trade", p))
        ws.on("kline", lambda p: seen.setdefault(p.ch, p))
        ws.on("order", lambda p: seen.setdefault("order", p))
        ws.start()
        await ws.wait_ready(2.0)
        server.push(
            {
                "ch": "depth_book15",
                "symbol": "BTCUSDT",
                "ts": 1732178884994,
                "data": {"b": [["7403.89", "0.002"]], "a": [[7405.96, "3.340"]]},
            }
        )
        server.push(
            {
                "ch": "trade",
                "symbol": "BTCUSDT",
                "ts": 1775540872598,
                "data": [{"t": "2026-04-07T05:47:52Z", "p": "68621.4", "v": "0.7142", "s": "buy"}],
            }
        )
        for prefix in ("market", "last", "mark"):
            server.push(
                {
                    "ch": f"{prefix}_kline_1min",
                    "symbol": "BTCUSDT",
                    "ts": 1,
                    "data": {"o": "1", "c": "2", "h": "3", "l": "0.5", "b": "5", "q": "6"},
                }
            )
        server.push(
            {
                "ch": "order",
                "ts": 1,
                "data": [
                    {
                        "event": "CREATE",
                        "orderId": 9,
                        "symbol": "BTCUSDT",
                        "side": "Buy",
                        "qty": "0.01",
                        "type": "Limit",
                        "orderStatus": "NEW",
                        "price": "60000",
                    }
                ],
            }
        )
        await until(lambda: len(seen) == 6)

    run(body)

    d: DepthPush = seen["depth"]
    t: TradePush = seen["trade"]
    o: OrderPush = seen["order"]
    k: KlinePush = seen["mark_kline_1min"]
    assert d.data.b == [(7403.89, 0.002)]
    assert d.data.a == [(7405.96, 3.34)]
    assert abs(d.ts_recv_ns - time.time_ns()) < 60e9
    assert t.data[0].s == "BUY"
    assert t.data[0].t == 1775540872000
    assert (k.price_type, k.interval, k.data.c) == ("mark", "1min", 2.0)
    assert {"market_kline_1min", "last_kline_1min"} <= set(seen)
    assert o.items[0].side == "BUY"
    assert str(o.items[0].price) == "60000"


def test_hostile_frames_counted_and_connection_survives():
    got: list[Any] = []

    async def body(server, ws):
        ws.on("trade", got.append)
        ws.start()
        await ws.wait_ready(2.0)
        server.push(b"\x00\x01binary", binary=True)
        server.push(b"{not json")
        server.push(b'{"ch":"trade","data":"nope"}')
        server.push(b'{"ch":"mystery","data":{}}')
        server.push(b"[1,2,3]")
        server.push(b'{"ch":"trade","symbol":"X","data":[' + b"1," * 2000 + b"1]}")
        server.push(
            {
                "ch": "trade",
                "symbol": "X",
                "ts": 1,
                "data": [{"t": 1, "p": "1", "v": "1", "s": "sell"}],
            }
        )
        await until(lambda: got)
        return dict(ws.dispatcher.decode_errors_total), len(server.conns)

    errors, conns = run(body, max_frame_bytes=2048)

    assert errors["binary"] == 1
    assert errors["json"] == 2
    assert errors["schema"] == 1
    assert errors["unknown_channel"] == 1
    assert errors["oversized"] == 1
    assert conns == 1


def test_handler_exception_ends_run_with_that_error():
    async def body(server, ws):
        def boom(_p):
            raise RuntimeError("handler bug")

        ws.on("trade", boom)
        task = ws.start()
        await ws.wait_ready(2.0)
        server.push(
            {
                "ch": "trade",
                "symbol": "X",
                "ts": 1,
                "data": [{"t": 1, "p": "1", "v": "1", "s": "sell"}],
            }
        )
        with pytest.raises(RuntimeError, match="handler bug"):
            await task

    run(body)


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_no_greeting_goes_on_after_the_greeting_wait(private):
    async def body(server, ws):
        ws.subscribe("order" if private else "trade", None if private else "BTCUSDT")
        ws.start()
        await ws.wait_ready(2.0)
        await until(lambda: server.ops("subscribe"))
        return (
            ws.greetings_missed_total,
            ws.reconnects_total,
            [r.msg["op"] for r in server.received],
        )

    missed, reconnects, ops = run(
        body, private=private, server_kw={"greet": False}, greeting_wait_s=0.2
    )

    assert (missed, reconnects) == (1, 0)
    assert ops == (["login", "subscribe"] if private else ["subscribe"])


def test_greeting_seen_is_not_counted_missed():
    async def body(server, ws):
        ws.start()
        await ws.wait_ready(2.0)
        return ws.greetings_missed_total

    assert run(body, private=True, greeting_wait_s=5.0) == 0


def test_login_timestamp_ms_variant_sends_milliseconds():
    async def body(server, ws):
        ws.start()
        await ws.wait_ready(2.0)
        return server.ops("login")[0].msg["args"][0]["timestamp"]

    ts = run(body, private=True, login_timestamp_ms=True)

    assert abs(ts - time.time() * 1000) < 60_000


def test_fileno_is_the_connected_socket_and_minus_one_before_and_after():
    import os
    import stat

    async def body(server, ws):
        before = ws.fileno()
        ws.start()
        await ws.wait_ready(2.0)
        fd = ws.fileno()
        is_sock = fd >= 0 and stat.S_ISSOCK(os.fstat(fd).st_mode)
        await ws.close()
        return before, is_sock, ws.fileno()

    before, is_sock, after = run(body)

    assert before == -1  # not connected yet
    assert is_sock  # the live connection's socket: a host may poll it for waiting frames
    assert after == -1  # closed
