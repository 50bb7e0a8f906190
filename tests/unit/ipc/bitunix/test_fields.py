"""Tolerant field decoding: times, enums, money, data as object or list."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from ipc.bitunix.errors import (
    BitunixError,
    DuplicateClientId,
    ModeChangeBlocked,
    ParameterError,
    RateLimited,
    VenueError,
    error_for_code,
)
from ipc.bitunix.fields import decoder, parse_time_ms
from ipc.bitunix.schemas_rest import Account, Order, Position
from ipc.bitunix.schemas_ws import TpslPush


@pytest.mark.parametrize(
    ("wire", "ms"),
    [
        (1691382137448, 1691382137448),
        ("1691382137448", 1691382137448),
        ("2025-04-26T17:06:13.155255000Z", 1745687173155),
        ("2026-04-07T05:47:52Z", 1775540872000),
        ("2024-12-04T19:00:00+08:00", 1733310000000),
    ],
)
def test_parse_time_ms_any_spelling_gives_epoch_ms(wire, ms):
    assert parse_time_ms(wire) == ms


@pytest.mark.parametrize(("wire", "side"), [("BUY", "LONG"), ("sell", "SHORT"), ("Long", "LONG")])
def test_position_side_buy_sell_normalised_to_long_short(wire, side):
    raw = b'{"positionId":1,"symbol":"X","qty":"1","side":"%s"}' % wire.encode()

    assert decoder(Position).decode(raw).side == side


def test_order_mixed_case_enums_and_market_price_decode():
    raw = (
        b'{"orderId":7,"symbol":"X","qty":0.1,"side":"Sell","orderType":"Market",'
        b'"price":"market","tpStopType":"Last","slStopType":"MARK","tpPrice":"",'
        b'"effect":"post_only","status":"part_filled"}'
    )

    o = decoder(Order).decode(raw)

    assert (o.side, o.orderType, o.tpStopType, o.slStopType) == (
        "SELL",
        "MARKET",
        "LAST_PRICE",
        "MARK_PRICE",
    )
    assert (o.effect, o.status) == ("POST_ONLY", "PART_FILLED")
    assert o.price is None
    assert o.tpPrice is None
    assert o.qty == Decimal("0.1")
    assert o.orderId == "7"


def test_money_from_json_number_is_exact_decimal():
    raw = b'{"marginCoin":"USDT","available":1234567890.123456789,"frozen":"0.1"}'

    a = decoder(Account).decode(raw)

    assert a.available == Decimal("1234567890.123456789")
    assert type(a.frozen) is Decimal or isinstance(a.frozen, Decimal)


def test_tpsl_push_data_object_or_list_gives_items():
    one = b'{"ch":"tpsl","ts":1,"data":{"event":"create","orderId":"1","status":"NEW"}}'
    many = b'{"ch":"tpsl","ts":"2","data":[{"event":"CLOSE","orderId":"1"}]}'

    a, b = decoder(TpslPush).decode(one), decoder(TpslPush).decode(many)

    assert [e.event for e in a.items] == ["CREATE"]
    assert [e.event for e in b.items] == ["CLOSE"]
    assert b.ts == 2


def test_unknown_fields_ignored_and_bad_money_rejected():
    ok = b'{"marginCoin":"USDT","available":"1","whatever":{"x":[1,2]}}'
    bad = b'{"marginCoin":"USDT","available":"lots"}'

    assert decoder(Account).decode(ok).available == 1
    with pytest.raises(msgspec.ValidationError):
        decoder(Account).decode(bad)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10005, RateLimited),
        (30042, DuplicateClientId),
        (20009, ModeChangeBlocked),
        (30017, ParameterError),
        (12345, VenueError),
    ],
)
def test_error_for_code_picks_class_and_keeps_code(code, cls):
    err = error_for_code(code, "m", endpoint="/x")

    assert type(err) is cls
    assert isinstance(err, BitunixError)
    assert (err.code, err.msg, err.endpoint) == (code, "m", "/x")


def test_times_and_sides_converted_from_the_cache_as_the_first_time():
    # more distinct seconds than the cache keeps, each spelling twice: the second answer (from
    # the cache, or after it started again) equals the first and the plain datetime reading
    import datetime as dt

    from ipc.bitunix import fields

    base = dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)
    for i in range(2 * fields._CACHE_MAX + 7):
        t = base + dt.timedelta(seconds=i, microseconds=1000 * (i % 997))
        want = int(t.timestamp()) * 1000 + (i % 997)
        for text in (t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
                     t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123+00:00",
                     t.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()):  # fmt: skip
            assert parse_time_ms(text) == want, text
            assert parse_time_ms(text) == want, text
    assert len(fields._ISO_SECONDS) <= fields._CACHE_MAX
    dec = decoder(Position)
    for _ in range(2):
        for wire in ["buy", "BUY", " Sell ", "long", "short"]:
            got = dec.decode(
                b'{"positionId":"1","symbol":"BTCUSDT","qty":"1","side":"%s"}' % wire.encode()
            )
            assert got.side == {"BUY": "LONG", "SELL": "SHORT"}.get(w := wire.strip().upper(), w)
