"""What execution's trading steps read, for the journal's ``reads`` table.

For each step that read signals while it could trade: the seq of the newest book read so far,
the first and last signal seq read, and the step's clock (the ``now`` its decisions used), with
the run (the client id generator's epoch, new at each start). A backtest replays the run's
steps from them (``procs/backtest/follow.py``): the same signals, read in the same batches, at
the same moments, against the same books. The hot path only keeps references; at most every
``reads_flush_s``, and at close, the steps since the last flush become one audited row (an
audit row costs ~30 us: one per step would stall the loop for milliseconds a second).
"""

from __future__ import annotations

from typing import Final

from procs.trading.journal import Journal
from shm.records import Records

__all__ = ["ReadLog"]

NS: Final = 1_000_000_000


class ReadLog:
    """Rows for the ``reads`` table; ``flush_s`` 0: nothing is recorded.

    The hot path only keeps references (``poll`` answers private copies that are never
    written again); the seqs are read out when the rows are written."""

    def __init__(self, journal: Journal, flush_s: float) -> None:
        self._journal = journal
        self._flush_ns = int(flush_s * NS)
        self._pending: list[tuple[Records | None, Records, int]] = []
        self._due = 0
        self.run_ms = 0  # the run's client id epoch (set once execution has opened)
        self.books: Records | None = None  # the newest batch of books read

    def note(self, sigs: Records, now: int) -> None:
        """A trading step read ``sigs`` (after its decisions: flushing here delays none)."""
        if not self._flush_ns:
            return
        self._pending.append((self.books, sigs, now))
        if now >= self._due:
            self._due = now + self._flush_ns
            self.flush()

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._journal.record_reads(self.run_ms, [_step(*p) for p in pending])


def _step(books: Records | None, sigs: Records, now: int) -> tuple[int, int, int, int]:
    seq = sigs["seq"]  # (.item: a Python int without a numpy scalar first)
    return 0 if books is None else books["seq"].item(-1), seq.item(0), seq.item(-1), now
