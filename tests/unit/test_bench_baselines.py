"""tick_to_order's baselines (a) and (b) give execution each book as a record of its own.

Both feeders reuse one buffer for the book they decide (baseline (b)'s ``UserClient.book``,
baseline (a)'s ``BookBatch``), while execution keeps each symbol's newest book for the paper
venue as views of its row (procs.trading.paper's ``RecordBook``). Handed the buffer itself,
every kept book read as the last one decided, whatever its symbol: ETH's paper book and mark
price were BTC's, most orders were refused for the mark collar and the baselines did less
work than the pipeline they are compared with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.bench._tick_asyncio import UserClient
from tests.bench._tick_chain import Decider, execution_config
from tests.bench._tick_group import Ports, bench_config

MIDS = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}


def _depth(symbol: str, mid: float, ts_ms: int) -> str:
    half = mid * 1e-4
    levels = 15
    bids = [[f"{mid - half - i * 0.1:.2f}", "1.0"] for i in range(levels)]
    asks = [[f"{mid + half + i * 0.1:.2f}", "1.0"] for i in range(levels)]
    return json.dumps(
        {"ch": "depth_book15", "symbol": symbol, "ts": ts_ms, "data": {"b": bids, "a": asks}}
    )


@pytest.fixture
def decider(tmp_path: Path) -> Iterator[Decider]:
    text = bench_config(500.0, Ports.free(), tmp_path)  # ports unused: no group is started
    loop = asyncio.new_event_loop()
    d = Decider(execution_config(text, tmp_path), loop)
    try:
        loop.run_until_complete(d.open())
        yield d
    finally:
        loop.run_until_complete(d.aclose())
        d.close()
        loop.close()


def test_each_symbol_keeps_its_own_paper_book(decider: Decider) -> None:
    user = UserClient(decider)
    ts = 1_700_000_000_000
    # BTC, then ETH, in the same buffer, three times: after the first books (converted at
    # once: orders are placed on them) execution keeps the books as they came
    for k in range(3):
        for i, (symbol, mid) in enumerate(MIDS.items()):
            user.on_message(_depth(symbol, mid, ts + 2 * k + i), 1_000 + 2 * k + i)
            decider.pump()
    marks = decider.loop.run_until_complete(decider.proc.venue.marks(list(MIDS)))
    assert set(marks) == set(MIDS)
    for symbol, mid in MIDS.items():
        assert abs(marks[symbol] - Decimal(str(mid))) < Decimal("0.01"), (symbol, marks)
