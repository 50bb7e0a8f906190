"""``bitrader audit verify|override`` and ``bitrader journal backup|restore`` as commands."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from procs.group.supervise import ROOT
from procs.trading.journal import Journal
from procs.trading.model import Fill, PositionSide, Side

pytestmark = pytest.mark.integration


def bitrader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procs.cli", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def fill(i: int) -> Fill:
    return Fill(
        fill_id=f"f{i}", client_id=f"c{i}", order_id=f"o{i}", symbol="BTCUSDT", side=Side.BUY,
        position_side=PositionSide.BOTH, qty=Decimal("0.01"), price=Decimal(60000),
        fee=Decimal("0.01"), maker=True, ts_ns=i,
    )  # fmt: skip


@pytest.fixture
def journal(tmp_path) -> Path:
    path = tmp_path / "run" / "execution.sqlite"
    j = Journal.open(path)  # generates run/audit.key, as the demo does
    for i in range(10):
        j.record_fill(fill(i))
    j.set_meta("balance_base", "100000")
    j.close()
    return path


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as c:
        return c.execute(query).fetchall()


def test_audit_verify_ok_then_broken_after_an_edit(journal):
    good = bitrader("audit", "verify", journal)
    with closing(sqlite3.connect(journal)) as c:
        c.execute("UPDATE fills SET qty='1' WHERE fill_id='f2'")
        c.commit()

    bad = bitrader("audit", "verify", journal)
    as_json = bitrader("audit", "verify", journal, "--json")

    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK" in good.stdout
    assert bad.returncode == 1
    assert "BROKEN" in bad.stdout
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert doc["problems"][0]["detail"].startswith("fills row differs")


def test_audit_verify_refuses_a_loose_key_file_with_78(journal):
    (journal.parent / "audit.key").chmod(0o644)

    done = bitrader("audit", "verify", journal)

    assert done.returncode == 78
    assert "group or others" in done.stderr


def test_audit_override_writes_a_fingerprinted_request(journal):
    with closing(sqlite3.connect(journal)) as c:
        c.execute("DELETE FROM fills WHERE fill_id='f2'")
        c.commit()

    done = bitrader("audit", "override", journal, "--reason", "fill f2 was a test order")

    assert done.returncode == 0, done.stderr
    doc = json.loads(Path(f"{journal}.audit-override").read_text())
    assert doc["reason"] == "fill f2 was a test order"
    assert doc["problems"] == 1
    assert Path(f"{journal}.audit-override").stat().st_mode & 0o777 == 0o600


def test_journal_backup_then_restore_is_verified_and_audited(journal, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    made = bitrader("journal", "backup", journal, backups)
    [backup] = list(backups.glob("journal-*.sqlite"))
    j = Journal.open(journal)
    assert j.verify_audit().ok
    j.record_fill(fill(50))  # written after the backup: the restore drops it
    j.close()

    check = bitrader("audit", "verify", backup, "--key-file", journal.parent / "audit.key")
    restored = bitrader("journal", "restore", backup, journal)
    after = bitrader("audit", "verify", journal)

    assert made.returncode == 0, made.stderr
    assert backup.stat().st_mode & 0o777 == 0o600
    assert check.returncode == 0, check.stdout + check.stderr
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert after.returncode == 0, after.stdout
    assert rows(journal, "SELECT fill_id FROM fills WHERE fill_id='f50'") == []
    assert rows(journal, "SELECT kind FROM audit ORDER BY id DESC LIMIT 1") == [("restore",)]
    assert list(journal.parent.glob("execution.sqlite.pre-restore-*"))


def test_journal_restore_refuses_a_tampered_backup(journal, tmp_path):
    backup = tmp_path / "b.sqlite"
    assert bitrader("journal", "backup", journal, backup).returncode == 0
    with closing(sqlite3.connect(backup)) as c:
        c.execute("UPDATE meta SET value='900000' WHERE key='balance_base'")
        c.commit()

    done = bitrader("journal", "restore", backup, journal)

    assert done.returncode == 1
    assert "does not verify" in done.stderr
    assert rows(journal, "SELECT value FROM meta WHERE key='balance_base'") == [("100000",)]


def test_journal_backup_says_when_the_intent_log_holds_intents_it_lacks(journal, tmp_path):
    from tests.unit.procs.execution.helpers import req

    quiet = bitrader("journal", "backup", journal, tmp_path / "b0.sqlite")
    j = Journal.open(journal)
    assert j.record_intent(req(cid="c1"), 1)  # logged; its row not written (the process dies)
    j._conn.close()
    assert j.intent_log is not None
    j.intent_log.close()

    noted = bitrader("journal", "backup", journal, tmp_path / "b1.sqlite")

    assert quiet.returncode == 0, quiet.stderr
    assert "holds intents or fills" not in quiet.stderr
    assert noted.returncode == 0, noted.stderr
    assert "holds intents or fills whose journal rows are not written yet" in noted.stderr
    assert rows(tmp_path / "b1.sqlite", "SELECT client_id FROM intents") == []
