"""simex's small parts: faults, token buckets, WS framing, top-N change test, venue, config."""

from __future__ import annotations

import struct
from decimal import Decimal as D

import msgspec
import pytest

from procs.exchange.engine import Exchange
from procs.exchange.model import SymbolSpec, TradeEvent, fmt, iso_ms
from procs.matching.book import OrderBook, Resting
from procs.simex.config import SimexConfig, load_config
from procs.simex.faults import Faults
from procs.simex.rest import TokenBuckets
from procs.simex.venue import Venue
from procs.simex.ws import _touches_top, ws_text_frame


class RecordingSink:
    def __init__(self) -> None:
        self.privates: list[tuple[str, str, dict]] = []
        self.trade_batches: list[tuple[str, list[TradeEvent]]] = []
        self.books: list[str] = []

    def private(self, account, channel, data) -> None:
        self.privates.append((account, channel, data))

    def trades(self, symbol, trades) -> None:
        self.trade_batches.append((symbol, list(trades)))

    def book_changed(self, symbol, book) -> None:
        self.books.append(symbol)


def test_faults_rates_are_seeded_and_reset_restarts_the_stream():
    a, b = Faults(3), Faults(3)
    a.update({"rest_error_rate": 0.5})
    b.update({"rest_error_rate": 0.5})

    seq_a = [a.rest_fault() for _ in range(50)]
    seq_b = [b.rest_fault() for _ in range(50)]
    a.reset()

    assert seq_a == seq_b
    assert set(seq_a) == {"error", None}
    assert a.rest_fault() is None
    assert a.injected_total["error"] == seq_a.count("error")


def test_faults_update_rejects_unknown_and_out_of_range_fields():
    f = Faults(1)

    with pytest.raises(msgspec.ValidationError, match="nope"):
        f.update({"nope": 1})
    with pytest.raises(msgspec.ValidationError):
        f.update({"rest_error_rate": 2.0})

    assert f.state.rest_error_rate == 0.0


def test_faults_stall_scope_and_clock_skew():
    f = Faults(1)

    f.update({"ws_stall_s": 30.0, "ws_stall_scope": "private", "clock_skew_ms": -5000})

    assert f.stalled(private=True)
    assert not f.stalled(private=False)
    f.update({"ws_stall_s": 0})
    assert not f.stalled(private=True)


def test_token_bucket_allows_rate_per_second_then_refuses_then_refills():
    tb = TokenBuckets()

    first = [tb.take(("k", "/p"), 10.0, now=100.0) for _ in range(12)]
    other = tb.take(("k2", "/p"), 10.0, now=100.0)
    later = tb.take(("k", "/p"), 10.0, now=100.5)

    assert first.count(True) == 10
    assert first[10:] == [False, False]
    assert other
    assert later


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536])
def test_ws_text_frame_header_encodes_length(n):
    payload = b"x" * n

    frame = ws_text_frame(payload)

    assert frame[0] == 0x81
    if n < 126:
        assert frame[1] == n
    elif n < 65536:
        assert struct.unpack("!H", frame[2:4])[0] == n
    else:
        assert struct.unpack("!Q", frame[2:10])[0] == n
    assert frame.endswith(payload)


def test_touches_top_ignores_changes_below_the_top_n():
    book = OrderBook("X")
    for i in range(20):
        book.add(Resting(f"b{i}", None, True, D(100 - i), D(1)))
        book.add(Resting(f"a{i}", None, False, D(101 + i), D(1)))

    assert not _touches_top(book, {(True, D(85))}, 5)
    assert _touches_top(book, {(True, D(96))}, 5)
    assert _touches_top(book, {(False, D(105))}, 5)
    assert not _touches_top(book, {(False, D(106))}, 5)
    assert _touches_top(book, {(True, D(85))}, 16)


def test_venue_flush_groups_trades_and_builds_candles():
    spec = SymbolSpec(symbol="X", base="X", base_precision=1, quote_precision=0, min_qty=D("0.1"))
    ex = Exchange([spec], {})
    sink = RecordingSink()
    venue = Venue(ex, sink, lambda: 0)
    ex.mm_add("X", "m1", False, D(101), D(1), 60_000)
    ex.mm_add("X", "m2", False, D(102), D(1), 60_000)

    ex.mm_take("X", True, D(2), 61_000)
    venue.flush()

    [(sym, trades)] = sink.trade_batches
    assert sym == "X"
    assert [t.price for t in trades] == [D(101), D(102)]
    assert sink.books == ["X"]
    [c] = venue.klines("X", "1m", 10, None, None)
    assert (c.open, c.high, c.close, c.base_vol) == (D(101), D(102), D(102), D(2))
    assert venue.ticker("X")["last"] == D(102)


def test_fmt_and_iso_render_like_the_venue():
    assert fmt(D("60000.10")) == "60000.1"
    assert fmt(D("1E+2")) == "100"
    assert fmt(D("0.000100")) == "0.0001"
    assert iso_ms(1_732_178_884_994) == "2024-11-21T08:48:04.994000000Z"


def test_config_defaults_run_two_symbols_with_a_demo_key():
    cfg = SimexConfig()

    assert [s.symbol for s in cfg.symbols] == ["BTCUSDT", "ETHUSDT"]
    assert cfg.host == "127.0.0.1"
    assert cfg.keys[0].account == cfg.accounts[0].name


def test_config_key_for_unknown_account_is_refused(tmp_path):
    from procs._config import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[simex]\n[[simex.keys]]\napi_key = "k"\nsecret = "s"\naccount = "ghost"\n')

    with pytest.raises(ConfigError, match="ghost"):
        load_config(path)
