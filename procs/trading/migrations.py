"""Journal schema migrations: one step per version, after a backup, in one transaction.

1 → 2: the audit chain becomes HMAC-keyed and covers ``meta``. The schema-1 chain (unkeyed
sha256) is checked first, and a journal failing it is not migrated (re-keying would launder the
tampering). Every audit row is then re-linked with the key, every ``meta`` value gets its audit
row, and a ``migrate`` row records the schema-1 head.

2 → 3: the ``reads`` table (what each trading step read; ``journal.py``) is added, empty, and a
``migrate`` row says so. A step added later appends to ``STEPS``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from procs._files import chmod_private
from procs.trading.audit import GENESIS, META, AuditChain, Problem, _check_content
from procs.trading.model import JournalError

log = logging.getLogger(__name__)

Columns = Mapping[str, tuple[str, ...]]


def _append_audit(conn: sqlite3.Connection, chain: AuditChain, kind: str, body: str) -> None:
    last_id, last_hash = conn.execute(
        "SELECT COALESCE(MAX(id), 0), COALESCE((SELECT hash FROM audit ORDER BY id DESC LIMIT 1),"
        " ?) FROM audit",
        (GENESIS,),
    ).fetchone()
    ts_ns = time.time_ns()
    digest = chain.link(last_hash, last_id + 1, ts_ns, kind, body)
    conn.execute(
        "INSERT INTO audit(id, ts_ns, kind, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
        (last_id + 1, ts_ns, kind, body, last_hash, digest),
    )


def _set_meta(conn: sqlite3.Connection, chain: AuditChain, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
    _append_audit(conn, chain, META, json.dumps([key, value], separators=(",", ":")))


def _legacy_link(prev_hash: str, audit_id: int, ts_ns: int, kind: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}{audit_id}|{ts_ns}|{kind}|{body}".encode()).hexdigest()


def _v1_to_v2(conn: sqlite3.Connection, chain: AuditChain, columns: Columns) -> None:
    rows = conn.execute(
        "SELECT id, ts_ns, kind, body, prev_hash, hash FROM audit ORDER BY id"
    ).fetchall()
    prev, expect = GENESIS, 1
    for audit_id, ts_ns, kind, body, prev_hash, digest in rows:
        if (
            audit_id != expect
            or prev_hash != prev
            or _legacy_link(prev, audit_id, ts_ns, kind, body) != digest
        ):
            raise JournalError(
                f"schema-1 journal fails its own chain check at audit id {audit_id}:"
                " not migrating it (restore a backup, or inspect it with sqlite3)"
            )
        prev, expect = digest, expect + 1
    problems: list[Problem] = []
    _check_content(conn, _existing(conn, columns), problems)  # the tables schema 1 had
    if problems:
        raise JournalError(f"schema-1 journal: {problems[0].detail}: not migrating it")
    new_prev = GENESIS
    for audit_id, ts_ns, kind, body, _, _ in rows:
        digest = chain.link(new_prev, audit_id, ts_ns, kind, body)
        conn.execute(
            "UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (new_prev, digest, audit_id)
        )
        new_prev = digest
    for key, value in conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall():
        if key != "schema_version":
            _set_meta(conn, chain, str(key), str(value))
    event = {"from": 1, "to": 2, "schema1_head": prev, "rows": len(rows)}
    _append_audit(conn, chain, "migrate", json.dumps(event, sort_keys=True, separators=(",", ":")))


def _existing(conn: sqlite3.Connection, columns: Columns) -> Columns:
    have = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {t: c for t, c in columns.items() if t in have}


def _v2_to_v3(conn: sqlite3.Connection, chain: AuditChain, columns: Columns) -> None:
    from procs.trading.journal_schema import table_ddl

    conn.execute(table_ddl("reads"))
    event = {"from": 2, "to": 3, "added": ["reads"]}
    _append_audit(conn, chain, "migrate", json.dumps(event, sort_keys=True, separators=(",", ":")))


# STEPS[v] upgrades a schema-v journal to v + 1 (inside the caller's transaction)
STEPS: Final[dict[int, Callable[[sqlite3.Connection, AuditChain, Columns], None]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
}


def backup_file(conn: sqlite3.Connection, dest: str | Path) -> Path:
    """Copy the open database to ``dest`` with SQLite's online backup API (0600)."""
    d = Path(dest)
    with sqlite3.connect(str(d)) as out:
        conn.backup(out)
    out.close()
    chmod_private(d)
    return d


def migrate(
    conn: sqlite3.Connection, path: Path, chain: AuditChain, target: int, columns: Columns
) -> int | None:
    """Bring the journal at ``path`` to schema ``target``; return the old version, None if none.

    Raises ``JournalError`` when the journal is newer than ``target`` or a step refuses.
    """
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None  # no meta table: not a journal, check_schema says so
    if row is None:
        return None
    raw = row[0]
    try:
        version = int(raw)
    except ValueError:
        raise JournalError(f"journal schema version {raw!r} is not a number") from None
    if version == target:
        return None
    if version > target or version not in STEPS:
        raise JournalError(f"journal schema {version}, expected {target} (no migration path)")
    saved = backup_file(conn, f"{path}.schema{version}-{time.strftime('%Y%m%dT%H%M%S')}.bak")
    start = version
    conn.execute("BEGIN IMMEDIATE")
    try:
        while version < target:
            STEPS[version](conn, chain, columns)
            version += 1
            _set_meta(conn, chain, "schema_version", str(version))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.warning("journal migrated path=%s schema=%d->%d backup=%s", path, start, target, saved)
    return start
