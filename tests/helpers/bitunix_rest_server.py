"""A loopback aiohttp server speaking the Bitunix REST envelope, for REST client tests.

Each route answers from a scripted queue (status, body, delay). Every request is recorded with
its raw query and body bytes, and the server checks the signature the way the venue does.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from ipc.bitunix.signing import sign_rest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"code":0,"msg":"Success","data":null}'
    delay_s: float = 0.0


def ok(data: object) -> Reply:
    return Reply(body=json.dumps({"code": 0, "msg": "Success", "data": data}).encode())


def fail(code: int, msg: str = "err") -> Reply:
    return Reply(body=json.dumps({"code": code, "msg": msg, "data": None}).encode())


@dataclass
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]
    sign_ok: bool
    t_mono: float


@dataclass
class FakeRestServer:
    api_key: str = "test-key"
    secret: str = "test-secret"
    replies: dict[str, deque[Reply]] = field(default_factory=dict)
    default: dict[str, Reply] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    def script(self, path: str, *replies: Reply) -> None:
        self.replies.setdefault(path, deque()).extend(replies)

    def always(self, path: str, reply: Reply) -> None:
        self.default[path] = reply

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _check_sign(self, req: web.Request, query: str, body: bytes) -> bool:
        h = req.headers
        if "sign" not in h:
            return False
        params = sorted(parse_qsl(query, keep_blank_values=True))
        qp = "".join(k + v for k, v in params)
        want = sign_rest(
            nonce=h.get("nonce", ""),
            timestamp=h.get("timestamp", ""),
            api_key=h.get("api-key", ""),
            query=qp,
            body=body.decode(),
            secret=self.secret,
        )
        return h["sign"] == want and h.get("api-key") == self.api_key

    async def _handle(self, req: web.Request) -> web.Response:
        body = await req.read()
        query = req.rel_url.raw_query_string
        self.seen.append(
            Seen(
                req.method,
                req.path,
                query,
                body,
                dict(req.headers),
                self._check_sign(req, query, body),
                asyncio.get_running_loop().time(),
            )
        )
        queue = self.replies.get(req.path)
        reply = queue.popleft() if queue else self.default.get(req.path, Reply())
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, body=reply.body, content_type="application/json")
