"""The execution journal: SQLite (WAL, stdlib sqlite3), written before acting, HMAC-chained.

Tables: intents, order_events, fills, funding, positions, risk_events, breaker_events, reads
(what each trading step read: for replaying the run, ``procs/backtest/follow.py``), meta and
audit. Every content row points at its audit row, and every ``meta`` write has one; each audit
row carries HMAC(key, prev_hash + its own text) and the head is anchored in a signed checkpoint
file (``procs/trading/audit.py``), so ``verify_audit`` detects any edit, insert, deletion or
truncation, and a chain recomputed without the key. Schema upgrades: ``migrations.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Final

from procs._files import chmod_private
from procs.trading.audit import GENESIS, META, RESEAL, AuditChain, AuditReport, Checkpoints
from procs.trading.audit import verify as verify_chain
from procs.trading.breaker import BreakerTransition
from procs.trading.intent_log import IntentLog, Row, Sync, log_path, unjournaled
from procs.trading.journal_check import (
    check_file,
    check_path,
    check_schema,
    create_atomically,
    disk_error,
    quick_check,
    refused_by_disk,
    sync_dir,
)
from procs.trading.journal_rows import JSON as _JSON
from procs.trading.journal_rows import Recovered, Stored, recover
from procs.trading.journal_rows import body_text as _body
from procs.trading.journal_rows import fill_values as _fill_values
from procs.trading.journal_rows import intent_row as _intent_row
from procs.trading.journal_rows import order_row as _order_row
from procs.trading.journal_rows import position_values as _position_values
from procs.trading.journal_rows import stored as _stored
from procs.trading.journal_schema import COLUMNS as _COLUMNS
from procs.trading.journal_schema import HAS_FILL as _HAS_FILL
from procs.trading.journal_schema import INSERT as _INSERT
from procs.trading.journal_schema import schema
from procs.trading.model import (
    Fill,
    FundingEvent,
    JournalError,
    JournalWriteError,
    OrderRequest,
    OrderStatus,
)
from procs.trading.orders import Order, OrderTransition
from procs.trading.positions import PositionSnapshot
from procs.trading.risk import Refusal

log = logging.getLogger(__name__)

WRITE_ERROR_LOG_S: Final = 5.0  # a journal that cannot write logs it at most this often
SCHEMA_VERSION: Final = 3  # 1: unkeyed sha256 chain, meta outside it; 2: no reads (migrations.py)
CHECKPOINT_S: Final = 1.0  # the head goes to the checkpoint file at most this often
# SQLite merges the WAL into the file at the commit past 1,000 pages (~0.25 ms on tmpfs, ~2 ms
# with a disk's fsyncs), inside whichever write that is; a durable journal leaves it to
# ``merge_wal`` (housekeeping), SQLite's own merge kept as a backstop (WAL_BACKSTOP_PAGES)
WAL_MERGE_WRITES: Final = 250  # transactions (~1,000 pages): a bigger WAL slows every write
WAL_MERGE_S: Final = 1.0
WAL_BACKSTOP_PAGES: Final = 10_000
# orders whose intent this journal wrote: their fill ids in memory (each fill passes here and its
# id names its order), so a repeat needs no SELECT (~75 µs in situ at 10 k/s); older: the SELECT
BORN_MAX: Final = 4096


def _creation_script(chain: AuditChain) -> str:
    """The schema, ``schema_version`` and that value's audit row: a new journal, whole."""
    ts_ns = time.time_ns()
    body = json.dumps(["schema_version", str(SCHEMA_VERSION)], separators=(",", ":"))
    digest = chain.link(GENESIS, 1, ts_ns, META, body)
    return (
        f"{schema()}\nINSERT INTO meta(key, value) VALUES('schema_version', '{SCHEMA_VERSION}');"
        "\nINSERT INTO audit(id, ts_ns, kind, body, prev_hash, hash)"
        f" VALUES(1, {ts_ns}, '{META}', '{body}', '{GENESIS}', '{digest}');"
    )


class Journal:
    """The only writer of the journal file. Opened in ``main`` via ``Journal.open``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        chain: AuditChain,
        checkpoints: Checkpoints | None = None,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        self._conn = conn
        self._chain = chain
        self._ckpts = checkpoints
        self._ckpt_s = checkpoint_s
        self._ckpt_at = -checkpoint_s
        row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        self._last_id, self._last_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        self._ckpt_head = (-1, "")
        # checkpoints are written only once the chain is known good (new, migrated, verified
        # or resealed): a tampered journal must never overwrite the anchors that expose it
        self._anchoring = False
        self.path = str(conn.execute("PRAGMA database_list").fetchone()[2])
        self.write_error = ""  # why the disk refused a write (sticky); "" while all is well
        self.write_errors_total = 0
        self.repeated_intents_total = 0  # intents whose client id the journal had (a bug)
        self._write_logged_at = 0.0
        self._wal_path = ""  # the WAL file fsynced before the intent log empties ("": none)
        self._wal_fd = -1  # opened at its first sync (SQLite has created the file by then)
        self._deferred: list[Row] = []  # written with the next transaction
        self._logged = 0  # _deferred[:_logged] are in the intent log (``_log_rows``; any intent is)
        self.intent_log: IntentLog | None = None  # where intents are logged first (``open``)
        self._born: dict[str, set[str]] = {}  # client id -> fill ids, orders born here (BORN_MAX)
        self.wal_merge_errors_total = 0
        self._merged_at, self._writes = time.monotonic(), 0  # the last merge_wal, writes since

    @classmethod
    def open(
        cls,
        path: str | Path,
        key: bytes | None = None,
        *,
        checkpoint_keep: int = 5,
        checkpoint_s: float = CHECKPOINT_S,
        durable: bool = True,
        intent_sync: Sync = "before_send",
    ) -> Journal:
        """Open the journal after checking it; where no file is, create one (whole or not at all).

        ``key`` (the audit chain's) defaults to ``audit.key`` beside the journal, generated on
        first use (dev, demo, tests; production takes it from the keystore). An older schema is
        migrated (``migrations.py``). ``durable=False`` is for a scratch journal that nothing
        outlives (a backtest's): ``synchronous=OFF``, nothing is fsynced, not even intents; the
        same rows, chain and checks otherwise. Live execution never passes it. ``intent_sync``:
        an intent's line synced before its order leaves, or right after (``intent_log``).

        Raises
        ------
        JournalError
            The path is not writable, or the file is empty, truncated, not SQLite, fails
            ``PRAGMA quick_check``, is newer than this code or cannot migrate, or is not a
            journal (see ``journal_check``); ``main`` exits 78 with the message.
        """
        from procs.trading.migrations import migrate

        p = Path(path)
        fresh = not check_path(p)
        if key is None:  # dev/demo/tests: a generated 0600 key file (production: the keystore)
            from procs.trading.keys import audit_key_file, read_audit_key_file

            key = read_audit_key_file(audit_key_file(p), create=True)
        chain = AuditChain(key)
        if fresh:
            create_atomically(p, _creation_script(chain))
        check_file(p)
        try:
            conn = sqlite3.connect(str(p), isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {p}: cannot open: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            quick_check(conn, p)
            wal = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() == "wal"
            # NORMAL: a commit does not fsync; an intent's does, by ``_sync_wal``. Where WAL is
            # refused (a file system without shared memory), every commit is fsynced (FULL)
            level = ("NORMAL" if wal else "FULL") if durable else "OFF"
            conn.execute(f"PRAGMA synchronous={level}")
            if durable and wal:
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            migrated = migrate(conn, p, chain, SCHEMA_VERSION, _COLUMNS) is not None
            check_schema(conn, p, _COLUMNS, SCHEMA_VERSION)
            conn.executescript(schema())  # IF NOT EXISTS: adds an index an older file lacks
        except sqlite3.Error as exc:
            conn.close()
            if refused_by_disk(exc):  # the disk, not the file: free space, no restore
                raise disk_error(p, exc) from None
            raise JournalError(f"journal {p}: {exc}") from None
        except JournalError:
            conn.close()
            raise
        chmod_private(p, f"{p}-wal", f"{p}-shm")
        journal = cls(conn, chain, Checkpoints(p, chain, checkpoint_keep), checkpoint_s)
        journal._wal_path = f"{journal.path}-wal" if durable and wal else ""
        if fresh or migrated:  # a new or just migrated journal: anchor it now
            journal._anchoring = True
        if durable:
            journal._open_intents(intent_sync)
        journal.checkpoint()
        return journal

    def _open_intents(self, sync: Sync) -> None:
        """Open the intent log and replay it; on failure close the journal (``JournalError``)."""
        try:
            self.intent_log = IntentLog.open(log_path(self.path), self._chain.seal, sync)
            self._replay_intents(self.intent_log)
        except (OSError, JournalError) as exc:
            if self.intent_log is not None:
                self.intent_log.close()
            self._conn.close()
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"journal {self.path}: intent log: {exc}") from None

    def _replay_intents(self, logged: IntentLog) -> None:
        """Write the logged intents and fills the journal lacks (a crash between the writes),
        then settle."""
        if not logged.size:
            return
        rows, intents, fills = unjournaled(self._conn, logged.read())
        if rows:
            try:
                self._txn(rows, must=True)
            except JournalWriteError as exc:
                raise JournalError(f"{exc}: free space, then start again") from None
            cids = ", ".join(str(v[0]) for t, v, _ in rows if t == "intents")
            log.warning(
                "journal %s: %d intent(s) and %d fill(s) from the intent log written (the process"
                " stopped before their journal rows); reconciliation asks the venue about them: %s",
                *(self.path, intents, fills, cids or "-"),
            )
        self._settle_intents()

    def close(self) -> None:
        self.flush()
        self._settle_intents()
        self.checkpoint()
        self._conn.close()
        if self._wal_fd >= 0:
            os.close(self._wal_fd)
            self._wal_fd = -1
        if self.intent_log is not None:
            self.intent_log.close()

    @property
    def head(self) -> tuple[int, str]:
        """The newest audit row: (id, hash)."""
        return self._last_id, self._last_hash

    def checkpoint(self) -> None:
        """Anchor the chain's head in the signed checkpoint file (when it moved)."""
        self._ckpt_at = time.monotonic()
        if not self._anchoring or self._ckpts is None:
            return
        if self._ckpt_head != (self._last_id, self._last_hash):
            try:
                self._ckpts.write(self._last_id, self._last_hash, time.time_ns())
            except OSError as exc:  # a full disk: the head is anchored at the next try
                self._write_failed(exc)
                return
            self._ckpt_head = (self._last_id, self._last_hash)

    # -- writing ----------------------------------------------------------------------------

    def _append(self, table: str, values: Sequence[object], ts_ns: int) -> bool:
        """Insert one content row (or meta value, or audit-only event) and its audit row.

        False when a unique key already exists (nothing is written then).
        """
        audit_id = self._last_id + 1
        if table == META:
            stored: Sequence[object] = [str(v) for v in values]
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", stored)
            body = json.dumps(stored, separators=(",", ":"))
        elif table in _COLUMNS:  # (a ``Stored`` row is stored already: ``intent_row``)
            stored = values if type(values) is Stored else [_stored(v) for v in values]
            cur = self._conn.execute(_INSERT[table], (*stored, audit_id))
            if cur.rowcount == 0:
                return False
            body = _body(stored)
        else:  # an audit-only event (reseal, restore, migrate): one JSON object
            body = json.dumps(values[0], sort_keys=True, separators=(",", ":"))
        digest = self._chain.link(self._last_hash, audit_id, ts_ns, table, body)
        self._conn.execute(
            "INSERT INTO audit(id, ts_ns, kind, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (audit_id, ts_ns, table, body, self._last_hash, digest),
        )
        self._last_id, self._last_hash = audit_id, digest
        return True

    def _txn(self, rows: Sequence[Row], *, must: bool = False) -> list[bool]:
        """Write ``rows`` in one transaction; per row, whether it was new.

        A write the disk refuses (full, I/O error, read-only) sets ``write_error`` (sticky: the
        process halts and an operator restarts it once the disk has room) and, unless ``must``,
        writes nothing and answers "not new" for every row: nothing unjournaled is booked.
        ``must`` raises ``JournalWriteError`` instead (an intent: the order must not leave).
        """
        last = (self._last_id, self._last_hash)
        deferred = self._deferred  # rows deferred by ``defer_order`` go first, in this one
        if deferred:
            self._deferred = []
            rows = [*deferred, *rows]
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                done = [self._append(t, v, ts) for t, v, ts in rows]
                self._conn.execute("COMMIT")
                self._logged = 0 if deferred else self._logged
                for (table, values, _), new in zip(deferred, done, strict=False):
                    if table == "intents" and not new:  # its order left: ids never repeat, a bug
                        self.repeated_intents_total += 1
                        log.error("intent %s: its client id was journaled before", values[0])
                self._writes += 1  # (merge_wal)
            except BaseException:
                if self._conn.in_transaction:  # SQLITE_FULL has rolled it back already
                    self._conn.execute("ROLLBACK")
                self._last_id, self._last_hash = last
                self._deferred = [*deferred, *self._deferred]  # still to write, in order
                raise
        except sqlite3.OperationalError as exc:
            if not refused_by_disk(exc):
                raise
            self._write_failed(exc)
            if must:
                raise JournalWriteError(f"journal {self.path}: write refused: {exc}") from None
            return [False] * (len(rows) - len(deferred))
        if time.monotonic() - self._ckpt_at >= self._ckpt_s:
            self.checkpoint()
        return done[len(deferred) :] if deferred else done

    def _write_failed(self, exc: BaseException) -> None:
        self.write_errors_total += 1
        first = not self.write_error
        self.write_error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if first or now - self._write_logged_at >= WRITE_ERROR_LOG_S:
            self._write_logged_at = now
            log.error(
                "journal write refused path=%s errors=%d error=%s: nothing more is booked;"
                " free space, then restart execution (it reconciles with the venue)",
                *(self.path, self.write_errors_total, self.write_error),
            )

    def record_event(self, kind: str, body: dict[str, object], ts_ns: int = 0) -> None:
        """Journal an audit-only event (an operator's reseal, a restore) and anchor it."""
        if kind in _COLUMNS or kind == META:
            raise ValueError(f"{kind!r} is a table, not an event")
        self._txn([(kind, [body], ts_ns or time.time_ns())])
        self.checkpoint()

    def verify_audit(self) -> AuditReport:
        """Check the chain, every row, meta and the checkpoints (``audit.verify``).

        A good verdict lets this journal write checkpoints from now on.
        """
        self.flush()
        report = verify_chain(self._conn, self._chain, _COLUMNS, self._ckpts)
        self._anchoring = self._anchoring or report.ok
        return report

    def reseal(self, report: AuditReport, body: dict[str, object]) -> None:
        """Accept ``report``'s problems (an operator's override): journal it, re-anchor."""
        if self._ckpts is not None:
            self._ckpts.archive(f"resealed-{time.time_ns()}")
        self._anchoring = True
        self._ckpt_head = (-1, "")
        self.record_event(RESEAL, body)

    def record_intent(self, req: OrderRequest, ts_ns: int) -> bool:
        """Write the intent BEFORE the order is sent: a line of the intent log, synced before
        or right after the send (``intent_log``); its row goes with the next transaction. False
        when the disk refused it, or refused a journal write before (the order must not
        leave: ``write_error`` says why). A scratch journal syncs nothing (``open``)."""
        cid = req.client_id  # (ids never repeat: ``ClientIds``; risk refuses a repeat too)
        if any(t == "intents" and v[0] == cid for t, v, _ in self._deferred):
            raise JournalError(f"intent {cid} already journaled")
        if self.write_error:
            return False
        row = _intent_row(req, ts_ns)
        if self.intent_log is not None:
            try:
                self.intent_log.append(row)
            except OSError as exc:
                self._write_failed(exc)
                return False
        self._deferred.append(("intents", row, ts_ns))
        self._born[cid] = set()
        if len(self._born) > BORN_MAX:
            del self._born[next(iter(self._born))]
        return True

    def _settle_intents(self) -> None:
        """Empty the intent log once every row in it is committed and durable here."""
        if self.intent_log is None or not self.intent_log.size:
            return
        if any(t == "intents" or t == "fills" for t, _, _ in self._deferred):
            self.flush()
            if self._deferred:  # the disk refused it: the log keeps them
                return
        try:
            if self._wal_path:  # NORMAL: commits are not synced; FULL (no WAL): they were
                self._sync_wal()
            self.intent_log.clear()
        except (JournalWriteError, OSError) as exc:
            log.warning("journal %s: intent log kept (%s); emptied at the next try", self.path, exc)

    def merge_wal(self, every_s: float = WAL_MERGE_S) -> tuple[int, int]:
        """Housekeeping: a failed sync of the intent log's thread becomes the write error. Then
        merge the WAL into the database file (SQLite's PASSIVE checkpoint: it waits for no
        reader) once WAL_MERGE_WRITES transactions were committed since the last merge, or
        ``every_s`` passed and one was; (WAL frames, frames merged), (0, 0) when not. A merge
        refused (a full disk: the WAL keeps every page) is counted (``wal_merge_errors_total``)
        and tried again. A journal that fsyncs nothing leaves it to SQLite, at its commits."""
        err = self.intent_log.sync_error() if self.intent_log is not None else None
        if err is not None and not self.write_error:  # the log's thread failed a sync
            self._write_failed(err)  # sticky: no order leaves from now on, the breaker halts
        now, n = time.monotonic(), self._writes
        due = n >= WAL_MERGE_WRITES or (n and now - self._merged_at >= every_s)
        if not due:
            return 0, 0
        self._settle_intents()  # first: the intent log empties as often as the WAL merges
        if not self._wal_path:
            return 0, 0
        self._merged_at = now
        try:
            _, frames, merged = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError as exc:
            self.wal_merge_errors_total += 1
            log.warning("journal WAL merge failed path=%s error=%s", self.path, exc)
            return 0, 0
        self._writes = 0
        return int(frames), int(merged)

    def _sync_wal(self) -> None:
        """fsync the WAL file: every commit made so far is on the disk when this returns.

        What ``synchronous=FULL`` does at a commit in WAL mode (one sync of the WAL file), done
        here before the intent log is emptied (``_settle_intents``), so the connection stays at
        NORMAL and the other commits sync nothing. ``fsync`` flushes the file,
        whichever descriptor names it; the WAL file lives as long as this connection (SQLite
        removes it when the last connection closes). The first call also syncs the directory,
        so that the WAL file's own entry survives a power loss (SQLite would at its first sync).

        Raises
        ------
        JournalWriteError
            The sync failed (an I/O error): ``write_error`` is set; nothing more is booked.
        """
        try:
            fd = self._wal_fd
            if fd >= 0 and os.fstat(fd).st_nlink == 0:  # the WAL file was removed and made
                os.close(fd)  # anew (not by SQLite while this connection is open): the new one
                fd = self._wal_fd = -1
            if fd < 0:
                fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
                sync_dir(os.path.dirname(self._wal_path) or ".")
                self._wal_fd = fd
            os.fsync(fd)
        except OSError as exc:
            self._write_failed(exc)
            raise JournalWriteError(f"journal {self.path}: sync refused: {exc}") from None

    def defer_order(self, order: Order, old: OrderStatus, cause: str, ts_ns: int) -> None:
        """``record_order``, written with the next transaction (or ``flush``) instead of now.

        For an order's SENT state, which its send need not wait for: the intent is logged
        already, and after a crash an order journaled NEW_INTENT or SENT is recovered alike
        (UNKNOWN, then queried). Rows keep their order: every later write goes after it.
        """
        self._deferred.append(("order_events", _order_row(order, old, cause, ts_ns), ts_ns))

    def flush(self) -> None:
        """Write the rows ``defer_order`` deferred, if any."""
        if self._deferred:
            self._txn(())

    def record_order(self, order: Order, old: OrderStatus, cause: str, ts_ns: int) -> None:
        """Write the order's full state after a change (status, fill, cancel request)."""
        self._txn([("order_events", _order_row(order, old, cause, ts_ns), ts_ns)])

    def record_transition(self, tr: OrderTransition, ts_ns: int) -> list[Fill]:
        """Journal a transition and its fills; return the fills that were new.

        A durable journal writes the rows to the intent log, as one line with every deferred row
        not there yet, and commits them with its next transaction (``intent_log``: a write, not
        a transaction, before the fill is booked). A scratch journal, a transition whose fills
        are all known, or a journal that has had a write refused: one transaction now.
        """
        order = ("order_events", _order_row(tr.order, tr.old, tr.cause, ts_ns), ts_ns)
        if self.intent_log is not None and tr.fills and not self.write_error:
            new: list[Fill] = []  # (a transition repeating a fill id books it once, as before)
            for f in tr.fills:
                if all(f.fill_id != g.fill_id for g in new) and not self._has_fill(f):
                    new.append(f)
            if new:
                fills = [("fills", Stored(map(_stored, _fill_values(f))), ts_ns) for f in new]
                return self._booked(new) if self._log_rows([order, *fills]) else []
        done = self._txn([order, *[("fills", _fill_values(f), ts_ns) for f in tr.fills]])
        return self._booked([f for f, n in zip(tr.fills, done[1:], strict=True) if n])

    def _has_fill(self, f: Fill) -> bool:
        seen = self._born.get(f.client_id)
        if seen is not None:
            return f.fill_id in seen
        if any(t == "fills" and v[0] == f.fill_id for t, v, _ in self._deferred):
            return True
        return self._conn.execute(_HAS_FILL, (f.fill_id,)).fetchone() is not None

    def _booked(self, fills: list[Fill]) -> list[Fill]:
        """``fills``, now journaled: their ids join their orders' in ``_born``."""
        for f in fills:
            seen = self._born.get(f.client_id)
            if seen is not None:
                seen.add(f.fill_id)
        return fills

    def _log_rows(self, rows: list[Row]) -> bool:
        """Log ``rows`` with the deferred rows not in the log yet; defer them (False: refused)."""
        assert self.intent_log is not None
        unlogged = [r for r in self._deferred[self._logged :] if r[0] != "intents"]
        try:
            self.intent_log.append_rows([*unlogged, *rows])
        except OSError as exc:
            self._write_failed(exc)
            return False
        self._deferred += rows
        self._logged = len(self._deferred)
        return True

    @property
    def pending(self) -> bool:
        """Rows wait for the next transaction (``flush``)."""
        return bool(self._deferred)

    @property
    def secured(self) -> bool:
        """Every deferred row is in the intent log (False for a scratch journal: it has none)."""
        if self.intent_log is None:
            return not self._deferred
        return all(t == "intents" for t, _, _ in self._deferred[self._logged :])

    def record_fill(self, fill: Fill) -> bool:
        """Write one fill; False (and nothing written) when its fill_id is already journaled."""
        new = self._txn([("fills", _fill_values(fill), fill.ts_ns)])[0]
        if new:
            self._booked([fill])
        return new

    def record_funding(self, ev: FundingEvent) -> bool:
        values = (ev.event_id, ev.symbol, ev.position_side, ev.amount, ev.ts_ns)
        return self._txn([("funding", values, ev.ts_ns)])[0]

    def record_positions(self, legs: Iterable[PositionSnapshot], ts_ns: int) -> None:
        self._txn([("positions", _position_values(p, ts_ns), ts_ns) for p in legs])

    def record_reads(self, run_ms: int, steps: Sequence[tuple[int, int, int, int]]) -> None:
        """What trading steps read, in one row: (book_seq, sig_first, sig_last, ts_ns) each."""
        if steps:
            # the text json.dumps(steps as lists, separators=(",", ":")) gives, for ints, in
            # ~0.1 of its time (a row a second carries every signal step of that second)
            text = _JSON.encode(steps).decode()
            self._txn([("reads", (run_ms, text, steps[-1][3]), steps[-1][3])])

    def record_refusal(self, r: Refusal) -> None:
        self._txn([("risk_events", (r.client_id, r.symbol, r.reason, r.detail, r.ts_ns), r.ts_ns)])

    def record_breaker(self, t: BreakerTransition) -> None:
        self._txn([("breaker_events", (t.old, t.new, t.trigger, t.detail, t.ts_ns), t.ts_ns)])

    def set_meta(self, key: str, value: str) -> None:
        """Write a meta value; audited like every row (the chain covers ``meta`` too)."""
        self._txn([(META, (key, value), time.time_ns())])

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def save_daily(self, day: int, day_start: Decimal, peak: Decimal) -> None:
        """Keep ``DailyPnl.state()`` so a restart does not forget today's loss or the peak."""
        self.set_meta("daily_pnl", json.dumps([day, str(day_start), str(peak)]))

    def load_daily(self) -> tuple[int, Decimal, Decimal] | None:
        raw = self.get_meta("daily_pnl")
        if raw is None:
            return None
        day, start, peak = json.loads(raw)
        return int(day), Decimal(start), Decimal(peak)

    def count(self, table: str) -> int:
        if table not in _COLUMNS and table != "audit":
            raise KeyError(table)
        self.flush()
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- reading ----------------------------------------------------------------------------

    def recover(self, *, hedge: bool) -> Recovered:
        """Rebuild every order (latest state) and the positions (replaying fills and funding)."""
        self.flush()
        return recover(self._conn, _COLUMNS["intents"], _COLUMNS["fills"], hedge=hedge)
