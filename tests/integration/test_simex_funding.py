"""simex settles funding on its own schedule and on request; REST and the price channel agree."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers.poll import eventually
from tests.helpers.simex_proc import http, rest, run_simex, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sx(tmp_path_factory):
    cfg = "funding_interval_s = 1.0\n"  # a settlement every second
    with run_simex(write_config(tmp_path_factory.mktemp("sxfund"), cfg)) as s:
        yield s


def legs(sx, key: int) -> list[dict]:
    _, body = rest(sx, "GET", "/position/get_pending_positions", {}, key=key)
    return list(body["data"] or [])


def test_simex_open_long_pays_funding_every_interval_and_wallet_follows(sx):
    order = {"symbol": "BTCUSDT", "side": "BUY", "orderType": "MARKET", "qty": "0.01"}
    _, placed = rest(sx, "POST", "/trade/place_order", order, key=1)
    assert placed["code"] == 0, placed
    eventually(lambda: legs(sx, 1), timeout_s=5, interval_s=0.2)

    eventually(lambda: Decimal(legs(sx, 1)[0]["funding"]) < 0, timeout_s=5, interval_s=0.2)
    first = Decimal(legs(sx, 1)[0]["funding"])
    eventually(lambda: Decimal(legs(sx, 1)[0]["funding"]) < first, timeout_s=5, interval_s=0.2)

    _, hist = rest(sx, "GET", "/market/get_funding_rate_history", {"symbol": "BTCUSDT"}, key=None)
    assert len(hist["data"]) >= 2
    assert hist["data"][0]["fundingRate"] == "0.0001"
    _, rate = rest(sx, "GET", "/market/funding_rate", {"symbol": "BTCUSDT"}, key=None)
    assert rate["data"][0]["fundingRate"] == "0.0001"


def test_simex_control_settle_rejects_unknown_symbol_and_settles_now(sx):
    url = sx.control_url + "/_simex/funding/settle"
    status, out = http("POST", url, b'{"rates": {"NOPEUSDT": "0.1"}}')
    assert status == 400
    assert "NOPEUSDT" in out["error"]

    status, out = http("POST", url, b'{"rates": {"ETHUSDT": "0.05"}}')
    assert status == 200
    assert out["settled"] >= 0
