"""Messages: round-trips, DecodeError carrying the topic, topic builders."""

from __future__ import annotations

import msgspec
import pytest

from ipc.messages import (
    ENCODER,
    PUB_DECODER,
    REQUEST_DECODER,
    RESPONSE_DECODER,
    SCHEMA_VERSION,
    ControlRequest,
    ControlResponse,
    DecodeError,
    Heartbeat,
    IpcError,
    Wake,
    decode,
    hb_topic,
    wake_topic,
)


@pytest.mark.parametrize(
    ("msg", "decoder"),
    [
        (Heartbeat(proc="features", ts_ns=1_700_000_000_000_000_000, last_seq=42), PUB_DECODER),
        (Wake(stream="md.book", seq=7), PUB_DECODER),
        (ControlRequest(cmd="health"), REQUEST_DECODER),
        (ControlRequest(cmd="stop", args={"why": "test"}), REQUEST_DECODER),
        (
            ControlResponse(
                ok=True,
                data={"pid": 12, "cpu_percent": 1.5, "state": "running", "affinity": [0, 1]},
            ),
            RESPONSE_DECODER,
        ),
        (ControlResponse(ok=False, error="unknown command 'x'"), RESPONSE_DECODER),
    ],
)
def test_decode_encoded_message_round_trips(msg, decoder):
    payload = ENCODER.encode(msg)

    got = decode(decoder, payload, b"t.")

    assert got == msg


def test_heartbeat_default_schema_version_is_current():
    hb = Heartbeat(proc="x", ts_ns=1, last_seq=0)

    got = decode(PUB_DECODER, ENCODER.encode(hb))

    assert isinstance(got, Heartbeat)
    assert got.schema_version == SCHEMA_VERSION


def test_message_is_array_like_with_short_tag():
    payload = ENCODER.encode(Wake(stream="s", seq=1))

    assert msgspec.msgpack.decode(payload) == ["wk", "s", 1]


def test_heartbeat_without_schema_version_decodes_with_default():
    old = msgspec.msgpack.encode(["hb", "ingest", 5, 3])  # an older writer: no trailing field

    got = decode(PUB_DECODER, old)

    assert got == Heartbeat(proc="ingest", ts_ns=5, last_seq=3, schema_version=SCHEMA_VERSION)


@pytest.mark.parametrize(
    "payload",
    [b"\xc1garbage", b"", msgspec.msgpack.encode(["zz", 1]), msgspec.msgpack.encode(["wk", 1, 2])],
)
def test_decode_garbage_raises_decode_error_with_topic(payload):
    with pytest.raises(DecodeError) as info:
        decode(PUB_DECODER, payload, b"hb.ingest.")

    assert info.value.topic == b"hb.ingest."
    assert "hb.ingest." in str(info.value)
    assert isinstance(info.value, IpcError)


def test_decode_wrong_union_member_raises_decode_error():
    payload = ENCODER.encode(Wake(stream="s", seq=1))

    with pytest.raises(DecodeError):
        decode(REQUEST_DECODER, payload)


def test_hb_topic_ends_with_dot():
    assert hb_topic("features") == b"hb.features."


def test_wake_topic_keeps_stream_dots_and_ends_with_dot():
    assert wake_topic("md.book") == b"wake.md.book."


@pytest.mark.parametrize("bad", ["", "a.b", "."])
def test_hb_topic_bad_proc_raises(bad):
    with pytest.raises(ValueError, match="topic part"):
        hb_topic(bad)


@pytest.mark.parametrize("bad", ["", "md..book", "md.", ".md"])
def test_wake_topic_empty_component_raises(bad):
    with pytest.raises(ValueError, match="topic part"):
        wake_topic(bad)
