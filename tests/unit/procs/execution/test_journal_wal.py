"""The journal's WAL is merged into the database file by execution's housekeeping
(``Journal.merge_wal``), not by SQLite inside whichever commit passes 1,000 pages (an order's
intent); SQLite's own merge stays as a backstop far beyond that."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from procs.trading.journal import WAL_BACKSTOP_PAGES, WAL_MERGE_WRITES, Journal
from tests.helpers.execution_fakes import make_rig, reconciled

from .helpers import req


def _autocheckpoint(j: Journal) -> int:
    return int(j._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def _intent(j: Journal, cid: str, ts_ns: int) -> bool:
    """An intent and its journal row, in a transaction of its own (the row is deferred)."""
    done = j.record_intent(req(cid), ts_ns)
    j.flush()
    return done


def test_a_durable_journal_merges_its_wal_when_asked_and_not_before(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite")
    try:
        assert _autocheckpoint(j) == WAL_BACKSTOP_PAGES
        for i in range(WAL_MERGE_WRITES - 1):
            assert _intent(j, f"c-1-{i}", i)
        assert j.merge_wal(every_s=3600.0) == (0, 0)  # not yet: fewer writes, too soon
        assert _intent(j, "c-1-x", 1)
        frames, merged = j.merge_wal(every_s=3600.0)  # WAL_MERGE_WRITES of them: now
        assert frames > 1000  # ~4 pages each, and nothing merged them inside a commit
        assert merged == frames
        assert j.merge_wal(every_s=0.0) == (0, 0)  # nothing written since
        assert _intent(j, "c-2-1", 1)  # the WAL starts over; the chain goes on
        frames, merged = j.merge_wal(every_s=0.0)  # one write, but that long since the last
        assert 0 < merged == frames < 100
        assert j.verify_audit().ok
    finally:
        j.close()
    with closing(sqlite3.connect(tmp_path / "j.sqlite")) as c:
        assert c.execute("SELECT COUNT(*) FROM intents").fetchone() == (WAL_MERGE_WRITES + 1,)


def test_a_scratch_journal_leaves_the_merge_to_sqlite(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite", durable=False)
    try:
        assert _autocheckpoint(j) == 1000  # SQLite's default
        assert _intent(j, "c-1-1", 1)
        assert j.merge_wal() == (0, 0)
    finally:
        j.close()


class _MergeRefused:
    """The journal's connection where the merge fails (a full disk: the database file cannot
    grow), every other statement as it is."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, query: str, *args: object) -> sqlite3.Cursor:
        if query.startswith("PRAGMA wal_checkpoint"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_refused_merge_is_counted_and_loses_nothing(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite")
    real = j._conn
    try:
        for i in range(5):
            assert _intent(j, f"c-1-{i}", i)
        j._conn = _MergeRefused(real)  # type: ignore[assignment]  # a fake around the real one
        assert j.merge_wal(every_s=0.0) == (0, 0)
        assert j.wal_merge_errors_total == 1
        assert j.write_error == ""  # no write was refused: trading goes on
        assert _intent(j, "c-2-1", 9)
        j._conn = real
        frames, merged = j.merge_wal(every_s=0.0)
        assert merged == frames > 0
        assert j.verify_audit().ok
    finally:
        j._conn = real
        j.close()


def test_housekeeping_merges_the_journals_wal(tmp_path, ns):
    r = make_rig(tmp_path, ns)
    try:
        assert reconciled(r)
        calls: list[tuple[int, int]] = []
        merge = r.proc.journal.merge_wal

        def spy() -> tuple[int, int]:
            calls.append(merge(every_s=0.0))
            return calls[-1]

        r.proc.journal.merge_wal = spy  # type: ignore[method-assign]  # a spy on the real one
        r.proc.housekeeping(r.now())
        [(frames, merged)] = calls
        assert merged == frames > 0  # reconciliation's rows, merged
    finally:
        r.close()
