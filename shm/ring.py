"""Single-writer, many-reader broadcast ring of numpy records in one shared-memory segment.

Errors: ``ShmError`` -> ``RingLayoutError`` (the writer's layout differs), ``RingNotReady`` (no
segment yet, or its header is not published). Layout and memory-ordering argument: docs/rings.md.
"""

from __future__ import annotations

import os
import platform
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol

import numpy as np

from shm.records import Dtype, Records, dtype_crc, dtype_name
from shm.segment import (
    Segment,
    ShmError,
    attach_segment,
    close_segment,
    create_segment,
    destroy_segment,
    mapping_inode,
    segment_buffer,
    segment_inode,
)

__all__ = [
    "HEADER_BYTES",
    "LAYOUT_VERSION",
    "MAGIC",
    "Records",
    "RingLayoutError",
    "RingNotReady",
    "RingReader",
    "RingSpec",
    "RingWriter",
    "ShmError",
    "attach_reader",
]

# The ordering argument (docs/rings.md) rests on x86-64 TSO; another CPU needs real atomics
if platform.machine() != "x86_64":  # pragma: no cover
    raise ImportError(f"shm.ring needs x86-64 memory ordering, this is {platform.machine()}")

HEADER_BYTES: Final = 384
MAGIC: Final = int.from_bytes(b"BTRRING1", "little")
LAYOUT_VERSION: Final = 1
DTYPE_NAME_BYTES: Final = 32
WRITER_CHECK_S: Final = 0.1  # an idle reader looks for a replaced segment this often
_monotonic_ns: Final = time.monotonic_ns  # bound once: an idle poll calls it every time

# magic, layout version, record size, capacity, dtype CRC, writer pid, dtype name, created_ns
_HEADER: Final = struct.Struct("<qIIqIi32sq")
_CLAIMED_AT: Final = 128  # each counter on its own 128-byte block (two cache lines)
_PUBLISHED_AT: Final = 256
_MAGIC_I: Final = 0  # int64 indexes into the counter view
_CLAIMED_I: Final = _CLAIMED_AT // 8
_PUBLISHED_I: Final = _PUBLISHED_AT // 8
_SMALL_BATCH_BYTES: Final = 32 * 1024
_CHECK_NS: Final = int(WRITER_CHECK_S * 1e9)
assert _HEADER.size <= _CLAIMED_AT


class RecordSource(Protocol):
    """What a stage reads records from: a ``RingReader`` (or a fake in unit tests)."""

    dropped_total: int

    @property
    def lag_records(self) -> int: ...

    def poll(self, max_records: int) -> Records: ...

    def close(self) -> None: ...


class RecordSink(Protocol):
    """What a stage publishes records to: a ``RingWriter`` (or a fake in unit tests)."""

    def publish(self, records: Records) -> int: ...

    def close(self) -> None: ...


class RingLayoutError(ShmError):
    """The segment is not a ring of the expected layout (record size, dtype CRC, version)."""


class RingNotReady(ShmError):
    """The segment does not exist yet, or its writer has not finished the header."""


def _counter_view(buf: memoryview) -> memoryview:
    # Every load and store of magic, claimed and published goes through this int64 view: an
    # aligned 8-byte access, one mov on x86-64 (TSO orders them, docs/rings.md). A port to a
    # weakly ordered CPU replaces this view with an object of the same indexing interface:
    # published load-acquire/store-release, a StoreStore fence after the claimed store and a
    # LoadLoad fence before the claimed load
    return buf[:HEADER_BYTES].cast("q")


@dataclass(frozen=True, slots=True, kw_only=True)
class RingSpec:
    """What a writer creates: segment name, record dtype (from shm.records), capacity."""

    name: str
    dtype: Dtype
    capacity: int

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or len(self.name) > 200:
            raise ValueError(f"ring name must be 1-200 characters without '/', was {self.name!r}")
        if (
            not isinstance(self.capacity, int)
            or self.capacity <= 0
            or self.capacity & (self.capacity - 1)
        ):
            raise ValueError(f"capacity must be a positive power of two, was {self.capacity}")
        try:
            dtype_name(self.dtype)
        except KeyError:
            raise ValueError(
                f"ring {self.name}: dtype must be registered in shm.records, was {self.dtype}"
            ) from None

    @property
    def size_bytes(self) -> int:
        """Return the segment size: header plus ``capacity`` slots."""
        return HEADER_BYTES + self.capacity * self.dtype.itemsize


class _RingMap:
    """The mapping of one ring segment and the views into it."""

    def __init__(self, name: str, dtype: Dtype) -> None:
        self.name = name
        self._dtype = dtype
        self._raw = np.dtype((np.void, dtype.itemsize))  # slots as opaque bytes: copies are memcpy
        self._itemsize = dtype.itemsize
        self._seg: Segment | None = None
        self._ino = 0
        self._capacity = 0
        self._mask = 0
        self._top = 0
        self._small_records = 0

    def _map(self, seg: Segment, capacity: int) -> None:
        self._seg = seg
        self._buf = segment_buffer(seg)
        self._ctr = _counter_view(self._buf)
        self._slots = np.ndarray((capacity,), self._raw, buffer=self._buf, offset=HEADER_BYTES)
        self._capacity = capacity
        self._mask = capacity - 1
        self._top = HEADER_BYTES + capacity * self._itemsize
        self._small_records = min(capacity, max(1, _SMALL_BATCH_BYTES // self._itemsize))
        self._ino = mapping_inode(seg)

    def _unmap(self) -> Segment | None:
        seg, self._seg = self._seg, None
        if seg is not None:
            # every export of the mapping must be gone before it can be closed
            self._ctr.release()
            del self._slots, self._buf
        return seg

    def __del__(self) -> None:
        # dropped without close(): unmap quietly (SharedMemory.__del__ would hit our exports);
        # the name stays, as after a crash
        seg = self._unmap()
        if seg is not None:
            close_segment(seg)

    @property
    def capacity(self) -> int:
        """Return the number of slots."""
        return self._capacity

    @property
    def writer_pid(self) -> int:
        """Return the pid stored by the writer that created the mapped segment."""
        fields = _HEADER.unpack_from(self._buf, 0)
        return int(fields[5])


class RingWriter(_RingMap):
    """Creates the ring segment, is its only writer, and unlinks it on ``close``.

    Not thread-safe: one thread publishes. A stale segment of the same name is unlinked first.
    """

    def __init__(self, spec: RingSpec) -> None:
        super().__init__(spec.name, spec.dtype)
        self.spec = spec
        self._next_seq = 0
        seg = create_segment(spec.name, spec.size_bytes)
        name = dtype_name(spec.dtype).encode()[:DTYPE_NAME_BYTES]
        _HEADER.pack_into(
            segment_buffer(seg),
            0,
            0,  # magic stays 0 until everything else is in place
            LAYOUT_VERSION,
            spec.dtype.itemsize,
            spec.capacity,
            dtype_crc(spec.dtype),
            os.getpid(),
            name,
            time.time_ns(),
        )
        self._map(seg, spec.capacity)
        self._ctr[_MAGIC_I] = MAGIC  # last: a reader that sees the magic sees the whole header

    @property
    def next_seq(self) -> int:
        """Return the sequence number the next published record will get."""
        return self._next_seq

    def publish(self, records: Records) -> int:
        """Append ``records`` (at most ``capacity``); return the sequence number one past the last.

        Raises
        ------
        ValueError
            The batch is larger than the capacity, not 1-d, or has another dtype.
        """
        dtype = records.dtype
        if dtype is not self._dtype and dtype != self._dtype:
            raise ValueError(f"ring {self.name}: records have dtype {records.dtype}")
        if records.ndim != 1:
            raise ValueError(f"ring {self.name}: records must be 1-d, shape {records.shape}")
        n = len(records)
        start = self._next_seq
        if 0 < n <= self._small_records:
            # hot path, a small batch that does not wrap: tobytes() plus one memoryview store
            # costs a fifth of numpy's view() machinery (and 1/15 of a memoryview cast)
            a = HEADER_BYTES + (start & self._mask) * self._itemsize
            data = records.tobytes()
            b = a + len(data)
            if b <= self._top:
                end = start + n
                ctr = self._ctr
                ctr[_CLAIMED_I] = end  # 1. announce which slots are about to change
                self._buf[a:b] = data  # 2. payload
                ctr[_PUBLISHED_I] = end  # 3. make them visible
                self._next_seq = end
                return end
        return self._publish_any(records, n, start)

    def _publish_any(self, records: Records, n: int, start: int) -> int:
        cap = self._capacity
        if n > cap:
            raise ValueError(f"ring {self.name}: batch of {n} exceeds capacity {cap}")
        if n == 0:
            return start
        end = start + n
        a = start & self._mask
        b = a + n
        src = records.view(self._raw)  # memcpy-style copies, never field by field
        ctr = self._ctr
        ctr[_CLAIMED_I] = end  # 1. announce which slots are about to change
        if b <= cap:  # 2. payload: one or two slice copies
            self._slots[a:b] = src
        else:
            self._slots[a:] = src[: cap - a]
            self._slots[: b - cap] = src[cap - a :]
        ctr[_PUBLISHED_I] = end  # 3. make them visible
        self._next_seq = end
        return end

    def close(self) -> None:
        """Unmap and unlink the segment (clean exit); idempotent."""
        seg = self._unmap()
        if seg is not None:
            destroy_segment(seg)

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _attach_checked(name: str, dtype: Dtype) -> tuple[Segment, int]:
    try:
        seg = attach_segment(name)
    except FileNotFoundError:
        raise RingNotReady(f"ring {name}: no segment /dev/shm/{name}") from None
    except ValueError:  # mapped between shm_open and ftruncate: size still 0
        raise RingNotReady(f"ring {name}: segment is being created") from None
    try:
        return seg, _check_header(name, seg, dtype)
    except ShmError:
        close_segment(seg)
        raise


def _check_header(name: str, seg: Segment, dtype: Dtype) -> int:
    if seg.size < HEADER_BYTES:
        raise RingNotReady(f"ring {name}: segment is being created ({seg.size} bytes)")
    buf = segment_buffer(seg)
    magic = struct.unpack_from("<q", buf, 0)[0]  # the magic alone first, then the rest
    if magic == 0:
        raise RingNotReady(f"ring {name}: header not published yet")
    if magic != MAGIC:
        raise RingLayoutError(f"ring {name}: not a bitrader ring (magic {magic:#x})")
    _, version, size, capacity, crc, _, raw_name, _ = _HEADER.unpack_from(buf, 0)
    found = raw_name.rstrip(b"\0").decode(errors="replace")
    want, want_crc = dtype_name(dtype), dtype_crc(dtype)
    if version != LAYOUT_VERSION:
        raise RingLayoutError(
            f"ring {name}: layout version {version}, this reader knows {LAYOUT_VERSION}"
        )
    if size != dtype.itemsize or crc != want_crc:
        raise RingLayoutError(
            f"ring {name}: writer has {found} (crc {crc:#010x}, {size} B), "
            f"reader expects {want} (crc {want_crc:#010x}, {dtype.itemsize} B)"
        )
    if capacity <= 0 or capacity & (capacity - 1) or seg.size < HEADER_BYTES + capacity * size:
        raise RingLayoutError(f"ring {name}: bad capacity {capacity} for {seg.size} bytes")
    return int(capacity)


class RingReader(_RingMap):
    """A private cursor over a ring, joining at the live edge (or the oldest record held).

    Attaches untracked: the reader's exit never removes the writer's segment. Never gates the
    writer: when lapped it skips ahead and counts the loss in ``dropped_total``. When idle it
    notices a restarted writer's new segment and reattaches (``reattach_total``). One thread.
    """

    def __init__(self, name: str, dtype: Dtype, *, from_start: bool = False) -> None:
        super().__init__(name, dtype)
        try:
            dtype_name(dtype)
        except KeyError:
            raise ValueError(f"ring {name}: dtype must be registered in shm.records") from None
        seg, capacity = _attach_checked(name, dtype)
        self._map(seg, capacity)
        published = self._ctr[_PUBLISHED_I]
        self._cursor = max(0, published - capacity) if from_start else published
        self._empty: Records = np.empty(0, dtype)
        self._spare: Records | None = None  # poll's next 1-record result, made while idle
        self._spare_bytes = memoryview(b"")
        self._into: Records | None = None  # the caller's buffer poll_into last saw
        self._into_bytes = memoryview(b"")
        self._into_nbytes = 0
        self._next_check_ns = 0
        self.dropped_total = 0
        self.reattach_total = 0

    @property
    def cursor(self) -> int:
        """Return the sequence number of the next record this reader will read."""
        return self._cursor

    @property
    def published(self) -> int:
        """Return the writer's ``published`` counter."""
        return int(self._ctr[_PUBLISHED_I])

    @property
    def lag_records(self) -> int:
        """Return ``published - cursor``: records published but not yet read (or lost)."""
        return int(self._ctr[_PUBLISHED_I]) - self._cursor

    def poll(self, max_records: int) -> Records:
        """Copy out up to ``max_records`` unseen records, oldest first (possibly none).

        The result is a private copy, never a view into shared memory.
        """
        cursor = self._cursor
        published = self._ctr[_PUBLISHED_I]  # 1. what is complete
        if published == cursor:  # a spinning reader's common case: two loads, one compare
            if self._spare is None:
                self._make_spare()
            if _monotonic_ns() >= self._next_check_ns:
                self._check_writer()
            return self._empty
        n = published - cursor
        if n > max_records:
            return self._poll_any(published, cursor, max_records)
        isz = self._itemsize
        a = HEADER_BYTES + (cursor & self._mask) * isz
        spare = self._spare
        if n == 1 and spare is not None:
            # one record (never lapped, never wraps) into the result an idle poll allocated
            self._spare_bytes[:] = self._buf[a : a + isz]  # 2. copy: one memcpy
            self._spare = None  # handed out: the ring never writes into it again
            if self._ctr[_CLAIMED_I] - self._capacity > cursor:  # 3. re-read claimed
                return self._discard(self._spare_bytes, published, cursor, cursor)
            self._cursor = published
            return spare
        # hot path: everything unseen, not lapped (n > capacity implies b > top), not wrapping
        b = a + n * isz
        if b > self._top:
            return self._poll_any(published, cursor, max_records)
        data = bytearray(self._buf[a:b])  # 2. copy: one memcpy
        if self._ctr[_CLAIMED_I] - self._capacity > cursor:  # 3. re-read claimed: overwritten?
            return self._discard(data, published, cursor, cursor)
        self._cursor = published
        return np.ndarray((n,), self._dtype, data)  # cheaper than np.frombuffer

    def _make_spare(self) -> None:
        # allocating the next 1-record result costs ~0.3 µs; done while idle, it is off the
        # latency path of the record that ends the idle spell
        data = bytearray(self._itemsize)
        self._spare_bytes = memoryview(data)
        self._spare = np.ndarray((1,), self._dtype, data)

    def _poll_any(self, published: int, cursor: int, max_records: int) -> Records:
        if max_records < 1:  # checked off the hot path: a non-positive max always lands here
            raise ValueError(f"ring {self.name}: max_records must be >= 1, was {max_records}")
        cap = self._capacity
        start = published - cap if published - cap > cursor else cursor  # lapped: skip ahead
        end = start + max_records if start + max_records < published else published
        isz = self._itemsize
        a = HEADER_BYTES + (start & self._mask) * isz
        b = a + (end - start) * isz
        top = self._top
        if b <= top:  # 2. copy: one or two memcpy
            data = bytearray(self._buf[a:b])
        else:
            data = bytearray(self._buf[a:top])
            data += self._buf[HEADER_BYTES : b - top + HEADER_BYTES]
        return self._discard(data, end, start, cursor)

    def _discard(self, data: bytearray | memoryview, end: int, start: int, cursor: int) -> Records:
        # records [start, end) were copied; those below claimed - capacity may be torn
        oldest = self._ctr[_CLAIMED_I] - self._capacity  # 3. re-read claimed after the copy
        first = max(start, min(oldest, end))
        next_cursor = max(end, oldest)
        self.dropped_total += next_cursor - cursor - (end - first)
        self._cursor = next_cursor
        out: Records = np.frombuffer(data, self._dtype)
        return out[first - start :]

    def poll_into(self, out: Records) -> int:
        """Copy up to ``len(out)`` unseen records into ``out[:n]`` and return ``n``.

        The allocation-free variant of ``poll`` for latency-critical loops: pass the same
        preallocated, C-contiguous array each time (a new array costs a one-off ~1 µs).
        """
        if out is not self._into:
            self._bind_into(out)
        cursor = self._cursor
        published = self._ctr[_PUBLISHED_I]  # 1. what is complete
        if published == cursor:
            if _monotonic_ns() >= self._next_check_ns:
                self._check_writer()
            return 0
        a = HEADER_BYTES + (cursor & self._mask) * self._itemsize
        nbytes = (published - cursor) * self._itemsize
        b = a + nbytes
        # hot path: fits in out, not lapped (published - cursor > capacity implies b > top),
        # not wrapping
        if b > self._top or nbytes > self._into_nbytes:
            return self._poll_into_any(published, cursor)
        self._into_bytes[:nbytes] = self._buf[a:b]  # 2. copy: one memcpy
        if self._ctr[_CLAIMED_I] - self._capacity > cursor:  # 3. re-read claimed: overwritten?
            return self._discard_into(published, cursor, cursor)
        self._cursor = published
        return published - cursor

    def _bind_into(self, out: Records) -> None:
        if out.dtype != self._dtype or out.ndim != 1 or not out.flags.c_contiguous:
            raise ValueError(
                f"ring {self.name}: poll_into needs a 1-d C-contiguous {dtype_name(self._dtype)} "
                f"array, got {out.dtype} with shape {out.shape}"
            )
        if not out.flags.writeable:
            raise ValueError(f"ring {self.name}: poll_into needs a writeable array")
        self._into_bytes.release()
        self._into_bytes = out.view(np.uint8).data
        self._into_nbytes = len(self._into_bytes)
        self._into = out

    def _poll_into_any(self, published: int, cursor: int) -> int:
        n_max = self._into_nbytes // self._itemsize
        if n_max < 1:
            raise ValueError(f"ring {self.name}: poll_into needs a non-empty array")
        cap = self._capacity
        start = published - cap if published - cap > cursor else cursor  # lapped: skip ahead
        end = start + n_max if start + n_max < published else published
        isz, top = self._itemsize, self._top
        a = HEADER_BYTES + (start & self._mask) * isz
        b = a + (end - start) * isz
        if b <= top:  # 2. copy: one or two memcpy
            self._into_bytes[: b - a] = self._buf[a:b]
        else:
            self._into_bytes[: top - a] = self._buf[a:top]
            self._into_bytes[top - a : b - a] = self._buf[HEADER_BYTES : b - top + HEADER_BYTES]
        return self._discard_into(end, start, cursor)

    def _discard_into(self, end: int, start: int, cursor: int) -> int:
        oldest = self._ctr[_CLAIMED_I] - self._capacity  # 3. re-read claimed after the copy
        first = max(start, min(oldest, end))
        next_cursor = max(end, oldest)
        self.dropped_total += next_cursor - cursor - (end - first)
        self._cursor = next_cursor
        if first > start:  # move the untorn tail to the front
            isz = self._itemsize
            keep = bytes(self._into_bytes[(first - start) * isz : (end - start) * isz])
            self._into_bytes[: len(keep)] = keep
        return end - first

    def _check_writer(self) -> None:
        self._next_check_ns = time.monotonic_ns() + _CHECK_NS
        ino = segment_inode(self.name)
        if ino is None or ino == self._ino:
            return  # writer alive, or gone without a successor yet
        try:
            seg, capacity = _attach_checked(self.name, self._dtype)
        except RingNotReady:
            return  # the new writer is still building its header
        old = self._unmap()
        if old is not None:
            close_segment(old)
        self._map(seg, capacity)
        # every record of the new writer is news to this reader: start at its oldest; poll counts
        # what it already overwrote as dropped
        self._cursor = 0
        self.reattach_total += 1

    def close(self) -> None:
        """Unmap the segment (never unlinks: the writer owns the name); idempotent."""
        self._into_bytes.release()
        self._into_nbytes = 0
        self._into = None
        self._spare = None
        seg = self._unmap()
        if seg is not None:
            close_segment(seg)

    def __enter__(self) -> RingReader:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def attach_reader(
    name: str,
    dtype: Dtype,
    timeout_s: float,
    *,
    from_start: bool = False,
    interval_s: float = 0.01,
) -> RingReader:
    """Attach a reader, retrying every ``interval_s`` while the ring is not ready (start-up).

    Raises
    ------
    RingNotReady
        Still not ready after ``timeout_s`` seconds.
    RingLayoutError
        The writer's layout differs (not retried).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return RingReader(name, dtype, from_start=from_start)
        except RingNotReady as e:
            if time.monotonic() >= deadline:
                raise RingNotReady(f"{e} (gave up after {timeout_s} s)") from None
        time.sleep(interval_s)  # start-up pacing, bounded by the deadline
