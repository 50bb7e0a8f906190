"""Hostile WebSocket frames simex can push to its clients (``POST /_simex/ws/fuzz``).

Each kind is what a broken or hostile venue could send on a public or private connection: bytes
that are not JSON, a push cut short, a frame past the client's size limit, JSON nested deeper
than any decoder goes, a push whose fields have the wrong types, an unknown channel, a binary
frame, malformed control (``op``) frames. None of them is a well-formed push: a client must
count and skip every one (never crash, never act on it, never drop the session for it).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["FRAME_KINDS", "OVERSIZED_BYTES", "fuzz_frames"]

OVERSIZED_BYTES: Final = 5 << 20  # past the client's 4 MiB max_frame_bytes, under its hard cap
NESTING: Final = 100_000

FRAME_KINDS: Final = (
    "garbage",
    "truncated",
    "oversized",
    "nested",
    "wrong_types",
    "unknown_channel",
    "binary",
    "bad_control",
)


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final server frame (text 0x1, binary 0x2)."""
    first, n = 0x80 | opcode, len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def _payloads(kind: str, private: bool, symbol: str) -> list[bytes]:
    sym = symbol.encode()
    if kind == "garbage":
        return [b"\x00\xff\xfe not json {{{", b"}{", b"", b"\xc3\x28"]
    if kind == "truncated":
        if private:
            return [b'{"ch":"order","ts":1,"data":{"orderId":"1","clientId":"x","qty":"0.0']
        return [b'{"ch":"depth_books","symbol":"' + sym + b'","ts":1,"data":{"b":[["1']
    if kind == "oversized":
        ch = b"order" if private else b"depth_books"
        return [b'{"ch":"' + ch + b'","pad":"' + b"x" * OVERSIZED_BYTES + b'"}']
    if kind == "nested":
        return [
            b"[" * NESTING + b"]" * NESTING,
            b'{"ch":' + b'{"a":' * NESTING + b"1" + b"}" * NESTING,
        ]
    if kind == "wrong_types":
        if private:
            return [
                b'{"ch":"order","ts":"soon","data":{"orderId":[],"qty":{},"orderStatus":7}}',
                b'{"ch":"balance","ts":1,"data":null}',
                b'{"ch":"position","ts":1,"data":[1,2,3]}',
            ]
        return [
            b'{"ch":"depth_books","symbol":"' + sym + b'","ts":"x","data":{"b":5,"a":"y"}}',
            b'{"ch":"trade","symbol":"' + sym + b'","ts":1,"data":[{"p":[],"v":null}]}',
            b'{"ch":"depth_book1","symbol":7,"ts":1,"data":"none"}',
        ]
    if kind == "unknown_channel":
        return [b'{"ch":"no_such_channel","ts":1,"data":{}}', b'{"ts":1,"data":{}}']
    if kind == "bad_control":
        return [b'{"op":7}', b'{"op":"login","data":"garbage"}', b'{"op":"ping","pong":[]}']
    raise ValueError(f"unknown fuzz kind {kind!r}")


def fuzz_frames(kinds: tuple[str, ...], private: bool, symbol: str) -> list[tuple[str, bytes]]:
    """Every frame of ``kinds`` for one connection, as (kind, wire bytes)."""
    out: list[tuple[str, bytes]] = []
    for kind in kinds:
        if kind == "binary":
            out.append((kind, _frame(0x2, b"\x01\x02\x03 binary from the venue")))
            continue
        out += [(kind, _frame(0x1, p)) for p in _payloads(kind, private, symbol)]
    return out
