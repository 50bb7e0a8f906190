"""Bitunix futures WebSocket client on picows (the only client-side importer of picows).

One ``BitunixWs`` owns one connection (public or, given an api key, private) and keeps it up:
greeting (waited for ``greeting_wait_s`` at most) → login (private) → subscriptions → JSON ping
every ``ping_interval_s`` with a watchdog that reconnects after ``watchdog_intervals`` intervals
of silence; reconnect with exponential backoff + jitter in ``[reconnect_min_s,
reconnect_max_s]``, then re-login, resubscribe and ``on_resync()`` so the owner refetches REST
state. Every client message goes through one throttled queue (≤ ``send_rate_per_s``, default
4/s; the venue drops a connection past 5/s); subscriptions are batched many args per message.
Frames go to ``WsDispatcher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Final

import msgspec
from picows import WSError, WSListener, WSMsgType, WSTransport, ws_connect

from ipc.bitunix.schemas_ws import Control
from ipc.bitunix.signing import new_nonce, sign_ws_login
from ipc.bitunix.ws_dispatch import WsDispatcher

__all__ = ["BitunixWs", "LoginFailed", "WsConfig"]

log = logging.getLogger(__name__)

PosFloat = Annotated[float, msgspec.Meta(gt=0)]
PosInt = Annotated[int, msgspec.Meta(gt=0)]
Arg = tuple[str, str | None]

_ENC: Final = msgspec.json.Encoder()
_PING_INTERVAL_FLOOR_S: Final = 0.01
_TEXT: Final = WSMsgType.TEXT
# picows drops the connection past this; frames between max_frame_bytes and it are skipped
_HARD_FRAME_LIMIT_BYTES: Final = 64 << 20


class WsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """WS settings; ``url`` is ``wss://fapi.bitunix.com/public/`` or ``.../private/``."""

    url: str = "wss://fapi.bitunix.com/public/"
    api_key: str = ""
    secret: str = ""
    ping_interval_s: PosFloat = 10.0
    watchdog_intervals: PosFloat = 2.0
    pong_timeout_s: PosFloat | None = None  # no frame this long after a ping: reconnect
    send_rate_per_s: Annotated[float, msgspec.Meta(gt=0, le=5)] = 4.0
    max_subscriptions: Annotated[int, msgspec.Meta(gt=0, le=300)] = 300
    max_args_per_message: PosInt = 100
    reconnect_min_s: PosFloat = 0.5
    reconnect_max_s: PosFloat = 30.0
    connect_timeout_s: PosFloat = 10.0
    # the venue's ``connect`` greeting is waited for this long, then the session goes on
    # without it (the official Python demo logs in at once; reference §4.1)
    greeting_wait_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    login_timeout_s: PosFloat = 10.0
    max_frame_bytes: PosInt = 4 << 20
    login_timestamp_ms: bool = False  # ❓ the Java demo sends ms; the docs say seconds


class LoginFailed(ConnectionError):
    """The venue answered the login with ``result: false`` (or an error code)."""


class _LoginData(msgspec.Struct):
    result: bool = False
    msg: str = ""


_LOGIN: Final = msgspec.json.Decoder(_LoginData | bool | None, strict=False)


class _Listener(WSListener):
    def __init__(self, client: BitunixWs) -> None:
        self._c = client
        self._on_text = client.dispatcher.on_text
        self._parts: list[bytes] = []
        self._parts_bytes = 0

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        # no clock read per frame for the watchdog: it watches dispatcher.frames_total move
        ts_recv_ns = time.time_ns()
        mt = frame.msg_type
        try:
            if mt is _TEXT and frame.fin:
                self._on_text(frame.get_payload_as_bytes(), ts_recv_ns)
            elif mt is _TEXT or mt is WSMsgType.CONTINUATION:
                self._fragment(frame, ts_recv_ns)
            elif mt is WSMsgType.BINARY:
                self._c.dispatcher.on_binary(frame.get_payload_as_bytes())
            elif mt is WSMsgType.CLOSE:
                transport.disconnect()
        except Exception as exc:  # a handler bug: stop this client and re-raise from run()
            self._c.fail(exc)
            transport.disconnect()

    def _fragment(self, frame: Any, ts_recv_ns: int) -> None:
        d = self._c.dispatcher
        self._parts.append(frame.get_payload_as_bytes())
        self._parts_bytes += frame.payload_size
        if self._parts_bytes > d.max_frame_bytes:
            self._parts.clear()
            self._parts_bytes = 0
            d.on_text(b" " * (d.max_frame_bytes + 1), ts_recv_ns)  # counted as oversized
        elif frame.fin:
            payload = b"".join(self._parts)
            self._parts.clear()
            self._parts_bytes = 0
            d.on_text(payload, ts_recv_ns)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._c.on_disconnected()


class BitunixWs:
    """One self-healing WS connection; lives on one event loop (uvloop recommended).

    Register handlers with ``on(channel, handler)`` (see ``WsDispatcher``), add subscriptions
    with ``subscribe``, then ``start()`` (or ``await run()``), and ``await close()``.
    Counters: ``reconnects_total``, ``watchdog_reconnects_total``, ``messages_sent_total``,
    ``pings_sent_total``, ``pongs_total``, ``logins_total``, ``greetings_missed_total`` and the
    dispatcher's ``decode_errors_total``.
    """

    def __init__(
        self,
        config: WsConfig,
        *,
        dispatcher: WsDispatcher | None = None,
        on_resync: Callable[[], None] | None = None,
        on_book_resync: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher or WsDispatcher(max_frame_bytes=config.max_frame_bytes)
        self.dispatcher.on_control = self._on_control
        self.dispatcher.on_book_resync = self._book_resync
        self._on_resync = on_resync or (lambda: None)
        self._on_book_resync = on_book_resync or (lambda _s: None)
        self._subs: dict[Arg, None] = {}
        self._pending_sub: dict[Arg, None] = {}
        self._pending_unsub: dict[Arg, None] = {}
        self._control: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.ready = asyncio.Event()
        self._transport: WSTransport | None = None
        self._fd = -1  # the connection's socket, for a host's "is input waiting" poll
        self._greeting: asyncio.Future[None] | None = None
        self._login: asyncio.Future[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._fatal: BaseException | None = None
        self._connected_once = False
        self.last_rx_mono = 0.0
        self.last_backoff_s = 0.0
        self.reconnects_total = 0
        self.watchdog_reconnects_total = 0
        self.messages_sent_total = 0
        self.pings_sent_total = 0
        self.pongs_total = 0
        self.logins_total = 0
        self.greetings_missed_total = 0
        self.control_ops_total: Counter[str] = Counter()  # connect, login, ping, error, ...
        self.sent_log: deque[tuple[float, bytes]] = deque(maxlen=256)

    def fileno(self) -> int:
        """The connected socket's descriptor (-1 between connections): a host polls it to
        learn whether a frame is waiting (procs.hotpath's idle work); never read from it."""
        return self._fd

    @property
    def private(self) -> bool:
        """Return True when this connection logs in (an api key is configured)."""
        return bool(self.config.api_key)

    def on(self, ch: str, handler: Callable[[Any], None]) -> None:
        """Register the handler for channel ``ch`` (``"kline"`` for every kline channel)."""
        self.dispatcher.on(ch, handler)

    # ---- subscriptions ----
    def subscribe(self, ch: str, symbol: str | None = None) -> None:
        """Subscribe (now if connected, and again after every reconnect)."""
        self.subscribe_many([(ch, symbol)])

    def subscribe_many(self, args: Iterable[Arg]) -> None:
        """Subscribe to many ``(channel, symbol)`` pairs; they are batched per message."""
        new = [a for a in args if a not in self._subs]
        if len(self._subs) + len(new) > self.config.max_subscriptions:
            raise ValueError(
                f"at most {self.config.max_subscriptions} subscriptions per connection, "
                f"would be {len(self._subs) + len(new)}"
            )
        for a in new:
            self._subs[a] = None
            self._pending_unsub.pop(a, None)
            if self.ready.is_set():
                self._pending_sub[a] = None
        self._wake.set()

    def unsubscribe(self, ch: str, symbol: str | None = None) -> None:
        """Unsubscribe; a ``depth_books`` book of that symbol is forgotten."""
        a = (ch, symbol)
        if a not in self._subs:
            return
        del self._subs[a]
        if symbol is not None and ch == "depth_books":
            self.dispatcher.release_book(symbol)
        if a in self._pending_sub:  # never sent: nothing to undo at the venue
            del self._pending_sub[a]
        elif self.ready.is_set():
            self._pending_unsub[a] = None
            self._wake.set()

    @property
    def subscriptions(self) -> list[Arg]:
        """Return the subscriptions replayed after each reconnect."""
        return list(self._subs)

    # ---- lifecycle ----
    def start(self) -> asyncio.Task[None]:
        """Start ``run()`` as a task on the running loop and return it."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="bitunix-ws")
        return self._task

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until connected, logged in (private) and subscriptions are queued."""
        await asyncio.wait_for(self.ready.wait(), timeout_s)

    async def close(self) -> None:
        """Stop reconnecting, close the socket and wait for ``run()`` to end."""
        self._closing.set()
        if self._transport is not None:
            self._transport.disconnect()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def fail(self, exc: BaseException) -> None:
        """Record a fatal error (a handler raised): ``run()`` re-raises it."""
        if self._fatal is None:
            self._fatal = exc
        self._closing.set()

    async def run(self) -> None:
        """Connect and stay connected until ``close()``; raise a handler's fatal error."""
        attempt = 0
        while not self._closing.is_set():
            went_ready = False
            try:
                went_ready = await self._session()
            except (OSError, TimeoutError, WSError) as exc:
                if self._fatal is not None or self._closing.is_set():
                    break
                log.warning("ws session ended url=%s error=%r", self.config.url, exc)
            if self._fatal is not None or self._closing.is_set():
                break
            attempt = 0 if went_ready else attempt + 1
            delay = self._backoff_s(attempt)
            self.last_backoff_s = delay
            self.reconnects_total += 1
            log.info("ws reconnecting url=%s delay_s=%.3f", self.config.url, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        if self._fatal is not None:
            raise self._fatal

    def _backoff_s(self, attempt: int) -> float:
        lo, hi = self.config.reconnect_min_s, self.config.reconnect_max_s
        cap = min(hi, lo * (2**attempt))
        return float(max(lo, cap * (0.5 + random.random() / 2)))

    async def _session(self) -> bool:
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._greeting = loop.create_future()
        self._login = loop.create_future()
        transport, _ = await asyncio.wait_for(
            ws_connect(
                lambda: _Listener(self),
                cfg.url,
                enable_auto_ping=False,
                max_frame_size=max(cfg.max_frame_bytes, _HARD_FRAME_LIMIT_BYTES),
                websocket_handshake_timeout=cfg.connect_timeout_s,
            ),
            cfg.connect_timeout_s,
        )
        self._transport = transport
        if self._closing.is_set():  # close() came while connecting, with no socket to close:
            transport.disconnect()  # (it would wait for the venue to hang up, 15 s and more)
        sock = transport.underlying_transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1
        self.last_rx_mono = time.monotonic()
        self._control.clear()
        self._pending_sub.clear()
        self._pending_unsub.clear()
        tasks = [loop.create_task(self._send_loop(transport))]
        try:
            try:
                await asyncio.wait_for(self._greeting, cfg.greeting_wait_s)
            except TimeoutError:
                self.greetings_missed_total += 1
                log.info(
                    "ws no greeting within %.1fs, going on url=%s", cfg.greeting_wait_s, cfg.url
                )
            tasks.append(loop.create_task(self._keepalive(transport)))
            if self.private:
                self._queue_login()
                if not await asyncio.wait_for(self._login, cfg.login_timeout_s):
                    raise LoginFailed(f"login refused url={cfg.url}")
                self.logins_total += 1
            self._pending_sub = dict.fromkeys(self._subs)
            self._wake.set()
            self.ready.set()
            if self._connected_once:
                self._on_resync()
            self._connected_once = True
            await transport.wait_disconnected()
            return True
        finally:
            self.ready.clear()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            transport.disconnect()
            self._transport = None
            self._fd = -1
            self.dispatcher.reset_books()

    def on_disconnected(self) -> None:
        """Fail whatever this connection was waiting for (called by the listener)."""
        for fut in (self._greeting, self._login):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionResetError("disconnected"))
                fut.exception()  # mark retrieved: nobody may be waiting on this one

    def _queue_login(self) -> None:
        cfg = self.config
        ts = time.time_ns() // (1_000_000 if cfg.login_timestamp_ms else 1_000_000_000)
        nonce = new_nonce()
        sign = sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=cfg.api_key, secret=cfg.secret)
        arg = {"apiKey": cfg.api_key, "timestamp": ts, "nonce": nonce, "sign": sign}
        self._control.append(_ENC.encode({"op": "login", "args": [arg]}))
        self._wake.set()

    def _on_control(self, ctl: Control) -> None:
        self.control_ops_total[ctl.op] += 1
        if ctl.op == "connect":
            if self._greeting is not None and not self._greeting.done():
                self._greeting.set_result(None)
        elif ctl.op == "ping":
            if ctl.pong is not None:
                self.pongs_total += 1
        elif ctl.op == "login" and self._login is not None and not self._login.done():
            self._login.set_result(self._login_ok(ctl))

    @staticmethod
    def _login_ok(ctl: Control) -> bool:
        if ctl.code not in (None, 0):
            return False
        try:
            data = _LOGIN.decode(ctl.data)
        except msgspec.DecodeError:
            return False
        return data.result if isinstance(data, _LoginData) else bool(data)

    def _book_resync(self, symbol: str) -> None:
        a: Arg = ("depth_books", symbol)
        if a in self._subs and self.ready.is_set():
            self._pending_unsub[a] = None
            self._pending_sub[a] = None
            self._wake.set()
        self._on_book_resync(symbol)

    # ---- sending ----
    def _take(self) -> bytes | None:
        if self._control:
            return self._control.popleft()
        for op, pending in (("unsubscribe", self._pending_unsub), ("subscribe", self._pending_sub)):
            if pending:
                batch = list(pending)[: self.config.max_args_per_message]
                for a in batch:
                    del pending[a]
                    if op == "subscribe" and a[0] == "depth_books" and a[1] is not None:
                        self.dispatcher.release_book(a[1])  # the next push is the snapshot
                args = [{"symbol": s, "ch": ch} if s is not None else {"ch": ch} for ch, s in batch]
                return _ENC.encode({"op": op, "args": args})
        return None

    async def _send_loop(self, transport: WSTransport) -> None:
        spacing = 1.0 / self.config.send_rate_per_s
        next_at = 0.0
        while True:
            await self._wake.wait()
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            msg = self._take()
            if msg is None:
                self._wake.clear()
                continue
            transport.send(WSMsgType.TEXT, msg)
            now = time.monotonic()
            self.sent_log.append((now, msg))
            self.messages_sent_total += 1
            next_at = now + spacing

    async def _keepalive(self, transport: WSTransport) -> None:
        cfg = self.config
        interval = max(cfg.ping_interval_s, _PING_INTERVAL_FLOOR_S)
        silence_s = interval * cfg.watchdog_intervals
        tick = min(interval / 4, 1.0)
        pong_s = cfg.pong_timeout_s
        if pong_s is not None:
            tick = min(tick, pong_s / 4)
        last_ping = time.monotonic()  # the first ping one interval after the greeting
        ping_sent = 0.0  # when the last ping went out (0: none yet)
        seen = -1
        while True:
            now = time.monotonic()
            if self.dispatcher.frames_total != seen:
                seen = self.dispatcher.frames_total
                self.last_rx_mono = now
            elif now - self.last_rx_mono > silence_s or (
                # a ping the venue has not answered (nor sent anything since) within the deadline
                pong_s is not None and ping_sent >= self.last_rx_mono and now - ping_sent > pong_s
            ):
                self.watchdog_reconnects_total += 1
                log.warning("ws silent for %.1fs, reconnecting url=%s",
                            now - self.last_rx_mono, cfg.url)  # fmt: skip
                transport.disconnect()
                return
            if now - last_ping >= interval:
                self._control.append(_ENC.encode({"op": "ping", "ping": int(time.time())}))
                self.pings_sent_total += 1
                self._wake.set()
                last_ping = ping_sent = now
            await asyncio.sleep(tick)
