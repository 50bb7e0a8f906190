"""An intent is durable in the intent log (a sealed line, synced) before its order can leave;
its journal row follows with the next transaction; the log is emptied only once the journal
holds its intents durably; a crash between the two loses no intent (``intent_log``)."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

import procs.trading.intent_log as ilog
import procs.trading.journal as jmod
from procs.trading._syncer import Syncer
from procs.trading.backup import set_aside
from procs.trading.journal import Journal
from procs.trading.model import JournalError, OrderStatus, TickStamps

from .helpers import req, run_until_killed


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def sql(path: Path, q: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as c:
        return list(c.execute(q, params))


def _log(path: Path) -> bytes:
    return Path(f"{path}-intents").read_bytes()


def test_an_intent_is_synced_in_the_log_before_its_order_can_leave(path, monkeypatch, caplog):
    synced: list[bytes] = []  # the log's content at each fdatasync
    real = ilog.os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        synced.append(_log(path))

    monkeypatch.setattr(ilog.os, "fdatasync", fdatasync)
    j = Journal.open(path)
    try:
        r = req(cid="br-1-1", stamps=TickStamps(1, 2, 3, 4), ts_order_ns=5)
        assert j.record_intent(r, 10)
        # synced when record_intent returned: one sealed line, the row's audit text
        assert len(synced) == 1
        assert synced[0].count(b"\n") == 1
        seal, _, text = synced[0].rstrip(b"\n").partition(b" ")
        assert len(seal) == 64
        assert text.startswith(b'["br-1-1","BTCUSDT"')
        assert sql(path, "SELECT client_id FROM intents") == []  # its row: the next write
        with pytest.raises(JournalError, match="already"):
            j.record_intent(r, 11)  # pending, not yet in the journal: still a duplicate
        j.flush()
        assert sql(path, "SELECT client_id, ts_ns FROM intents") == [("br-1-1", 10)]
        # ids never repeat (ClientIds, and risk refuses a repeat): one that reached the journal
        # anyway is a bug, found at its row's write, counted and logged
        assert j.record_intent(r, 12)
        j.flush()
        assert j.repeated_intents_total == 1
        assert "intent br-1-1: its client id was journaled before" in caplog.text
        assert sql(path, "SELECT client_id, ts_ns FROM intents") == [("br-1-1", 10)]
        assert j.verify_audit().ok
    finally:
        j.close()
    assert _log(path) == b""  # closed: every intent in the journal, durably


def test_the_log_is_emptied_only_after_the_wal_holding_its_intents_is_synced(path, monkeypatch):
    j = Journal.open(path)
    seen: list[tuple[list[tuple[object, ...]], int]] = []  # at the WAL's fsync: rows, log size
    real = jmod.os.fsync

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_ino == os.stat(f"{path}-wal").st_ino:
            seen.append((sql(path, "SELECT client_id FROM intents"), len(_log(path))))
        real(fd)

    try:
        assert j.record_intent(req(cid="c1"), 10)
        assert j.record_intent(req(cid="c2"), 11)
        assert j.merge_wal(every_s=0.0) == (0, 0)  # nothing written yet: not due
        j.flush()
        monkeypatch.setattr(jmod.os, "fsync", fsync)
        j.merge_wal(every_s=0.0)
        monkeypatch.undo()
        assert len(seen) == 1
        rows, log_size = seen[0]
        assert rows == [("c1",), ("c2",)]
        assert log_size > 0
        assert _log(path) == b""  # then emptied
    finally:
        monkeypatch.undo()
        j.close()


def test_the_wal_sync_finds_the_wal_file_that_is_there_not_a_removed_one(path, tmp_path):
    j = Journal.open(path)
    try:
        assert j.record_intent(req(cid="c1"), 10)
        j.flush()
        j._sync_wal()
        gone = tmp_path / "gone"
        gone.write_bytes(b"")
        os.close(j._wal_fd)
        j._wal_fd = os.open(gone, os.O_RDONLY)
        gone.unlink()
        j._sync_wal()
        assert os.fstat(j._wal_fd).st_ino == os.stat(f"{path}-wal").st_ino
    finally:
        j.close()


def test_an_intent_whose_sync_fails_is_refused_and_the_log_cut_back(path, monkeypatch):
    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    j = Journal.open(path)
    try:
        assert j.record_intent(req(cid="c1"), 10)
        before = _log(path)
        monkeypatch.setattr(ilog.os, "fdatasync", eio)
        assert not j.record_intent(req(cid="c2"), 11)  # the order must not leave
        assert "Input/output error" in j.write_error
        assert j.write_errors_total == 1
        assert _log(path) == before  # no half line left for later lines to follow
        monkeypatch.undo()
        assert not j.record_intent(req(cid="c3"), 12)  # sticky: nothing more is booked
        j.flush()
        assert sql(path, "SELECT client_id FROM intents") == [("c1",)]
    finally:
        monkeypatch.undo()
        j.close()


def _no_sync_here(fd: int) -> None:
    raise AssertionError("synced on the order's thread")


def test_after_send_an_intent_is_written_at_once_and_synced_by_the_logs_thread(path, monkeypatch):
    monkeypatch.setattr(ilog.os, "fdatasync", _no_sync_here)  # the C thread calls fdatasync(2)
    j = Journal.open(path, intent_sync="after_send")
    log = j.intent_log
    assert log is not None
    try:
        for i in range(4):
            assert j.record_intent(req(cid=f"a{i}"), 10 + i)
        assert _log(path).count(b"\n") == 4  # written: the process's death would not lose them
        assert log.wait_synced(10)
        lags = log.drain_sync_lags()
        assert 1 <= len(lags) <= 4  # one sync covers every line written before it began
        assert all(lag > 0 for lag in lags)
        assert log.drain_sync_lags() == []  # drained
        assert log.sync_error() is None
    finally:
        j.close()
    assert _log(path) == b""


def test_before_send_the_sync_is_on_the_orders_thread(path, monkeypatch):
    threads: list[int] = []
    real = ilog.os.fdatasync

    def fdatasync(fd: int) -> None:
        threads.append(threading.get_ident())
        real(fd)

    monkeypatch.setattr(ilog.os, "fdatasync", fdatasync)
    j = Journal.open(path, intent_sync="before_send")
    try:
        assert j.record_intent(req(cid="b1"), 10)
        assert threads == [threading.get_ident()]
        assert j.intent_log is not None
        assert j.intent_log.drain_sync_lags() == []
    finally:
        j.close()


def test_the_syncer_thread_reports_a_failed_sync_and_stops_cleanly():
    r, w = os.pipe()  # fdatasync(2) on a pipe fails (EINVAL): a sync the disk refused
    try:
        s = Syncer(r)
        assert s.wait(0.0)  # nothing asked yet
        s.request()
        assert not s.wait(10.0)  # it returns once the sync failed: that covered nothing
        assert s.error == errno.EINVAL
        assert s.drain() == []  # a failed sync has no window
        s.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            s.request()
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("seen_by", ["the next write", "housekeeping"])
def test_after_send_a_failed_sync_refuses_every_later_write(path, seen_by):
    j = Journal.open(path, intent_sync="after_send")
    log = j.intent_log
    assert log is not None
    r, w = os.pipe()
    real = log._syncer
    try:
        assert j.record_intent(req(cid="e1"), 10)
        log._syncer = Syncer(r)  # the next sync fails, as a disk's I/O error would
        assert j.record_intent(req(cid="e2"), 11)  # its order left; its sync then fails
        assert not log.wait_synced(10)  # returns once the sync failed
        assert log.sync_error() is not None
        if seen_by == "the next write":
            assert not j.record_intent(req(cid="e3"), 12)  # the kernel may have dropped lines
        else:
            j.merge_wal()  # no order since: the journal's write error is set all the same
        assert "an earlier sync of the intent log failed" in j.write_error
        assert not j.record_intent(req(cid="e4"), 13)  # sticky: the breaker halts on it
    finally:
        if log._syncer is not real:
            log._syncer.stop()
            log._syncer = real
        j.close()
        os.close(r)
        os.close(w)


def test_a_scratch_journal_has_no_log_and_writes_the_row_with_the_next_write(path):
    j = Journal.open(path, durable=False)
    try:
        assert j.record_intent(req(cid="c1"), 10)
        j.flush()
        assert sql(path, "SELECT client_id FROM intents") == [("c1",)]
    finally:
        j.close()
    assert not Path(f"{path}-intents").exists()


_CRASH = """
import os, signal, sys
from procs.trading.journal import Journal
from tests.unit.procs.execution.helpers import req
j = Journal.open(sys.argv[1], intent_sync=sys.argv[2])
assert j.record_intent(req(cid="k1"), 10)
j.flush()
assert j.record_intent(req(cid="k2"), 11)  # its order may have left: then the process dies
assert j.record_intent(req(cid="k3"), 12)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("sync", ["before_send", "after_send"])
def test_a_process_killed_between_the_log_and_the_journal_loses_no_intent(path, sync):
    # after_send: killed before the log's thread may have synced k3: the kernel keeps the line
    run_until_killed(_CRASH, str(path), sync)
    assert sql(path, "SELECT client_id FROM intents") == [("k1",)]
    assert _log(path).count(b"\n") == 3  # k1 (not yet emptied), k2, k3

    j = Journal.open(path)
    try:
        assert sql(path, "SELECT client_id, ts_ns FROM intents ORDER BY id") == [
            ("k1", 10), ("k2", 11), ("k3", 12)
        ]  # fmt: skip
        assert _log(path) == b""
        assert j.verify_audit().ok
        got = j.recover(hedge=False)
        assert [(o.client_id, o.status) for o in got.orders] == [
            ("k1", OrderStatus.NEW_INTENT), ("k2", OrderStatus.NEW_INTENT),
            ("k3", OrderStatus.NEW_INTENT),
        ]  # fmt: skip
        assert got.last_client_id == "k3"
    finally:
        j.close()


def _crashed(path: Path, cids: list[str]) -> None:
    """A journal whose process died with these intents logged and not written."""
    j = Journal.open(path)
    for i, cid in enumerate(cids):
        assert j.record_intent(req(cid=cid), 10 + i)
    j._conn.close()  # the process dies: its deferred rows are never written
    assert j.intent_log is not None
    j.intent_log.close()


def test_a_line_cut_short_by_a_crash_is_dropped(path, caplog):
    _crashed(path, ["c1", "c2"])
    Path(f"{path}-intents").write_bytes(_log(path) + b'0123abcd ["c3","BTC')  # cut short
    j = Journal.open(path)
    try:
        assert sql(path, "SELECT client_id FROM intents ORDER BY id") == [("c1",), ("c2",)]
        assert "dropped its last line" in caplog.text
        assert j.verify_audit().ok
    finally:
        j.close()


@pytest.mark.parametrize("edit", ["text", "seal"])
def test_an_edited_or_damaged_line_before_the_last_refuses_to_open(path, edit):
    _crashed(path, ["c1", "c2"])
    first, second, _ = _log(path).split(b"\n")
    seal, _, text = first.partition(b" ")
    if edit == "text":
        first = seal + b" " + text.replace(b'"c1"', b'"c9"')
    else:
        first = b"f" * 64 + b" " + text
    Path(f"{path}-intents").write_bytes(first + b"\n" + second + b"\n")
    with pytest.raises(JournalError, match="line 1 is damaged or was edited"):
        Journal.open(path)
    assert sql(path, "SELECT client_id FROM intents") == []  # nothing half-replayed


def test_a_restore_sets_the_old_log_aside(path, tmp_path):
    _crashed(path, ["c1"])
    moved = set_aside(path, "t1")
    assert Path(f"{path}-intents.t1") in moved
    assert not Path(f"{path}-intents").exists()


def test_execution_writes_the_intent_row_after_the_send_and_empties_the_log(tmp_path, ns):
    from tests.helpers.execution_fakes import make_rig, reconciled

    rig = make_rig(tmp_path, ns)
    try:
        assert reconciled(rig)
        journal = rig.proc.journal
        rig.tick(0.5)
        [placed] = rig.venue.placed
        logged = Path(journal.path + "-intents").read_bytes()
        assert f'["{placed.client_id}",'.encode() in logged  # synced before it was sent
        rig.run()  # the loop's next pass: the SENT row's flush writes the intent's row too
        assert sql(Path(journal.path), "SELECT client_id FROM intents") == [(placed.client_id,)]
        merge = journal.merge_wal
        journal.merge_wal = lambda: merge(every_s=0.0)  # type: ignore[method-assign]  # due now
        rig.proc.housekeeping(rig.now())  # the WAL merge is due: the log is emptied first
        assert Path(journal.path + "-intents").read_bytes() == b""
        health = rig.proc.health()
        assert health["journal_repeated_intents_total"] == 0
        assert health["intent_sync"] == "before_send"  # the rig's journal syncs inline
    finally:
        rig.close()


_MOUNTS = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "25 22 0:21 / /dev/shm rw,nosuid shared:3 - tmpfs tmpfs rw\n"
    "31 25 254:0 /data /dev/shm/on\\040disk rw shared:1 - ext4 /dev/vda rw\n"
)


@pytest.mark.parametrize(
    ("mode", "setting", "journal", "want"),
    [
        # a host's crash must not lose a live intent
        ("live", "auto", "/srv/j.sqlite", "before_send"),
        ("paper", "auto", "/srv/j.sqlite", "after_send"),  # paper orders rest in the process anyway
        ("paper", "auto", "/dev/shm/x/j.sqlite", "before_send"),  # in memory: the sync is ~free
        ("paper", "auto", "/dev/shm/on disk/j.sqlite", "after_send"),  # a disk mounted inside it
        ("paper", "before_send", "/srv/j.sqlite", "before_send"),
        ("live", "after_send", "/srv/j.sqlite", "after_send"),
        ("live", "after_send", "/dev/shm/j.sqlite", "after_send"),  # as set
    ],
)
def test_the_config_chooses_when_an_intent_is_synced(tmp_path, mode, setting, journal, want):
    from procs.trading.config import ExecutionConfig, JournalConfig, SymbolConfig
    from procs.trading.guard import intent_sync

    mounts = tmp_path / "mountinfo"
    mounts.write_text(_MOUNTS)
    cfg = ExecutionConfig(
        symbols=[SymbolConfig(symbol="BTCUSDT", symbol_id=1)],
        mode=mode,
        journal_path=journal,
        journal=JournalConfig(intent_sync=setting),
    )
    assert intent_sync(cfg, str(mounts)) == want


def test_the_file_system_of_a_path_is_its_nearest_mount_points(tmp_path):
    from procs.trading.guard import filesystem_of

    mounts = tmp_path / "mountinfo"
    mounts.write_text(_MOUNTS)
    assert filesystem_of("/dev/shm", str(mounts)) == "tmpfs"
    assert filesystem_of("/dev/shmem/j", str(mounts)) == "ext4"  # a prefix is not a parent
    assert filesystem_of("/dev/shm/on disk", str(mounts)) == "ext4"
    assert filesystem_of("/x", str(tmp_path / "none")) == ""  # no mount table: unknown
