"""normalise: raw venue frames (through the real WS decoder) → BOOK_V1 / TRADE_V1 rows."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from ipc.bitunix.schemas_ws import DepthPush, TradePush
from ipc.bitunix.ws_dispatch import WsDispatcher
from procs.marketdata.normalise import (
    BookBatch,
    SymbolMap,
    TradeBatch,
    add_depth,
    add_trades,
    crossed,
    ms_to_ns,
    side_code,
)
from shm.records import BOOK_DEPTH, BOOK_V1, FLAG_CROSSED, FLAG_SNAPSHOT

TS_MS = 1_700_000_000_123
RECV_NS = 1_700_000_000_200_000_000


def _decode(frame: dict[str, Any], ts_recv_ns: int = RECV_NS) -> Any:
    got: list[Any] = []
    d = WsDispatcher()
    d.on(frame["ch"], got.append)
    d.on_text(json.dumps(frame).encode(), ts_recv_ns)
    assert d.decode_errors_total == {}, d.decode_errors_total
    [push] = got
    return push


def _depth(b: list[Any], a: list[Any], ch: str = "depth_book15") -> DepthPush:
    push: DepthPush = _decode(
        {"ch": ch, "symbol": "ETHUSDT", "ts": TS_MS, "data": {"b": b, "a": a}}
    )
    return push


def test_add_depth_string_levels_fill_prices_quantities_and_stamps():
    push = _depth([["100.5", "2"], ["100.4", "3.25"]], [["100.6", "1"]])
    batch = BookBatch(4)

    row = add_depth(batch, 1, push)

    rec = batch.take()[row]
    assert batch.n == 1
    assert (int(rec["symbol_id"]), int(rec["n_bids"]), int(rec["n_asks"])) == (1, 2, 1)
    assert rec["bid_px"][:2].tolist() == [100.5, 100.4]
    assert rec["bid_qty"][:2].tolist() == [2.0, 3.25]
    assert rec["ask_px"][0] == 100.6
    assert int(rec["ts_event_ns"]) == TS_MS * 1_000_000
    assert int(rec["ts_recv_ns"]) == RECV_NS
    assert int(rec["flags"]) == 0


def test_add_depth_number_levels_equal_string_levels():
    batch = BookBatch(2)

    add_depth(batch, 0, _depth([[100.5, 2]], [[100.6, 1]]))
    add_depth(batch, 0, _depth([["100.5", "2"]], [["100.6", "1"]]))

    a, b = batch.take()
    assert a.tobytes() == b.tobytes()


def test_add_depth_fewer_than_15_levels_nan_the_rest_even_on_reuse():
    batch = BookBatch(1)
    full = [[str(100 - i), "1"] for i in range(BOOK_DEPTH)]
    add_depth(batch, 0, _depth(full, [[str(101 + i), "1"] for i in range(BOOK_DEPTH)]))
    batch.clear()

    add_depth(batch, 0, _depth([["99", "1"], ["98", "2"], ["97", "3"]], []))

    rec = batch.take()[0]
    assert (int(rec["n_bids"]), int(rec["n_asks"])) == (3, 0)
    assert rec["bid_px"][:3].tolist() == [99.0, 98.0, 97.0]
    assert np.isnan(rec["bid_px"][3:]).all()
    assert np.isnan(rec["bid_qty"][3:]).all()
    assert np.isnan(rec["ask_px"]).all()
    assert np.isnan(rec["ask_qty"]).all()


def test_add_depth_more_than_15_levels_keeps_best_15():
    bids = [[str(1000 - i), "1"] for i in range(40)]
    batch = BookBatch(1)

    add_depth(batch, 0, _depth(bids, [["1001", "1"]]))

    rec = batch.take()[0]
    assert int(rec["n_bids"]) == BOOK_DEPTH
    assert rec["bid_px"][-1] == 1000 - (BOOK_DEPTH - 1)


def test_add_depth_crossed_book_sets_flag_crossed_and_keeps_other_flags():
    batch = BookBatch(2)

    add_depth(batch, 0, _depth([["101", "1"]], [["100", "1"]]), FLAG_SNAPSHOT)
    add_depth(batch, 0, _depth([["100", "1"]], [["100", "1"]]))

    flags = batch.take()["flags"].tolist()
    assert flags == [FLAG_CROSSED | FLAG_SNAPSHOT, FLAG_CROSSED]


def test_crossed_one_sided_or_empty_book_is_not_crossed():
    assert not crossed([(1.0, 1.0)], [])
    assert not crossed([], [(1.0, 1.0)])
    assert not crossed([(1.0, 1.0)], [(1.5, 1.0)])
    assert crossed([(1.5, 1.0)], [(1.5, 1.0)])


def test_book_batch_full_raises_and_add_copy_restamps():
    batch = BookBatch(1)
    add_depth(batch, 0, _depth([["1", "1"]], [["2", "1"]]))
    with pytest.raises(IndexError):
        add_depth(batch, 0, _depth([["1", "1"]], [["2", "1"]]))
    row = batch.take()[0].copy()
    batch.clear()

    batch.add_copy(row, ts_recv_ns=RECV_NS + 5, flags=7)

    rec = batch.take()[0]
    assert int(rec["ts_recv_ns"]) == RECV_NS + 5
    assert int(rec["flags"]) == 7
    assert int(rec["ts_event_ns"]) == int(row["ts_event_ns"])
    np.testing.assert_array_equal(rec["bid_px"], row["bid_px"])  # NaN past n_bids


def _numpy_add(
    rec: Any, symbol_id: int, ts_event: int, ts_recv: int, bids: Any, asks: Any, flags: int
) -> None:
    """``BookBatch.add`` as it was first written: a numpy write per field (the reference the
    row written at once, now by ``_bookrow.pack``, must match byte for byte)."""
    rec["ts_event_ns"], rec["ts_recv_ns"], rec["symbol_id"] = ts_event, ts_recv, symbol_id
    for side, px, qty, levels in (("n_bids", "bid_px", "bid_qty", bids),
                                  ("n_asks", "ask_px", "ask_qty", asks)):  # fmt: skip
        n = min(len(levels), BOOK_DEPTH)
        if n:
            prices, sizes = zip(*levels[:n], strict=True)
            rec[px][:n], rec[qty][:n] = prices, sizes
        rec[px][n:] = rec[qty][n:] = np.nan
        rec[side] = n
    rec["flags"] = flags | (FLAG_CROSSED if crossed(bids, asks) else 0)


def test_book_row_packed_at_once_is_byte_identical_to_numpy_writes():
    rnd = random.Random(5)
    batch = BookBatch(8)
    ref = np.zeros(8, BOOK_V1)
    junk = np.frombuffer(rnd.randbytes(8 * BOOK_V1.itemsize), BOOK_V1)
    for name in BOOK_V1.names or ():  # junk in every field; the padding stays zero, as ever
        batch.records[name] = ref[name] = junk[name]
    for k in range(400):  # rows reused with every depth: nothing of an earlier book survives
        i = k % 8
        if i == 0:
            batch.clear()
        mid = rnd.uniform(1, 1e5)
        sides = []
        for sign in (-1, 1):
            n = 15 if k % 3 == 0 else rnd.choice([0, 1, 2, 7, 14, 15, 16, 40])  # 15: its path
            ints = rnd.random() < 0.2  # a REST snapshot's levels may be ints
            sides.append([
                (round(mid + sign * (j + rnd.random())) if ints else mid + sign * j * 0.1,
                 rnd.randint(0, 9) if ints else rnd.uniform(0, 5))
                for j in range(n)
            ])  # fmt: skip
        if rnd.random() < 0.2 and sides[0] and sides[1]:
            sides[0][0] = (sides[1][0][0] + rnd.choice([0.0, 0.5]), 1.0)  # crossed, or touching
        flags = rnd.choice([0, FLAG_SNAPSHOT, 7])
        ts_e, ts_r, sid = rnd.getrandbits(62), rnd.getrandbits(62), rnd.randrange(1000)

        row = batch.add(sid, ts_e, ts_r, sides[0], sides[1], flags)
        _numpy_add(ref[i], sid, ts_e, ts_r, sides[0], sides[1], flags)

        assert row == i
        assert batch.last_flags == int(ref[i]["flags"])
        ref["ts_pub_ns"][i] = 0  # the pack zeroes it (publish sets it)
        # the memory itself, padding included (a copy of a padded record copies only fields)
        assert batch.records[i : i + 1].tobytes() == ref[i : i + 1].tobytes(), (k, sides)


def test_book_row_levels_as_lists_equal_tuples_and_bad_levels_raise_leaving_the_batch():
    batch = BookBatch(2)
    bids, asks = [(100.0, 1.0), (99.5, 2)], [(100.5, 3.0)]
    batch.add(1, 10, 20, bids, asks)
    batch.add(1, 10, 20, [list(lv) for lv in bids], [list(lv) for lv in asks])
    assert batch.records[0].tobytes() == batch.records[1].tobytes()
    batch.clear()
    with pytest.raises(ValueError, match="bid level 1 is not a"):
        batch.add(1, 10, 20, [(100.0, 1.0), (99.0, 1.0, 5.0)], asks)
    with pytest.raises(ValueError, match="ask level 0 is not a"):
        batch.add(1, 10, 20, bids, [100.5])
    with pytest.raises(TypeError):
        batch.add(1, 10, 20, bids, [("100.5", 1.0)])
    with pytest.raises(OverflowError):
        batch.add(1 << 40, 10, 20, bids, asks)
    assert batch.n == 0  # nothing was added
    batch.add(2, 10, 20, bids, asks)
    assert batch.n == 1
    assert int(batch.records["symbol_id"][0]) == 2


def _trades(ticks: list[dict[str, Any]], ts: int = TS_MS) -> TradePush:
    push: TradePush = _decode({"ch": "trade", "symbol": "BTCUSDT", "ts": ts, "data": ticks})
    return push


def test_add_trades_event_time_is_the_push_ms_ts_not_the_ticks_whole_seconds():
    # the venue's own example (shared/reference/bitunix-api.md): ts has ms, t whole seconds
    push = _trades(
        [
            {"t": "2026-04-07T05:47:52Z", "p": "68621.4", "v": "0.7142", "s": "buy"},
            {"t": "2026-04-07T05:47:52Z", "p": "68621.4", "v": "0.0018", "s": "sell"},
        ],
        ts=1775540872598,
    )
    batch = TradeBatch(4)

    assert add_trades(batch, 0, push) == 2

    assert batch.take()["ts_event_ns"].tolist() == [1_775_540_872_598_000_000] * 2


def test_add_trades_push_without_ts_falls_back_to_tick_time():
    push = _trades([{"t": "2026-04-07T05:47:52Z", "p": "1", "v": "1", "s": "buy"}], ts=0)
    batch = TradeBatch(1)

    add_trades(batch, 0, push)

    assert batch.take()["ts_event_ns"].tolist() == [1_775_540_872_000_000_000]


def test_add_trades_iso_times_string_numbers_and_side_case():
    push = _trades(
        [
            {"t": "2024-05-01T12:00:00.123Z", "p": "60000.5", "v": "0.01", "s": "buy"},
            {"t": "2024-05-01T12:00:00.123456789Z", "p": 60001, "v": 2, "s": "Sell"},
            {"t": 1714564800124, "p": "60002", "v": "0.5", "s": "BUY"},
        ]
    )
    batch = TradeBatch(8)

    assert add_trades(batch, 0, push) == 3

    recs = batch.take()
    assert recs["ts_event_ns"].tolist() == [TS_MS * 1_000_000] * 3  # the push's ts
    assert recs["ts_recv_ns"].tolist() == [RECV_NS] * 3
    assert recs["side"].tolist() == [1, -1, 1]
    assert recs["px"].tolist() == [60000.5, 60001.0, 60002.0]
    assert recs["qty"].tolist() == [0.01, 2.0, 0.5]
    assert recs["symbol_id"].tolist() == [0, 0, 0]


def test_add_trades_stops_when_full_and_resumes_from_returned_index():
    push = _trades([{"t": TS_MS, "p": str(1 + i), "v": "1", "s": "buy"} for i in range(5)])
    batch = TradeBatch(2)
    seen: list[float] = []

    k = 0
    while k < 5:
        k = add_trades(batch, 3, push, k, flags=FLAG_SNAPSHOT)
        seen += batch.take()["px"].tolist()
        batch.clear()

    assert seen == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_side_code_accepts_any_case_and_refuses_others():
    assert [side_code(s) for s in ("BUY", "buy", "Sell")] == [1, 1, -1]
    with pytest.raises(ValueError, match="side"):
        side_code("LONG")


def test_symbol_map_ids_follow_config_order_and_unknown_is_minus_one():
    m = SymbolMap(["BTCUSDT", "ETHUSDT"])

    assert (m.id("BTCUSDT"), m.id("ETHUSDT"), m.id("XRPUSDT")) == (0, 1, -1)
    assert m.name(1) == "ETHUSDT"
    assert len(m) == 2
    with pytest.raises(ValueError, match="unique"):
        SymbolMap(["A", "A"])


def test_ms_to_ns_scales_by_a_million():
    assert ms_to_ns(TS_MS) == TS_MS * 1_000_000
