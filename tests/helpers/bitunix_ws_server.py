"""A loopback picows server speaking the Bitunix WS protocol, for WS client tests.

Greets, checks login signatures, answers JSON pings, records every client message with its
arrival time, and lets a test push frames, drop the connection or go silent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import picows
from picows import WSListener, WSMsgType, WSTransport

from ipc.bitunix.signing import sign_ws_login


async def until(cond: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Async twin of ``eventually``: poll ``cond`` on the loop until truthy or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := cond()):
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {cond!r}")
        await asyncio.sleep(0.005)  # pacing between polls, not waiting for an outcome
    return value


@dataclass
class Received:
    t_mono: float
    conn: int
    msg: dict[str, Any]


@dataclass
class FakeWsServer:
    api_key: str = "ws-key"
    secret: str = "ws-secret"
    greet: bool = True
    answer_pings: bool = True
    received: list[Received] = field(default_factory=list)
    conns: list[WSTransport] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    disconnected_at: list[float] = field(default_factory=list)
    _server: Any = None
    url: str = ""

    async def start(self, path: str = "/public/") -> str:
        self._server = await picows.ws_create_server(
            lambda _req: _ServerListener(self), "127.0.0.1", 0, enable_auto_ping=False
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{path}"
        return self.url

    async def close(self) -> None:
        for t in self.conns:
            t.disconnect()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def ops(self, op: str, conn: int | None = None) -> list[Received]:
        return [
            r for r in self.received if r.msg.get("op") == op and (conn is None or r.conn == conn)
        ]

    def sub_args(self, conn: int | None = None) -> list[tuple[str, str | None]]:
        return [
            (a["ch"], a.get("symbol")) for r in self.ops("subscribe", conn) for a in r.msg["args"]
        ]

    def push(
        self, frame: bytes | dict[str, Any] | str, conn: int = -1, binary: bool = False
    ) -> None:
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        data = frame.encode() if isinstance(frame, str) else frame
        self.conns[conn].send(WSMsgType.BINARY if binary else WSMsgType.TEXT, data)

    def drop(self, conn: int = -1) -> None:
        self.conns[conn].disconnect()


class _ServerListener(WSListener):
    def __init__(self, srv: FakeWsServer) -> None:
        self.srv = srv
        self.idx = -1

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.srv.conns.append(transport)
        self.srv.connected_at.append(time.monotonic())
        self.idx = len(self.srv.conns) - 1
        if self.srv.greet:
            transport.send(WSMsgType.TEXT, b'{"op":"connect","data":{"result":true}}')

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.srv.disconnected_at.append(time.monotonic())

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        msg = json.loads(frame.get_payload_as_bytes())
        self.srv.received.append(Received(time.monotonic(), self.idx, msg))
        op = msg.get("op")
        if op == "ping" and self.srv.answer_pings:
            reply = {"op": "ping", "pong": msg["ping"], "ping": int(time.time())}
            transport.send(WSMsgType.TEXT, json.dumps(reply).encode())
        elif op == "login":
            [arg] = msg["args"]
            want = sign_ws_login(
                nonce=arg["nonce"],
                timestamp_s=arg["timestamp"],
                api_key=self.srv.api_key,
                secret=self.srv.secret,
            )
            ok = arg["sign"] == want and arg["apiKey"] == self.srv.api_key
            reply = {"op": "login", "data": {"result": ok}}
            transport.send(WSMsgType.TEXT, json.dumps(reply).encode())
