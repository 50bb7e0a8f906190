"""Journal integrity at open: damaged, truncated, foreign or unwritable files raise JournalError."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from procs.trading.breaker import BreakerState, BreakerTransition, BreakerTrigger
from procs.trading.journal import SCHEMA_VERSION, Journal
from procs.trading.model import JournalError
from tests.conftest import ROOT


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


def written(path: Path, rows: int = 400) -> Path:
    """A closed journal of many pages (closing checkpoints the WAL into the file)."""
    j = Journal.open(path)
    for i in range(rows):
        j.record_breaker(
            BreakerTransition(
                BreakerState.ACTIVE, BreakerState.REDUCING, BreakerTrigger.STALE_DATA,
                f"detail {i} " + "x" * 200, 1_000 + i,
            )
        )  # fmt: skip
    j.close()
    return path


def test_journal_open_new_path_creates_a_checked_journal(path):
    j = Journal.open(path)
    j.close()

    again = Journal.open(path)

    assert again.count("audit") == 1  # schema_version's own audit row (the chain covers meta)
    assert again.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert again.verify_audit().ok
    again.close()


def test_journal_open_intact_journal_keeps_its_history(path):
    written(path, rows=50)

    j = Journal.open(path)

    assert j.count("breaker_events") == 50
    assert j.verify_audit().ok
    j.close()


def test_journal_open_random_bytes_mid_file_raises(path):
    written(path)
    size = path.stat().st_size
    assert size > 64 * 1024
    with path.open("r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(1).randbytes(8 * 1024))

    with pytest.raises(JournalError, match=r"integrity check failed|malformed"):
        Journal.open(path)


def test_journal_open_truncated_to_zero_raises(path):
    written(path, rows=5)
    path.write_bytes(b"")

    with pytest.raises(JournalError, match="empty"):
        Journal.open(path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_journal_open_truncated_raises(path, keep):
    written(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])

    with pytest.raises(JournalError, match="truncated"):
        Journal.open(path)


def test_journal_open_truncated_on_a_page_boundary_raises(path):
    written(path)
    data = path.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    path.write_bytes(data[: page * (len(data) // page // 2)])

    with pytest.raises(JournalError, match="truncated"):
        Journal.open(path)


@pytest.mark.parametrize(
    "content", [b"not a database at all\n" * 10, b"SQLite format 3\x00" + b"\xff" * 84, b"x"]
)
def test_journal_open_not_sqlite_raises(path, content):
    path.write_bytes(content)

    with pytest.raises(JournalError, match=r"not a SQLite database|corrupt header"):
        Journal.open(path)


def test_journal_open_foreign_sqlite_database_raises(path):
    with closing(sqlite3.connect(path)) as c:
        c.execute("CREATE TABLE t(x)")
        c.commit()

    with pytest.raises(JournalError, match="not an execution journal"):
        Journal.open(path)


def test_journal_open_other_schema_version_raises(path):
    written(path, rows=1)
    with closing(sqlite3.connect(path)) as c:
        c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        c.commit()

    with pytest.raises(JournalError, match=f"schema 99, expected {SCHEMA_VERSION}"):
        Journal.open(path)


def test_journal_open_missing_column_raises(path):
    written(path, rows=1)
    with closing(sqlite3.connect(path)) as c:
        c.execute("ALTER TABLE fills DROP COLUMN fee")
        c.commit()

    with pytest.raises(JournalError, match="fills lacks columns"):
        Journal.open(path)


def test_journal_open_under_a_file_raises(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(JournalError, match="cannot create directory"):
        Journal.open(tmp_path / "afile" / "journal.sqlite")


def test_journal_open_on_a_directory_raises(tmp_path):
    (tmp_path / "j.sqlite").mkdir()

    with pytest.raises(JournalError, match="not a regular file"):
        Journal.open(tmp_path / "j.sqlite")


def test_journal_open_failure_leaves_the_file_untouched(path):
    written(path, rows=5)
    data = path.read_bytes()
    damaged = data[: len(data) - 100]
    path.write_bytes(damaged)

    with pytest.raises(JournalError):
        Journal.open(path)

    assert path.read_bytes() == damaged
    assert not Path(f"{path}-wal").exists()


# a disk that takes no byte more, in a child process: RLIMIT_FSIZE 0 makes every file growth fail
# (EFBIG), as a full disk does; SQLite then cannot build the WAL index it reads the journal through
_OPEN_ON_A_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
from procs.trading.journal import Journal
try:
    Journal.open(sys.argv[1]).close()
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_journal_open_on_a_full_disk_blames_the_disk_not_the_file(path):
    written(path, rows=5)
    data = path.read_bytes()
    cmd = [sys.executable, "-c", _OPEN_ON_A_FULL_DISK, str(path)]

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    # refused (never traded on), but not called "malformed": that sends an operator to restore
    # a backup of a journal that is fine, when freeing space is the fix
    assert done.stdout.startswith("JournalDiskError "), done.stdout + done.stderr
    assert "the disk failed it" in done.stdout
    assert "free space" in done.stdout
    assert "malformed" not in done.stdout
    assert path.read_bytes() == data

    Journal.open(path).close()  # room again: it opens


def test_journal_reopened_after_save_daily_round_trips(path):
    j = Journal.open(path)
    j.save_daily(3, Decimal("10"), Decimal("12"))
    j.close()

    again = Journal.open(path)

    assert again.load_daily() == (3, Decimal("10"), Decimal("12"))
    again.close()


def test_journal_created_atomically_leaves_no_temporary_files(tmp_path, path):
    Journal.open(path).close()

    # beside it: the generated audit key, the chain's signed checkpoint and the (empty) intent
    # log, no temporary file
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "audit.key", "journal.sqlite", "journal.sqlite-intents", "journal.sqlite.checkpoint"
    ]  # fmt: skip
    assert (tmp_path / "journal.sqlite-intents").stat().st_size == 0


def test_journal_creation_cut_short_before_is_started_again(tmp_path, path):
    (tmp_path / "journal.sqlite.new").write_bytes(b"half a journal")
    (tmp_path / "journal.sqlite.new-wal").write_bytes(b"junk")

    j = Journal.open(path)

    assert j.count("audit") == 1  # a whole new journal: schema_version and its audit row
    j.close()
    assert not (tmp_path / "journal.sqlite.new").exists()


def test_journal_without_tables_is_not_a_journal(path):
    with closing(sqlite3.connect(path)) as c:
        c.execute("PRAGMA user_version=1")  # a valid, empty SQLite file
        c.commit()

    with pytest.raises(JournalError, match="not an execution journal"):
        Journal.open(path)
