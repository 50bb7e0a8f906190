"""A fill is journaled before it is booked: in a durable journal, as one line of the intent log
(its transition's rows, after every deferred row not logged yet), committed with the journal's
next transaction; a crash between the two loses no fill (``intent_log``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

import procs.trading.intent_log as ilog
from procs.trading.intent_log import log_path
from procs.trading.journal import Journal
from procs.trading.model import JournalError, OrderStatus, VenueOrderUpdate
from procs.trading.orders import OrderTracker, OrderTransition

from .helpers import req, run_until_killed

D = Decimal


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def sql(path: Path, q: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as c:
        return list(c.execute(q))


def _log(path: Path) -> bytes:
    return Path(log_path(path)).read_bytes()


def _filled(j: Journal, t: OrderTracker, cid: str, now: int, qty: str = "0.01") -> OrderTransition:
    """An order placed, SENT (deferred, as execution defers it) and FILLED: the transition."""
    r = req(cid=cid, qty=qty)
    t.add_intent(r, now)
    assert j.record_intent(r, now)
    sent = t.mark_sent(cid, now + 1)
    assert sent is not None
    j.defer_order(sent.order, sent.old, sent.cause, now + 1)
    upd = VenueOrderUpdate(
        client_id=cid, order_id="X" + cid, symbol="BTCUSDT", status="FILLED",
        filled_qty=D(qty), avg_price=D("60000"), fee=D("0.01"), mtime_ms=0,
    )  # fmt: skip
    tr = t.on_venue_update(upd, now + 2)
    assert tr is not None
    assert len(tr.fills) == 1
    return tr


def test_a_fill_is_logged_before_it_is_booked_and_committed_with_the_next_write(path, monkeypatch):
    synced: list[int] = []
    real = ilog.os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(ilog.os, "fdatasync", fdatasync)
    j = Journal.open(path)
    try:
        tr = _filled(j, OrderTracker(ack_timeout_s=5, cancel_timeout_s=5), "br-1-1", 10)
        before, syncs = _log(path), len(synced)
        assert not j.secured  # the SENT row is deferred, not in the log
        new = j.record_transition(tr, 12)
        assert [f.fill_id for f in new] == [f.fill_id for f in tr.fills]
        assert len(synced) == syncs  # written, not synced: as a NORMAL commit is
        line = _log(path)[len(before) :]
        assert line.count(b"\n") == 1
        rows = msgspec.json.decode(line.partition(b" ")[2])["rows"]
        assert [r[0] for r in rows] == ["order_events", "order_events", "fills"]  # SENT first
        assert [r[1][2] for r in rows[:2]] == ["SENT", "FILLED"]
        assert rows[2][1][0] == tr.fills[0].fill_id
        assert j.secured
        assert j.pending
        assert sql(path, "SELECT fill_id FROM fills") == []  # the next write commits it
        # a repeat of the fill, waiting or committed, is not new (nothing booked twice)
        assert j.record_transition(tr, 13) == []
        j.flush()
        assert j.record_transition(tr, 14) == []
        assert sql(path, "SELECT fill_id FROM fills") == [(tr.fills[0].fill_id,)]
        assert [r[0] for r in sql(path, "SELECT new FROM order_events ORDER BY id")] == [
            "SENT", "FILLED", "FILLED", "FILLED",
        ]  # fmt: skip
        assert j.verify_audit().ok
    finally:
        j.close()
    assert _log(path) == b""  # closed: every row in the journal, durably


def test_a_scratch_journal_writes_a_fill_at_once(path):
    j = Journal.open(path, durable=False)
    try:
        tr = _filled(j, OrderTracker(ack_timeout_s=5, cancel_timeout_s=5), "br-1-1", 10)
        assert len(j.record_transition(tr, 12)) == 1
        assert sql(path, "SELECT new FROM order_events ORDER BY id") == [("SENT",), ("FILLED",)]
        assert not j.pending
    finally:
        j.close()


def test_a_fill_whose_line_is_refused_is_not_booked_and_the_log_cut_back(path, monkeypatch):
    j = Journal.open(path)
    try:
        tr = _filled(j, OrderTracker(ack_timeout_s=5, cancel_timeout_s=5), "br-1-1", 10)
        before = _log(path)

        def enospc(fd: int, data: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ilog.os, "write", enospc)
        assert j.record_transition(tr, 12) == []  # not journaled: not booked
        monkeypatch.undo()
        assert "No space left" in j.write_error
        assert _log(path) == before
        assert sql(path, "SELECT fill_id FROM fills") == []
        # once refused, a fill is written as before the log took fills: a transaction, at
        # once (booked only if the disk takes it; the process halts on write_error anyway)
        assert len(j.record_transition(tr, 13)) == 1
        assert sql(path, "SELECT fill_id FROM fills") == [(tr.fills[0].fill_id,)]
        assert _log(path) == before
    finally:
        j.close()


_CRASH = """
import os, signal, sys
from procs.trading.journal import Journal
from procs.trading.orders import OrderTracker
from tests.unit.procs.execution.test_fill_log import _filled
j = Journal.open(sys.argv[1])
t = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
assert len(j.record_transition(_filled(j, t, "k1", 10), 12)) == 1
j.flush()
assert len(j.record_transition(_filled(j, t, "k2", 20, "0.02"), 22)) == 1  # booked: it may
assert len(j.record_transition(_filled(j, t, "k3", 30, "0.03"), 32)) == 1  # have been traded on
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_between_the_log_and_the_journal_loses_no_fill(path):
    run_until_killed(_CRASH, str(path))
    assert sql(path, "SELECT client_id FROM fills") == [("k1",)]

    j = Journal.open(path)
    try:
        assert sql(path, "SELECT client_id FROM fills ORDER BY id") == [("k1",), ("k2",), ("k3",)]
        assert _log(path) == b""
        assert j.verify_audit().ok
        got = j.recover(hedge=False)
        assert {o.client_id: o.status for o in got.orders} == {
            "k1": OrderStatus.FILLED, "k2": OrderStatus.FILLED, "k3": OrderStatus.FILLED,
        }  # fmt: skip
        assert got.positions.position("BTCUSDT").qty == D("0.06")
        assert got.fills_total == 3
    finally:
        j.close()


def _crashed(path: Path) -> None:
    """A journal whose process died with two fills logged and not committed."""
    j = Journal.open(path)
    t = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
    for i, cid in enumerate(["c1", "c2"]):
        assert j.record_transition(_filled(j, t, cid, 10 * (i + 1)), 10 * (i + 1) + 2)
    j._conn.close()  # the process dies: its deferred rows are never written
    assert j.intent_log is not None
    j.intent_log.close()


def test_a_fill_line_cut_short_by_a_crash_is_dropped(path, caplog):
    _crashed(path)
    Path(log_path(path)).write_bytes(_log(path)[:-20])  # the last line: c2's fill, cut short
    j = Journal.open(path)
    try:
        assert sql(path, "SELECT client_id FROM fills") == [("c1",)]
        assert "dropped its last line" in caplog.text
        got = {o.client_id: o.status for o in j.recover(hedge=False).orders}
        assert got == {"c1": OrderStatus.FILLED, "c2": OrderStatus.NEW_INTENT}  # then queried
        assert j.verify_audit().ok
    finally:
        j.close()


def test_an_edited_fill_line_before_the_last_refuses_to_open(path):
    _crashed(path)
    lines = _log(path).split(b"\n")
    assert b'"rows"' in lines[1]  # c1's intent, c1's fill, c2's intent, c2's fill
    lines[1] = lines[1].replace(b'"0.01"', b'"0.09"')
    Path(log_path(path)).write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match="line 2 is damaged or was edited"):
        Journal.open(path)
    assert sql(path, "SELECT client_id FROM fills") == []  # nothing half-replayed


def test_a_fill_id_repeated_within_one_transition_is_booked_once(path):
    j = Journal.open(path)
    try:
        tr = _filled(j, OrderTracker(ack_timeout_s=5, cancel_timeout_s=5), "br-1-1", 10)
        twice = OrderTransition(tr.client_id, tr.old, tr.new, tr.order, tr.fills * 2, tr.cause)
        assert [f.fill_id for f in j.record_transition(twice, 12)] == [tr.fills[0].fill_id]
        j.flush()
        assert sql(path, "SELECT fill_id FROM fills") == [(tr.fills[0].fill_id,)]
        assert j.verify_audit().ok
    finally:
        j.close()


@pytest.mark.parametrize("table", ["meta", "intents"])
def test_a_sealed_fill_line_naming_another_table_refuses_to_open(path, table):
    # only the journal writes the log (its lines are sealed with the audit key), and a fill's
    # line holds order rows and fills: any other table is a damaged or forged file
    _crashed(path)
    j = Journal.open(path, durable=False)  # (no replay: only to reach the audit key)
    text = msgspec.json.encode({"rows": [[table, ["k", "v"], 1], ["fills", ["f1"], 1]]})
    forged = j._chain.seal(text).encode() + b" " + text + b"\n"
    j.close()
    Path(log_path(path)).write_bytes(forged + _log(path))
    with pytest.raises(JournalError, match="line 1 is damaged or was edited"):
        Journal.open(path)


def test_a_repeat_fill_is_found_in_memory_for_orders_born_here_and_by_select_for_others(
    path, monkeypatch
):
    statements: list[str] = []
    j = Journal.open(path)
    try:
        j._conn.set_trace_callback(statements.append)
        t = OrderTracker(ack_timeout_s=5, cancel_timeout_s=5)
        tr = _filled(j, t, "br-1-1", 10)
        assert len(j.record_transition(tr, 12)) == 1
        j.flush()
        assert j.record_transition(tr, 13) == []  # a repeat of an order born here ...
        assert not [s for s in statements if "FROM fills" in s]  # ... found without a SELECT
    finally:
        j.close()
    j = Journal.open(path)  # after a restart the order is not born here: the SELECT finds it
    try:
        statements.clear()
        j._conn.set_trace_callback(statements.append)
        assert j.record_transition(tr, 14) == []
        assert [s for s in statements if "FROM fills" in s]
        monkeypatch.setattr("procs.trading.journal.BORN_MAX", 2)  # the oldest order is dropped
        trs = [_filled(j, t, f"br-2-{i}", 20 + i) for i in range(3)]
        for i, tr_i in enumerate(trs):
            assert len(j.record_transition(tr_i, 30 + i)) == 1
        assert "br-2-0" not in j._born
        assert [j.record_transition(tr_i, 40) for tr_i in trs] == [[], [], []]
        j.flush()
        assert sql(path, "SELECT COUNT(*) FROM fills") == [(4,)]
    finally:
        j.close()
