"""simex's WebSocket server (picows on uvloop): ``/public/`` and ``/private/`` on one port.

Greeting, login (signature checked by ``procs.simex.auth``), JSON ping, subscribe/unsubscribe,
the 5 msg/s and 300-subscription limits, and the push hub: each push is encoded once and the
same bytes go to every subscriber. A frame that is not a JSON object (or nests too deep to
decode) is answered with the venue's 10002, never a traceback. ``strict`` login also refuses
what the docs do not allow: no nonce, a non-integer timestamp, a signature not in lowercase hex,
a nonce replayed within the window.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from procs.exchange.model import TradeEvent, fmt
from procs.matching.book import OrderBook
from procs.simex.auth import NonceWindow, sign_format_ok, ws_login_sign
from procs.simex.config import KeyConfig, LimitsConfig
from procs.simex.faults import Faults
from procs.simex.fuzz import fuzz_frames
from procs.simex.venue import INTERVALS_MS, Venue

__all__ = ["PRIVATE_CHANNELS", "PUBLIC_CHANNELS", "Hub", "start_ws_server"]

log = logging.getLogger(__name__)

_ENC: Final = msgspec.json.Encoder()
_DEC: Final = msgspec.json.Decoder()
PRIVATE_CHANNELS: Final = frozenset({"balance", "position", "order", "tpsl"})
_DEPTHS: Final = {"depth_book1": 1, "depth_book5": 5, "depth_book15": 15}
PUBLIC_CHANNELS: Final = frozenset({*_DEPTHS, "depth_books", "trade", "ticker", "tickers", "price"})
_KLINE_PREFIXES: Final = ("market_kline_", "last_kline_", "mark_kline_")
_GREETING: Final = _ENC.encode({"op": "connect", "data": {"result": True}})


SLOW_CLIENT_BYTES: Final = 64 * 1024 * 1024  # a subscriber this far behind is disconnected


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked server text frame: built once, the same bytes go to every subscriber."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def _is_kline(ch: str) -> bool:
    return ch.startswith(_KLINE_PREFIXES) and ch.rsplit("_", 1)[-1] in INTERVALS_MS


class Conn(WSListener):
    """One client connection; all state lives on the event loop thread."""

    def __init__(self, hub: Hub, private: bool, remote: str) -> None:
        super().__init__()
        self.hub = hub
        self.private = private
        self.remote = remote
        self.account = ""
        self.transport: WSTransport | None = None
        self.subs: set[tuple[str, str]] = set()
        self.private_subs: set[str] = set()
        self.out: list[bytes] = []  # frames queued until the hub's next flush_writes()
        self._recent: deque[float] = deque()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        peer = transport.underlying_transport.get_extra_info("peername")
        if peer:
            self.remote = str(peer[0])
        self.hub.conns.add(self)
        transport.send(WSMsgType.TEXT, _GREETING)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.forget(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            # queued pushes go first: nothing may be written after the close frame
            self.hub.flush_writes()
            self.hub.forget(self)
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if not self._count_message(transport):
            return
        if self.hub.faults.stalled(self.private):
            return
        if frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            try:
                msg = _DEC.decode(frame.get_payload_as_bytes())
            except (msgspec.DecodeError, RecursionError) as exc:
                # RecursionError: JSON nested deeper than the decoder goes, a hostile frame
                self.hub.bad_messages_total += 1
                why = "nested too deep" if isinstance(exc, RecursionError) else "not JSON"
                self.reply({"op": "error", "code": 10002, "msg": f"Parameter error: {why}"})
                return
            if not isinstance(msg, dict):
                self.hub.bad_messages_total += 1
                self.reply({"op": "error", "code": 10002, "msg": "Parameter error: not an object"})
                return
            self.hub.on_message(self, msg)
            self.hub.flush_writes()

    def _count_message(self, transport: WSTransport) -> bool:
        now = time.monotonic()
        q = self._recent
        q.append(now)
        while q and now - q[0] >= 1.0:
            q.popleft()
        if len(q) > self.hub.limits.ws_max_msgs_per_s:
            self.hub.rate_disconnects_total += 1
            transport.disconnect(graceful=False)
            return False
        return True

    def reply(self, obj: object) -> None:
        if self.transport is not None:
            self.hub.flush_writes()
            self.transport.send(WSMsgType.TEXT, _ENC.encode(obj))

    def push(self, payload: bytes) -> None:
        """Queue one push (unframed JSON) for this connection, honouring stall and delay faults."""
        self.hub.fanout((self,), payload, self.private)

    def write_now(self, frame: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_disconnected:
            t.underlying_transport.write(frame)


class Hub:
    """Subscriptions and fan-out; satisfies the Venue's PushSink."""

    def __init__(
        self,
        faults: Faults,
        keys: Mapping[str, KeyConfig],
        limits: LimitsConfig,
        now_ms: Callable[[], int],
        *,
        strict: bool = False,
    ) -> None:
        self.faults = faults
        self.keys = dict(keys)
        self.limits = limits
        self.now_ms = now_ms
        self.strict = strict
        self._nonces = NonceWindow(2 * limits.recv_window_s)  # a timestamp is good for ±window
        self.venue: Venue | None = None
        self.conns: set[Conn] = set()
        self.public: dict[tuple[str, str], set[Conn]] = {}
        self.by_account: dict[str, set[Conn]] = {}
        self._last_depth: dict[tuple[str, int], object] = {}
        # book prices/quantities carry canonical exponents (tick/step), so str() is the wire form
        self._fmt: Callable[[Decimal], str] = str
        self._iso_cache: tuple[int, str] = (-1, "")
        self._pending: set[Conn] = set()
        self.sent_total = 0
        self.stalled_drops_total = 0
        self.slow_disconnects_total = 0
        self.rate_disconnects_total = 0
        self.bad_messages_total = 0
        self.fuzz_frames_total: dict[str, int] = {}

    # ---- connection handling --------------------------------------------------------------

    def forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for key in conn.subs:
            subs = self.public.get(key)
            if subs is not None:
                subs.discard(conn)
        conn.subs.clear()
        if conn.account:
            self.by_account.get(conn.account, set()).discard(conn)
        conn.transport = None

    def drop(self, scope: str) -> int:
        """Disconnect every connection in ``scope`` (all / public / private) at once."""
        victims = [c for c in self.conns if scope == "all" or c.private == (scope == "private")]
        for c in victims:
            if c.transport is not None:
                c.transport.disconnect(graceful=False)
        return len(victims)

    def fuzz(self, scope: str, kinds: tuple[str, ...]) -> int:
        """Push hostile frames (``procs.simex.fuzz``) to every connection in ``scope``; return
        how many frames went out. They bypass stalls and delays: the fault is the frame."""
        symbol = next(iter(self.venue.ex.specs), "BTCUSDT") if self.venue else "BTCUSDT"
        self.flush_writes()
        sent = 0
        for c in list(self.conns):
            if scope != "all" and c.private != (scope == "private"):
                continue
            for kind, frame in fuzz_frames(kinds, c.private, symbol):
                c.write_now(frame)
                self.fuzz_frames_total[kind] = self.fuzz_frames_total.get(kind, 0) + 1
                sent += 1
        return sent

    def on_message(self, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "ping":
            now_s = self.now_ms() // 1000
            conn.reply({"op": "ping", "pong": msg.get("ping", now_s), "ping": now_s})
        elif op == "login":
            self._login(conn, msg.get("args"))
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            if not isinstance(args, list):
                conn.reply({"op": op, "data": {"result": False}, "msg": "args must be a list"})
                return
            for arg in args:
                if isinstance(arg, dict):
                    self._sub(
                        conn, op == "subscribe", str(arg.get("ch", "")), str(arg.get("symbol", ""))
                    )
        else:
            conn.reply({"op": str(op), "data": {"result": False}, "msg": "unknown op"})

    def _login(self, conn: Conn, args: object) -> None:
        code, why = 10002, "login is only available on /private/"
        arg = args[0] if isinstance(args, list) and args else None
        if conn.private and isinstance(arg, dict):
            code, why = self._check_login(arg, conn.remote)
        if code == 0:
            assert isinstance(arg, dict)
            key = self.keys[str(arg["apiKey"])]
            conn.account = key.account
            self.by_account.setdefault(key.account, set()).add(conn)
            conn.reply({"op": "login", "data": {"result": True}})
        else:
            conn.reply({"op": "login", "data": {"result": False}, "code": code, "msg": why})

    def _check_login(self, a: dict[str, Any], remote: str) -> tuple[int, str]:
        """Return (0, "") for a good login, else the venue's error code and why."""
        key = self.keys.get(str(a.get("apiKey", "")))
        if key is None:
            return 10003, "unknown apiKey"
        if key.ip_allow and remote not in key.ip_allow:
            return 10004, "IP not in API-key whitelist"
        raw_ts, nonce, sign = a.get("timestamp"), a.get("nonce"), a.get("sign")
        if self.strict:
            # the docs: timestamp a JSON integer, a nonce, sign in lowercase hex
            if type(raw_ts) is not int:
                return 10002, "Parameter error: timestamp must be an integer"
            if not isinstance(nonce, str) or not nonce:
                return 10002, "Parameter error: nonce is required"
            if not isinstance(sign, str) or not sign_format_ok(sign):
                return 10007, "Signature Error: sign must be lowercase hex"
        try:
            ts = int(raw_ts)  # type: ignore[arg-type]  # lenient: "123", 123.0; refused below
        except (TypeError, ValueError, OverflowError):
            return 10002, "Parameter error: timestamp must be an integer"
        ts_s = ts // 1000 if ts > 100_000_000_000 else ts  # seconds (docs) or ms (Java demo)
        if abs(self.now_ms() // 1000 - ts_s) > self.limits.recv_window_s:
            return 10007, "Signature Error: timestamp outside the accepted window"
        got = str(sign if sign is not None else "")
        want = ws_login_sign(key.secret, nonce=str(nonce or ""), timestamp=ts, api_key=key.api_key)
        if self.faults.state.reject_signatures or (got if self.strict else got.lower()) != want:
            return 10007, "Signature Error"
        if self.strict and self._nonces.replayed(
            key.api_key, str(nonce), str(ts), self.now_ms() / 1e3
        ):
            return 10007, "Signature Error: nonce already used"
        return 0, ""

    def _sub(self, conn: Conn, add: bool, ch: str, symbol: str) -> None:
        if ch in PRIVATE_CHANNELS:
            if not conn.account:
                conn.reply({"op": "subscribe", "data": {"result": False}, "msg": "login first"})
                return
            (conn.private_subs.add if add else conn.private_subs.discard)(ch)
            return
        venue = self.venue
        if (
            (ch not in PUBLIC_CHANNELS and not _is_kline(ch))
            or venue is None
            or symbol not in venue.ex.specs
        ):
            conn.reply(
                {
                    "op": "subscribe",
                    "data": {"result": False},
                    "msg": f"unknown channel {ch} {symbol}",
                }
            )
            return
        key = (ch, symbol)
        if not add:
            conn.subs.discard(key)
            self.public.get(key, set()).discard(conn)
            return
        if (
            key not in conn.subs
            and len(conn.subs) + len(conn.private_subs) >= self.limits.ws_max_subscriptions
        ):
            conn.reply(
                {"op": "subscribe", "data": {"result": False}, "msg": "too many subscriptions"}
            )
            return
        conn.subs.add(key)
        self.public.setdefault(key, set()).add(conn)
        self._initial(conn, ch, symbol, venue)

    def _initial(self, conn: Conn, ch: str, symbol: str, venue: Venue) -> None:
        book = venue.ex.books[symbol]
        if ch in _DEPTHS or ch == "depth_books":
            n = _DEPTHS.get(ch, 0)
            conn.push(self._envelope(ch, symbol, self._depth_data(book, n)))
        elif _is_kline(ch) or ch in ("ticker", "price"):
            self._periodic_one(ch, symbol, {conn})

    # ---- PushSink ---------------------------------------------------------------------------

    def private(self, account: str, channel: str, data: dict[str, object]) -> None:
        conns = self.by_account.get(account)
        if not conns:
            return
        targets = [c for c in conns if not c.private_subs or channel in c.private_subs]
        if targets:
            payload = _ENC.encode({"ch": channel, "ts": self.now_ms(), "data": data})
            self.fanout(targets, payload, True)

    def trades(self, symbol: str, trades: Sequence[TradeEvent]) -> None:
        subs = self.public.get(("trade", symbol))
        if not subs or self.faults.state.pause_md:
            return
        f = self._fmt
        data = [
            {"t": self._iso(t.ts_ms), "p": f(t.price), "v": f(t.qty), "s": t.side} for t in trades
        ]
        self._fanout(subs, self._envelope("trade", symbol, data))

    def book_changed(self, symbol: str, book: OrderBook) -> None:
        changes = book.take_changes()
        if self.faults.state.pause_md:
            return
        for ch, n in _DEPTHS.items():
            subs = self.public.get((ch, symbol))
            if subs and _touches_top(book, changes, n):
                data = self._depth_data(book, n)
                if self._last_depth.get((symbol, n)) != data:
                    self._last_depth[(symbol, n)] = data
                    self._fanout(subs, self._envelope(ch, symbol, data))
        subs = self.public.get(("depth_books", symbol))
        if subs and changes:
            f = self._fmt
            b = [[f(p), f(book.level_qty(True, p))] for is_buy, p in sorted(changes) if is_buy]
            a = [[f(p), f(book.level_qty(False, p))] for is_buy, p in sorted(changes) if not is_buy]
            self._fanout(subs, self._envelope("depth_books", symbol, {"b": b[::-1], "a": a}))

    # ---- periodic channels ------------------------------------------------------------------

    def periodic(self) -> None:
        """Ticker, tickers, klines and price pushes (every ~0.5 s, like the venue's klines)."""
        if self.faults.state.pause_md:
            return
        for (ch, symbol), subs in list(self.public.items()):
            if subs and (ch in ("ticker", "price") or _is_kline(ch)):
                self._periodic_one(ch, symbol, subs)
        groups: dict[frozenset[str], list[Conn]] = {}
        for (ch, _symbol), subs in self.public.items():
            if ch == "tickers":
                for c in subs:
                    groups.setdefault(frozenset(s for k, s in c.subs if k == "tickers"), []).append(
                        c
                    )
        for symbols, conns in groups.items():
            data = [self._ticker(s, True) for s in sorted(symbols)]
            payload = _ENC.encode({"ch": "tickers", "ts": self.now_ms(), "data": data})
            self.fanout(set(conns), payload, False)

    def _periodic_one(self, ch: str, symbol: str, subs: Iterable[Conn]) -> None:
        venue = self.venue
        if venue is None:
            return
        if ch == "ticker":
            data: object = self._ticker(symbol, False)
        elif ch == "price":
            t = venue.ticker(symbol)
            now = self.now_ms()
            period = venue.ex.funding_interval_ms
            data = {
                "ip": fmt(t["mark"]), "mp": fmt(t["mark"]),
                "fr": fmt(venue.ex.funding_rate[symbol]),
                "ft": self._iso(now - now % period), "nft": self._iso(now - now % period + period),
            }  # fmt: skip
        else:
            interval = ch.rsplit("_", 1)[-1]
            candles = venue.klines(symbol, interval, 1, None, None)
            if not candles:
                return
            c = candles[-1]
            data = {
                "o": fmt(c.open), "c": fmt(c.close), "h": fmt(c.high), "l": fmt(c.low),
                "b": fmt(c.base_vol), "q": fmt(c.quote_vol),
            }  # fmt: skip
        self._fanout(subs, self._envelope(ch, symbol, data))

    def _ticker(self, symbol: str, with_book: bool) -> dict[str, str]:
        assert self.venue is not None
        t = self.venue.ticker(symbol)
        change = (t["last"] - t["open"]) / t["open"] * 100 if t["open"] else Decimal(0)
        d = {
            "s": symbol, "la": fmt(t["last"]), "o": fmt(t["open"]), "h": fmt(t["high"]),
            "l": fmt(t["low"]), "b": fmt(t["base_vol"]), "q": fmt(t["quote_vol"]), "r": fmt(change),
        }  # fmt: skip
        if with_book:
            bids, asks = self.venue.ex.books[symbol].depth(1)
            if bids:
                d["bd"], d["bv"] = fmt(bids[0][0]), fmt(bids[0][1])
            if asks:
                d["ak"], d["av"] = fmt(asks[0][0]), fmt(asks[0][1])
        return d

    # ---- encoding -------------------------------------------------------------------------

    def _depth_data(self, book: OrderBook, n: int) -> dict[str, list[list[str]]]:
        f = self._fmt
        bids, asks = book.depth(n)
        return {"b": [[f(p), f(q)] for p, q in bids], "a": [[f(p), f(q)] for p, q in asks]}

    def _envelope(self, ch: str, symbol: str, data: object) -> bytes:
        return _ENC.encode({"ch": ch, "symbol": symbol, "ts": self.now_ms(), "data": data})

    def _fanout(self, subs: Iterable[Conn], payload: bytes) -> None:
        self.fanout(subs, payload, False)

    def fanout(self, subs: Iterable[Conn], payload: bytes, private: bool) -> None:
        """Frame ``payload`` once and queue the same bytes on every connection in ``subs``."""
        faults = self.faults
        if faults.stalled(private):
            self.stalled_drops_total += 1
            return
        frame = ws_text_frame(payload)
        delay = faults.state.push_delay_s
        if delay:
            loop = asyncio.get_running_loop()
            for c in subs:
                loop.call_later(delay, c.write_now, frame)
                self.sent_total += 1
            return
        pending = self._pending
        for c in subs:
            c.out.append(frame)
            pending.add(c)
            self.sent_total += 1

    def flush_writes(self) -> None:
        """Write every connection's queued frames with one write call each."""
        for c in self._pending:
            t = c.transport
            if t is None or t.is_disconnected or t.is_close_frame_sent:
                c.out.clear()
                continue
            ut = t.underlying_transport
            ut.write(c.out[0] if len(c.out) == 1 else b"".join(c.out))
            c.out.clear()
            if ut.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                self.slow_disconnects_total += 1
                t.disconnect(graceful=False)
        self._pending.clear()

    def _iso(self, ts_ms: int) -> str:
        sec = ts_ms // 1000
        if self._iso_cache[0] != sec:
            self._iso_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec)))
        return self._iso_cache[1]


def _touches_top(book: OrderBook, changes: set[tuple[bool, Decimal]], n: int) -> bool:
    """Whether any changed level is (or was) inside the top ``n`` of its side."""
    bids, asks = book.bids.prices, book.asks.prices
    bid_edge = bids[-n] if len(bids) >= n else None
    ask_edge = asks[n - 1] if len(asks) >= n else None
    for is_buy, price in changes:
        if is_buy:
            if bid_edge is None or price >= bid_edge:
                return True
        elif ask_edge is None or price <= ask_edge:
            return True
    return False


async def start_ws_server(hub: Hub, host: str, port: int) -> asyncio.Server:
    """Serve ``/public/`` and ``/private/`` (trailing slash optional); other paths get 404."""

    def factory(request: WSUpgradeRequest) -> Conn | None:
        path = request.path.decode() if isinstance(request.path, bytes) else str(request.path)
        path = path.split("?", 1)[0].rstrip("/")
        if path not in ("/public", "/private"):
            return None
        return Conn(hub, path == "/private", "127.0.0.1")

    server: asyncio.Server = await ws_create_server(
        factory, host, port, enable_auto_pong=False, websocket_handshake_timeout=5
    )
    return server
