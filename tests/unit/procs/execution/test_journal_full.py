"""A journal that cannot take a write (a full disk: real SQLITE_FULL via ``max_page_count``):
nothing unjournaled is booked or sent, execution halts and cancels instead of crashing, and the
journal works again once there is room (the chaos suite's full disk found the crash loop)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from ipc.orders import BreakerEvent
from procs.trading.breaker import BreakerState, BreakerTrigger
from procs.trading.journal import Journal
from procs.trading.model import Fill, PositionSide, Side
from tests.helpers.execution_fakes import make_rig, reconciled

from .helpers import req


def _fill(i: int) -> Fill:
    return Fill(
        fill_id=f"f{i}", client_id=f"c{i}", order_id=f"o{i}", symbol="BTCUSDT", side=Side.BUY,
        position_side=PositionSide.BOTH, qty=Decimal("0.001"), price=Decimal("60000"),
        fee=Decimal("0.01"), maker=True, ts_ns=i,
    )  # fmt: skip


def _disk_full(conn: sqlite3.Connection) -> None:
    """No page more for this database: the next write that needs one gets SQLITE_FULL."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    conn.execute("CREATE TABLE IF NOT EXISTS pad(b BLOB)")
    for _ in range(1000):
        try:
            conn.execute("INSERT INTO pad VALUES (zeroblob(2000))")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                return
            raise
    raise AssertionError("max_page_count did not fill the database")


class _NoRoom:
    """The journal's connection on a disk with no byte left: every COMMIT is refused with the
    error SQLite gives then (a fake: a small database's pages keep room for small rows)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, query: str, *args: object) -> sqlite3.Cursor:
        if query == "COMMIT":
            err = sqlite3.OperationalError("database or disk is full")
            err.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise err
        return self._conn.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_refused_write_books_nothing_and_raises_only_for_an_intent(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        assert j.record_fill(_fill(0))
        _disk_full(j._conn)
        results = [j.record_fill(_fill(i)) for i in range(1, 40)]
        assert not all(results)  # the disk refused some: no exception, nothing half-written
        assert j.write_error.startswith("OperationalError: database or disk is full")
        assert j.write_errors_total == results.count(False)
        assert j.count("fills") == 1 + results.count(True)
        j._conn = _NoRoom(j._conn)  # type: ignore[assignment]
        assert j.record_intent(req("i1"), 1) is False  # refused: the order must not leave
        assert j.count("intents") == 0
        j._conn = j._conn._conn  # type: ignore[attr-defined]
        j._conn.execute("PRAGMA max_page_count = 1073741823")  # room again
        assert j.record_fill(_fill(999))
        assert j.verify_audit().ok
    finally:
        j.close()


def test_execution_halts_and_cancels_on_a_full_journal_instead_of_crashing(tmp_path, ns):
    rig = make_rig(tmp_path, ns)
    try:
        assert reconciled(rig)
        rig.tick(0.5)
        [resting] = rig.venue.placed
        journal = rig.proc.journal
        journal._conn = _NoRoom(journal._conn)  # type: ignore[assignment]
        for _ in range(20):  # signals, fills of nothing, housekeeping: every write refused
            rig.tick(0.6, 60010.0, 60010.2)
            rig.advance(0.3)
            rig.run()
            if rig.proc.breaker.state is BreakerState.HALTED:
                break

        assert rig.proc.breaker.state is BreakerState.HALTED
        assert rig.proc.state == "halted"
        assert resting.client_id in rig.venue.cancels  # cancels go out unjournaled
        assert rig.proc.journal.count("intents") == 1  # nothing new was sent
        assert len(rig.venue.placed) == 1
        health = rig.proc.health()
        assert "disk is full" in str(health["journal_write_error"])
        assert int(health["journal_write_errors_total"]) >= 1
        assert [e.trigger for e in rig.events(BreakerEvent)] == [BreakerTrigger.JOURNAL]
    finally:
        rig.close()
