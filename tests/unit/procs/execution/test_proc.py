"""ExecutionProc on in-memory rings with a fake venue: the hot path and its guards."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest

from ipc.orders import ORDER_EVENT_DECODER, BreakerEvent, OrderEvent, RiskEvent
from procs.trading.breaker import BreakerState
from procs.trading.config import BreakerConfig, RiskConfig
from procs.trading.model import OrderStatus, Side
from procs.trading.venue import VenueRejected
from shm.records import FLAG_STALE
from tests.helpers.execution_fakes import FakeVenue, book_records, make_rig, reconciled, sig_records

D = Decimal


@pytest.fixture
def rig(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    assert reconciled(r)
    yield r
    r.close()


def test_proc_before_reconcile_state_reconciling_and_no_orders(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    try:
        assert r.proc.state == "reconciling"
        r.book_w.publish(book_records(59999.9, 60000.1, r.now()))
        r.proc.step()  # no housekeeping yet at this clock: nothing reconciled
        assert r.venue.placed == []
        assert reconciled(r)
        assert r.proc.state == "active"
    finally:
        r.close()


def test_proc_after_send_intent_sync_windows_reach_the_histogram_at_housekeeping(tmp_path, ns):
    r = make_rig(tmp_path, ns, intent_sync="after_send")
    try:
        assert reconciled(r)
        r.tick(0.5)
        assert len(r.venue.placed) == 1
        log = r.proc.journal.intent_log
        assert log is not None
        assert log.wait_synced(10.0)  # the log's thread synced the intent's line
        assert r.sample("bitrader_intent_sync_seconds_count") == 0  # off the hot path ...
        r.advance(0.06)
        r.run(1)  # ... observed at the next housekeeping
        assert r.sample("bitrader_intent_sync_seconds_count") == 1
        assert r.sample("bitrader_intent_sync_seconds_sum") > 0
        assert r.sample("bitrader_intent_write_seconds_count") == 1
        assert r.proc.health()["intent_sync"] == "after_send"
    finally:
        r.close()


def test_proc_signal_places_order_carrying_tick_stamps(rig):
    rig.tick(0.5)

    [req] = rig.venue.placed
    assert (req.side, req.price, req.qty) == (Side.BUY, D("59999.9"), D("0.0016"))
    ts_recv = rig.now() - 100_000
    assert req.stamps.ts_recv_ns == ts_recv
    assert req.stamps.ts_feat_ns == ts_recv + 20_000
    assert req.stamps.ts_sig_ns == ts_recv + 30_000
    assert req.ts_order_ns == rig.now()
    order = rig.proc.tracker.get(req.client_id)
    assert order.status is OrderStatus.ACKED
    events = [ORDER_EVENT_DECODER.decode(p) for t, p in rig.pub.sent if t.startswith(b"ord.")]
    assert [e.status for e in events if isinstance(e, OrderEvent)] == ["SENT", "ACKED"]
    assert all(e.ts_recv_ns == ts_recv and e.ts_order_ns == rig.now() for e in events)
    assert rig.proc.last_tick_to_order_ns == 100_000
    assert rig.sample("bitrader_tick_to_order_seconds_count") == 0  # off the hot path ...
    rig.advance(0.06)
    rig.run(1)  # ... observed at the next housekeeping
    assert rig.sample("bitrader_tick_to_order_seconds_count") == 1
    assert rig.sample("bitrader_tick_to_order_seconds_sum") == pytest.approx(100e-6)
    for stage in ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order"):
        assert rig.sample("bitrader_stage_seconds_count", stage=stage) == 1
    assert rig.proc.journal.count("intents") == 1
    assert rig.proc.health()["last_tick_to_order_us"] == pytest.approx(100.0)


def test_proc_fill_push_books_position_once(rig):
    rig.tick(0.5)
    [req] = rig.venue.placed
    rig.venue.push(req.client_id, "FILLED", "0.0016", "59999.9")
    rig.venue.push(req.client_id, "FILLED", "0.0016", "59999.9")  # duplicate push

    assert rig.proc.positions.net_qty("BTCUSDT") == D("0.0016")
    assert rig.proc.journal.count("fills") == 1
    assert b"pos.BTCUSDT." in rig.pub.topics()


def test_proc_refusal_counted_journaled_and_nothing_sent(tmp_path, ns):
    r = make_rig(tmp_path, ns, risk=RiskConfig(max_order_notional_usdt=D(10)))
    try:
        assert reconciled(r)
        r.tick(0.5)
        assert r.venue.placed == []
        r.proc.health()  # refusal counts reach Prometheus off the hot path (as on a scrape)
        assert r.sample("bitrader_order_refusals_total", reason="max_order_notional") == 1
        assert r.proc.journal.count("risk_events") == 1
        [risk] = [ORDER_EVENT_DECODER.decode(p) for t, p in r.pub.sent if t == b"risk."]
        assert isinstance(risk, RiskEvent)
        assert risk.reason == "max_order_notional"
    finally:
        r.close()


def test_proc_breaker_reducing_refuses_opening_order(rig):
    rig.proc.breaker.on_data_age(60.0, rig.now())
    assert rig.proc.breaker.state is BreakerState.REDUCING

    rig.tick(0.5)

    assert rig.venue.placed == []
    rig.proc.health()  # refusal counts reach Prometheus off the hot path
    assert rig.sample("bitrader_order_refusals_total", reason="breaker_reducing") == 1
    assert rig.proc.state == "reducing"


def test_proc_loss_halts_cancels_resting_and_blocks_new(tmp_path, ns, request):
    brk = BreakerConfig(reducing_loss_usdt=D(5), halt_loss_usdt=D(10))
    rig = make_rig(tmp_path, ns, breaker=brk)
    request.addfinalizer(rig.close)
    assert reconciled(rig)
    rig.tick(0.5)
    [req] = rig.venue.placed
    rig.venue.push(req.client_id, "PART_FILLED", "0.001", "59999.9")
    rig.book_w.publish(book_records(49000.0, 49000.2, rig.now()))  # -11 USDT unrealised
    rig.advance(0.06)
    rig.run()

    assert rig.proc.breaker.state is BreakerState.HALTED
    assert rig.venue.cancels == [req.client_id]
    assert rig.proc.tracker.get(req.client_id).status is OrderStatus.PART_FILLED_CANCELED
    assert rig.proc.journal.count("breaker_events") == 1
    assert b"brk." in rig.pub.topics()
    [brk_event] = [ORDER_EVENT_DECODER.decode(p) for t, p in rig.pub.sent if t == b"brk."]
    assert isinstance(brk_event, BreakerEvent)
    assert brk_event.trigger == "loss_limit"
    rig.tick(0.9, 49000.0, 49000.2)
    assert len(rig.venue.placed) == 1
    assert rig.proc.state == "halted"


def test_proc_stale_marker_at_start_up_refuses_orders_without_latching_breaker(rig):
    rig.book_w.publish(book_records(59999.9, 60000.1, rig.now(), flags=FLAG_STALE))
    rig.sig_w.publish(sig_records(0.5, 60000.0, rig.now(), flags=FLAG_STALE))
    rig.run()
    refused_while_stale = list(rig.venue.placed)

    rig.tick(0.5)  # fresh market data arrives

    assert refused_while_stale == []
    assert rig.proc.breaker.state is BreakerState.ACTIVE
    assert len(rig.venue.placed) == 1


def test_proc_stale_markers_do_not_refresh_data_age_and_breaker_reduces(rig):
    rig.tick(0.0)  # a fresh book, no order
    fresh_ns = rig.proc.risk_context("BTCUSDT", rig.now()).ts_data_ns
    rig.advance(BreakerConfig().stale_data_s + 1.0)

    rig.book_w.publish(book_records(59999.9, 60000.1, rig.now(), flags=FLAG_STALE))
    rig.run()

    assert fresh_ns > 0
    assert rig.proc.risk_context("BTCUSDT", rig.now()).ts_data_ns == 0  # untradeable
    assert rig.proc.breaker.state is BreakerState.REDUCING
    assert rig.proc.health()["stale_symbols"] == 1


def test_proc_stale_flag_makes_the_symbol_untradeable_until_a_clean_book(rig):
    rig.tick(0.0)
    rig.book_w.publish(book_records(59999.9, 60000.1, rig.now(), flags=FLAG_STALE))
    rig.sig_w.publish(sig_records(0.5, 60000.0, rig.now()))  # a clean signal on a stale book
    rig.run()
    refused = list(rig.venue.placed)

    rig.tick(0.5)  # a clean book: the all-clear

    assert refused == []
    assert len(rig.venue.placed) == 1
    assert rig.proc.health()["stale_symbols"] == 0


def test_proc_kill_switch_cancels_resting_and_blocks_new(rig):
    rig.tick(0.5)
    [req] = rig.venue.placed
    rig.ks_path.write_text(json.dumps({"on": True, "reason": "test"}))
    rig.advance(0.3)  # past killswitch_poll_s
    rig.run()

    assert rig.venue.cancels == [req.client_id]
    assert rig.proc.state == "killed"
    rig.tick(0.6, 60010.0, 60010.2)
    assert len(rig.venue.placed) == 1
    rig.proc.health()  # refusal counts reach Prometheus off the hot path
    assert rig.sample("bitrader_order_refusals_total", reason="kill_switch") >= 1


def test_proc_unknown_place_resolved_by_query_never_assumed(tmp_path, ns):
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="unknown"))
    try:
        assert reconciled(r)
        r.tick(0.5)
        [req] = r.venue.placed
        assert r.proc.tracker.get(req.client_id).status is OrderStatus.SENT
        r.advance(5.1)  # past order_ack_timeout_s
        r.run()
        assert r.venue.queries == [req.client_id]
        assert r.proc.tracker.get(req.client_id).status is OrderStatus.ACKED
    finally:
        r.close()


def test_proc_unknown_place_not_found_becomes_rejected(tmp_path, ns):
    venue = FakeVenue(mode="unknown")
    r = make_rig(tmp_path, ns, venue=venue)
    try:
        assert reconciled(r)
        r.tick(0.5)
        [req] = venue.placed
        del venue.known[req.client_id]  # it never reached the venue
        r.advance(5.1)
        r.run()
        o = r.proc.tracker.get(req.client_id)
        assert (o.status, o.reason) == (OrderStatus.REJECTED, "not found at venue")
    finally:
        r.close()


def test_proc_venue_rejects_count_towards_breaker(tmp_path, ns):
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="reject"))
    try:
        assert reconciled(r)
        for i in range(5):
            r.advance(1.1)  # outside the duplicate window and order-rate window
            r.tick(0.5, 59999.9 + i, 60000.1 + i)
        assert len(r.venue.placed) == 5
        assert r.proc.breaker.state is BreakerState.HALTED
    finally:
        r.close()


def test_proc_restart_queries_unknown_intent_before_any_new_order(tmp_path, ns):
    r = make_rig(tmp_path, ns, venue=FakeVenue(mode="hang"))
    assert reconciled(r)
    r.tick(0.5)
    [req] = r.venue.placed  # intent journaled and sent; no answer before the "crash"
    r.close()  # the in-flight send is abandoned: nothing after SENT is journaled

    venue = FakeVenue()
    venue.known[req.client_id] = venue._update(req, "NEW", "O-77")  # it reached the venue
    r2 = make_rig(tmp_path, ns + "b", venue=venue)
    try:
        assert r2.proc.tracker.get(req.client_id).status is OrderStatus.UNKNOWN
        assert r2.proc.state == "reconciling"
        assert reconciled(r2)
        assert venue.calls[0] == f"query:{req.client_id}"
        assert r2.proc.tracker.get(req.client_id).status is OrderStatus.ACKED
        r2.tick(0.5)  # the same quote is already resting: no duplicate
        assert venue.placed == []
        assert r2.proc._ids is not None
        assert r2.proc._ids() != req.client_id
    finally:
        r2.close()


def test_proc_private_ws_down_holds_orders_then_reduces_then_halts(rig):
    rig.venue.ws_connected = False
    rig.advance(0.06)
    rig.run()
    rig.tick(0.5)
    assert rig.venue.placed == []  # held while the private WS is down ...
    assert rig.proc.health()["ws_down_deferred_total"] >= 1
    assert rig.proc.breaker.state is BreakerState.ACTIVE  # ... without a latch
    rig.advance(BreakerConfig().ws_reducing_after_s)
    rig.run()
    assert rig.proc.breaker.state is BreakerState.REDUCING
    rig.advance(31)  # past ws_halt_after_s
    rig.run()
    assert rig.proc.state == "halted"
    triggers = [e.trigger for e in rig.events(BreakerEvent)]
    assert triggers == ["ws_disconnected", "ws_disconnected"]


def test_proc_brief_private_ws_reconnect_does_not_latch(rig):
    rig.venue.ws_connected = False
    rig.advance(2.0)
    rig.run()
    rig.venue.ws_connected = True
    rig.advance(0.06)
    rig.run()

    rig.tick(0.5)

    assert rig.proc.breaker.state is BreakerState.ACTIVE
    assert rig.proc.state == "active"
    assert len(rig.venue.placed) == 1
    assert rig.events(BreakerEvent) == []


def test_proc_paper_mode_fills_locally_against_the_book(tmp_path, ns):
    from procs.trading.config import PaperConfig
    from procs.trading.engine import ExecutionProc
    from procs.trading.venue import PaperVenueAdapter

    holder: list[ExecutionProc] = []
    venue = PaperVenueAdapter(
        PaperConfig(),
        local=lambda cid: holder[0].tracker.get(cid) if cid in holder[0].tracker else None,
        positions=lambda: holder[0].positions.snapshots(),
        balance=lambda: D(0),
    )
    r = make_rig(tmp_path, ns, venue=venue, mode="paper")
    holder.append(r.proc)
    try:
        assert reconciled(r)
        r.tick(0.5)  # post-only bid at 59999.9 rests in the paper book
        [o] = r.proc.tracker.open_orders()
        assert o.status is OrderStatus.ACKED
        r.book_w.publish(book_records(59999.5, 59999.8, r.now()))  # the ask moves through it
        r.run()
        assert r.proc.tracker.get(o.client_id).status is OrderStatus.FILLED
        assert r.proc.positions.net_qty("BTCUSDT") == D("0.0016")
        fee = r.proc.positions.position("BTCUSDT").fees
        assert fee == D("0.0016") * D("59999.9") * D("0.0002")  # maker
        assert r.proc.journal.count("fills") == 1
    finally:
        r.close()


def test_proc_refused_cancel_is_queried_and_retried_once_per_timeout(rig):
    rig.tick(0.5)
    [req] = rig.venue.placed
    refusing = rig.venue.cancel

    async def refuse(symbol: str, client_id: str) -> None:
        rig.venue.cancels.append(client_id)
        raise VenueRejected("order status error", "VenueError")

    rig.venue.cancel = refuse
    rig.proc.cancel(req.client_id, rig.now(), "test")
    rig.run()
    assert rig.venue.cancels == [req.client_id]  # refused; the query found it still open
    assert rig.venue.queries == [req.client_id]
    rig.advance(0.5)  # within cancel_timeout_s: no retry yet
    rig.run()
    assert rig.venue.cancels == [req.client_id]
    rig.venue.cancel = refusing
    rig.advance(5.1)  # past cancel_timeout_s: queried again, then the cancel is re-sent
    rig.run()
    assert rig.venue.cancels == [req.client_id, req.client_id]
    assert rig.proc.tracker.get(req.client_id).status is OrderStatus.CANCELED


def _seq(records, seq):
    records["seq"] = seq  # as ingest numbers books (features and inference copy it)
    return records


def test_proc_journals_what_each_trading_step_read(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    try:
        ts = r.now() - 100_000
        r.book_w.publish(_seq(book_records(59999.9, 60000.1, ts), 1))
        r.sig_w.publish(_seq(sig_records(0.5, 60000.0, ts), 1))
        r.run(1)  # read before the first reconciliation: not a trading step, no row
        assert reconciled(r)
        ts = r.now() - 100_000
        r.book_w.publish(_seq(book_records(59999.9, 60000.1, ts), 2))
        r.sig_w.publish(_seq(sig_records(0.5, 60000.0, ts), 2))
        r.run(1)
        first = r.now()
        r.advance(0.01)
        ts = r.now() - 100_000
        r.book_w.publish(_seq(book_records(59999.9, 60000.1, ts), 3))
        r.book_w.publish(_seq(book_records(59999.8, 60000.0, ts + 1), 4))
        r.sig_w.publish(_seq(sig_records(0.6, 60000.0, ts), 3))
        r.sig_w.publish(_seq(sig_records(0.6, 59999.9, ts + 1), 4))
        r.run(1)  # both books and both signals in one step
        second = r.now()
        run_ms = r.proc.reads.run_ms
    finally:
        r.close()  # flushes what housekeeping had not yet written
    with sqlite3.connect(tmp_path / "j.sqlite") as c:
        rows = c.execute("SELECT run_ms, steps, ts_ns FROM reads ORDER BY id").fetchall()
    assert run_ms > 0
    steps = [step for _, text, _ in rows for step in json.loads(text)]
    assert steps == [[2, 2, 2, first], [4, 3, 4, second]]  # book, first and last signal, clock
    assert {r[0] for r in rows} == {run_ms}
    assert rows[-1][2] == second
