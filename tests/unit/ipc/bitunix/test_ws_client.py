"""BitunixWs without a socket: subscription limits, batching order, backoff bounds."""

from __future__ import annotations

import asyncio
import json

import pytest

from ipc.bitunix.ws import BitunixWs, WsConfig


def test_subscribe_past_limit_raises_and_keeps_earlier():
    ws = BitunixWs(WsConfig(max_subscriptions=3))
    ws.subscribe_many([("trade", "A"), ("trade", "B")])

    with pytest.raises(ValueError, match="at most 3"):
        ws.subscribe_many([("trade", "C"), ("trade", "D")])

    assert ws.subscriptions == [("trade", "A"), ("trade", "B")]


def test_take_sends_control_first_then_unsub_then_batched_subs():
    ws = BitunixWs(WsConfig(max_args_per_message=2))
    ws.ready.set()
    ws.subscribe_many([("trade", "A"), ("trade", "B"), ("balance", None)])
    ws.unsubscribe("trade", "B")
    ws.subscribe("ticker", "A")
    ws._control.append(b'{"op":"ping","ping":1}')

    sent = []
    while (msg := ws._take()) is not None:
        sent.append(json.loads(msg))

    assert sent == [
        {"op": "ping", "ping": 1},
        {"op": "subscribe", "args": [{"symbol": "A", "ch": "trade"}, {"ch": "balance"}]},
        {"op": "subscribe", "args": [{"symbol": "A", "ch": "ticker"}]},
    ]
    assert ws.subscriptions == [("trade", "A"), ("balance", None), ("ticker", "A")]


def test_unsubscribe_of_sent_subscription_is_queued():
    ws = BitunixWs(WsConfig())
    ws.ready.set()
    ws.subscribe("trade", "A")
    ws._take()

    ws.unsubscribe("trade", "A")

    assert json.loads(ws._take() or b"") == {
        "op": "unsubscribe",
        "args": [{"symbol": "A", "ch": "trade"}],
    }


def test_backoff_stays_within_configured_bounds():
    ws = BitunixWs(WsConfig(reconnect_min_s=0.5, reconnect_max_s=4.0))

    delays = [ws._backoff_s(a) for a in range(12) for _ in range(20)]

    assert min(delays) >= 0.5
    assert max(delays) <= 4.0
    assert max(ws._backoff_s(0) for _ in range(50)) <= 0.5 + 1e-9


def test_config_rejects_send_rate_over_venue_limit():
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"send_rate_per_s": 6.0}, WsConfig)


class _Transport:
    """What a session uses of picows' WSTransport; ``disconnect`` ends the connection."""

    def __init__(self, listener: object) -> None:
        self.listener = listener
        self.disconnects = 0
        self.underlying_transport = self
        self._ended = asyncio.get_running_loop().create_future()

    def get_extra_info(self, name: str) -> None:
        return None

    def send(self, *args: object) -> None:
        pass

    def disconnect(self) -> None:
        self.disconnects += 1
        if not self._ended.done():
            self._ended.set_result(None)
            self.listener.on_ws_disconnected(self)  # type: ignore[attr-defined]

    async def wait_disconnected(self) -> None:
        await self._ended


def test_close_while_connecting_hangs_up_once_the_socket_is_there(monkeypatch):
    # the stop came while the connection was being made: close() had nothing to disconnect,
    # and the session waited for its greeting, then for the venue to hang up
    from ipc.bitunix import ws as ws_module

    async def scenario() -> _Transport:
        connected = asyncio.Event()
        made: list[_Transport] = []

        async def connect(factory, url, **kw):  # type: ignore[no-untyped-def]
            await connected.wait()
            listener = factory()
            made.append(_Transport(listener))
            return made[0], listener

        monkeypatch.setattr(ws_module, "ws_connect", connect)
        client = BitunixWs(WsConfig(greeting_wait_s=30.0))
        client.start()
        await asyncio.sleep(0)  # the session waits for the connection
        closing = asyncio.ensure_future(client.close())
        await asyncio.sleep(0)
        connected.set()
        await asyncio.wait_for(closing, 5.0)  # before the fix: 30 s, the greeting's wait
        return made[0]

    transport = asyncio.run(scenario())
    assert transport.disconnects >= 1
