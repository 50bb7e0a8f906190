"""Order state machine: legal paths, illegal ones refused, idempotent venue events, UNKNOWN."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procs.trading.model import (
    Fill,
    IllegalTransitionError,
    OrderRequest,
    OrderStatus,
    Side,
    TimeInForce,
    UnknownOrderError,
    VenueOrderUpdate,
)
from procs.trading.orders import (
    LEGAL,
    NOT_FOUND_REASON,
    ClientIdGenerator,
    OrderTracker,
    check_transition,
    venue_status,
)

from .helpers import req

D = Decimal
S = OrderStatus
SEC = 1_000_000_000


def tracker() -> OrderTracker:
    return OrderTracker(ack_timeout_s=5.0, cancel_timeout_s=3.0)


def upd(
    status: str,
    filled: str = "0",
    avg: str = "0",
    fee: str = "0",
    mtime: int = 0,
    cid: str = "br-1-1",
    oid: str = "X1",
) -> VenueOrderUpdate:
    return VenueOrderUpdate(
        client_id=cid,
        order_id=oid,
        symbol="BTCUSDT",
        status=status,
        filled_qty=D(filled),
        avg_price=D(avg),
        fee=D(fee),
        mtime_ms=mtime,
    )


def sent(t: OrderTracker, qty: str = "0.01") -> None:
    t.add_intent(req(qty=qty), 0)
    t.mark_sent("br-1-1", 1)


def test_check_transition_every_legal_pair_passes_every_other_raises():
    for old in S:
        for new in S:
            if new in LEGAL[old]:
                check_transition(old, new)
            else:
                with pytest.raises(IllegalTransitionError):
                    check_transition(old, new)


def test_tracker_happy_path_intent_sent_acked_part_filled_filled():
    t = tracker()
    assert t.add_intent(req(), 0).status is S.NEW_INTENT
    assert t.mark_sent("br-1-1", 1).new is S.SENT
    assert t.on_send_ok("br-1-1", "X1", 2).new is S.ACKED
    tr1 = t.on_venue_update(upd("PART_FILLED", "0.004", "60000", "0.1", mtime=10), 3)
    tr2 = t.on_venue_update(upd("FILLED", "0.01", "60001.2", "0.25", mtime=11), 4)
    assert (tr1.new, tr2.new) == (S.PART_FILLED, S.FILLED)
    [f1], [f2] = tr1.fills, tr2.fills
    assert (f1.qty, f1.price, f1.fee) == (D("0.004"), D("60000"), D("0.1"))
    assert (f2.qty, f2.fee) == (D("0.006"), D("0.15"))
    assert f2.price == D("60002.0")  # (60001.2*0.01 - 60000*0.004) / 0.006
    assert f1.fill_id == "X1:0.004"
    assert f2.fill_id == "X1:0.01"
    assert t.open_orders() == []


def test_tracker_add_sent_is_add_intent_then_mark_sent():
    # execution's place: the intent journaled, the request stamped with its ts_order_ns
    for i, other in enumerate((None, "br-1-0")):
        steps, once = tracker(), tracker()
        if other is not None:  # an order before it: the open index keeps their order
            for t in (steps, once):
                t.add_intent(req(cid=other), 0)
        r = req(cid="br-1-1", qty="0.02", ts_order_ns=7 + i)

        steps.add_intent(r, 5)
        want = steps.mark_sent("br-1-1", 7 + i)
        got = once.add_sent(r, 5, 7 + i)

        assert got == want
        assert once.get("br-1-1") == steps.get("br-1-1")
        assert once.open_orders() == steps.open_orders()
        with pytest.raises(ValueError, match="already used"):
            once.add_sent(r, 5, 8)


def test_tracker_cancel_paths_map_fills_to_part_filled_canceled():
    t = tracker()
    sent(t)
    assert t.on_venue_update(upd("CANCELED"), 5).new is S.CANCELED
    t2 = tracker()
    sent(t2)
    tr = t2.on_venue_update(upd("CANCELED", "0.003", "60000"), 5)
    assert tr.new is S.PART_FILLED_CANCELED
    assert tr.fills[0].qty == D("0.003")


def test_tracker_send_failed_rejects_and_reject_is_terminal():
    t = tracker()
    sent(t)
    assert t.on_send_failed("br-1-1", "30016 qty below minimum", 2).new is S.REJECTED
    with pytest.raises(IllegalTransitionError):
        t.mark_sent("br-1-1", 3)
    with pytest.raises(IllegalTransitionError):
        t.request_cancel("br-1-1", 3)


def test_tracker_illegal_local_calls_raise():
    t = tracker()
    t.add_intent(req(), 0)
    t.mark_sent("br-1-1", 1)
    with pytest.raises(IllegalTransitionError):
        t.mark_sent("br-1-1", 2)
    with pytest.raises(ValueError, match="already used"):
        t.add_intent(req(), 0)
    with pytest.raises(UnknownOrderError):
        t.on_venue_update(upd("NEW", cid="other"), 1)


def test_tracker_duplicate_and_older_events_are_ignored():
    t = tracker()
    sent(t)
    t.on_venue_update(upd("NEW", mtime=10), 2)
    tr = t.on_venue_update(upd("PART_FILLED", "0.004", "60000", mtime=12), 3)
    assert tr is not None
    assert t.on_venue_update(upd("PART_FILLED", "0.004", "60000", mtime=12), 4) is None
    assert t.on_venue_update(upd("NEW", mtime=10), 5) is None  # out of order: older
    assert t.on_venue_update(upd("NEW", mtime=13), 5) is None  # lower rank never wins
    assert t.get("br-1-1").status is S.PART_FILLED
    assert t.get("br-1-1").filled_qty == D("0.004")
    assert t.ignored_updates_total == 3


def test_tracker_out_of_order_fill_after_cancel_books_fill_keeps_terminal():
    t = tracker()
    sent(t)
    t.on_venue_update(upd("CANCELED", mtime=20), 2)
    tr = t.on_venue_update(upd("PART_FILLED", "0.002", "60000", mtime=15), 3)
    assert tr.new is S.PART_FILLED_CANCELED
    assert tr.fills[0].qty == D("0.002")
    assert t.get("br-1-1").remaining_qty == 0


@given(st.permutations(range(4)), st.lists(st.integers(0, 3), max_size=4))
def test_tracker_any_order_and_duplication_of_events_ends_in_same_state(perm, dups):
    events = [
        upd("NEW", mtime=1),
        upd("PART_FILLED", "0.003", "60000", "0.01", mtime=2),
        upd("PART_FILLED", "0.007", "60000", "0.02", mtime=3),
        upd("FILLED", "0.01", "60000", "0.03", mtime=4),
    ]
    t = tracker()
    sent(t)
    fills: list[Fill] = []
    for i in [*perm, *dups]:
        tr = t.on_venue_update(events[i], 9)
        if tr is not None:
            fills.extend(tr.fills)
    o = t.get("br-1-1")
    assert o.status is S.FILLED
    assert (o.filled_qty, o.fee) == (D("0.01"), D("0.03"))
    assert sum(f.qty for f in fills) == D("0.01")
    assert sum(f.fee for f in fills) == D("0.03")
    assert len({f.fill_id for f in fills}) == len(fills)


def test_tracker_ack_timeout_goes_unknown_then_query_resolves_filled():
    t = tracker()
    sent(t)
    assert t.expire(1 + 5 * SEC - 1) == []
    [tr] = t.expire(1 + 5 * SEC)
    assert tr.new is S.UNKNOWN
    assert t.needs_query(1 + 5 * SEC) == ["br-1-1"]
    assert t.get("br-1-1").status.is_open  # never assumed cancelled
    res = t.resolve("br-1-1", upd("FILLED", "0.01", "60000"), 6 * SEC)
    assert res.new is S.FILLED
    assert res.fills[0].qty == D("0.01")


def test_tracker_unknown_not_found_rejects_and_late_push_revives():
    t = tracker()
    sent(t)
    t.expire(10 * SEC)
    tr = t.resolve("br-1-1", None, 11 * SEC)
    assert tr.new is S.REJECTED
    assert t.get("br-1-1").reason == NOT_FOUND_REASON
    assert t.on_venue_update(upd("NEW", mtime=5), 12 * SEC).new is S.ACKED


def test_tracker_not_found_on_open_order_is_ignored():
    t = tracker()
    sent(t)
    t.on_send_ok("br-1-1", "X1", 2)
    assert t.resolve("br-1-1", None, 3) is None
    assert t.get("br-1-1").status is S.ACKED


def test_tracker_cancel_unanswered_needs_query():
    t = tracker()
    sent(t)
    t.on_send_ok("br-1-1", "X1", 2)
    t.request_cancel("br-1-1", 10)
    assert t.needs_query(10 + 3 * SEC - 1) == []
    assert t.needs_query(10 + 3 * SEC) == ["br-1-1"]


def test_tracker_recover_intents_makes_unsent_unknown():
    t = tracker()
    t.add_intent(req(), 0)
    [tr] = t.recover_intents(5)
    assert (tr.old, tr.new) == (S.NEW_INTENT, S.UNKNOWN)


def test_venue_status_mixed_case_and_unknown():
    assert venue_status("part_filled", D(1)) is S.PART_FILLED
    assert venue_status("SYSTEM_CANCELED", D(0)) is S.CANCELED
    assert venue_status("NEW", D("0.1")) is S.PART_FILLED
    with pytest.raises(ValueError, match="unknown venue"):
        venue_status("WEIRD", D(0))


def test_client_id_generator_unique_across_restart():
    first = ClientIdGenerator("br", 1000)
    ids = [first() for _ in range(3)]
    assert ids == ["br-1000-1", "br-1000-2", "br-1000-3"]
    again = ClientIdGenerator.after("br", now_ms=900, used=ids)  # clock went backwards
    assert again.epoch_ms == 1001
    assert again() not in ids
    assert again.owns("br-5-1")
    assert not again.owns("bra-5-1")
    with pytest.raises(ValueError, match="alphanumeric"):
        ClientIdGenerator("b-r", 1)


def test_tracker_prune_forgets_only_old_terminal_orders():
    t = tracker()
    sent(t)
    t.on_venue_update(upd("FILLED", "0.01", "60000"), 10)
    t.add_intent(req(cid="br-1-2"), 5)
    assert t.prune(10) == 0
    assert t.prune(11) == 1
    assert "br-1-1" not in t
    assert "br-1-2" in t


def test_tracker_cancel_push_without_fill_fields_keeps_known_fill():
    t = tracker()
    sent(t)
    t.on_venue_update(upd("PART_FILLED", "0.004", "60000", mtime=1), 2)
    tr = t.on_venue_update(upd("CANCELED", mtime=2), 3)  # filled_qty missing → parsed as 0
    assert tr.new is S.PART_FILLED_CANCELED
    assert tr.fills == ()
    assert t.get("br-1-1").filled_qty == D("0.004")


def test_tracker_venue_reject_after_ack_ends_as_cancel():
    t = tracker()
    sent(t)
    t.on_send_ok("br-1-1", "X1", 2)
    assert t.on_venue_update(upd("REJECTED", mtime=3), 3).new is S.CANCELED


venue_events = st.lists(
    st.tuples(
        st.sampled_from(
            ["INIT", "NEW", "PART_FILLED", "FILLED", "CANCELED", "SYSTEM_CANCELED", "REJECTED"]
        ),
        st.sampled_from(["0", "0.002", "0.005", "0.01"]),
        st.integers(0, 5),
    ),
    max_size=12,
)


@given(venue_events, st.booleans())
def test_tracker_any_venue_event_sequence_never_raises_and_fill_only_grows(events, timeout):
    t = tracker()
    sent(t)
    if timeout:
        t.expire(10 * SEC)
    booked = D(0)
    last = D(0)
    for status, filled, mtime in events:
        tr = t.on_venue_update(upd(status, filled, "60000", mtime=mtime), 11 * SEC)
        booked += sum((f.qty for f in tr.fills), D(0)) if tr else D(0)
        o = t.get("br-1-1")
        assert o.filled_qty >= last
        last = o.filled_qty
    assert booked == t.get("br-1-1").filled_qty


def test_tracker_part_filled_without_fill_then_canceled_is_canceled():
    t = tracker()
    sent(t)

    t.on_venue_update(upd("PART_FILLED", "0", "60000", mtime=1), 11 * SEC)
    tr = t.on_venue_update(upd("CANCELED", "0", "60000", mtime=2), 11 * SEC)

    assert tr is not None
    assert t.get("br-1-1").status is OrderStatus.CANCELED
    assert tr.fills == ()


def test_tracker_unknown_venue_status_is_counted_not_raised():
    t = tracker()
    sent(t)

    tr = t.on_venue_update(upd("EXPIRED", "0", "60000", mtime=1), 11 * SEC)

    assert tr is None
    assert t.unknown_status_total == 1
    assert t.get("br-1-1").status is OrderStatus.SENT


def _scan_open(t: OrderTracker, symbol: str | None = None) -> list[str]:
    """The open orders by a full scan, in the tracker's order (what the index must match)."""
    return [
        o.client_id
        for o in t._orders.values()
        if o.status.is_open and (symbol is None or o.symbol == symbol)
    ]


tracker_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "ack", "fill", "cancel", "expire", "not_found", "revive", "prune"]),
        st.integers(0, 5),
    ),
    max_size=40,
)


@given(tracker_ops)
def test_tracker_open_orders_index_matches_full_scan_in_order(ops):
    t = tracker()
    added: list[str] = []
    now = 0
    for op, k in ops:
        now += SEC
        if op == "add" or not added:
            cid = f"br-1-{len(added) + 1}"
            sym = "ETHUSDT" if k % 2 else "BTCUSDT"
            t.add_intent(req(cid=cid, symbol=sym), now)
            t.mark_sent(cid, now)
            added.append(cid)
            continue
        cid = added[k % len(added)]
        if cid not in t:
            continue
        if op == "ack":
            t.on_venue_update(upd("NEW", cid=cid, mtime=now // 10**6), now)
        elif op == "fill":
            t.on_venue_update(upd("FILLED", "0.01", "60000", cid=cid, mtime=now // 10**6), now)
        elif op == "cancel":
            t.on_venue_update(upd("CANCELED", cid=cid, mtime=now // 10**6), now)
        elif op == "expire":
            t.expire(now + 10 * SEC)
        elif op == "not_found" and t.get(cid).status is S.UNKNOWN:
            t.resolve(cid, None, now)
        elif op == "revive":  # a late push for a not-found order: open again
            t.on_venue_update(upd("NEW", cid=cid, mtime=now // 10**6), now)
        elif op == "prune":
            t.prune(now)
        assert [o.client_id for o in t.open_orders()] == _scan_open(t)
        assert [o.client_id for o in t.open_orders("ETHUSDT")] == _scan_open(t, "ETHUSDT")


def test_tracker_revived_order_keeps_its_place_among_open_orders():
    t = tracker()
    for cid in ("br-1-1", "br-1-2"):
        t.add_intent(req(cid=cid), 0)
        t.mark_sent(cid, 1)
    t.expire(10 * SEC)  # both UNKNOWN
    t.resolve("br-1-1", None, 11 * SEC)  # not found: REJECTED, leaves the open ones
    assert [o.client_id for o in t.open_orders()] == ["br-1-2"]

    t.on_venue_update(upd("NEW", mtime=5, cid="br-1-1"), 12 * SEC)  # it was in flight after all

    assert [o.client_id for o in t.open_orders()] == ["br-1-1", "br-1-2"]


def test_request_leaving_at_is_replace_on_every_field():
    from dataclasses import fields, replace

    from procs.trading.model import PositionSide, TickStamps

    for r in (
        req(),
        req(price=None, tif=TimeInForce.IOC),
        req(cid="br-9-9", side=Side.SELL, qty="0.5", price="123.4", reduce_only=True,
            position_side=PositionSide.SHORT, position_id="p1", tag="take", lots=5000,
            ticks=1234, stamps=TickStamps(1, 2, 3, 4), ts_order_ns=77),
    ):  # fmt: skip
        got, want = r.leaving_at(99), replace(r, ts_order_ns=99)
        assert type(got) is OrderRequest
        for f in fields(OrderRequest):  # lots and ticks too (not compared by ==)
            assert getattr(got, f.name) == getattr(want, f.name), f.name
        assert got == want
        assert hash(got) == hash(want)
        assert r.ts_order_ns != 99  # the request itself is unchanged
