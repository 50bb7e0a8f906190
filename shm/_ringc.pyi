"""Types of the C hot path (shm/_ringc.c); shm.ring.RingWriter/RingReader derive from them."""

from __future__ import annotations

import numpy as np

from shm.records import Dtype, Records

class _Core:
    @property
    def _published(self) -> int: ...
    def _core_bind(
        self,
        buf: memoryview,
        header: int,
        claimed_at: int,
        published_at: int,
        capacity: int,
        dtype: Dtype,
        /,
    ) -> None: ...
    def _core_unbind(self) -> None: ...

class WriterCore(_Core):
    @property
    def next_seq(self) -> int:
        """Return the sequence number the next published record will get."""

    def publish(self, records: Records, /) -> int:
        """Append ``records`` (at most ``capacity``); return the sequence number one past the last.

        Raises
        ------
        ValueError
            The batch is larger than the capacity, not 1-d, or has another dtype.
        """

class ReaderCore(_Core):
    _cursor: int
    dropped_total: int
    _next_check_ns: int

    @property
    def lag_records(self) -> int:
        """Return ``published - cursor``: records published but not yet read (or lost)."""

    def poll(self, max_records: int, /) -> Records:
        """Copy out up to ``max_records`` unseen records, oldest first (possibly none)."""

    def poll_into(self, out: Records, /) -> int:
        """Copy up to ``len(out)`` unseen records into ``out[:n]`` and return ``n``."""

    def _core_types(
        self, ndarray: type[np.ndarray], empty: Records, check_every_ns: int, /
    ) -> None: ...
