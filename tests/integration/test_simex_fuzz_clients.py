"""Hostile frames from the venue side (simex's ``/_simex/ws/fuzz``) against the real WS clients,
and simex's REST request log (``/_simex/requests``) that the chaos suite checks rates with.

Every fuzzed frame is counted and skipped; the session stays up (no reconnect, no new login),
and real pushes keep arriving after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from ipc.bitunix import errors
from ipc.bitunix.requests import PlaceOrder
from ipc.bitunix.rest import RestConfig
from ipc.bitunix.rest_api import BitunixRest
from ipc.bitunix.ws import BitunixWs
from procs.simex.fuzz import FRAME_KINDS
from tests.helpers.bitunix_ws_server import until
from tests.helpers.simex_proc import KEYS, control, http, run_simex, write_config
from tests.integration.test_bitunix_simex import rest_run, ws_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    cfg = write_config(tmp_path_factory.mktemp("fuzzsimex"))
    with run_simex(cfg) as proc:
        yield proc


async def _fuzz_then_pushes(
    sx: Any,
    ws: BitunixWs,
    scope: str,
    got: list[Any],
    provoke: Callable[[], Awaitable[None]] | None = None,
) -> tuple[dict[str, int], int, int, bool]:
    ws.start()
    await ws.wait_ready(5)
    if provoke is None:
        await until(lambda: bool(got), timeout_s=10)
    logins, reconnects = ws.logins_total, ws.reconnects_total
    sent = await asyncio.to_thread(control, sx, "/_simex/ws/fuzz", {"scope": scope})
    assert sent["sent"] >= len(FRAME_KINDS)
    await until(lambda: sum(ws.dispatcher.decode_errors_total.values()) >= 10, timeout_s=10)
    n = len(got)
    if provoke is not None:
        await provoke()
    await until(lambda: len(got) > n, timeout_s=10)  # real pushes still arrive after it
    still_up = ws.ready.is_set() and ws.reconnects_total == reconnects
    return dict(ws.dispatcher.decode_errors_total), logins, ws.logins_total, still_up


def test_public_client_counts_and_skips_every_hostile_frame(sx):
    got: list[Any] = []

    async def body(ws: BitunixWs) -> Any:
        ws.on("depth_books", got.append)
        ws.on("trade", got.append)
        ws.subscribe_many([("depth_books", "BTCUSDT"), ("trade", "BTCUSDT")])
        return await _fuzz_then_pushes(sx, ws, "public", got)

    errs, _, _, still_up = ws_run(sx, body)

    assert still_up, errs
    for reason in ("json", "oversized", "binary", "schema", "control"):
        assert errs.get(reason, 0) >= 1, errs
    assert errs.get("unknown_channel", 0) + errs.get("no_channel", 0) >= 1, errs


def test_private_client_counts_and_skips_every_hostile_frame(sx):
    got: list[Any] = []

    async def order_push() -> None:  # an order and its cancel: pushes after the fuzz
        cfg = RestConfig(base_url=sx.rest_url, api_key=KEYS[5][0], secret=KEYS[5][1])
        async with BitunixRest(cfg) as rest:
            depth = await rest.depth("BTCUSDT", 1)
            px = (Decimal(str(depth.bids[0][0])) * Decimal("0.8")).quantize(Decimal("0.1"))
            order = PlaceOrder(
                symbol="BTCUSDT", side="BUY", orderType="LIMIT", qty=Decimal("0.01"), price=px
            )
            await rest.place_order(order)
            await rest.cancel_all_orders("BTCUSDT")

    async def body(ws: BitunixWs) -> Any:
        ws.on("order", got.append)
        ws.on("balance", got.append)
        ws.subscribe_many([("order", None), ("balance", None), ("position", None)])
        return await _fuzz_then_pushes(sx, ws, "private", got, order_push)

    errs, logins_before, logins_after, still_up = ws_run(sx, body, key=6)

    assert still_up, errs
    assert logins_after == logins_before  # no new session for a bad frame
    for reason in ("json", "oversized", "binary", "schema", "control"):
        assert errs.get(reason, 0) >= 1, errs


def test_fuzz_endpoint_refuses_bad_bodies(sx):
    bodies: list[dict[str, Any]] = [
        {"scope": "nowhere"},
        {"kinds": ["nope"]},
        {"kinds": []},
        {"kinds": "garbage"},
    ]
    for body in bodies:
        status, out = http("POST", sx.control_url + "/_simex/ws/fuzz", json.dumps(body).encode())
        assert status == 400, (body, out)


def test_request_log_records_who_when_and_the_answer(sx):
    t0 = time.time_ns()

    async def body(rest: BitunixRest) -> Any:
        return await rest.account("USDT")

    rest_run(sx, 5, body)
    control(sx, "/_simex/faults", {"rate_limit_rate": 1.0})
    try:
        with pytest.raises(errors.RateLimited):
            rest_run(sx, 5, body, get_retries=0)
    finally:
        control(sx, "/_simex/faults/reset", {})
    entries = control(sx, f"/_simex/requests?since_ns={t0}")["entries"]
    mine = [e for e in entries if e[2] == KEYS[4][0]]
    assert [e[4] for e in mine] == [0, 10005], mine
    for arrived_ns, client_ts_ms, _, path, _, reduce_only in mine:
        assert path == "/api/v1/futures/account"
        assert abs(arrived_ns / 1e6 - client_ts_ms) < 5000
        assert reduce_only == 0
    status, out = http("GET", sx.control_url + "/_simex/requests?since_ns=x")
    assert status == 400, out
