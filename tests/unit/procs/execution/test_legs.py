"""The venue's cumulative funding per position → FundingEvents exactly once; position ids for
hedge closes; the funding comparison of reconciliation; the wire mapping of position figures.
"""

# mypy: disable-error-code="union-attr"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from ipc.bitunix.fields import decoder
from ipc.bitunix.schemas_rest import Position as RestPosition
from ipc.bitunix.schemas_ws import PositionPush
from procs.trading.legs import VenueLegs, position_of
from procs.trading.model import FundingEvent, PositionSide, Side
from procs.trading.reconcile import AdoptFunding, DiffKind, VenuePosition, VenueSnapshot, reconcile
from procs.trading.venue import VENUE_FUNDING_SIGN, position_from_wire
from tests.helpers.execution_fakes import book_records, make_rig

from .helpers import req

D = Decimal
LONG = PositionSide.LONG


def vp(funding: str | None, *, pid: str = "P1", mtime: int = 10, qty: str = "0.5", **kw: object):
    return VenuePosition(
        symbol="BTCUSDT", qty=D(qty), position_side=kw.pop("side", LONG), position_id=pid,
        funding=None if funding is None else D(funding), mtime_ms=mtime, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_legs_increase_of_cumulative_funding_becomes_one_event():
    legs = VenueLegs()

    ev = legs.observe(vp("1.25"), ts_ns=5)

    assert ev == FundingEvent(
        event_id="fund:P1:0:1.25", symbol="BTCUSDT", amount=D("1.25"), position_side=LONG, ts_ns=5
    )
    assert position_of(ev.event_id) == "P1"


def test_legs_same_figure_again_books_nothing():
    legs = VenueLegs()
    legs.observe(vp("1.25"), ts_ns=5)

    assert legs.observe(vp("1.25"), ts_ns=6) is None
    assert legs.observe(vp("1.25", mtime=20), ts_ns=7) is None


def test_legs_decrease_becomes_a_negative_event_and_ids_stay_unique():
    legs = VenueLegs()
    a = legs.observe(vp("1.25"), ts_ns=1)
    b = legs.observe(vp("1.00", mtime=11), ts_ns=2)
    c = legs.observe(vp("1.25", mtime=12), ts_ns=3)

    assert b.amount == D("-0.25")
    assert c.amount == D("0.25")
    assert len({a.event_id, b.event_id, c.event_id}) == 3
    assert legs.booked["P1"] == D("1.25")


def test_legs_restart_from_journal_books_only_what_is_new():
    first = VenueLegs()
    events = [first.observe(vp("-0.5"), ts_ns=1), first.observe(vp("-0.75", mtime=11), ts_ns=2)]
    restarted = VenueLegs()
    restarted.restore([*events, FundingEvent(event_id="manual-1", symbol="X", amount=D(9))])

    assert restarted.observe(vp("-0.75", mtime=11), ts_ns=3) is None  # a replayed push
    ev = restarted.observe(vp("-1.00", mtime=12), ts_ns=4)
    assert ev.amount == D("-0.25")
    assert ev.event_id == "fund:P1:-0.75:-1.00"


def test_legs_older_observation_of_a_position_is_ignored():
    legs = VenueLegs()
    legs.observe(vp("2", mtime=20), ts_ns=1)

    assert legs.observe(vp("1", mtime=19), ts_ns=2) is None  # a REST snapshot from before
    assert legs.booked["P1"] == D(2)


def test_legs_new_position_id_starts_from_zero_and_close_forgets_the_id():
    legs = VenueLegs()
    legs.observe(vp("-3"), ts_ns=1)
    assert legs.position_id("BTCUSDT", LONG) == "P1"

    legs.observe(vp("-3.5", mtime=11, qty="0", closed=True), ts_ns=2)
    assert legs.position_id("BTCUSDT", LONG) == ""
    ev = legs.observe(vp("-0.1", pid="P2", mtime=12), ts_ns=3)

    assert ev.amount == D("-0.1")
    assert legs.position_id("BTCUSDT", LONG) == "P2"
    assert legs.booked == {"P1": D("-3.5"), "P2": D("-0.1")}


def test_reconcile_funding_gap_is_a_difference_resolved_by_adopting():
    snap = VenueSnapshot(positions=[vp("-0.4")])

    rec = reconcile([], [], snap, owns=lambda _c: True, funding_booked={"P1": D("-0.3")})
    same = reconcile([], [], snap, owns=lambda _c: True, funding_booked={"P1": D("-0.4")})

    kinds = [d.kind for d in rec.differences]
    assert DiffKind.FUNDING_MISMATCH in kinds
    assert AdoptFunding(snap.positions[0]) in rec.actions
    assert DiffKind.FUNDING_MISMATCH not in [d.kind for d in same.differences]


def test_reconcile_position_without_funding_figure_is_not_compared():
    snap = VenueSnapshot(positions=[vp(None)])

    rec = reconcile([], [], snap, owns=lambda _c: True, funding_booked={})

    assert DiffKind.FUNDING_MISMATCH not in [d.kind for d in rec.differences]


def test_position_from_wire_reads_push_and_rest_ids_funding_and_close():
    push = decoder(PositionPush).decode(
        b'{"ch":"position","ts":1,"data":{"event":"CLOSE","positionId":"12345",'
        b'"symbol":"BTCUSDT","side":"SHORT","qty":"0","entryValue":"0","funding":"1.25",'
        b'"fee":"5.75","mtime":"2025-04-26T17:06:13.155Z"}}'
    )
    rest = decoder(RestPosition).decode(
        b'{"positionId":"777","symbol":"BTCUSDT","qty":"0.5","entryValue":"30000",'
        b'"side":"BUY","funding":"-0.2","avgOpenPrice":"60000","mtime":1691382137448}'
    )

    p = position_from_wire(push.items[0], hedge=True)
    r = position_from_wire(rest, hedge=False)

    assert (p.position_id, p.position_side, p.closed) == ("12345", PositionSide.SHORT, True)
    assert p.funding == VENUE_FUNDING_SIGN * D("1.25")
    assert p.mtime_ms == 1745687173155
    assert (r.position_id, r.qty, r.avg_price, r.funding) == ("777", D("0.5"), D(60000), D("-0.2"))
    assert r.position_side is PositionSide.BOTH
    assert not r.closed


def test_proc_hedge_close_carries_the_venue_position_id(tmp_path, ns):
    rig = make_rig(tmp_path, ns, position_mode="HEDGE")
    try:
        rig.proc.on_position(vp(None, pid="P9"))
        rig.book_w.publish(book_records(59999.9, 60000.1, rig.now() - 100_000))
        rig.run(1)
        close = req(
            side=Side.SELL, qty="0.001", reduce_only=True, position_side=LONG, price="60000"
        )
        rig.proc.reconciler.reconciled = True
        rig.proc.place(close, rig.now())
        rig.run(2)
    finally:
        rig.close()

    [sent] = rig.venue.placed
    assert sent.position_id == "P9"


def test_proc_funding_push_booked_once_across_a_restart(tmp_path, ns):
    rig = make_rig(tmp_path, ns)
    try:
        rig.proc.on_position(vp("-0.5", side=PositionSide.BOTH))
        rig.proc.on_position(vp("-0.5", side=PositionSide.BOTH))  # the same push again
        assert rig.proc.journal.count("funding") == 1
        assert rig.proc.positions.position("BTCUSDT").funding == D("-0.5")
    finally:
        rig.close()
    again = make_rig(tmp_path, f"{ns}b")
    try:
        again.proc.on_position(replace(vp("-0.5", side=PositionSide.BOTH), mtime_ms=11))
        assert again.proc.journal.count("funding") == 1
        assert again.proc.positions.position("BTCUSDT").funding == D("-0.5")
        assert again.proc.counters["funding_events_total"] == 0
    finally:
        again.close()


def test_legs_an_older_figure_with_other_funding_is_dropped_counted_and_said_once(caplog):
    legs = VenueLegs()
    legs.observe(vp(None, mtime=20), ts_ns=1)  # a trade's push, stamped later

    # the settlement's figure, stamped earlier (a venue whose mtime went back): not booked
    assert legs.observe(vp("1.25", mtime=10), ts_ns=2) is None
    assert legs.observe(vp("1.25", mtime=10), ts_ns=3) is None  # the next REST snapshot
    assert legs.observe(vp("0", mtime=5), ts_ns=4) is None  # older, the same funding: quiet

    assert legs.booked.get("P1", D(0)) == 0
    assert legs.older_funding_total == 2
    said = [r.getMessage() for r in caplog.records if "dropped as older" in r.getMessage()]
    assert said == [
        "venue position figure dropped as older: positionId=P1 symbol=BTCUSDT mtime_ms=10"
        " newest_seen_ms=20 funding=1.25 booked=0"
    ]
