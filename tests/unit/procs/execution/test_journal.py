"""Journal: intent durable before send, crash recovery, duplicate fills, the audit chain."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from procs.trading.breaker import BreakerState, BreakerTransition, BreakerTrigger
from procs.trading.journal import SCHEMA_VERSION, Journal, _body
from procs.trading.journal_rows import Stored, intent_row, order_row, stored
from procs.trading.model import (
    Fill,
    FundingEvent,
    JournalError,
    OrderStatus,
    PositionSide,
    Side,
    TickStamps,
    TimeInForce,
    VenueOrderUpdate,
)
from procs.trading.orders import Order, OrderTracker
from procs.trading.positions import DailyPnl, PositionBook
from procs.trading.risk import Refusal, RefusalReason
from tests.helpers.journal_values import intent_values, order_values

from .helpers import req

D = Decimal
S = OrderStatus


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(path):
    j = Journal.open(path)
    yield j
    j.close()


def upd(
    cid: str, status: str, filled: str = "0", avg: str = "0", fee: str = "0", mtime: int = 0
) -> VenueOrderUpdate:
    return VenueOrderUpdate(
        client_id=cid,
        order_id="X" + cid,
        symbol="BTCUSDT",
        status=status,
        filled_qty=D(filled),
        avg_price=D(avg),
        fee=D(fee),
        mtime_ms=mtime,
    )


def sql(path: Path, query: str, args: tuple[object, ...] = ()) -> list[Any]:
    with closing(sqlite3.connect(path)) as c:
        rows = c.execute(query, args).fetchall()
        c.commit()
    return rows


def _trade(
    journal: Journal,
    tracker: OrderTracker,
    book: PositionBook,
    cid: str,
    side: Side,
    qty: str,
    px: str,
    final: str | None = "FILLED",
    now: int = 100,
) -> None:
    r = req(cid=cid, side=side, qty=qty, price=px)
    tracker.add_intent(r, now)
    journal.record_intent(r, now)
    tr = tracker.mark_sent(cid, now + 1)
    journal.record_transition(tr, now + 1)
    if final is None:
        return
    tr = tracker.on_venue_update(
        upd(cid, final, qty if final == "FILLED" else "0", px, "0.01"), now + 2
    )
    for f in journal.record_transition(tr, now + 2):
        book.apply_fill(f)


def test_journal_reopen_after_crash_rebuilds_open_orders_and_positions(path):
    live = Journal.open(path)
    tracker = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    book = PositionBook()
    _trade(live, tracker, book, "br-1-1", Side.BUY, "0.02", "60000")
    _trade(live, tracker, book, "br-1-2", Side.SELL, "0.005", "61000")
    _trade(live, tracker, book, "br-1-3", Side.BUY, "0.01", "59000", final="NEW")
    _trade(live, tracker, book, "br-1-4", Side.BUY, "0.01", "58000", final=None)  # SENT, no answer
    live.record_funding(FundingEvent(event_id="fund-1", symbol="BTCUSDT", amount=D("-0.5")))
    # crash: the live connection is never closed cleanly; a new process opens the same file
    after = Journal.open(path)
    rec = after.recover(hedge=False)
    by_id = {o.client_id: o for o in rec.orders}
    assert {c for c, o in by_id.items() if o.status.is_open} == {"br-1-3", "br-1-4"}
    assert by_id["br-1-3"].status is S.ACKED
    assert by_id["br-1-3"].order_id == "Xbr-1-3"
    assert by_id["br-1-4"].status is S.SENT
    assert by_id["br-1-1"] == tracker.get("br-1-1")
    p = rec.positions.position("BTCUSDT")
    live_p = book.position("BTCUSDT")
    assert (p.qty, p.cost, p.realised, p.fees) == (
        live_p.qty,
        live_p.cost,
        live_p.realised,
        live_p.fees,
    )
    assert p.qty == D("0.015")
    assert p.realised == D("5")  # 0.005 × (61000 − 60000)
    assert p.funding == D("-0.5")
    assert rec.last_client_id == "br-1-4"
    assert rec.fills_total == 2
    restored = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    restored.restore(rec.orders)
    assert [t.client_id for t in restored.recover_intents(200)] == ["br-1-4"]
    assert after.verify_audit().ok
    live.close()
    after.close()


def test_journal_duplicate_fill_ignored_and_not_audited(journal):
    f = Fill(
        fill_id="X1:0.01",
        client_id="br-1-1",
        order_id="X1",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=D("0.01"),
        price=D(60000),
        fee=D("0.02"),
        maker=True,
    )
    assert journal.record_fill(f) is True
    assert journal.record_fill(f) is False
    assert journal.count("fills") == 1
    assert journal.count("audit") == 2  # the schema_version meta row, the fill
    assert journal.recover(hedge=False).positions.position("BTCUSDT").qty == D("0.01")
    assert journal.verify_audit().ok


def test_journal_duplicated_transition_books_fill_once(journal):
    tracker = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    r = req(cid="br-1-1", qty="0.01")
    tracker.add_intent(r, 0)
    journal.record_intent(r, 0)
    tracker.mark_sent("br-1-1", 1)
    tr = tracker.on_venue_update(upd("br-1-1", "FILLED", "0.01", "60000"), 2)
    assert len(journal.record_transition(tr, 2)) == 1
    assert journal.record_transition(tr, 3) == []  # a replayed event: the state row, not the fill
    assert journal.count("fills") == 1


def test_journal_records_refusals_breaker_and_positions(journal):
    journal.record_refusal(Refusal(RefusalReason.ORDER_RATE, "9 orders", "br-1-1", "BTCUSDT", 5))
    journal.record_breaker(
        BreakerTransition(BreakerState.ACTIVE, BreakerState.HALTED, BreakerTrigger.MANUAL, "op", 6)
    )
    book = PositionBook()
    journal.record_positions(book.snapshots(), 7)
    journal.set_meta("daily", "x")
    assert journal.get_meta("daily") == "x"
    assert (journal.count("risk_events"), journal.count("breaker_events")) == (1, 1)
    assert journal.verify_audit().ok


def _populated(path: Path) -> Journal:
    j = Journal.open(path)
    tracker = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    _trade(j, tracker, PositionBook(), "br-1-1", Side.BUY, "0.02", "60000")
    _trade(j, tracker, PositionBook(), "br-1-2", Side.SELL, "0.01", "60100")
    return j


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("UPDATE fills SET qty='0.03' WHERE fill_id='Xbr-1-1:0.02'", "fills row differs"),
        ("UPDATE audit SET body=replace(body, '60000', '50000') WHERE kind='fills'", "hash chain"),
        ("DELETE FROM fills WHERE fill_id='Xbr-1-2:0.01'", "audited fills row deleted"),
        ("DELETE FROM audit WHERE id=3", "audit ids 3..3 deleted"),
        ("DELETE FROM audit WHERE id=(SELECT MAX(id) FROM audit)", "has no audit record"),
        ("INSERT INTO risk_events(client_id, symbol, reason, detail, ts_ns, audit_id)"
         " VALUES('x','y','z','w',1,999)", "has no audit record"),
    ],
)  # fmt: skip
def test_journal_verify_audit_detects_tampering(path, query, problem):
    j = _populated(path)
    assert j.verify_audit().ok
    sql(path, query)
    report = j.verify_audit()
    j.close()
    assert not report.ok
    assert problem in report.problem


def test_journal_reopen_continues_the_chain(path):
    _populated(path).close()
    j = Journal.open(path)
    j.record_refusal(Refusal(RefusalReason.STALE_DATA, "old", "br-1-9", "BTCUSDT", 9))
    report = j.verify_audit()
    j.close()
    assert report.ok
    assert report.rows == 10  # schema_version + 2 × (intent + 2 events + 1 fill) + 1 refusal


def test_journal_foreign_schema_version_refused(path):
    Journal.open(path).close()
    sql(path, "UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(JournalError, match=f"schema 99, expected {SCHEMA_VERSION}"):
        Journal.open(path)


def test_journal_daily_pnl_state_survives_reopen(path):
    d = DailyPnl()
    d.update(D(50), 10)
    d.update(D(-20), 11)
    j = Journal.open(path)
    assert j.load_daily() is None
    j.save_daily(*d.state())
    j.close()
    j2 = Journal.open(path)
    state = j2.load_daily()
    j2.close()
    assert state is not None
    again = DailyPnl()
    again.restore(*state)
    again.update(D(-20), 12)
    assert (again.day_pnl, again.drawdown) == (D(-70), D(70))


def test_journal_open_creates_missing_directory(tmp_path):
    j = Journal.open(tmp_path / "a" / "b" / "j.sqlite")
    j.close()
    assert (tmp_path / "a" / "b" / "j.sqlite").exists()


@pytest.mark.parametrize(
    "row",
    [
        ["c-1-2", "BTCUSDT", "BUY", "0.0016", "59999.9", 0, None, 1_767_225_610_036_487_460],
        ['quote "q" \\ back', "tab\there", "line\nbreak", "\x01", "\x7f"],
        ["café", "日本", "\u2028", ""],
        [10**30, -5, 0.1, 1e16, True],
        [],
    ],
)
def test_journal_body_text_is_what_verify_recomputes(row):
    assert _body(row) == json.dumps(row, separators=(",", ":"))


@pytest.mark.parametrize(
    "request_",
    [
        req("c-1-1"),
        req("c-1-2", Side.SELL, "0.5", None, reduce_only=True),  # market, reduce-only
        req("c-1-3", price="59999.90", tif=TimeInForce.POST_ONLY, tag="quote",
            stamps=TickStamps(1, 2, 3, 4), ts_order_ns=5, lots=5000, ticks=599999),
        req("c-1-4", qty="1E+1", price="1E-8", position_side=PositionSide.SHORT, tag="flatten"),
        *(req(f"c-2-{i}", position_side=p) for i, p in enumerate(PositionSide)),
        *(req(f"c-3-{i}", tif=t) for i, t in enumerate(TimeInForce)),
    ],
)  # fmt: skip
def test_journal_intent_row_is_what_stored_makes_of_its_values(request_):
    # the intent's fast path (intent_row) against the generic conversion of every value
    row = intent_row(request_, 7)
    assert type(row) is Stored
    want = [stored(v) for v in intent_values(request_, 7)]
    assert list(row) == want
    assert [type(v) for v in row] == [type(v) for v in want]
    assert _body(row) == json.dumps(want, separators=(",", ":"))


def _orders() -> list[tuple[Order, OrderStatus]]:
    base = Order(request=req("c-1-1"), ts_created_ns=1, ts_update_ns=1)
    return [
        (base, S.NEW_INTENT),
        (replace(base, status=S.SENT, ts_sent_ns=5), S.NEW_INTENT),
        (replace(base, status=S.ACKED, order_id="X1", ts_cancel_ns=9, mtime_ms=3), S.SENT),
        (replace(base, status=S.PART_FILLED, filled_qty=D("0.004"), avg_price=D("60000.10"),
                 fee=D("-0.0012"), order_id="X1"), S.ACKED),
        (replace(base, status=S.REJECTED, reason="venue: 10007 bad"), S.UNKNOWN),
        (replace(base, filled_qty=D("1E-8"), avg_price=D("0E-10")), S.FILLED),
    ]  # fmt: skip


@pytest.mark.parametrize("order_old", _orders())
def test_journal_order_row_is_what_stored_makes_of_its_values(order_old):
    order, old = order_old
    row = order_row(order, old, "venue", 11)
    assert type(row) is Stored
    want = [stored(v) for v in order_values(order, old, "venue", 11)]
    assert list(row) == want
    assert [type(v) for v in row] == [type(v) for v in want]


def test_journal_scratch_mode_syncs_nothing_and_keeps_the_chain(path):
    j = Journal.open(path, durable=False)
    try:
        j.record_intent(req("c1"), 1)
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
        assert j.verify_audit().ok
    finally:
        j.close()
    assert sql(path, "SELECT client_id FROM intents") == [("c1",)]


def test_journal_scratch_intent_syncs_nothing(path, monkeypatch):
    import procs.trading.journal as jmod

    j = Journal.open(path, durable=False)
    calls: list[int] = []
    monkeypatch.setattr(jmod.os, "fsync", calls.append)
    try:
        assert j.record_intent(req(cid="c1"), 10)
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
        assert calls == []
    finally:
        monkeypatch.undo()
        j.close()


def _order(cid: str) -> Any:
    from procs.trading.orders import Order

    return Order(request=req(cid=cid), ts_created_ns=1, ts_update_ns=1)


def _stored_by_isinstance(v: object) -> object:
    """``journal._stored`` as it was: an isinstance chain per value."""
    import enum

    t = type(v)
    if t is str or t is int or v is None:
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, enum.IntEnum):
        return v.name
    if isinstance(v, enum.Enum):
        return str(v.value)
    return v


def test_journal_stored_values_are_what_the_isinstance_chain_gave():
    import enum

    from procs.trading.journal_rows import stored as _stored
    from procs.trading.model import OrderType, PositionSide, TimeInForce

    class Level(enum.IntEnum):
        LOW = 1

    class Mode(enum.Enum):
        A = 2
        B = "b"

    class Text(str):
        pass

    class Dec(Decimal):
        pass

    values: list[object] = [
        "x", "", 0, -7, 10**30, None, True, False, D("0.0016"), D("1E+3"), D("-0"), Dec("2.50"),
        Side.BUY, OrderType.LIMIT, TimeInForce.POST_ONLY, PositionSide.LONG, S.SENT, Level.LOW,
        Mode.A, Mode.B, 0.1, float("nan"), Text("t"), b"raw", (1, 2),
    ]  # fmt: skip
    for v in values * 2:  # the second pass: the memoised conversions
        got, want = _stored(v), _stored_by_isinstance(v)
        assert type(got) is type(want), v
        assert got == want or got != got, v  # (NaN is itself, unchanged)
