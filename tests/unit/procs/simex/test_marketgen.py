"""Market generator: reproducible, realistic enough (uncrossed books, trades, rate)."""

from __future__ import annotations

from decimal import Decimal as D

from procs.exchange.marketgen import (
    BookSnapshot,
    GenSymbol,
    MarketGenerator,
    TakeAction,
    TradePrint,
)

SYMS = [
    GenSymbol(
        symbol="BTCUSDT", start_price=D(60000), tick=D("0.1"), min_qty=D("0.001"), step=D("0.001")
    ),
    GenSymbol(
        symbol="ETHUSDT", start_price=D(3000), tick=D("0.01"), min_qty=D("0.01"), step=D("0.01")
    ),
]


def test_events_until_same_seed_gives_identical_streams():
    a = list(MarketGenerator(SYMS, 11, events_per_s=500).events_until(2_000_000_000))
    b = list(MarketGenerator(SYMS, 11, events_per_s=500).events_until(2_000_000_000))

    assert a == b
    assert len(a) > 1000


def test_events_until_other_seed_differs():
    a = list(MarketGenerator(SYMS, 11, events_per_s=500).events_until(1_000_000_000))
    b = list(MarketGenerator(SYMS, 12, events_per_s=500).events_until(1_000_000_000))

    assert a != b


def test_events_until_books_stay_uncrossed_and_trades_are_lowercase():
    gen = MarketGenerator(SYMS, 3, events_per_s=1000)

    events = list(gen.events_until(3_000_000_000))

    books = [e for e in events if isinstance(e, BookSnapshot)]
    trades = [e for e in events if isinstance(e, TradePrint)]
    assert {t.side for t in trades} == {"buy", "sell"}
    assert all(b.bids[0][0] < b.asks[0][0] for b in books if b.bids and b.asks)
    assert all(list(b.bids) == sorted(b.bids, reverse=True) for b in books)
    assert {b.symbol for b in books} == {"BTCUSDT", "ETHUSDT"}
    assert max(len(b.bids) for b in books) == 15


def test_events_until_is_resumable_in_time_order():
    gen = MarketGenerator(SYMS, 5, events_per_s=800)

    first = list(gen.events_until(1_000_000_000))
    second = list(gen.events_until(2_000_000_000))

    ts = [e.ts_ns for e in first + second]
    assert ts == sorted(ts)
    assert all(e.ts_ns >= 1_000_000_000 for e in second)


def test_actions_until_rate_matches_configuration():
    gen = MarketGenerator(SYMS[:1], 9, events_per_s=2000, burst_prob=0.0)
    from procs.exchange.engine import Exchange
    from procs.exchange.model import SymbolSpec

    ex = Exchange([SymbolSpec(symbol="BTCUSDT", base="BTC", min_qty=D("0.001"))], {})

    n = sum(1 for _ in gen.actions_until(5_000_000_000, ex.books))

    assert 9000 < n < 11000


def test_skip_to_drops_paused_time():
    gen = MarketGenerator(SYMS[:1], 9, events_per_s=1000)
    from procs.exchange.engine import Exchange
    from procs.exchange.model import SymbolSpec

    ex = Exchange([SymbolSpec(symbol="BTCUSDT", base="BTC", min_qty=D("0.001"))], {})

    gen.skip_to(10_000_000_000)

    assert list(gen.actions_until(10_000_000_000, ex.books)) == []


def test_events_until_books_are_rarely_one_sided_and_several_levels_deep():
    gen = MarketGenerator(SYMS[:1], 7, events_per_s=200)

    books = [e for e in gen.events_until(120_000_000_000) if isinstance(e, BookSnapshot)]

    one_sided = sum(1 for b in books if not b.bids or not b.asks)
    depth = sorted(min(len(b.bids), len(b.asks)) for b in books)
    assert one_sided / len(books) < 0.001
    assert depth[len(depth) // 2] >= 8


def test_actions_until_is_lazy_and_reads_the_book_it_quotes_around():
    from procs.exchange.engine import Exchange
    from procs.exchange.marketgen import apply_action
    from procs.exchange.model import SymbolSpec

    gen = MarketGenerator(SYMS[:1], 9, events_per_s=1000)
    ex = Exchange([SymbolSpec(symbol="BTCUSDT", base="BTC", min_qty=D("0.001"))], {})

    takes = 0
    for a in gen.actions_until(2_000_000_000, ex.books):
        apply_action(ex, a, 0)
        takes += isinstance(a, TakeAction)

    assert ex.books["BTCUSDT"].best_bid() is not None
    assert ex.books["BTCUSDT"].best_ask() is not None
    assert takes > 100  # takes need both sides: the generator saw each action's result
