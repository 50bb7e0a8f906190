"""The intent log: an order's intent on the disk before the order leaves, at a write's cost.

An intent must be durable before its order can be sent. As a journal transaction (BEGIN, the
row and its audit row, COMMIT, an fsync of the WAL) that cost ~31 µs hot and 85-150 µs in the
running hot path, the largest part of a tick that places an order (docs/benchmarks.md). Here it
is one sealed line appended to ``<journal>-intents`` and an ``fdatasync`` (~6 µs hot); the
intent's journal row follows with the journal's next transaction, as an order's SENT row does
(``Journal._deferred``). Once every intent in the log is committed and fsynced in the journal,
housekeeping empties the log (``Journal.merge_wal``). At start-up ``Journal.open`` writes every
intent of the log that the journal lacks (a crash between the two writes), then empties it.

A line: the HMAC-SHA256 (the journal's audit key, ``AuditChain.seal``) of the row's text in
hex, a space, the row's text (its audit body: a JSON array of the values as stored), a newline.
A last line that is cut short or fails its seal is dropped: it was being written when the
process died, its ``fdatasync`` never returned, so its order never left. Any other bad line is
an error (a damaged or edited file): the journal refuses to open until an operator looks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from procs._files import chmod_private
from procs.trading.journal_check import sync_dir
from procs.trading.journal_rows import JSON, Stored
from procs.trading.model import JournalError

__all__ = ["IntentLog", "log_path"]

log = logging.getLogger(__name__)

_SEAL_HEX = 64  # sha256


def log_path(journal: str | Path) -> str:
    """The intent log of the journal at ``journal`` (beside it, as its ``-wal`` is)."""
    return f"{journal}-intents"


class IntentLog:
    """Append-only, fsynced, sealed intent rows; the journal's only writer owns it."""

    def __init__(self, path: str, fd: int, seal: Callable[[bytes], str]) -> None:
        self.path = path
        self._fd = fd
        self._seal = seal
        self.size = os.fstat(fd).st_size  # bytes; 0: every intent is in the journal

    @classmethod
    def open(cls, path: str, seal: Callable[[bytes], str]) -> IntentLog:
        """Open (or create: its directory entry synced) the log at ``path``, 0600.

        Raises ``OSError`` where it cannot (``Journal.open`` names the path).
        """
        created = not os.path.exists(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            chmod_private(path)
            if created:
                sync_dir(os.path.dirname(path) or ".")
        except OSError:
            os.close(fd)
            raise
        return cls(path, fd, seal)

    def append(self, row: Sequence[object]) -> None:
        """Write one intent row and ``fdatasync`` it: durable when this returns.

        Raises
        ------
        OSError
            The disk refused the write or the sync; the log is cut back to what it was (a
            line half-written by a full disk would damage every line after it).
        """
        text = JSON.encode(row)
        line = b"%s %s\n" % (self._seal(text).encode(), text)
        start = self.size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                log.exception("intent log %s: cannot cut back a failed write", self.path)
            raise
        self.size = start + len(line)

    def read(self) -> list[Stored]:
        """Every intact row, oldest first (a bad last line is dropped, with a warning).

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
                    " (its order never left): %r",
                    *(self.path, line[:200]),
                )
            else:
                raise JournalError(
                    f"intent log {self.path}: line {i + 1} is damaged or was edited (its seal does"
                    " not match). Its intents are not in the journal yet: check the venue's orders,"
                    " then move the file aside to start"
                )
        return rows

    def _row(self, line: bytes) -> Stored | None:
        seal, _, text = line.partition(b" ")
        if len(seal) != _SEAL_HEX or self._seal(text).encode() != seal:
            return None
        try:
            values = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return None
        return Stored(values) if isinstance(values, list) else None

    def clear(self) -> None:
        """Empty the log: call only once every intent in it is durable in the journal."""
        os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
