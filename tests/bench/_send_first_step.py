"""Bench-only: what a live order's eager send costs inside execution's step, beside a plain task.

A ``LiveVenue`` over ``BitunixRest`` (real aiohttp, keep-alive pool) places orders against a
loopback socket that this script answers itself. Per order, from a plain loop callback (as
execution's step releases its calls): ``TaskRunner.start(venue.place(req))`` (the first step:
body, signing, aiohttp's request, the write) against ``loop.create_task`` of the same call (the
cost the step paid before: the send ran later, after the pass), alternated, each answered before
the next. Also counts the starts whose request was on the socket when ``start`` returned.

    PYTHONPATH=. .venv/bin/python -m tests.bench._send_first_step [N] [--uvloop]
"""

from __future__ import annotations

import asyncio
import select
import socket
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from ipc.bitunix import rest as rest_mod
from ipc.bitunix.rest import RestConfig
from ipc.bitunix.rest_api import BitunixRest
from ipc.bitunix.ws import BitunixWs, WsConfig
from procs.trading.model import OrderRequest, Side
from procs.trading.tasks import TaskRunner
from procs.trading.venue import LiveVenue


def _answer(cid: str) -> bytes:
    body = f'{{"code":0,"msg":"Success","data":{{"orderId":"O","clientId":"{cid}"}}}}'
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()


def _read(conn: socket.socket, cid: str, wait_s: float) -> bool:
    got = b""
    while f'"clientId":"{cid}"'.encode() not in got:
        if not select.select([conn], [], [], wait_s)[0]:
            return False
        got += conn.recv(65536)
    return True


async def _main(n: int) -> None:
    loop = asyncio.get_running_loop()
    rest_mod.limit_for = lambda path: 1e9  # type: ignore[assignment]  # no token waits here
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    rest = BitunixRest(RestConfig(base_url=f"http://127.0.0.1:{port}", api_key="k", secret="s"))
    venue = LiveVenue(rest, BitunixWs(WsConfig(url=f"ws://127.0.0.1:{port}/private/")))
    await rest.open()
    runner = TaskRunner(loop)

    def req(cid: str) -> OrderRequest:
        return OrderRequest(
            client_id=cid, symbol="BTCUSDT", side=Side.BUY, qty=Decimal("0.001"),
            price=Decimal("60000"),
        )  # fmt: skip

    warm = loop.create_task(venue.place(req("warm")))
    while not select.select([srv], [], [], 0)[0]:
        await asyncio.sleep(0.001)
    conn, _ = srv.accept()
    while not _read(conn, "warm", 0):
        await asyncio.sleep(0.001)
    conn.sendall(_answer("warm"))
    await warm

    async def call(cid: str) -> None:
        await venue.place(req(cid))

    ways: dict[str, Callable[[str], Any]] = {
        "start": lambda cid: runner.start(call(cid)),
        "create_task": lambda cid: runner._track(loop.create_task(call(cid))),
    }
    cost: dict[str, list[int]] = {k: [] for k in ways}
    written = dict.fromkeys(ways, 0)
    for i in range(n):
        for name, way in ways.items() if i % 2 else reversed(ways.items()):
            cid = f"{name}-{i}"
            done: asyncio.Future[bool] = loop.create_future()

            def cb(
                way: Callable[[str], Any] = way,
                cid: str = cid,
                name: str = name,
                done: asyncio.Future[bool] = done,
            ) -> None:
                t0 = time.perf_counter_ns()
                way(cid)
                cost[name].append(time.perf_counter_ns() - t0)
                done.set_result(_read(conn, cid, 0))  # on the socket before the loop ran on?

            loop.call_soon(cb)
            if await done:
                written[name] += 1
            else:
                while not _read(conn, cid, 0):  # written by a later turn of the loop
                    await asyncio.sleep(0)
            conn.sendall(_answer(cid))
            while runner.busy:
                await asyncio.sleep(0)
            runner.check()
    await rest.close()
    conn.close()
    srv.close()
    base = np.percentile(cost["create_task"], (50, 99)) / 1e3
    for name in ways:
        p = np.percentile(cost[name], (50, 99)) / 1e3
        print(
            f"{name}: p50 {p[0]:.1f} p99 {p[1]:.1f} us = {p[0] / base[0]:.1f} / "
            f"{p[1] / base[1]:.1f} x create_task; on the socket at return {written[name]}/{n}"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 300
    if "--uvloop" in args:
        import uvloop

        uvloop.run(_main(n))
    else:
        asyncio.run(_main(n))
