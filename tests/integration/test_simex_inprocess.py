"""The in-process API: ``Simex(config)`` on ports 0, then plain aiohttp REST and WS clients."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from procs.simex.app import Simex
from procs.simex.config import SimexConfig

pytestmark = pytest.mark.integration


async def _session(state_path: str) -> tuple[dict, dict, int]:
    sx = Simex(SimexConfig(rest_port=0, ws_port=0, control_port=0, state_path=state_path))
    await sx.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = sx.rest_url + "/api/v1/futures/market/tickers?symbols=ETHUSDT"
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                tickers = await r.json()
            async with http.ws_connect(
                sx.ws_public_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)
            ) as ws:
                greeting = json.loads((await ws.receive(timeout=5)).data)
                await ws.send_str(json.dumps({"op": "ping", "ping": 5}))
                pong = json.loads((await ws.receive(timeout=5)).data)
            async with http.get(sx.control_url + "/_simex/status") as r:
                status = await r.json()
        assert greeting["op"] == "connect"
        return tickers, pong, status["connections"]
    finally:
        await sx.stop()


def test_simex_in_process_binds_free_ports_and_saves_state_on_stop(tmp_path):
    state = tmp_path / "s.json"

    tickers, pong, connections = asyncio.run(_session(str(state)))

    assert tickers["code"] == 0
    assert tickers["data"][0]["symbol"] == "ETHUSDT"
    assert pong["pong"] == 5
    assert connections == 0  # the WS client had closed before the status call
    assert json.loads(state.read_text())["accounts"][0]["name"] == "demo"
