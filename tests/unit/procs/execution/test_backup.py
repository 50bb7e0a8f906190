"""Journal backups: online copies that verify on their own, pruned to the newest few."""

from __future__ import annotations

from decimal import Decimal

import pytest

from procs.journal_cli import check
from procs.trading.audit import AuditChain
from procs.trading.backup import BackupTask, backup_journal
from procs.trading.journal import Journal
from procs.trading.model import Fill, PositionSide, Side

KEY = bytes(range(32))


def fill(i: int) -> Fill:
    return Fill(
        fill_id=f"f{i}", client_id=f"c{i}", order_id=f"o{i}", symbol="BTCUSDT", side=Side.BUY,
        position_side=PositionSide.BOTH, qty=Decimal("0.01"), price=Decimal(60000),
        fee=Decimal("0.01"), maker=None, ts_ns=i,
    )  # fmt: skip


def test_backup_of_an_open_journal_verifies_on_its_own(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite", KEY)
    for i in range(5):
        j.record_fill(fill(i))

    out = backup_journal(tmp_path / "j.sqlite", tmp_path / "b" / "copy.sqlite", AuditChain(KEY))
    j.record_fill(fill(9))  # the live journal goes on; the copy is a consistent snapshot
    report = check(out, KEY)
    j.close()

    assert report.ok, report.problem
    assert report.rows == 6  # schema_version + 5 fills
    assert out.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o700


def test_backup_never_overwrites(tmp_path):
    Journal.open(tmp_path / "j.sqlite", KEY).close()
    backup_journal(tmp_path / "j.sqlite", tmp_path / "copy.sqlite", None)

    with pytest.raises(FileExistsError):
        backup_journal(tmp_path / "j.sqlite", tmp_path / "copy.sqlite", None)


def test_backup_task_keeps_the_newest_and_counts(tmp_path):
    j = Journal.open(tmp_path / "j.sqlite", KEY)
    task = BackupTask(tmp_path / "j.sqlite", tmp_path / "bk", 3600.0, 2, AuditChain(KEY))

    made = []
    for i in range(3):
        j.record_fill(fill(i))
        made.append(task.run_once())
    j.close()

    kept = sorted((tmp_path / "bk").glob("journal-*.sqlite"))
    assert kept == sorted(made[1:])
    assert task.done_total == 3
    assert all(check(p, KEY).ok for p in kept)


def test_backup_task_failure_is_counted_not_raised(tmp_path):
    task = BackupTask(
        tmp_path / "missing" / "j.sqlite", tmp_path / "bk", 3600.0, 2, AuditChain(KEY)
    )

    assert task.run_once() is None
    assert task.failed_total == 1
