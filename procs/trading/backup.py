"""Journal backups through SQLite's online backup API, periodic or on demand, and restore.

A backup is a consistent copy taken while execution writes (``sqlite3.Connection.backup``),
0600, with its own signed checkpoint at its head so it verifies on its own. Restore puts a
verified backup in place of the journal, moves the old files and checkpoints aside and
journals a ``restore`` row: a restore is a deliberate truncation, and the audit trail says so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Final

from procs._files import chmod_private, private_dir
from procs.trading.audit import GENESIS, AuditChain, Checkpoints
from procs.trading.intent_log import log_path

log = logging.getLogger(__name__)

PREFIX: Final = "journal-"
SUFFIX: Final = ".sqlite"


def head_of(path: str | Path) -> tuple[int, str]:
    """The newest audit row (id, hash) of the journal at ``path``, read-only."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def backup_journal(src: str | Path, dest: str | Path, chain: AuditChain | None) -> Path:
    """Copy the live journal ``src`` to ``dest`` (online, consistent, 0600); anchor it.

    ``dest`` must not exist. With ``chain`` the copy gets its own checkpoint at its head.
    """
    d = Path(dest)
    if d.exists():
        raise FileExistsError(f"{d} exists: a backup never overwrites")
    private_dir(d.parent)
    tmp = d.with_name(d.name + ".part")
    with (
        closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as source,
        closing(sqlite3.connect(str(tmp))) as out,
    ):
        source.backup(out, pages=256)  # in steps: the writer is never held for long
        out.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    chmod_private(tmp)
    os.replace(tmp, d)
    if chain is not None:
        head_id, head_hash = head_of(d)
        Checkpoints(d, chain, keep=1).write(head_id, head_hash, time.time_ns())
    return d


def backup_name(now_ns: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_ns / 1e9))
    return f"{PREFIX}{stamp}.{now_ns % 1_000_000_000:09d}Z{SUFFIX}"


def prune(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (and their checkpoints); return the deleted."""
    found = sorted(Path(directory).glob(f"{PREFIX}*{SUFFIX}"))
    gone = found[: max(0, len(found) - keep)]
    for p in gone:
        p.unlink()
        Path(f"{p}.checkpoint").unlink(missing_ok=True)
    return gone


class BackupTask:
    """Backs the journal up every ``interval_s`` on its own thread and connection.

    Started in ``main``; ``close`` stops it (one last backup is not taken: the journal is
    checkpointed on close, and the newest backup is at most ``interval_s`` old).
    """

    def __init__(
        self, journal: str | Path, directory: str | Path, interval_s: float, keep: int,
        chain: AuditChain,
    ) -> None:  # fmt: skip
        self._journal = Path(journal)
        self._dir = Path(directory)
        self._interval_s = interval_s
        self._keep = keep
        self._chain = chain
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-backup", daemon=True)
        self.done_total = 0
        self.failed_total = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.run_once()

    def run_once(self) -> Path | None:
        try:
            path = backup_journal(
                self._journal, self._dir / backup_name(time.time_ns()), self._chain
            )
            prune(self._dir, self._keep)
        except (OSError, sqlite3.Error) as exc:  # counted and logged; the next try may work
            self.failed_total += 1
            log.error("journal backup failed dir=%s error=%s", self._dir, exc)
            return None
        self.done_total += 1
        log.info("journal backup path=%s", path)
        return path

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def set_aside(journal: Path, tag: str) -> list[Path]:
    """Rename the journal, its WAL/SHM files and its intent log to ``<name>.<tag>``; return
    the new names (a restored journal must not take the old one's logged intents)."""
    moved = []
    for p in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm"), Path(log_path(journal))):
        if p.exists():
            dest = p.with_name(f"{p.name}.{tag}")
            os.replace(p, dest)
            moved.append(dest)
    return moved
