"""The intent log: an order's intent on the disk before the order leaves, and a fill before it
is booked, at a write's cost.

An intent must be durable before its order can be sent. As a journal transaction (BEGIN, the
row and its audit row, COMMIT, an fsync of the WAL) that cost ~31 µs hot and 85-150 µs in the
running hot path, the largest part of a tick that places an order (docs/benchmarks.md). Here it
is one sealed line appended to ``<journal>-intents`` and an ``fdatasync`` (~6 µs hot); the
intent's journal row follows with the journal's next transaction, as an order's SENT row does
(``Journal._deferred``). Once every row in the log is committed and fsynced in the journal,
housekeeping empties the log (``Journal.merge_wal``). At start-up ``Journal.open`` writes every
row of the log that the journal lacks (a crash between the two writes), then empties it.

A fill must be journaled before it is booked. Its transaction (the order's row, the fills, the
rows deferred before them) took 230-725 µs in the hot path at 10 k msg/s, every tick behind it
waiting (docs/benchmarks.md). Here the transition's rows, with every deferred row not in the log
yet, are one line (``append_rows``); they are committed with the journal's next transaction.
The line is written, not synced: as durable as the commit it replaces (``synchronous=NORMAL``
syncs no commit; the WAL is fsynced before the log empties). The rows of one line commit in one
transaction, with its fill last: a line is in the journal when its last fill is.

A line: the HMAC-SHA256 (the journal's audit key, ``AuditChain.seal``) of the row's text in
hex, a space, the text, a newline. An intent's text is its audit body (a JSON array of the
values as stored); a fill's line is a JSON object ``{"rows": [[table, values, ts_ns], ...]}``.
A last line that is cut short or fails its seal is dropped: it was being written when the
process died, so its order never left (an intent: its ``fdatasync`` never returned) and its
fill was never booked. Any other bad line is an error (a damaged or edited file): the journal
refuses to open until an operator looks.

When an intent's line is synced: before its order leaves (``sync="before_send"``), or right after
(``sync="after_send"``: the line is written before, and a thread of this log syncs it, every line
written before the sync covered at once). A written line survives the process's death (it is in
the kernel's page cache); only a crash of the host in the sync's window (in ``make demo`` on a
VM's disk p50 <= 1.5 ms, p99 <= 7.5 ms: docs/benchmarks.md) can lose it. Then the order is at
the venue and not in the journal: reconciliation cancels it there if it rests, and a fill of it
shows as a position difference that halts trading until an operator adopts it
(docs/operations.md, "Journal durability"). The journal's config chooses
(``JournalConfig.intent_sync``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, TypeAlias

import msgspec

from procs._files import chmod_private
from procs.trading._syncer import Syncer
from procs.trading.journal_check import sync_dir
from procs.trading.journal_rows import JSON, Stored
from procs.trading.journal_schema import HAS_FILL, HAS_INTENT
from procs.trading.model import JournalError

__all__ = ["IntentLog", "Line", "Row", "log_path", "unjournaled"]

log = logging.getLogger(__name__)

_SEAL_HEX = 64  # sha256

Row: TypeAlias = tuple[str, Sequence[object], int]  # (table, values as stored, ts_ns)
Line: TypeAlias = Stored | list[Row]  # an intent's row, or a fill's line of rows
Sync: TypeAlias = Literal["before_send", "after_send"]  # when an intent's line is synced


def log_path(journal: str | Path) -> str:
    """The intent log of the journal at ``journal`` (beside it, as its ``-wal`` is)."""
    return f"{journal}-intents"


class IntentLog:
    """Append-only, sealed intent rows (fsynced) and fill lines; the journal's writer owns it."""

    def __init__(
        self, path: str, fd: int, seal: Callable[[bytes], str], sync: Sync = "before_send"
    ) -> None:
        self.path = path
        self._fd = fd
        self._seal = seal
        self.size = os.fstat(fd).st_size  # bytes; 0: every intent is in the journal
        self.sync = sync
        # after_send: a POSIX thread syncs (procs/trading/_syncer.c): a Python one needs the GIL
        self._syncer = Syncer(fd) if sync == "after_send" else None

    @classmethod
    def open(cls, path: str, seal: Callable[[bytes], str], sync: Sync = "before_send") -> IntentLog:
        """Open (or create: its directory entry synced) the log at ``path``, 0600.

        Raises ``OSError`` where it cannot (``Journal.open`` names the path).
        """
        created = not os.path.exists(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            chmod_private(path)
            if created:
                sync_dir(os.path.dirname(path) or ".")
            return cls(path, fd, seal, sync)  # (its thread may fail to start: OSError)
        except OSError:
            os.close(fd)
            raise

    def drain_sync_lags(self) -> list[int]:
        """``sync="after_send"``: the windows (ns) of the syncs since the last call, each from the
        oldest line it covered being written to the sync's return; [] otherwise."""
        return self._syncer.drain() if self._syncer is not None else []

    def sync_error(self) -> OSError | None:
        """``sync="after_send"``: the first failed sync's error (sticky), None while all is well."""
        errno = self._syncer.error if self._syncer is not None else 0
        if not errno:
            return None
        return OSError(errno, f"an earlier sync of the intent log failed: {os.strerror(errno)}")

    def wait_synced(self, timeout_s: float) -> bool:
        """True once every line written so far is synced (at once for ``sync="before_send"``);
        False at the timeout or once a sync failed (``sync_error``)."""
        return self._syncer is None or self._syncer.wait(timeout_s)

    def append(self, row: Sequence[object]) -> None:
        """Write one intent row and ``fdatasync`` it: durable when this returns, or for
        ``sync="after_send"`` once the log's thread has synced it (``wait_synced``).

        Raises
        ------
        OSError
            The disk refused the write or the sync; the log is cut back to what it was (a
            line half-written by a full disk would damage every line after it). After a
            failed sync every write raises that error: the kernel may have dropped the lines.
        """
        self._write(JSON.encode(row), sync=self._syncer is None)
        if self._syncer is not None:
            self._syncer.request()

    def append_rows(self, rows: Sequence[Row]) -> None:
        """Write a fill's line (its rows, values as stored), not synced (see the module doc).

        Raises ``OSError`` as ``append`` does, the log cut back."""
        self._write(JSON.encode({"rows": rows}), sync=False)

    def _write(self, text: bytes, *, sync: bool) -> None:
        if (err := self.sync_error()) is not None:
            raise err
        line = b"%s %s\n" % (self._seal(text).encode(), text)
        start = self.size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            if sync:
                os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                log.exception("intent log %s: cannot cut back a failed write", self.path)
            raise
        self.size = start + len(line)

    def read(self) -> list[Line]:
        """Every intact line, oldest first (a bad last line is dropped, with a warning).

        Raises
        ------
        JournalError
            A line before the last is cut short or fails its seal.
        """
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        lines = b"".join(chunks).split(b"\n")
        if lines[-1] == b"":  # the newline that ends the last whole line
            lines.pop()
        rows = []
        for i, line in enumerate(lines):
            row = self._row(line)
            if row is not None:
                rows.append(row)
            elif i == len(lines) - 1:  # the last line: cut short, or (a crash mid-write) not sealed
                log.warning(
                    "intent log %s: dropped its last line, written when the process died"
                    " (its order never left, its fill was not booked): %r",
                    *(self.path, line[:200]),
                )
            else:
                raise JournalError(
                    f"intent log {self.path}: line {i + 1} is damaged or was edited (its seal does"
                    " not match). Its intents and fills may not be in the journal yet: check the"
                    " venue's orders and fills, then move the file aside to start"
                )
        return rows

    def _row(self, line: bytes) -> Line | None:
        seal, _, text = line.partition(b" ")
        if len(seal) != _SEAL_HEX or self._seal(text).encode() != seal:
            return None
        try:
            values = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return None
        if isinstance(values, list):
            return Stored(values)
        rows = values.get("rows") if isinstance(values, dict) else None
        if not rows or not all(_is_row(r) for r in rows) or rows[-1][0] != "fills":
            return None  # (a line is the journal's own, sealed: a bad one is a damaged file)
        return [(str(t), Stored(v), int(ts)) for t, v, ts in rows]

    def clear(self) -> None:
        """Empty the log: call only once every row in it is durable in the journal."""
        os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self) -> None:
        """Stop the log's thread (its last sync done), then close the file."""
        if self._syncer is not None:
            self._syncer.stop()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_LINE_TABLES = frozenset({"order_events", "fills"})  # what a fill's line holds (no intents)


def _is_row(r: object) -> bool:
    return (
        isinstance(r, list)
        and len(r) == 3
        and isinstance(r[0], str)
        and r[0] in _LINE_TABLES
        and isinstance(r[1], list)
        and isinstance(r[2], int)
    )


def unjournaled(conn: sqlite3.Connection, lines: Sequence[Line]) -> tuple[list[Row], int, int]:
    """The rows of ``lines`` that the journal at ``conn`` lacks, in the log's order; how many
    intents and fills among them. An intent is in the journal when its client id is; a fill's
    line when its last fill is (its rows were committed together)."""
    rows: list[Row] = []
    intents = fills = 0
    for line in lines:
        todo: list[Row]
        if isinstance(line, Stored):
            q, key, todo = HAS_INTENT, line[0], [("intents", line, int(str(line[-1])))]
        else:
            q, key, todo = HAS_FILL, line[-1][1][0], list(line)
        if conn.execute(q, (key,)).fetchone() is None:
            rows += todo
            intents += sum(t == "intents" for t, _, _ in todo)
            fills += sum(t == "fills" for t, _, _ in todo)
    return rows, intents, fills
