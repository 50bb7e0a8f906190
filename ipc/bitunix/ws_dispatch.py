"""Receive path of the Bitunix WS client: frame bytes → typed push → the owner's handler.

Pure (no sockets): ``ws.py``'s picows listener calls ``on_text`` from its frame callback, and
benchmarks and fuzz tests feed recorded frames to the same method. Dispatch is on ``op`` first
(``connect``, ``login``, ``ping``), then on ``ch``; a frame that starts ``{"ch":"<name>"`` (every
venue push does, op frames start ``{"op"``) skips the header pass and goes straight to its
channel's typed decoder. Handlers are plain callables run inline (no
task per message). A malformed, oversized, binary or unknown frame is counted in
``decode_errors_total[reason]`` and skipped, with at most one warning per second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import msgspec

from ipc.bitunix.book import LocalBook
from ipc.bitunix.fields import decoder
from ipc.bitunix.schemas_ws import (
    BalancePush,
    Control,
    DepthPush,
    KlinePush,
    OrderPush,
    PositionPush,
    PricePush,
    TickerPush,
    TickersPush,
    TpslPush,
    TradePush,
    WsHeader,
)

__all__ = ["BookUpdate", "WsDispatcher", "channel_type"]

log = logging.getLogger(__name__)

_TYPES: Final[dict[str, type]] = {
    "depth_book1": DepthPush,
    "depth_book5": DepthPush,
    "depth_book15": DepthPush,
    "depth_books": DepthPush,
    "trade": TradePush,
    "ticker": TickerPush,
    "tickers": TickersPush,
    "price": PricePush,
    "balance": BalancePush,
    "position": PositionPush,
    "order": OrderPush,
    "tpsl": TpslPush,
}
_KLINE_PREFIXES: Final = ("market_kline_", "last_kline_", "mark_kline_")
_KLINE_INTERVALS: Final = (
    "1min",
    "3min",
    "5min",
    "15min",
    "30min",
    "60min",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1day",
    "3day",
    "1week",
    "1month",
)
_CH_PREFIX: Final = b'{"ch":"'
# RecursionError: JSON nested deeper than msgspec decodes (a hostile or broken frame)
_UNDECODABLE: Final = (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError)
KLINE: Final = "kline"  # handler key for every *_kline_* channel


def channel_type(ch: str) -> type | None:
    """Return the push Struct for channel ``ch`` (kline channels of any prefix), or None."""
    typ = _TYPES.get(ch)
    if typ is None and ch.startswith(_KLINE_PREFIXES):
        return KlinePush
    return typ


class BookUpdate(msgspec.Struct, gc=False):
    """A ``depth_books`` push applied to the local book; ``book`` is live, read it now."""

    push: DepthPush
    book: LocalBook
    snapshot: bool


class WsDispatcher:
    """Decodes frames and calls the handler registered for each channel.

    ``on(ch, handler)``: ``ch`` is a channel name (``depth_book15``, ``trade``, ``order``...),
    ``"kline"`` for every kline channel, or ``"depth_books"`` (handler gets ``BookUpdate``).
    ``on_control`` receives ``Control`` messages (connect, login, ping replies).
    ``on_book_resync(symbol)`` is called when a ``depth_books`` book crossed: the book is reset
    and held (pushes skipped) until the owner resubscribes and calls ``release_book(symbol)``;
    the first push after that is taken as the snapshot.
    """

    def __init__(self, *, max_frame_bytes: int = 1 << 22) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._routes: dict[str, tuple[msgspec.json.Decoder[Any], Callable[[Any], None]]] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {}
        self._fast: dict[bytes, tuple[msgspec.json.Decoder[Any], Callable[[Any], None]]] = {}
        self._header = msgspec.json.Decoder(WsHeader)
        self._control = decoder(Control)
        self.on_control: Callable[[Control], None] = lambda _c: None
        self.on_book_resync: Callable[[str], None] = lambda _s: None
        self.books: dict[str, LocalBook] = {}
        self.frames_total = 0
        self.pushes_total = 0
        self.decode_errors_total: Counter[str] = Counter()
        self._warned_at = 0.0

    def on(self, ch: str, handler: Callable[[Any], None]) -> None:
        """Register the handler for channel ``ch`` (replaces any earlier one)."""
        if ch != KLINE and channel_type(ch) is None:
            raise ValueError(f"unknown channel {ch!r}")
        self._handlers[ch] = handler
        self._routes.clear()
        self._fast.clear()
        for name in (*_TYPES, *(p + i for p in _KLINE_PREFIXES for i in _KLINE_INTERVALS)):
            self._route(name)

    def _route(self, ch: str) -> tuple[msgspec.json.Decoder[Any], Callable[[Any], None]] | None:
        typ = channel_type(ch)
        if typ is None:
            return None
        key = KLINE if typ is KlinePush else ch
        handler = self._handlers.get(key)
        if handler is None:
            return None
        if ch == "depth_books":
            handler = self._book_handler(handler)
        route: tuple[msgspec.json.Decoder[Any], Callable[[Any], None]] = (decoder(typ), handler)
        self._routes[ch] = route
        self._fast[ch.encode()] = route
        return route

    def on_text(self, payload: bytes, ts_recv_ns: int) -> None:
        """Handle one text frame received at ``ts_recv_ns`` (``time.time_ns()``)."""
        self.frames_total += 1
        if len(payload) > self.max_frame_bytes:
            self._bad("oversized", payload)
            return
        if payload.startswith(_CH_PREFIX):
            # fast path: the venue's pushes start with {"ch":"<name>" (op frames with {"op")
            route = self._fast.get(payload[7 : payload.find(b'"', 7)])
            if route is not None:
                try:
                    push = route[0].decode(payload)
                except _UNDECODABLE:
                    self._bad("schema", payload)
                    return
                push.ts_recv_ns = ts_recv_ns
                self.pushes_total += 1
                route[1](push)
                return
        try:
            head = self._header.decode(payload)
        except _UNDECODABLE:
            self._bad("json", payload)
            return
        if head.op:
            self._on_op(payload)
            return
        route = self._routes.get(head.ch) or self._route(head.ch)
        if route is None:
            self.decode_errors_total["unknown_channel" if head.ch else "no_channel"] += 1
            return
        self._deliver(route, payload, ts_recv_ns)

    def _deliver(
        self,
        route: tuple[msgspec.json.Decoder[Any], Callable[[Any], None]],
        payload: bytes,
        ts_recv_ns: int,
    ) -> None:
        try:
            push = route[0].decode(payload)
        except _UNDECODABLE:
            self._bad("schema", payload)
            return
        push.ts_recv_ns = ts_recv_ns
        self.pushes_total += 1
        route[1](push)

    def on_binary(self, payload: bytes) -> None:
        """Count a binary frame (the venue sends text only) and skip it."""
        self.frames_total += 1
        self._bad("binary", payload)

    def _on_op(self, payload: bytes) -> None:
        try:
            ctl = self._control.decode(payload)
        except _UNDECODABLE:
            self._bad("control", payload)
            return
        self.on_control(ctl)

    def _book_handler(self, handler: Callable[[BookUpdate], None]) -> Callable[[DepthPush], None]:
        books = self.books

        def apply(push: DepthPush) -> None:
            book = books.get(push.symbol)
            if book is None:
                book = books[push.symbol] = LocalBook(push.symbol)
            if book.held:  # deltas still in flight from before the resubscribe
                book.held_pushes_total += 1
                return
            snapshot = not book.synced
            if snapshot:
                book.apply_snapshot(push.data.b, push.data.a)
            else:
                book.apply_delta(push.data.b, push.data.a)
            if book.crossed:
                book.reset()
                book.held = True
                book.resyncs_total += 1
                self.decode_errors_total["crossed_book"] += 1
                self._warn("crossed_book")
                self.on_book_resync(push.symbol)
                return
            handler(BookUpdate(push=push, book=book, snapshot=snapshot))

        return apply

    def release_book(self, symbol: str) -> None:
        """Accept pushes for ``symbol`` again (call when its subscribe is being sent)."""
        book = self.books.get(symbol)
        if book is not None:
            book.reset()
            book.held = False

    def reset_books(self) -> None:
        """Forget every local book (after a reconnect the next push is a snapshot)."""
        for book in self.books.values():
            book.reset()
            book.held = False

    def _bad(self, reason: str, payload: bytes) -> None:
        self.decode_errors_total[reason] += 1
        self._warn(reason, payload[:80])

    def _warn(self, reason: str, sample: bytes = b"") -> None:
        now = time.monotonic()
        if now - self._warned_at >= 1.0:
            self._warned_at = now
            log.warning(
                "ws frame skipped reason=%s counts=%s sample=%r",
                reason,
                dict(self.decode_errors_total),
                sample,
            )
