"""The keyed audit chain: every style of tampering shows, checkpoints anchor the head, an
operator's reseal accepts exactly what it names, and schema-1 journals migrate."""

# mypy: disable-error-code="union-attr"

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from procs.trading.audit import GENESIS, AuditChain, Checkpoints, reseal_body
from procs.trading.journal import SCHEMA_VERSION, Journal
from procs.trading.migrations import _legacy_link
from procs.trading.model import Fill, JournalError, PositionSide, Side
from procs.trading.risk import Refusal, RefusalReason

from .helpers import req

KEY = bytes(range(32))
V1_DUMP = Path(__file__).parent / "data" / "journal_v1.sql"
V2_DUMP = Path(__file__).parent / "data" / "journal_v2.sql"


def sql(path: Path, *queries: str) -> None:
    with closing(sqlite3.connect(path)) as c:
        for q in queries:
            c.execute(q)
        c.commit()


def fill(i: int) -> Fill:
    return Fill(
        fill_id=f"f{i}", client_id=f"br-1-{i}", order_id=f"X{i}", symbol="BTCUSDT",
        side=Side.BUY, position_side=PositionSide.BOTH, qty=Decimal("0.01"),
        price=Decimal("60000"), fee=Decimal("0.01"), maker=True, ts_ns=1000 + i,
    )  # fmt: skip


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.sqlite"


def populated(path: Path, n: int = 30) -> Journal:
    """A journal with intents, fills, refusals, meta; its head checkpointed."""
    j = Journal.open(path, KEY)
    for i in range(n):
        j.record_intent(req(cid=f"br-1-{i}"), 1000 + i)
        j.record_fill(fill(i))
        if i % 5 == 0:
            j.record_refusal(Refusal(RefusalReason.ORDER_RATE, "x", f"br-1-{i}", "BTCUSDT", i))
    j.set_meta("balance_base", "100000")
    j.save_daily(20000, Decimal(100000), Decimal(100000))
    j.checkpoint()
    return j


def verdict(path: Path) -> tuple[bool, str]:
    j = Journal.open(path, KEY)
    report = j.verify_audit()
    j.close()
    return report.ok, report.problem


def test_audit_untouched_journal_verifies_with_its_checkpoint(path):
    j = populated(path)

    report = j.verify_audit()
    j.close()

    assert report.ok, report.problem
    assert report.checkpoints >= 1
    assert report.head_id == report.rows


def _recompute_without_key(path: Path) -> None:
    """What an attacker without the key can do: rewrite every hash with plain sha256."""
    with closing(sqlite3.connect(path)) as c:
        prev = GENESIS
        for aid, ts, kind, body in c.execute(
            "SELECT id, ts_ns, kind, body FROM audit ORDER BY id"
        ).fetchall():
            h = _legacy_link(prev, aid, ts, kind, body)
            c.execute("UPDATE audit SET prev_hash=?, hash=? WHERE id=?", (prev, h, aid))
            prev = h
        c.commit()


def _truncate_last(path: Path, n: int) -> None:
    with closing(sqlite3.connect(path)) as c:
        (head,) = c.execute("SELECT MAX(id) FROM audit").fetchone()
        for table in ("intents", "fills", "risk_events"):
            c.execute(f"DELETE FROM {table} WHERE audit_id > ?", (head - n,))
        c.execute("DELETE FROM audit WHERE id > ?", (head - n,))
        c.commit()


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda p: sql(p, "UPDATE fills SET qty='0.02' WHERE fill_id='f3'"), "fills row differs"),
        (
            lambda p: sql(
                p,
                "UPDATE fills SET price='1' WHERE fill_id='f3'",
                "UPDATE audit SET body=replace(body, '\"60000\",\"0.01\",1', '\"1\",\"0.01\",1')"
                " WHERE id=(SELECT audit_id FROM fills WHERE fill_id='f3')",
            ),
            "hash chain broken",
        ),
        (lambda p: sql(p, "DELETE FROM fills WHERE fill_id IN ('f4', 'f5')"), "row deleted"),
        (
            lambda p: sql(
                p,
                "DELETE FROM fills WHERE fill_id='f4'",
                "DELETE FROM audit WHERE id NOT IN (SELECT audit_id FROM fills UNION"
                " SELECT audit_id FROM intents UNION SELECT audit_id FROM risk_events)"
                " AND kind='fills'",
            ),
            "deleted",
        ),
        (lambda p: _truncate_last(p, 20), "20 rows truncated"),
        (_recompute_without_key, "hash chain broken"),
        (
            lambda p: sql(p, "UPDATE meta SET value='900000' WHERE key='balance_base'"),
            "meta 'balance_base' differs",
        ),
        (
            lambda p: sql(p, "UPDATE meta SET value='[20000, \"0\", \"0\"]' WHERE key='daily_pnl'"),
            "meta 'daily_pnl' differs",
        ),
        (lambda p: sql(p, "DELETE FROM meta WHERE key='balance_base'"), "meta 'balance_base'"),
        (lambda p: sql(p, "INSERT INTO meta VALUES('halt', 'no')"), "never audited"),
    ],
    ids=[
        "edit-fill", "edit-fill-and-its-audit-body", "delete-fills", "delete-fill-and-audit",
        "truncate-last-20", "recompute-chain-without-key", "edit-meta-balance",
        "edit-meta-daily-pnl", "delete-meta", "insert-meta",
    ],
)  # fmt: skip
def test_audit_tampering_is_detected(path, tamper, problem):
    populated(path).close()
    tamper(path)

    ok, text = verdict(path)

    assert not ok
    assert problem in text


def test_audit_truncation_with_every_checkpoint_deleted_still_shows(path):
    populated(path).close()
    _truncate_last(path, 20)
    for ck in path.parent.glob("*.checkpoint*"):
        ck.unlink()

    ok, text = verdict(path)

    assert not ok
    assert "no checkpoint" in text


def test_audit_broken_journal_never_moves_its_checkpoint(path):
    populated(path).close()
    anchor = Path(f"{path}.checkpoint").read_text()
    _truncate_last(path, 20)

    for _ in range(3):  # execution refusing to start, again and again
        j = Journal.open(path, KEY)
        assert not j.verify_audit().ok
        j.close()

    assert Path(f"{path}.checkpoint").read_text() == anchor


def test_audit_forged_checkpoint_is_refused(path):
    populated(path).close()
    ck = Path(f"{path}.checkpoint")
    doc = json.loads(ck.read_text())
    doc["audit_id"] -= 20  # move the anchor back to hide a truncation
    ck.write_text(json.dumps(doc))

    ok, text = verdict(path)

    assert not ok
    assert "signature invalid" in text


def test_audit_another_key_fails_everything(path):
    populated(path).close()

    j = Journal.open(path, bytes(32))
    report = j.verify_audit()
    j._conn.close()  # not close(): that would anchor with the wrong key

    assert not report.ok
    assert report.first_bad_id == 1


def test_audit_checkpoints_rotate_and_keep_a_few(path):
    j = Journal.open(path, KEY, checkpoint_keep=3)
    for i in range(6):
        j.record_fill(fill(i))
        j.checkpoint()
    files = Checkpoints(path, AuditChain(KEY), keep=3).files()
    j.close()

    assert [f.name for f in files] == [
        "journal.sqlite.checkpoint", "journal.sqlite.checkpoint.1", "journal.sqlite.checkpoint.2"
    ]  # fmt: skip
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)


def test_audit_reseal_accepts_exactly_its_problems_then_new_tampering_shows(path):
    populated(path).close()
    sql(path, "UPDATE fills SET qty='0.02' WHERE fill_id='f3'")
    j = Journal.open(path, KEY)
    broken = j.verify_audit()

    j.reseal(broken, reseal_body(broken, {"reason": "fill f3 corrected by hand", "by": "op"}))
    after = j.verify_audit()
    j.record_fill(fill(99))
    j.close()
    sql(path, "UPDATE fills SET qty='0.05' WHERE fill_id='f7'")
    again = Journal.open(path, KEY)
    later = again.verify_audit()
    again.close()

    assert not broken.ok
    assert after.ok, after.problem
    assert [p.key for p in after.accepted] == [p.key for p in broken.problems]
    assert after.resealed[0]["reason"] == "fill f3 corrected by hand"
    assert not later.ok
    assert [p.audit_id for p in later.problems] != [p.audit_id for p in broken.problems]


def test_audit_reseal_after_truncation_reanchors(path):
    populated(path).close()
    _truncate_last(path, 20)
    j = Journal.open(path, KEY)
    broken = j.verify_audit()

    j.reseal(broken, reseal_body(broken, {"reason": "restored from backup"}))
    report = j.verify_audit()
    j.close()

    assert not broken.ok
    assert report.ok, report.problem
    assert list(path.parent.glob("*.checkpoint*resealed-*"))


# -- migrations --------------------------------------------------------------------------------


def v1_journal(path: Path) -> None:
    with closing(sqlite3.connect(path)) as c:
        c.executescript(V1_DUMP.read_text())


def test_migration_from_schema_1_keeps_every_row_and_chains_meta(path):
    v1_journal(path)

    j = Journal.open(path, KEY)
    report = j.verify_audit()
    rec = j.recover(hedge=False)
    j.close()

    assert report.ok, report.problem
    with closing(sqlite3.connect(path)) as c:
        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        kinds = [k for (k,) in c.execute("SELECT kind FROM audit ORDER BY id")]
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["balance_base"] == "100000"
    assert kinds[:13] == ["intents", "order_events", "fills"] * 3 + [
        "funding", "positions", "risk_events", "breaker_events",
    ]  # fmt: skip
    assert kinds.count("meta") == 4  # schema 1's two, then schema_version 2 and 3
    assert kinds[-4:] == ["migrate", "meta", "migrate", "meta"]
    assert (len(rec.orders), rec.fills_total, len(rec.funding)) == (3, 3, 1)
    assert list(path.parent.glob("journal.sqlite.schema1-*.bak"))


def test_migration_then_meta_edit_is_detected(path):
    v1_journal(path)
    Journal.open(path, KEY).close()
    sql(path, "UPDATE meta SET value='900000' WHERE key='balance_base'")

    ok, text = verdict(path)

    assert not ok
    assert "balance_base" in text


def test_migration_refuses_a_tampered_schema_1_journal(path):
    v1_journal(path)
    sql(path, "UPDATE fills SET qty='9' WHERE fill_id='f1'")

    with pytest.raises(JournalError, match="not migrating"):
        Journal.open(path, KEY)

    with closing(sqlite3.connect(path)) as c:
        assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)


def test_migration_schema_1_chain_recomputed_is_still_checked(path):
    v1_journal(path)
    with closing(sqlite3.connect(path)) as c:
        c.execute("UPDATE audit SET hash=? WHERE id=2", (hashlib.sha256(b"x").hexdigest(),))
        c.commit()

    with pytest.raises(JournalError, match="audit id 2"):
        Journal.open(path, KEY)


def test_migration_from_schema_2_adds_reads_and_keeps_the_chain(path):
    with closing(sqlite3.connect(path)) as c:
        c.executescript(V2_DUMP.read_text())

    j = Journal.open(path, KEY)
    j.record_reads(1, [(7, 6, 8, 1_700_000_000_000_000_100)])
    report = j.verify_audit()
    rec = j.recover(hedge=False)
    j.close()

    assert report.ok, report.problem
    assert (len(rec.orders), rec.fills_total) == (2, 2)
    with closing(sqlite3.connect(path)) as c:
        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        kinds = [k for (k,) in c.execute("SELECT kind FROM audit ORDER BY id")]
        migrated = c.execute("SELECT body FROM audit WHERE kind = 'migrate'").fetchone()[0]
        reads = c.execute("SELECT run_ms, steps, ts_ns FROM reads")
        assert reads.fetchall() == [(1, "[[7,6,8,1700000000000000100]]", 1_700_000_000_000_000_100)]
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "3"
    assert kinds[-3:] == ["migrate", "meta", "reads"]
    assert json.loads(migrated) == {"added": ["reads"], "from": 2, "to": 3}
    assert list(path.parent.glob("journal.sqlite.schema2-*.bak"))


def test_a_read_row_edited_after_the_fact_is_detected(path):
    j = Journal.open(path, KEY)
    j.record_reads(1, [(7, 6, 8, 100), (9, 9, 9, 200)])
    j.close()
    sql(path, "UPDATE reads SET steps = '[[7,6,7,100],[9,9,9,200]]'")

    ok, text = verdict(path)

    assert not ok
    assert "reads row differs" in text


def test_migration_newer_schema_is_refused(path):
    Journal.open(path, KEY).close()
    sql(path, f"UPDATE meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")

    with pytest.raises(JournalError, match="no migration path"):
        Journal.open(path, KEY)
