"""Journal integrity before use: the path, the SQLite header, ``PRAGMA quick_check``, the schema.

``Journal.open`` calls these; each failure raises ``JournalError`` with a message that names the
file and what is wrong with it, and ``main`` turns that into exit 78: execution never trades on
a malformed journal or on an empty history that replaced a real one. A new journal is built
under a temporary name and renamed into place, so a journal file that exists was complete once:
an empty or short one is damage, never a creation cut short.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from procs.trading.model import JournalDiskError, JournalError

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "check_file",
    "check_path",
    "check_schema",
    "create_atomically",
    "disk_error",
    "quick_check",
    "refused_by_disk",
]

MAGIC: Final = b"SQLite format 3\x00"
HEADER_BYTES: Final = 100
_QUICK_CHECK_LINES: Final = 5  # how many of quick_check's complaints the message carries
# SQLite result codes (primary, the low byte) of a write the disk refused: full, I/O, read-only
WRITE_REFUSED: Final = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY}
)


def check_path(path: Path) -> bool:
    """Make the directory and check both it and the file are writable; True if the file exists.

    Raises
    ------
    JournalError
        The directory cannot be made, or the directory or the file is not writable (SQLite
        needs the directory for its ``-wal`` and ``-shm`` files).
    """
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot create directory {parent}: {exc}") from None
    if not parent.is_dir():
        raise JournalError(f"journal {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise JournalError(f"journal {path}: directory {parent} is not writable")
    if not path.exists():
        return False
    if not path.is_file():
        raise JournalError(f"journal {path}: not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise JournalError(f"journal {path}: file is not readable and writable")
    return True


def create_atomically(path: Path, script: str) -> None:
    """Create a journal at ``path`` by running ``script`` on a temporary file, then renaming it.

    Raises
    ------
    JournalError
        SQLite or the filesystem refused (disk full, permissions); ``path`` is left absent.
    """
    tmp = path.with_name(f"{path.name}.new")
    try:
        for stale in (tmp, *(Path(f"{tmp}{s}") for s in ("-wal", "-shm", "-journal"))):
            stale.unlink(missing_ok=True)  # a creation cut short before: start it again
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(script)
        finally:
            conn.close()  # the last connection checkpoints the WAL into the file
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(f"journal {path}: cannot create: {exc}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_file(path: Path) -> None:
    """Check an existing journal's SQLite header and length before SQLite opens it.

    Raises
    ------
    JournalError
        The file is empty (a journal truncated to zero is not a fresh start: history would be
        lost), is not a SQLite database, or is shorter than its header says (truncated).
    """
    size = path.stat().st_size
    if size == 0:
        raise JournalError(
            f"journal {path}: file is empty (truncated?); refusing to start on an empty history"
            " (move it away to start a new journal)"
        )
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
        raise JournalError(f"journal {path}: not a SQLite database (bad header, {size} bytes)")
    (raw_page,) = struct.unpack_from(">H", header, 16)
    page = 65536 if raw_page == 1 else raw_page
    if page < 512 or page & (page - 1):
        raise JournalError(f"journal {path}: corrupt header (page size {raw_page})")
    if size % page:
        raise JournalError(
            f"journal {path}: truncated ({size} bytes is not a whole number of {page}-byte pages)"
        )
    change, pages = struct.unpack_from(">II", header, 24)
    (valid_for,) = struct.unpack_from(">I", header, 92)
    wal = path.with_name(path.name + "-wal")
    has_wal = wal.exists() and wal.stat().st_size > 0
    # the header's page count is trusted only when valid (SQLite's own rule); with a WAL still
    # to checkpoint, the pages may live there
    if pages and change == valid_for and size < pages * page and not has_wal:
        raise JournalError(
            f"journal {path}: truncated ({size} bytes, its header says {pages * page})"
        )


def refused_by_disk(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error is the disk's (full, I/O error, read-only), not the file's."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF in WRITE_REFUSED)
    )


def disk_error(path: Path, exc: sqlite3.Error) -> JournalDiskError:
    """The error for a journal the disk would not let SQLite open (its WAL index, a read)."""
    return JournalDiskError(
        f"journal {path}: the disk failed it ({exc}): full, read-only or failing, not damage "
        "found in the file; free space or fix the disk, then start execution (no restore)"
    )


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Run ``PRAGMA quick_check``; raise JournalError with its first complaints unless ok
    (``JournalDiskError`` when the disk, not the file, failed it: on a full disk SQLite cannot
    even build the WAL index the check reads through)."""
    try:
        rows = conn.execute(f"PRAGMA quick_check({_QUICK_CHECK_LINES})").fetchall()
    except sqlite3.DatabaseError as exc:
        if refused_by_disk(exc):
            raise disk_error(path, exc) from None
        raise JournalError(f"journal {path}: malformed ({exc})") from None
    found = [str(r[0]) for r in rows]
    if found != ["ok"]:
        raise JournalError(f"journal {path}: integrity check failed: {'; '.join(found)}")


def check_schema(
    conn: sqlite3.Connection, path: Path, columns: Mapping[str, tuple[str, ...]], version: int
) -> None:
    """Check a journal's tables, columns and schema version.

    Raises
    ------
    JournalError
        A table or column is missing, or ``meta.schema_version`` is absent or not ``version``.
    """
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in ("meta", "audit", *columns):
        if table not in tables:
            raise JournalError(f"journal {path}: not an execution journal (no table {table})")
    for table, cols in columns.items():
        have = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in (*cols, "audit_id") if c not in have]
        if missing:
            raise JournalError(f"journal {path}: table {table} lacks columns {missing}")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise JournalError(f"journal {path}: no schema_version in meta")
    if str(row[0]) != str(version):
        raise JournalError(f"journal {path}: journal schema {row[0]}, expected {version}")


def sync_dir(path: str) -> None:
    """fsync a directory (its entries: a file created in it survives a power loss)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
