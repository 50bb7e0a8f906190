"""A pure-Python model of the ring protocol (docs/rings.md), the reference the C hot path
(shm/_ringc.c) is tested against: same segment bytes, same records out, same drops.

Deliberately naive: no fast paths, numpy slot copies, one lap check and one discard rule.
"""

from __future__ import annotations

import numpy as np

from shm.records import BENCH_V1, Dtype, Records
from shm.ring import HEADER_BYTES
from shm.segment import attach_segment, close_segment
from tests.helpers.ring_records import make_batch

CLAIMED_I, PUBLISHED_I = 16, 32  # int64 indexes of the counters (offsets 128 and 256)


class Mapped:
    """A segment mapped as the documented layout: counters and slots as numpy views."""

    def __init__(self, name: str, dtype: Dtype, capacity: int) -> None:
        self._seg = attach_segment(name)
        buf = self._seg.buf
        assert buf is not None
        self.ctr = buf[:HEADER_BYTES].cast("q")
        self.raw = np.dtype((np.void, dtype.itemsize))
        self.slots = np.ndarray((capacity,), self.raw, buffer=buf, offset=HEADER_BYTES)
        self.dtype = dtype
        self.capacity = capacity

    def close(self) -> None:
        self.ctr.release()
        del self.slots
        close_segment(self._seg)


class RefWriter(Mapped):
    """Writes into a segment a RingWriter created (that writer must not publish meanwhile)."""

    def __init__(self, name: str, dtype: Dtype, capacity: int) -> None:
        super().__init__(name, dtype, capacity)
        self.next_seq = int(self.ctr[PUBLISHED_I])

    def publish(self, records: Records) -> int:
        n, cap = len(records), self.capacity
        if n > cap:
            raise ValueError(f"batch of {n} exceeds capacity {cap}")
        if n == 0:
            return self.next_seq
        start, end = self.next_seq, self.next_seq + n
        src = np.ascontiguousarray(records).view(self.raw)
        self.ctr[CLAIMED_I] = end  # 1. claim
        idx = np.arange(start, end) % cap
        self.slots[idx] = src  # 2. payload
        self.ctr[PUBLISHED_I] = end  # 3. publish
        self.next_seq = end
        return end


class RefReader(Mapped):
    """Reads a ring from its live edge: lap check, copy, claimed re-read, discard."""

    def __init__(self, name: str, dtype: Dtype, capacity: int) -> None:
        super().__init__(name, dtype, capacity)
        self.cursor = int(self.ctr[PUBLISHED_I])
        self.dropped_total = 0

    def poll(self, max_records: int) -> Records:
        published, cursor, cap = int(self.ctr[PUBLISHED_I]), self.cursor, self.capacity
        if published == cursor:
            return np.empty(0, self.dtype)
        start = max(cursor, published - cap)  # lapped: skip ahead
        end = min(start + max_records, published)
        data = self.slots[np.arange(start, end) % cap].copy()  # copy out
        oldest = int(self.ctr[CLAIMED_I]) - cap  # re-read claimed: below it may be torn
        first = max(start, min(oldest, end))
        next_cursor = max(end, oldest)
        self.dropped_total += next_cursor - cursor - (end - first)
        self.cursor = next_cursor
        return data[first - start :].view(self.dtype)

    def poll_into(self, out: Records) -> int:
        got = self.poll(len(out))
        out[: len(got)] = got
        return len(got)


class SlowWriter(Mapped):
    """Writes the documented layout step by step (BENCH_V1), so a poll can land mid-write."""

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(name, BENCH_V1, capacity)
        self.next_seq = 0

    def claim(self, n: int) -> None:
        self.ctr[CLAIMED_I] = self.next_seq + n

    def write(self, first: int, n: int, *, torn: bool) -> None:
        idx = np.arange(first, first + n) % self.capacity
        src = make_batch(first, n).view(self.raw)
        if torn:  # half-written: the new seq over the old payload
            src = self.slots[idx].copy()
            src.view(BENCH_V1)["seq"] = np.arange(first, first + n)
        self.slots[idx] = src

    def publish(self, n: int) -> None:
        self.next_seq += n
        self.ctr[PUBLISHED_I] = self.next_seq
