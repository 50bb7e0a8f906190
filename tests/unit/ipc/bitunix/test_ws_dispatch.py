"""WsDispatcher: routing by op then ch, typed decoding, and hostile input fuzzing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc.bitunix.errors import BitunixError, DecodeError
from ipc.bitunix.rest import RestConfig, _unwrap
from ipc.bitunix.rest_api import BitunixRest
from ipc.bitunix.schemas_rest import Account, Order, OrderList, Position, TradingPair
from ipc.bitunix.schemas_ws import Control, DepthPush, OrderPush
from ipc.bitunix.ws_dispatch import WsDispatcher, channel_type

DEPTH = (
    b'{"ch":"depth_book15","symbol":"BTCUSDT","ts":1732178884994,'
    b'"data":{"b":[["7403.89","0.002"]],"a":[["7405.96","3.340"]]}}'
)


def test_op_frames_go_to_control_not_channel_handlers():
    d = WsDispatcher()
    ctl: list[Control] = []
    d.on_control = ctl.append
    d.on("depth_book15", lambda p: pytest.fail("not a push"))

    d.on_text(b'{"op":"ping","pong":5,"ping":6}', 1)
    d.on_text(b'{"op":"connect","data":{"result":true}}', 2)

    assert [(c.op, c.pong) for c in ctl] == [("ping", 5), ("connect", None)]


def test_push_gets_receive_stamp_and_float_levels():
    d = WsDispatcher()
    got: list[DepthPush] = []
    d.on("depth_book15", got.append)

    d.on_text(DEPTH, 123)

    assert got[0].ts_recv_ns == 123
    assert got[0].data.b == [(7403.89, 0.002)]
    assert d.pushes_total == 1


def test_unregistered_channel_is_counted_not_raised():
    d = WsDispatcher()

    d.on_text(DEPTH, 1)

    assert d.decode_errors_total["unknown_channel"] == 1


def test_on_rejects_unknown_channel_name():
    with pytest.raises(ValueError, match="unknown channel"):
        WsDispatcher().on("depth_book7", print)


@pytest.mark.parametrize("ch", ["market_kline_1min", "last_kline_15min", "mark_kline_1week"])
def test_kline_channels_of_every_prefix_have_a_type(ch):
    assert channel_type(ch) is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
channels = st.sampled_from(
    [
        "depth_book15",
        "depth_books",
        "trade",
        "ticker",
        "tickers",
        "price",
        "balance",
        "position",
        "order",
        "tpsl",
        "market_kline_1min",
        "zzz",
    ]
)


def _all_handlers(d: WsDispatcher, sink: list[object]) -> None:
    for ch in [
        "depth_book1",
        "depth_book5",
        "depth_book15",
        "depth_books",
        "trade",
        "ticker",
        "tickers",
        "price",
        "balance",
        "position",
        "order",
        "tpsl",
        "kline",
    ]:
        d.on(ch, sink.append)


@settings(max_examples=300, deadline=None)
@given(channels, json_values, st.sampled_from(["", "ping", "login", "connect"]))
def test_fuzz_structured_frames_never_raise(ch, data, op):
    d = WsDispatcher()
    sink: list[object] = []
    _all_handlers(d, sink)
    d.on_control = sink.append
    frame = {"ch": ch, "symbol": "X", "ts": 1, "data": data}
    if op:
        frame["op"] = op

    d.on_text(json.dumps(frame).encode(), 1)

    assert d.frames_total == 1
    assert len(sink) + sum(d.decode_errors_total.values()) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_raise_and_are_counted(blob):
    d = WsDispatcher(max_frame_bytes=200)
    sink: list[object] = []
    _all_handlers(d, sink)

    d.on_text(blob, 1)
    d.on_binary(blob)

    assert d.decode_errors_total["binary"] == 1


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            b"ch",
            b"data",
            b"b",
            b"a",
            b"0.1",
            b"[",
            b"]",
            b"{",
            b"}",
            b",",
            b'"',
            b":",
            b"\xff",
            b"1e999",
            b"-",
            b"null",
        ]
    ).map(bytes)
    | st.just(b""),
    st.integers(0, len(DEPTH)),
)
def test_fuzz_mutated_depth_frames_never_raise(junk, at):
    d = WsDispatcher()
    sink: list[object] = []
    _all_handlers(d, sink)

    d.on_text(DEPTH[:at] + junk + DEPTH[at:], 1)

    assert len(sink) + sum(d.decode_errors_total.values()) == 1


@settings(max_examples=300, deadline=None)
@given(
    json_values, st.sampled_from([Account, Order, Position, TradingPair, OrderList, list[Position]])
)
def test_fuzz_rest_decode_raises_only_decode_error(data, typ):
    rest = BitunixRest(RestConfig())
    body = json.dumps({"code": 0, "msg": "", "data": data}).encode()

    with contextlib.suppress(DecodeError):
        rest._decode("/x", typ, _unwrap("/x", 200, body))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([200, 404, 429, 500, 503]))
def test_fuzz_rest_envelope_raises_only_bitunix_errors(blob, status):
    with contextlib.suppress(BitunixError):
        _unwrap("/x", status, blob)


@pytest.mark.parametrize("key", ["orderStatus", "status"])
def test_order_push_with_either_status_key_reaches_the_handler(key):
    d = WsDispatcher()
    got: list[OrderPush] = []
    d.on("order", got.append)
    frame = (
        '{"ch":"order","ts":1,"data":{"event":"CREATE","orderId":"7","clientId":"c1",'
        f'"symbol":"BTCUSDT","side":"BUY","qty":"0.01","{key}":"NEW"}}}}'
    )

    d.on_text(frame.encode(), 1)

    assert [p.items[0].orderStatus for p in got] == ["NEW"]
    assert not d.decode_errors_total


DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize(
    "frame",
    [
        DEEP,
        b'{"x":' + DEEP + b"}",
        b'{"op":"ping","data":' + DEEP + b"}",
        b'{"ch":"trade","symbol":"B","data":[{"t":1,"p":1,"v":1,"s":"buy","z":' + DEEP + b"}]}",
    ],
    ids=["array", "unknown-key", "op-data", "push-field"],
)
def test_deeply_nested_frame_is_counted_not_raised(frame):
    d = WsDispatcher(max_frame_bytes=len(frame))
    d.on("trade", lambda p: pytest.fail("not a trade"))

    d.on_text(frame, 1)

    assert sum(d.decode_errors_total.values()) == 1


def test_rest_envelope_nested_too_deep_is_a_decode_error():
    with pytest.raises(DecodeError):
        _unwrap("/x", 200, b'{"code":0,"msg":"","data":' + DEEP + b"}")
