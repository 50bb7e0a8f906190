"""ExecutionProc: an order's SENT row and event come after its send has started, in order.

The send starts as the step that placed it ends (``TaskRunner.hold``/``release``), before the
loop's next pass; an answer the venue gives at once is applied there too."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec

from ipc.orders import ORDER_EVENT_DECODER, OrderEvent, RiskEvent
from procs.trading.intent_log import log_path
from procs.trading.risk import Refusal, RefusalReason
from tests.helpers.execution_fakes import (
    FakeVenue,
    Rig,
    book_records,
    make_rig,
    reconciled,
    sig_records,
)


def _place_one(r: Rig) -> None:
    """A book and a signal that places a quote, read by one step (the loop not run); first a
    flat signal, whose step writes the first ``reads`` row (a journal write would write the
    deferred SENT row first: tested below)."""
    ts = r.now() - 100_000
    r.sig_w.publish(sig_records(0.0, 60000.0, ts))
    r.proc.step()
    r.book_w.publish(book_records(59999.9, 60000.1, ts))
    r.sig_w.publish(sig_records(0.5, 60000.0, ts))
    r.proc.step()


def _order_rows(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as c:
        return c.execute("SELECT old, new FROM order_events ORDER BY id").fetchall()


def _published(r: Rig, placed_then: list[int]) -> None:
    """Note how many orders the venue had been asked to place at each event published."""
    send = r.pub.send

    def recording(topic: bytes, payload: bytes) -> bool:
        placed_then.append(len(r.venue.placed))
        return send(topic, payload)

    r.pub.send = recording  # type: ignore[method-assign]  # a spy on the fake


def test_sent_row_and_event_follow_the_send_and_go_before_the_ack(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        before = len(_order_rows(path))
        placed_then: list[int] = []
        _published(r, placed_then)

        _place_one(r)

        # the step made the intent durable (its intent log) and the send started as the step
        # ended: the venue answered at once, so its ACK was applied there; the ACK books no
        # fill, so its row waits with the intent's and the SENT row for the loop's pass
        [req] = r.venue.placed
        assert r.proc.tracker.get(req.client_id).status.value == "ACKED"
        logged = Path(log_path(path)).read_bytes().splitlines()
        assert len(logged) == 1
        assert req.client_id.encode() in logged[0]
        assert _order_rows(path)[before:] == []
        r.loop.run_until_complete(asyncio.sleep(0))  # one pass: the rows, then the events
        with closing(sqlite3.connect(path)) as c:
            assert c.execute("SELECT COUNT(*) FROM intents").fetchone() == (1,)

        assert r.venue.placed == [req]
        events = [ORDER_EVENT_DECODER.decode(p) for _, p in r.pub.sent]
        orders = [e for e in events if isinstance(e, OrderEvent)]
        assert [e.status for e in orders] == ["SENT", "ACKED"]
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert placed_then[0] == 1  # the SENT event went out after the venue had the order
        assert orders[0].ts_order_ns == req.ts_order_ns  # the stamp of when it left, as ever
        assert _order_rows(path)[before:] == [("NEW_INTENT", "SENT"), ("SENT", "ACKED")]
    finally:
        r.close()


def test_sent_is_written_on_the_loops_pass_though_no_answer_comes(tmp_path, ns):
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="hang"))
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        before = len(_order_rows(path))

        _place_one(r)
        r.loop.run_until_complete(asyncio.sleep(0))

        assert len(r.venue.placed) == 1  # the send is in flight
        statuses = [e.status for e in r.events(OrderEvent)]
        assert statuses == ["SENT"]
        assert _order_rows(path)[before:] == [("NEW_INTENT", "SENT")]
    finally:
        r.close()


def test_sent_deferred_at_close_is_written(tmp_path, ns):
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="hang"))
    path = Path(r.proc.journal.path)
    try:
        assert reconciled(r)
        before = len(_order_rows(path))
        _place_one(r)
        assert r.events(OrderEvent) == []
    finally:
        r.close()  # before the loop ran again
    assert [e.status for e in r.events(OrderEvent)] == ["SENT"]
    assert _order_rows(path)[before:][0] == ("NEW_INTENT", "SENT")


def test_sent_goes_first_in_a_journal_write_of_the_same_step(tmp_path, ns):
    # the step's first signals are logged at once (``reads``): that write takes the SENT row
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="hang"))
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        ts = r.now() - 100_000
        r.book_w.publish(book_records(59999.9, 60000.1, ts))
        r.sig_w.publish(sig_records(0.5, 60000.0, ts))
        r.proc.step()
        with closing(sqlite3.connect(path)) as c:
            rows = c.execute(
                "SELECT kind FROM audit WHERE kind IN ('intents', 'order_events', 'reads')"
                " ORDER BY id"
            ).fetchall()
        assert rows[-3:] == [("intents",), ("order_events",), ("reads",)]
        assert len(r.venue.placed) == 1  # the send started as the step ended, after its rows
        assert r.events(OrderEvent) == []  # the event comes with the loop's pass
        r.loop.run_until_complete(asyncio.sleep(0))
        assert [e.status for e in r.events(OrderEvent)] == ["SENT"]
    finally:
        r.close()


def _acked_quote(r: Rig) -> str:
    _place_one(r)
    r.loop.run_until_complete(asyncio.sleep(0))  # sent and acknowledged
    [o] = r.proc.tracker.open_orders()
    assert o.status == "ACKED"
    return o.client_id


def _cancel_rows(path: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(path)) as c:
        return c.execute(
            "SELECT client_id, new, cause FROM order_events WHERE cause LIKE 'cancel%' ORDER BY id"
        ).fetchall()


def test_cancel_row_follows_its_cancel_call_on_the_loops_pass(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        cid = _acked_quote(r)
        rows = len(_order_rows(path))

        r.proc.cancel(cid, r.now(), "test")

        assert r.proc.tracker.get(cid).ts_cancel_ns  # the tracker knows at once
        assert len(_order_rows(path)) == rows  # the row waits for the loop's pass
        assert r.venue.cancels == []
        r.loop.run_until_complete(asyncio.sleep(0))
        assert r.venue.cancels == [cid]
        assert _cancel_rows(path) == [(cid, "ACKED", "cancel requested: test")]
    finally:
        r.close()


def test_cancel_row_goes_first_in_the_next_journal_write(tmp_path, ns):
    # a cancel, then (in the same pass) another write: the cancel's row goes first, in it
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        cid = _acked_quote(r)
        now = r.now()
        r.proc.cancel(cid, now, "test")
        r.proc.journal.set_meta("test", "1")
        with closing(sqlite3.connect(path)) as c:
            kinds = c.execute("SELECT kind FROM audit ORDER BY id DESC LIMIT 2").fetchall()
        assert kinds == [("meta",), ("order_events",)]  # newest first
        assert _cancel_rows(path) == [(cid, "ACKED", "cancel requested: test")]
        r.loop.run_until_complete(asyncio.sleep(0))
        assert _cancel_rows(path) == [(cid, "ACKED", "cancel requested: test")]  # written once
    finally:
        r.close()


def test_cancel_row_deferred_at_close_is_written(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    path = Path(r.proc.journal.path)
    try:
        assert reconciled(r)
        cid = _acked_quote(r)
        r.proc.cancel(cid, r.now(), "test")
    finally:
        r.close()  # before the loop ran again
    assert _cancel_rows(path) == [(cid, "ACKED", "cancel requested: test")]


def test_an_ack_waits_for_the_loops_pass_and_a_fill_logs_it_first(tmp_path, ns):
    # the venue acknowledges at once (the ACK books nothing: its row waits), then a fill comes
    # before the loop's pass: its line in the intent log takes the waiting rows first, the
    # events leave in the order things happened, and the loop's pass commits the rows in it
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        path = Path(r.proc.journal.path)
        before = len(_order_rows(path))
        _place_one(r)
        [req] = r.venue.placed
        assert r.proc.tracker.get(req.client_id).status.value == "ACKED"
        assert _order_rows(path)[before:] == []
        assert r.events(OrderEvent) == []
        log_before = Path(log_path(path)).read_bytes()

        r.venue.push(req.client_id, "FILLED", filled=str(req.qty), avg=str(req.price))

        # journaled before it was booked: one line of the intent log, the waiting rows first
        line = Path(log_path(path)).read_bytes()[len(log_before) :]
        assert line.count(b"\n") == 1
        rows = msgspec.json.decode(line.partition(b" ")[2])["rows"]
        assert [(t, v[1], v[2]) if t == "order_events" else (t,) for t, v, _ in rows] == [
            ("order_events", "NEW_INTENT", "SENT"), ("order_events", "SENT", "ACKED"),
            ("order_events", "ACKED", "FILLED"), ("fills",),
        ]  # fmt: skip
        assert _order_rows(path)[before:] == []  # committed with the next transaction
        events = [ORDER_EVENT_DECODER.decode(p) for _, p in r.pub.sent]
        assert [e.status for e in events if isinstance(e, OrderEvent)] == [
            "SENT",
            "ACKED",
            "FILLED",
        ]
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert r.proc.positions.net_lots(req.symbol) == req.lots  # booked, once journaled
        r.loop.run_until_complete(asyncio.sleep(0))
        assert _order_rows(path)[before:] == [
            ("NEW_INTENT", "SENT"), ("SENT", "ACKED"), ("ACKED", "FILLED"),
        ]  # fmt: skip
        with closing(sqlite3.connect(path)) as c:
            kinds = c.execute("SELECT kind FROM audit ORDER BY id DESC LIMIT 5").fetchall()
        assert kinds[::-1] == [("intents",), *[("order_events",)] * 3, ("fills",)]
        r.loop.run_until_complete(asyncio.sleep(0))
        assert len(_order_rows(path)[before:]) == 3  # written once
        assert r.proc.journal.verify_audit().ok
    finally:
        r.close()


def test_the_events_a_step_makes_are_sent_as_it_ends_in_order(tmp_path, ns):
    # what a step emits (here a refusal, as risk's own path emits it) waits for the step's end:
    # its orders are decided and their sends started first; outside a step an event goes at once
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        inner = r.proc._step
        during: list[int] = []

        def step_that_refuses() -> int:
            n = inner()
            r.proc._refused(Refusal(RefusalReason.ORDER_RATE, "9 orders", "br-1-1", "BTCUSDT", 5))
            r.proc._refused(Refusal(RefusalReason.ORDER_RATE, "9 orders", "br-1-2", "ETHUSDT", 6))
            during.append(len(r.pub.sent))
            return n

        r.proc._step = step_that_refuses  # type: ignore[method-assign]
        before = len(r.pub.sent)
        r.proc.step()
        assert during == [before]  # nothing sent while the step ran
        risk = r.events(RiskEvent)
        assert [e.client_id for e in risk] == ["br-1-1", "br-1-2"]  # then both, in order
        assert risk[0].seq < risk[1].seq
        r.proc._refused(Refusal(RefusalReason.ORDER_RATE, "9 orders", "br-1-3", "SOLUSDT", 7))
        assert len(r.pub.sent) == before + 3  # not in a step: at once
    finally:
        r.close()
