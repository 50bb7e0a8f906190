"""What execution waits for at start-up: the venue URLs it opens, by mode."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from procs.trading.compose import venue_urls
from procs.trading.config import ExecutionConfig

RULES = {"tick": Decimal("0.1"), "step": Decimal("0.001"), "min_qty": Decimal("0.001")}
VENUE = {"rest_url": "http://127.0.0.1:1", "ws_private_url": "ws://127.0.0.1:2/private/"}


def _cfg(mode: str, rules: bool = True, funding: bool = False) -> ExecutionConfig:
    sym = {"symbol": "BTCUSDT", "symbol_id": 0, **(RULES if rules else {})}
    raw = {"mode": mode, "symbols": [sym], "venue": VENUE, "paper": {"settle_funding": funding}}
    return msgspec.convert(raw, ExecutionConfig)


def test_live_waits_for_rest_and_private_ws():
    assert venue_urls(_cfg("live")) == [VENUE["rest_url"], VENUE["ws_private_url"]]


def test_paper_waits_only_when_it_calls_the_public_rest():
    assert venue_urls(_cfg("paper")) == []
    assert venue_urls(_cfg("paper", rules=False)) == [VENUE["rest_url"]]
    assert venue_urls(_cfg("paper", funding=True)) == [VENUE["rest_url"]]
