"""simex's WS hub answers any JSON object a client sends, strict or not, without raising."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipc.bitunix.signing import new_nonce, sign_ws_login
from procs.exchange.engine import Exchange
from procs.simex.config import DEMO_API_KEY, DEMO_SECRET, LimitsConfig, SimexConfig
from procs.simex.faults import Faults
from procs.simex.venue import Venue
from procs.simex.ws import Conn, Hub


class Replies(Conn):
    """A connection without a socket that keeps what the hub answers."""

    def __init__(self, hub: Hub, private: bool) -> None:
        super().__init__(hub, private, "127.0.0.1")
        self.replies: list[Any] = []

    def reply(self, obj: object) -> None:
        self.replies.append(obj)


def make_hub(strict: bool) -> Hub:
    cfg = SimexConfig()
    faults = Faults(1)
    hub = Hub(
        faults, {k.api_key: k for k in cfg.keys}, LimitsConfig(), faults.now_ms, strict=strict
    )
    ex = Exchange([s.spec() for s in cfg.symbols], {"demo": Decimal(100000)})
    hub.venue = Venue(ex, hub, faults.now_ms)
    return hub


WORDS = ["login", "subscribe", "unsubscribe", "ping", "BTCUSDT", "order", "trade", DEMO_API_KEY]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS)
    | st.text(max_size=6)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["ch", "symbol", "apiKey", "timestamp", "nonce", "sign"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=10,
)
messages = st.fixed_dictionaries(
    {"op": st.sampled_from(["login", "subscribe", "unsubscribe", "ping", "other"]) | scalars},
    optional={"args": values, "ping": values},
)


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(msg=messages)
def test_hub_answers_any_message_without_raising(strict, private, msg):
    hub = make_hub(strict)
    conn = Replies(hub, private)

    hub.on_message(conn, msg)

    assert all(isinstance(r, dict) and "op" in r for r in conn.replies)


def test_hub_strict_login_as_documented_succeeds_and_replay_fails():
    hub = make_hub(strict=True)
    ts, nonce = int(time.time()), new_nonce()
    sign = sign_ws_login(nonce=nonce, timestamp_s=ts, api_key=DEMO_API_KEY, secret=DEMO_SECRET)
    msg = {
        "op": "login",
        "args": [{"apiKey": DEMO_API_KEY, "timestamp": ts, "nonce": nonce, "sign": sign}],
    }
    first, again = Replies(hub, True), Replies(hub, True)

    hub.on_message(first, msg)
    hub.on_message(again, msg)

    assert first.replies == [{"op": "login", "data": {"result": True}}]
    assert again.replies[0]["data"] == {"result": False}
    assert first.account == "demo"
    assert again.account == ""
