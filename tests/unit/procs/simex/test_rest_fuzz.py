"""Every simex REST handler answers hostile parameters with an ExchangeError, never a crash."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procs.exchange.engine import Exchange
from procs.exchange.model import ExchangeError
from procs.simex.config import SimexConfig
from procs.simex.rest_handlers import ENDPOINTS
from procs.simex.venue import Venue

from .test_parts import RecordingSink

NAMES = [
    "symbol", "symbols", "side", "orderType", "qty", "price", "effect", "tradeSide",
    "positionId", "reduceOnly", "clientId", "orderId", "orderList", "limit", "skip", "interval",
    "startTime", "endTime", "type", "marginCoin", "leverage", "marginMode", "positionMode",
    "amount", "tpPrice", "tpStopType", "tpOrderType", "tpOrderPrice", "slPrice", "slStopType",
    "slOrderType", "slOrderPrice", "tpQty", "slQty", "status", "id",
]  # fmt: skip
WORDS = [
    "BTCUSDT", "ETHUSDT", "NOPE", "BUY", "SELL", "LIMIT", "MARKET", "GTC", "IOC", "POST_ONLY",
    "OPEN", "CLOSE", "USDT", "HEDGE", "ONE_WAY", "CROSS", "ISOLATION", "1m", "MARK_PRICE", "0",
    "0.001", "60000", "-1", "1e400", "NaN", "Infinity", "-0", "", "true", "max", "9" * 50,
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=4)
    ),
    max_leaves=8,
)
params = st.dictionaries(st.sampled_from(NAMES), values, max_size=8)


@pytest.fixture(scope="module")
def venue() -> Venue:
    cfg = SimexConfig()
    ex = Exchange([s.spec() for s in cfg.symbols], {"demo": Decimal(100000)})
    return Venue(ex, RecordingSink(), lambda: 1_700_000_000_000)


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=params)
def test_rest_handler_hostile_params_give_an_exchange_error_or_an_answer(venue, path, q):
    account = "demo" if ENDPOINTS[path][1] else ""
    query: dict[str, Any] = {k: str(v) for k, v in q.items()} if ENDPOINTS[path][0] == "GET" else q

    code = outcome(venue, path, account, query)

    assert 0 <= code < 40_000  # 0: answered; else one of the venue's codes (reference §3.1)


def outcome(venue: Venue, path: str, account: str, query: dict[str, Any]) -> int:
    try:
        ENDPOINTS[path][3](venue, account, query, 1_700_000_000_000)
    except ExchangeError as e:
        return e.code
    return 0
