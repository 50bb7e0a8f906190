"""Wire schemas for our own ZeroMQ traffic: heartbeats, wake-ups and control requests.

Bulk records never travel here; they use shm rings. Order and fill messages live in
``ipc/orders.py``. Frames are ``[topic, payload]``; payloads are msgspec MessagePack of the
Structs below (``frozen=True, array_like=True, gc=False``, short ``tag``), one union per socket.

Evolution rule: append new fields at the end with defaults; never reorder, rename or retype a
field, never reuse a tag. When compatibility must break, bump ``SCHEMA_VERSION`` (it travels in
every ``Heartbeat``, so a mismatch is visible before anything else is decoded).

Errors of the ``ipc`` package::

    IpcError                  base of every error raised by ipc/ (except ipc/bitunix/)
    ├── DecodeError           a payload that is not a valid message; carries the topic
    └── EndpointError         a malformed or disallowed endpoint string (ipc/endpoints.py)
"""

from __future__ import annotations

from typing import Final, TypeVar

import msgspec

__all__ = [
    "ENCODER",
    "PUB_DECODER",
    "REQUEST_DECODER",
    "RESPONSE_DECODER",
    "SCHEMA_VERSION",
    "ControlRequest",
    "ControlResponse",
    "DecodeError",
    "Heartbeat",
    "IpcError",
    "PubMessage",
    "Value",
    "Wake",
    "decode",
    "hb_topic",
    "topic_part",
    "wake_topic",
]

SCHEMA_VERSION: Final = 1

# wake-up streams: the writer sends wake_topic(X) after each publish, its readers subscribe to it.
# One name per writer process, declared once so a writer and its readers cannot disagree.
WAKE_MD: Final = "md"  # ingest: md.book and md.trade
WAKE_FEAT: Final = "feat"  # features
WAKE_SIG: Final = "sig"  # inference

T = TypeVar("T")


class IpcError(Exception):
    """Base error of the ``ipc`` package."""


class DecodeError(IpcError):
    """A payload that does not decode to the socket's message union.

    ``topic`` is the frame's topic (``b""`` when unknown), so a consumer can count per topic.
    """

    def __init__(self, message: str, topic: bytes = b"") -> None:
        super().__init__(f"{message} (topic={topic!r})")
        self.topic = topic


class Heartbeat(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="hb"):
    """Once a second on ``hb.<proc>.``: the process is alive and ``last_seq`` shows progress."""

    proc: str
    ts_ns: int  # time.time_ns() at send
    last_seq: int
    schema_version: int = SCHEMA_VERSION


class Wake(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="wk"):
    """A writer published up to ``seq`` on ring ``stream`` (optional body of a wake-up)."""

    stream: str
    seq: int


# health data values: counters, gauges, labels, the CPU list and one level of nesting
Scalar = str | int | float | bool
Value = Scalar | list[int] | dict[str, Scalar]


class ControlRequest(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="rq"):
    """A command for a process's control (REP) socket: ``health``, ``stop``."""

    cmd: str
    args: dict[str, str] = {}


class ControlResponse(msgspec.Struct, frozen=True, array_like=True, gc=False, tag="rs"):
    """The answer to one ``ControlRequest``; ``error`` is empty when ``ok``."""

    ok: bool
    data: dict[str, Value] = {}
    error: str = ""


PubMessage = Heartbeat | Wake

ENCODER: Final = msgspec.msgpack.Encoder()
PUB_DECODER: Final = msgspec.msgpack.Decoder(PubMessage)
REQUEST_DECODER: Final = msgspec.msgpack.Decoder(ControlRequest)
RESPONSE_DECODER: Final = msgspec.msgpack.Decoder(ControlResponse)


def decode(decoder: msgspec.msgpack.Decoder[T], payload: bytes, topic: bytes = b"") -> T:
    """Decode ``payload`` with ``decoder``.

    Raises
    ------
    DecodeError
        The payload is not valid MessagePack or not a member of the decoder's type; the error
        carries ``topic``.
    """
    try:
        return decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise DecodeError(str(exc), topic) from exc


def topic_part(part: str) -> bytes:
    """Return ``part`` as one topic component, refusing dots and empty strings."""
    if not part or "." in part:
        raise ValueError(f"topic part must be non-empty and contain no dot, was {part!r}")
    return part.encode()


def hb_topic(proc: str) -> bytes:
    """Return the heartbeat topic of ``proc``: ``b"hb.<proc>."``."""
    # trailing dot: a SUB on "hb.ingest." must not prefix-match "hb.ingest2."
    return b"hb." + topic_part(proc) + b"."


def wake_topic(stream: str) -> bytes:
    """Return the wake-up topic of ring stream ``stream``: ``b"wake.<stream>."``.

    Stream names may be dotted (``md.book``); each component must be non-empty.
    """
    return b"wake." + b".".join(topic_part(p) for p in stream.split(".")) + b"."
