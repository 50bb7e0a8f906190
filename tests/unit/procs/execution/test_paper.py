"""Paper fill model: crossing, queue position, market/IOC/FOK walks, post-only, fees."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from procs.trading.config import PaperConfig
from procs.trading.instruments import DecimalGrid
from procs.trading.model import OrderStatus, Side, TimeInForce
from procs.trading.orders import OrderTracker
from procs.trading.paper import (
    BookLevels,
    PaperVenue,
    RecordBook,
    TradePrint,
    book_from_record,
    level_qty,
    levels,
)
from procs.trading.positions import PositionBook
from shm.records import BOOK_V1

from .helpers import btc, req

D = Decimal
CFG = PaperConfig(maker_fee_rate=D("0.0002"), taker_fee_rate=D("0.0006"), queue_ahead_fraction=1.0)
BOOK = BookLevels(
    "BTCUSDT",
    bids=levels(("99.5", "3"), ("99.0", "5")),
    asks=levels(("100.0", "1"), ("100.5", "2"), ("101.0", "4")),
)


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int = 0) -> BookLevels:
    return BookLevels("BTCUSDT", levels(*bids), levels(*asks), ts)


def test_paper_market_buy_walks_asks_with_taker_fee():
    v = PaperVenue(CFG)
    ack, first, done = v.submit(req(qty="2", price=None), BOOK, 1_000_000)
    assert (ack.status, ack.filled_qty) == ("NEW", D(0))
    assert (first.status, first.filled_qty, first.avg_price) == ("PART_FILLED", D(1), D(100))
    assert (done.status, done.filled_qty, done.avg_price) == ("FILLED", D(2), D("100.25"))
    assert done.fee == (D("100") + D("100.5")) * D("0.0006")


def test_paper_ioc_limit_fills_what_crosses_then_cancels():
    v = PaperVenue(CFG)
    *_, done = v.submit(req(qty="3", price="100.0", tif=TimeInForce.IOC), BOOK, 0)
    assert (done.status, done.filled_qty) == ("PART_FILLED_CANCELED", D(1))
    assert v.open_orders() == []


def test_paper_fok_without_enough_liquidity_cancels_unfilled():
    v = PaperVenue(CFG)
    [u] = v.submit(req(qty="4", price="100.5", tif=TimeInForce.FOK), BOOK, 0)
    assert (u.status, u.filled_qty) == ("CANCELED", D(0))
    *_, ok = PaperVenue(CFG).submit(req(qty="3", price="100.5", tif=TimeInForce.FOK), BOOK, 0)
    assert (ok.status, ok.filled_qty) == ("FILLED", D(3))


def test_paper_post_only_crossing_is_cancelled():
    [u] = PaperVenue(CFG).submit(req(qty="1", price="100.0", tif=TimeInForce.POST_ONLY), BOOK, 0)
    assert u.status == "CANCELED"


def test_paper_gtc_crossing_part_fills_then_rests():
    v = PaperVenue(CFG)
    _, u = v.submit(req(qty="2", price="100.0"), BOOK, 0)
    assert (u.status, u.filled_qty) == ("PART_FILLED", D(1))
    assert [o.client_id for o in v.open_orders()] == ["br-1-1"]


def test_paper_queue_position_consumed_by_trades_at_our_price():
    v = PaperVenue(CFG)
    v.submit(req(qty="2", price="99.5", tif=TimeInForce.POST_ONLY), BOOK, 0)  # 3 ahead
    assert v.on_trade(TradePrint("BTCUSDT", D("99.5"), D(2), Side.SELL)) == []  # 1 ahead
    assert v.on_trade(TradePrint("BTCUSDT", D("99.5"), D(9), Side.BUY)) == []  # buyer-initiated
    [u] = v.on_trade(TradePrint("BTCUSDT", D("99.5"), D("1.5"), Side.SELL))
    assert (u.status, u.filled_qty, u.fee) == (
        "PART_FILLED",
        D("0.5"),
        D("0.5") * D("99.5") * D("0.0002"),
    )
    [u] = v.on_trade(TradePrint("BTCUSDT", D("99.0"), D(10), Side.SELL))  # through our price
    assert (u.status, u.filled_qty, u.avg_price) == ("FILLED", D(2), D("99.5"))


def test_paper_queue_shrinks_when_level_is_cancelled():
    v = PaperVenue(CFG)
    v.submit(req(qty="1", price="99.5"), BOOK, 0)
    assert v.on_book(book([("99.5", "0.5")], [("100.0", "1")])) == []
    [u] = v.on_trade(TradePrint("BTCUSDT", D("99.5"), D("1"), Side.SELL))
    assert u.filled_qty == D("0.5")


def test_paper_resting_fills_when_opposite_best_crosses():
    v = PaperVenue(CFG)
    v.submit(req(qty="1", price="99.5"), BOOK, 0)
    assert v.on_book(book([("99.5", "3")], [("99.6", "1")])) == []
    [u] = v.on_book(book([("99.3", "3")], [("99.4", "1")], ts=5_000_000))
    assert (u.status, u.filled_qty, u.avg_price, u.mtime_ms) == ("FILLED", D(1), D("99.5"), 5)
    sell = PaperVenue(CFG)
    sell.submit(req(side=Side.SELL, qty="1", price="100.5"), BOOK, 0)
    [s] = sell.on_book(book([("100.6", "1")], [("100.7", "1")]))
    assert s.status == "FILLED"


def test_paper_touching_opposite_fills_beyond_queue():
    v = PaperVenue(CFG)
    v.submit(req(qty="2", price="99.5"), BOOK, 0)  # 3 ahead
    [u] = v.on_book(book([("99.4", "3")], [("99.5", "1")]))  # bids at 99.5 gone: queue empty
    assert u.filled_qty == D(1)


def test_paper_cancel_and_query():
    v = PaperVenue(CFG)
    v.submit(req(qty="1", price="99.0"), BOOK, 0)
    [u] = v.cancel("br-1-1", 1)
    assert u.status == "CANCELED"
    assert v.cancel("br-1-1", 2) == []
    assert v.query("br-1-1").status == "CANCELED"
    assert v.query("nope") is None


def test_paper_events_drive_tracker_and_positions_like_the_venue():
    v, t, pb = PaperVenue(CFG), OrderTracker(ack_timeout_s=5, cancel_timeout_s=5), PositionBook()
    r = req(qty="3", price="100.5", tif=TimeInForce.IOC)
    t.add_intent(r, 0)
    t.mark_sent(r.client_id, 0)
    for u in v.submit(r, BOOK, 0):
        tr = t.on_venue_update(u, 1)
        for f in tr.fills if tr else ():
            pb.apply_fill(f)
    assert t.get(r.client_id).status is OrderStatus.FILLED
    p = pb.position("BTCUSDT")
    assert (p.qty, p.cost) == (D(3), D("100") + 2 * D("100.5"))


def test_book_from_record_converts_to_instrument_grid():
    rec = np.zeros(1, dtype=BOOK_V1)[0]
    rec["n_bids"], rec["n_asks"] = 2, 1
    rec["bid_px"][:2] = [60000.1, 60000.0]
    rec["bid_qty"][:2] = [0.5, 1.00000001]
    rec["ask_px"][0], rec["ask_qty"][0] = 60000.2, 0.25
    b = book_from_record(rec, btc())
    assert b.bids == ((D("60000.1"), D("0.5000")), (D("60000.0"), D("1.0000")))
    assert b.asks == ((D("60000.2"), D("0.2500")),)


def test_paper_may_fill_buy_only_when_best_ask_at_or_through_its_price():
    v = PaperVenue(CFG)
    v.submit(req(qty="1", price="99.5"), BOOK, 0)  # rests: best ask 100.0

    assert v.may_fill("BTCUSDT", D("99.0"), D("99.6")) is False
    assert v.may_fill("BTCUSDT", D("99.0"), D("99.5")) is True  # touching: the queue decides
    assert v.may_fill("BTCUSDT", D("99.0"), D("99.4")) is True
    assert v.may_fill("ETHUSDT", D("1"), D("2")) is False  # another symbol's book


def test_paper_may_fill_sell_only_when_best_bid_at_or_through_its_price():
    v = PaperVenue(CFG)
    v.submit(req(side=Side.SELL, qty="1", price="100.5"), BOOK, 0)  # rests: best bid 99.5

    assert v.may_fill("BTCUSDT", D("100.4"), D("101")) is False
    assert v.may_fill("BTCUSDT", D("100.5"), D("101")) is True
    assert v.may_fill("BTCUSDT", D("100.6"), D("101")) is True


def test_paper_may_fill_false_agrees_with_on_book_filling_nothing():
    v = PaperVenue(CFG)
    v.submit(req(cid="a", qty="1", price="99.5"), BOOK, 0)
    v.submit(req(cid="b", side=Side.SELL, qty="1", price="100.5"), BOOK, 0)
    moved = book([("99.5", "1"), ("99.4", "2")], [("100.4", "1"), ("100.6", "2")])

    assert v.may_fill("BTCUSDT", D("99.5"), D("100.4")) is False
    assert v.on_book(moved) == []


def test_paper_may_fill_ignores_orders_no_longer_open():
    v = PaperVenue(CFG)
    v.submit(req(cid="a", qty="1", price="99.5"), BOOK, 0)
    v.cancel("a", 0)

    assert v.may_fill("BTCUSDT", D("99.0"), D("99.4")) is False
    assert v.open_orders() == []
    assert v.query("a").status == "CANCELED"  # still answered after leaving the scan


def _record_book(rng: np.random.Generator, bid_ticks: int, ask_ticks: int) -> np.ndarray:
    rec = np.zeros(1, dtype=BOOK_V1)
    rec["symbol_id"], rec["n_bids"], rec["n_asks"] = 1, 15, 15
    rec["bid_px"][0] = [(bid_ticks - g) / 10 for g in np.cumsum(rng.integers(1, 3, 15)) - 1]
    rec["ask_px"][0] = [(ask_ticks + g) / 10 for g in np.cumsum(rng.integers(1, 3, 15)) - 1]
    rec["bid_qty"][0] = rng.integers(1, 30000, 15) / 10000
    rec["ask_qty"][0] = rng.integers(1, 30000, 15) / 10000
    return rec


def test_record_book_shrinks_queues_exactly_as_on_book_and_converts_only_on_demand():
    """Two venues with the same resting orders get the same random books: one as Decimal levels
    (on_book), one as records (shrink_queues) whenever may_fill says nothing can fill."""
    rng = np.random.default_rng(5)
    inst = btc()
    grids = (DecimalGrid(inst.tick), DecimalGrid(inst.step))
    full, lazy = PaperVenue(CFG), PaperVenue(CFG)
    start = book_from_record(_record_book(rng, 599990, 600010)[0], inst)
    for i, (side, px) in enumerate([(Side.BUY, "59998.8"), (Side.BUY, "59999.0"),
                                    (Side.SELL, "60001.2"), (Side.SELL, "60001.0")]):  # fmt: skip
        for v in (full, lazy):
            v.submit(req(cid=f"o{i}", side=side, qty="5", price=px), start, 0)
    shrunk = filled = 0
    for _ in range(300):
        mid = int(rng.integers(599985, 600015))
        rec = _record_book(rng, mid - 1, mid + 1)
        row = rec.tolist()[0]
        lazy_book = RecordBook(row, inst, grids)
        levels_book = book_from_record(rec[0], inst, grids)
        best = (levels_book.bids[0][0], levels_book.asks[0][0])
        if lazy.may_fill("BTCUSDT", *best):
            got = lazy.on_book(lazy_book)  # the record itself: it converts what is read
            assert got == full.on_book(levels_book)
            assert lazy_book._levels is None
            filled += len(got)
        else:
            lazy.shrink_queues(lazy_book)
            assert lazy_book._levels is None  # no level was converted
            assert full.on_book(levels_book) == []
            shrunk += 1
        assert [(o.front, o.filled, o.status) for o in lazy.matcher.orders.values()] == [
            (o.front, o.filled, o.status) for o in full.matcher.orders.values()
        ]
    assert shrunk > 50  # the no-fill path was exercised ...
    assert filled > 0  # ... and the fill path
    assert lazy_book.asks == levels_book.asks  # and converts to the same levels on demand


@given(
    st.sampled_from([("0.1", 60000.0), ("0.01", 3000.0), ("1e-8", 1e9), ("0.5", 0.5)]),
    st.lists(st.tuples(st.integers(-3, 3), st.floats(-0.7, 0.7), st.integers(1, 9)), max_size=15),
    st.integers(-2, 2),
)
def test_level_qty_equals_converting_every_level(grid, levels, at):
    # the float prefilter skips only levels that cannot round to the price
    tick_text, base = grid
    tick = Decimal(tick_text)
    to_px, to_qty = DecimalGrid(tick), DecimalGrid(Decimal("0.001"))
    prices = [base + (k + frac) * float(tick) for k, frac, _ in levels]
    qty = np.array([q * 0.001 for _, _, q in levels], dtype=np.float64)
    price = to_px(base) + at * tick
    want = sum(
        (to_qty(float(qty[i])) for i, p in enumerate(prices) if to_px(p) == price), Decimal(0)
    )
    assert level_qty(prices, qty, price, to_px, to_qty) == want


@given(
    st.sampled_from([("0.1", 60000.0), ("0.01", 3000.0), ("1e-8", 1e9), ("0.5", 0.5)]),
    st.lists(st.tuples(st.integers(-3, 3), st.floats(-0.7, 0.7)), max_size=15),
    st.integers(-2, 2),
    st.booleans(),
    st.booleans(),
)
@example(("0.1", 60000.0), [(-1, 0.0)], 0, True, False)  # an ask a tick under a buy's price
@example(("0.1", 60000.0), [(1, 0.0)], 0, False, False)  # a bid a tick over a sell's
@example(("0.1", 60000.0), [(-1, 0.49)], 0, True, False)  # rounds to a tick under
@example(("0.1", 60000.0), [(1, -0.49)], 0, False, False)
@example(("0.1", 60000.0), [(0, -0.49), (1, 0.0)], 0, True, False)  # at the price: not through
def test_record_book_crosses_as_its_levels_do(grid, levels, at, is_buy, converted):
    # the float prefilter skips only levels that cannot round through the price
    tick_text, base = grid
    tick = Decimal(tick_text)
    inst = btc(tick=tick)
    grids = (DecimalGrid(tick), DecimalGrid(inst.step))
    rec = np.zeros(1, dtype=BOOK_V1)
    rec["n_bids"] = rec["n_asks"] = len(levels)
    prices = [base + (k + frac) * float(tick) for k, frac in levels]
    rec["bid_px"][0, : len(prices)] = rec["ask_px"][0, : len(prices)] = prices
    rec["bid_qty"][0, : len(prices)] = rec["ask_qty"][0, : len(prices)] = 1.0
    lazy = RecordBook(rec.tolist()[0], inst, grids)
    full = book_from_record(rec[0], inst, grids)
    price = grids[0](base) + at * tick
    if converted:
        assert lazy.bids == full.bids
        assert lazy.asks == full.asks
    assert lazy.crosses(is_buy, price) is full.crosses(is_buy, price)
    want = any(
        (p < price if is_buy else p > price) for p, _ in (full.asks if is_buy else full.bids)
    )
    assert full.crosses(is_buy, price) is want


def test_paper_venue_memory_stays_bounded_over_a_long_run():
    v = PaperVenue(CFG)
    v.matcher.retain_final = 50
    v.submit(req("rest", qty="1", price="99.0", tif=TimeInForce.GTC), BOOK, 0)  # stays open
    for i in range(500):  # nothing crosses: each IOC is final at once
        v.submit(req(f"c{i}", qty="1", price="98.0", tif=TimeInForce.IOC), BOOK, i)
    assert len(v.matcher.orders) < 100
    assert len(v._req) == len(v.matcher.orders)
    assert v.query("c499") is not None
    assert v.query("c0") is None
    assert [o.client_id for o in v.open_orders()] == ["rest"]


def test_orders_placed_on_a_record_book_match_as_on_its_levels_converting_what_they_read():
    """Post-only quotes, crossing limits and IOCs placed on random books: the venue given the
    record (``RecordBook``) answers as the one given the Decimal levels, queue places included;
    a post-only quote that rests converts its opposite side only (and its own price's qty)."""
    rng = np.random.default_rng(11)
    inst = btc()
    grids = (DecimalGrid(inst.tick), DecimalGrid(inst.step))
    full, lazy = PaperVenue(CFG), PaperVenue(CFG)
    one_sided = 0
    for i in range(200):
        mid = int(rng.integers(599985, 600015))
        rec = _record_book(rng, mid - 1, mid + 1)
        row = rec.tolist()[0]
        lazy_book = RecordBook(row, inst, grids)
        levels_book = book_from_record(rec[0], inst, grids)
        side = Side.BUY if rng.integers(2) else Side.SELL
        ticks = mid + int(rng.integers(-4, 5))
        tif = [TimeInForce.POST_ONLY, TimeInForce.GTC, TimeInForce.IOC][i % 3]
        order = req(cid=f"o{i}", side=side, qty="0.5", price=str(Decimal(ticks) / 10), tif=tif)
        got = lazy.submit(order, lazy_book, 0)
        assert got == full.submit(order, levels_book, 0)
        if tif is TimeInForce.POST_ONLY and got[-1].status == "NEW":
            own = lazy_book._bids if side is Side.BUY else lazy_book._asks
            one_sided += own is None  # its own side: one level's qty, not converted
        assert [
            (o.front, o.level_qty, o.filled, o.status) for o in lazy.matcher.orders.values()
        ] == [(o.front, o.level_qty, o.filled, o.status) for o in full.matcher.orders.values()]
    assert one_sided > 10  # resting post-only quotes were placed, each converting one side
    assert lazy_book.bids == levels_book.bids  # either side converts to the same levels
    assert lazy_book.asks == levels_book.asks
