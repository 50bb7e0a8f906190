"""A live order's REST request is on its socket when ``TaskRunner.start`` returns: the send's
first step runs through the rate-limit bucket, the keep-alive pool and aiohttp's request up to
the wait for the answer, and aiohttp's body writer (a task it creates) starts eagerly too.

Real aiohttp (``LiveVenue`` over ``BitunixRest``) against a plain loopback socket that the test
reads without running the loop: what it reads was written inside ``start``."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TypeVar

import pytest
import uvloop

from ipc.bitunix.rest import RestConfig
from ipc.bitunix.rest_api import BitunixRest
from ipc.bitunix.ws import BitunixWs, WsConfig
from procs.trading.model import OrderRequest, Side
from procs.trading.tasks import TaskRunner
from procs.trading.venue import LiveVenue
from tests.conftest import free_port
from tests.unit.procs.execution.test_tasks_eager import in_callback

T = TypeVar("T")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop() if request.param == "asyncio" else uvloop.new_event_loop()
    yield lp
    lp.close()


def _answer(client_id: str) -> bytes:
    data = f'{{"orderId":"O-{client_id}","clientId":"{client_id}"}}'
    body = f'{{"code":0,"msg":"Success","data":{data}}}'
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


def _read_request(conn: socket.socket, client_id: str, wait_s: float) -> bytes:
    """What the client wrote, up to the body naming ``client_id`` (the loop is not run)."""
    got = b""
    while f'"clientId":"{client_id}"'.encode() not in got:
        ready, _, _ = select.select([conn], [], [], wait_s)
        if not ready:
            break
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


async def _on_the_loop(probe: Callable[[], T | None], timeout_s: float = 5.0) -> T:
    """Poll ``probe`` (a zero-timeout check) with a deadline while the loop runs."""
    deadline = time.monotonic() + timeout_s
    while (got := probe()) is None:
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)
    return got


def _accept(srv: socket.socket) -> socket.socket | None:
    return srv.accept()[0] if select.select([srv], [], [], 0)[0] else None


def _ready(conn: socket.socket) -> bool | None:
    return True if select.select([conn], [], [], 0)[0] else None


def _req(client_id: str) -> OrderRequest:
    return OrderRequest(
        client_id=client_id,
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=Decimal("0.001"),
        price=Decimal("60000"),
    )


def test_the_place_request_is_on_the_socket_when_start_returns(
    loop: asyncio.AbstractEventLoop,
) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as srv:
        # rate_safety 0.5: a burst of 5 place requests, so the order finds a token at once
        # (without one, the bucket's wait is its first suspension, and it is sent after it)
        config = RestConfig(
            base_url=f"http://127.0.0.1:{port}", api_key="k", secret="s", rate_safety=0.5
        )
        rest = BitunixRest(config)
        venue = LiveVenue(rest, BitunixWs(WsConfig(url=f"ws://127.0.0.1:{port}/private/")))
        loop.run_until_complete(rest.open())
        try:
            # the first request opens the pooled keep-alive connection (a connect suspends)
            warm = loop.create_task(venue.place(_req("warm")))
            conn = loop.run_until_complete(_on_the_loop(lambda: _accept(srv)))
            with conn:
                loop.run_until_complete(_on_the_loop(lambda: _ready(conn)))
                assert b'"clientId":"warm"' in _read_request(conn, "warm", 5.0)
                conn.sendall(_answer("warm"))
                assert loop.run_until_complete(asyncio.wait_for(warm, 5.0)) == "O-warm"

                # the order: started from a plain callback, as execution's step releases it
                runner, out = TaskRunner(loop), []

                async def send() -> None:
                    out.append(await venue.place(_req("c2")))

                def go() -> bytes:
                    runner.start(send())
                    # the loop does not run until this returns: the bytes were written in start
                    return _read_request(conn, "c2", 5.0)

                wrote = in_callback(loop, go)
                assert wrote.startswith(b"POST /api/v1/futures/trade/place_order HTTP/1.1\r\n")
                assert b'"clientId":"c2"' in wrote
                assert out == []  # the answer is awaited in the task
                conn.sendall(_answer("c2"))
                loop.run_until_complete(_on_the_loop(lambda: None if runner.busy else True))
                assert out == ["O-c2"]
                runner.check()
        finally:
            loop.run_until_complete(rest.close())
