"""/metrics beyond loopback: a real HTTP server that answers allowlisted, token-bearing peers."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

from procs._auth import serve_guarded
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TOKEN = bytes(range(32))


def get(port: int, token: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
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
