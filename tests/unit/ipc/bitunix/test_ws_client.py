"""BitunixWs without a socket: subscription limits, batching order, backoff bounds."""

from __future__ import annotations

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
