"""The journal's audit chain: HMAC-SHA256 links, signed checkpoints outside the journal, verify.

Every audited write (a content row, a ``meta`` value, an operator's reseal) has an audit row
whose ``hash`` is HMAC(key, prev_hash | id | ts_ns | kind | body): without the key nobody can
recompute the chain after an edit. After each commit (at most every ``interval_s``) the head
(id, hash) goes to a checkpoint file beside the journal, signed with the same key and rotated,
so deleting the newest rows shows as well. ``verify`` names every problem it finds; a broken
journal is traded on again only after an operator's override, which execution journals as a
``reseal`` row listing exactly the problems it accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from procs._files import write_private

GENESIS: Final = "0" * 64
RESEAL: Final = "reseal"
META: Final = "meta"
CHECKPOINT_SUFFIX: Final = ".checkpoint"
OVERRIDE_SUFFIX: Final = ".audit-override"


class AuditChain:
    """The keyed link function; the key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError(f"audit key must be at least 16 bytes, was {len(key)}")
        self._key = key
        # keyed once: a copy per link costs ~1.7 µs against ~4 µs for hmac.new (the order path)
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def link(self, prev_hash: str, audit_id: int, ts_ns: int, kind: str, body: str) -> str:
        h = self._keyed.copy()
        h.update(f"{prev_hash}{audit_id}|{ts_ns}|{kind}|{body}".encode())
        return h.hexdigest()

    def seal(self, data: bytes) -> str:
        """A keyed seal of an intent log line (``intent_log``; its own domain, as ``sign``)."""
        h = self._keyed.copy()
        h.update(b"intent|" + data)  # no link's text starts so: it starts with a hex hash
        return h.hexdigest()

    def sign(self, text: str) -> str:
        return hmac.new(self._key, b"checkpoint|" + text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong; ``key`` is stable across runs, so a reseal can list what it accepted."""

    key: str
    detail: str
    audit_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The verdict. ``problems`` are unaccepted; ``accepted`` were accepted by a reseal."""

    rows: int
    head_id: int = 0
    head_hash: str = GENESIS
    problems: tuple[Problem, ...] = ()
    accepted: tuple[Problem, ...] = ()
    checkpoints: int = 0
    resealed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_id(self) -> int | None:
        ids = [p.audit_id for p in self.problems if p.audit_id is not None]
        return min(ids) if ids else None

    @property
    def problem(self) -> str:
        return "; ".join(p.detail for p in self.problems[:5])

    def fingerprint(self) -> str:
        """A digest of exactly which problems there are (an override names it)."""
        keys = "\n".join(sorted(p.key for p in self.problems))
        return hashlib.sha256(keys.encode()).hexdigest()[:16]


# -- checkpoints ---------------------------------------------------------------------------


class Checkpoints:
    """The signed head of the chain in ``<journal>.checkpoint``; ``keep`` files rotated."""

    def __init__(self, journal_path: str | Path, chain: AuditChain, keep: int = 5) -> None:
        self.path = Path(str(journal_path) + CHECKPOINT_SUFFIX)
        self._chain = chain
        self._keep = max(1, keep)

    def files(self) -> list[Path]:
        """Newest first: ``.checkpoint``, ``.checkpoint.1``, ..."""
        names = [self.path] + [Path(f"{self.path}.{i}") for i in range(1, self._keep + 4)]
        return [p for p in names if p.exists()]

    def write(self, head_id: int, head_hash: str, ts_ns: int) -> None:
        for i in range(self._keep - 1, 0, -1):
            src = self.path if i == 1 else Path(f"{self.path}.{i - 1}")
            if src.exists():
                os.replace(src, f"{self.path}.{i}")
        body = {"audit_id": head_id, "hash": head_hash, "ts_ns": ts_ns}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        doc = {**body, "sig": self._chain.sign(text)}
        write_private(self.path, (json.dumps(doc) + "\n").encode())

    def read(self, path: Path) -> tuple[int, str] | str:
        """``(audit_id, hash)`` of a checkpoint file, or why it cannot be trusted."""
        try:
            doc = json.loads(path.read_text())
            cid, chash = int(doc["audit_id"]), str(doc["hash"])
            body = {"audit_id": cid, "hash": chash, "ts_ns": int(doc["ts_ns"])}
            sig = str(doc["sig"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"checkpoint {path.name} unreadable: {exc}"
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if not hmac.compare_digest(sig, self._chain.sign(text)):
            return f"checkpoint {path.name} signature invalid (forged, or another key)"
        return cid, chash

    def archive(self, tag: str) -> list[Path]:
        """Move every checkpoint aside (``…checkpoint.<tag>``); return the new names."""
        moved = []
        for p in self.files():
            dest = p.with_name(f"{p.name}.{tag}")
            os.replace(p, dest)
            moved.append(dest)
        return moved


# -- verification ---------------------------------------------------------------------------


def _walk_chain(
    conn: sqlite3.Connection, chain: AuditChain, problems: list[Problem]
) -> tuple[int, int, str, dict[str, tuple[int, str]], list[tuple[int, dict[str, Any]]]]:
    rows, head_id, prev = 0, 0, GENESIS
    hashes: dict[str, tuple[int, str]] = {}  # meta key -> (audit id, value)
    reseals: list[tuple[int, dict[str, Any]]] = []
    for audit_id, ts_ns, kind, body, prev_hash, digest in conn.execute(
        "SELECT id, ts_ns, kind, body, prev_hash, hash FROM audit ORDER BY id"
    ):
        rows += 1
        if audit_id != head_id + 1:
            problems.append(
                Problem(
                    f"gap:{head_id + 1}",
                    f"audit ids {head_id + 1}..{audit_id - 1} deleted",
                    audit_id,
                )
            )
        if prev_hash != prev or not hmac.compare_digest(
            chain.link(prev_hash, audit_id, ts_ns, kind, body), digest
        ):
            problems.append(
                Problem(
                    f"link:{audit_id}",
                    f"audit row {audit_id} ({kind}): hash chain broken",
                    audit_id,
                )
            )
        elif kind == META:
            key, value = json.loads(body)
            hashes[str(key)] = (audit_id, str(value))
        elif kind == RESEAL:
            reseals.append((audit_id, json.loads(body)))
        head_id, prev = audit_id, digest
    return rows, head_id, prev, hashes, reseals


def _check_content(
    conn: sqlite3.Connection, columns: Mapping[str, tuple[str, ...]], problems: list[Problem]
) -> None:
    for table, cols in columns.items():
        sel = ", ".join(f"t.{c}" for c in cols)
        for row in conn.execute(
            f"SELECT {sel}, t.audit_id, a.kind, a.body FROM {table} t"
            " LEFT JOIN audit a ON a.id = t.audit_id ORDER BY t.id"
        ):
            audit_id, kind, body = int(row[-3]), row[-2], row[-1]
            mine = json.dumps(list(row[:-3]), separators=(",", ":"))
            if (kind, body) != (table, mine):
                what = "has no audit record" if kind is None else "differs from its audit record"
                problems.append(
                    Problem(
                        f"content:{table}:{audit_id}",
                        f"{table} row {what} (audit id {audit_id})",
                        audit_id,
                    )
                )
        for (audit_id,) in conn.execute(
            f"SELECT a.id FROM audit a WHERE a.kind = ? AND NOT EXISTS"
            f" (SELECT 1 FROM {table} t WHERE t.audit_id = a.id) ORDER BY a.id",
            (table,),
        ):
            problems.append(
                Problem(
                    f"missing:{audit_id}",
                    f"audited {table} row deleted (audit id {audit_id})",
                    audit_id,
                )
            )


def _check_meta(
    conn: sqlite3.Connection, audited: dict[str, tuple[int, str]], problems: list[Problem]
) -> None:
    stored = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    for key, value in sorted(stored.items()):
        if key not in audited:
            problems.append(Problem(f"meta:{key}", f"meta {key!r} was never audited"))
        elif audited[key][1] != value:
            problems.append(
                Problem(
                    f"meta:{key}", f"meta {key!r} differs from its audit record", audited[key][0]
                )
            )
    problems.extend(
        Problem(f"meta:{key}", f"audited meta {key!r} deleted", audited[key][0])
        for key in sorted(set(audited) - set(stored))
    )


def _check_checkpoints(
    conn: sqlite3.Connection,
    anchors: list[tuple[Path, tuple[int, str] | str]],
    rows: int,
    head_id: int,
    problems: list[Problem],
) -> None:
    if rows and not anchors:
        problems.append(Problem("checkpoint:none", "no checkpoint anchors a non-empty journal"))
    for path, got in anchors:
        if isinstance(got, str):
            problems.append(Problem(f"checkpoint:{path.name}", got))
            continue
        cid, chash = got
        if cid > head_id:
            problems.append(
                Problem(
                    f"checkpoint:{path.name}",
                    f"journal ends at audit id {head_id} but {path.name} anchors id {cid}:"
                    f" {cid - head_id} rows truncated",
                    head_id + 1,
                )
            )
            continue
        row = conn.execute("SELECT hash FROM audit WHERE id = ?", (cid,)).fetchone()
        if cid and (row is None or row[0] != chash):
            problems.append(
                Problem(f"checkpoint:{path.name}", f"audit id {cid} differs from {path.name}", cid)
            )


def verify(
    conn: sqlite3.Connection,
    chain: AuditChain,
    columns: Mapping[str, tuple[str, ...]],
    checkpoints: Checkpoints | None,
) -> AuditReport:
    """Check the chain, every content and meta row, and the checkpoints; see ``AuditReport``."""
    # checkpoints first, then one read snapshot: a checkpoint written meanwhile is older
    anchors = [(p, checkpoints.read(p)) for p in checkpoints.files()] if checkpoints else []
    problems: list[Problem] = []
    conn.execute("BEGIN")
    try:
        rows, head_id, head_hash, audited_meta, reseals = _walk_chain(conn, chain, problems)
        _check_content(conn, columns, problems)
        _check_meta(conn, audited_meta, problems)
        if checkpoints is not None:
            _check_checkpoints(conn, anchors, rows, head_id, problems)
    finally:
        conn.execute("COMMIT")
    accepted_keys = {k for _, body in reseals for k in body.get("problems", [])}
    real = tuple(p for p in problems if p.key not in accepted_keys)
    accepted = tuple(p for p in problems if p.key in accepted_keys)
    return AuditReport(
        rows=rows,
        head_id=head_id,
        head_hash=head_hash,
        problems=real,
        accepted=accepted,
        checkpoints=sum(1 for _, a in anchors if not isinstance(a, str)),
        resealed=[{"audit_id": i, **b} for i, b in reseals],
    )


# -- operator override -----------------------------------------------------------------------


def override_path(journal_path: str | Path) -> Path:
    return Path(str(journal_path) + OVERRIDE_SUFFIX)


def write_override(journal_path: str | Path, report: AuditReport, reason: str, who: str) -> Path:
    """Ask execution to trade on this broken journal once (it journals a reseal, then deletes)."""
    path = override_path(journal_path)
    doc = {
        "reason": reason,
        "fingerprint": report.fingerprint(),
        "problems": len(report.problems),
        "by": who,
        "ts_ns": time.time_ns(),
    }
    write_private(path, (json.dumps(doc, indent=2) + "\n").encode(), durable=True)
    return path


def read_override(journal_path: str | Path) -> dict[str, Any] | None:
    path = override_path(journal_path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: matches nothing
    return doc if isinstance(doc, dict) else {}


def reseal_body(report: AuditReport, override: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "reason": str(override.get("reason", "")),
        "by": str(override.get("by", "")),
        "fingerprint": report.fingerprint(),
        "problems": sorted(p.key for p in report.problems),
    }
