"""Guards for what is bound beyond loopback: /metrics and simex's control API answer only
allowlisted peers with the control token (served on loopback here, the guard decides)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

from procs._auth import ensure_token, read_token, serve_guarded
from procs.simex.control import _guard
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TOKEN = bytes(range(32))


def get(port: int, token: str | None, path: str = "/metrics") -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    ("allowed", "token", "status"),
    [("127.0.0.1", TOKEN.hex(), 200), ("127.0.0.1", None, 401), ("127.0.0.2", TOKEN.hex(), 403)],
)
def test_guarded_metrics_server(allowed, token, status):
    registry = CollectorRegistry()
    Counter("bitrader_x", "x", registry=registry).inc()
    port = free_port()
    httpd, thread = serve_guarded("127.0.0.1", port, make_wsgi_app(registry), [allowed], TOKEN)
    try:
        got = get(port, token)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)

    assert got == status


async def _simex_control_status(allowed: str, token: str | None, token_file: str) -> int:
    async def status(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[_guard([allowed], token_file)])
    app.router.add_get("/_simex/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await asyncio.to_thread(get, port, token, "/_simex/status")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("allowed", "with_token", "status"),
    [("127.0.0.1", True, 200), ("127.0.0.1", False, 401), ("127.0.0.2", True, 403)],
)
def test_guarded_simex_control(tmp_path, allowed, with_token, status):
    token_file = ensure_token(tmp_path)
    token = read_token(token_file).hex() if with_token else None

    got = asyncio.run(_simex_control_status(allowed, token, str(token_file)))

    assert got == status
