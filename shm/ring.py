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
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np

from shm._ringc import ReaderCore, WriterCore
from shm.records import Dtype, Records, dtype_crc, dtype_name
from shm.segment import (
    Segment,
    ShmError,
    attach_segment,
    close_segment,
    create_segment,
    destroy_segment,
    mapping_inode,
    prefault,
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

# magic, layout version, record size, capacity, dtype CRC, writer pid, dtype name, created_ns
_HEADER: Final = struct.Struct("<qIIqIi32sq")
_CLAIMED_AT: Final = 128  # each counter on its own 128-byte block (two cache lines)
_PUBLISHED_AT: Final = 256
_MAGIC_I: Final = 0  # int64 index into the counter view
_CHECK_NS: Final = int(WRITER_CHECK_S * 1e9)
assert _HEADER.size <= _CLAIMED_AT


class RecordSource(Protocol):
    """What a stage reads records from: a ``RingReader`` (or a fake in unit tests)."""

    dropped_total: int

    @property
    def lag_records(self) -> int: ...

    def poll(self, max_records: int) -> Records:
        """Up to ``max_records`` new records, in an array the caller may keep: nothing the
        source does later writes to it (``RingReader.poll`` returns a copy). Execution keeps
        rows of its books for the paper venue as they came (views of their level arrays), so a
        source that refilled one buffer would change books already read."""
        ...

    def close(self) -> None: ...


class RecordSink(Protocol):
    """What a stage publishes records to: a ``RingWriter`` (or a fake in unit tests)."""

    def publish(self, records: Records) -> int: ...

    def close(self) -> None: ...


class RingLayoutError(ShmError):
    """The segment is not a ring of the expected layout (record size, dtype CRC, version)."""


class RingNotReady(ShmError):
    """The segment does not exist yet, or its writer has not finished the header."""


def _store_magic(buf: memoryview) -> None:
    # one aligned 8-byte store (a memoryview 'q' item is one mov on x86-64), after the rest of
    # the header: TSO makes a reader that sees the magic see the whole header (docs/rings.md).
    # The counters are loaded and stored by the C core (shm/_ringc.c) only
    magic = buf[:8].cast("q")
    magic[_MAGIC_I] = MAGIC
    magic.release()


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
        self._seg: Segment | None = None
        self._ino = 0
        self._capacity = 0

    def _map(self, seg: Segment, capacity: int) -> None:
        self._seg = seg
        self._buf = segment_buffer(seg)
        self._capacity = capacity
        self._ino = mapping_inode(seg)
        # the C hot path (shm/_ringc.c) holds its own export of the mapping
        self._core_bind(self._buf, HEADER_BYTES, _CLAIMED_AT, _PUBLISHED_AT, capacity, self._dtype)

    if TYPE_CHECKING:  # provided by the C base, WriterCore or ReaderCore (shm/_ringc.c)

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

    def _unmap(self) -> Segment | None:
        seg, self._seg = self._seg, None
        if seg is not None:
            # every export of the mapping must be gone before it can be closed
            self._core_unbind()
            del self._buf
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


class RingWriter(_RingMap, WriterCore):
    """Creates the ring segment, is its only writer, and unlinks it on ``close``.

    Not thread-safe: one thread publishes. A stale segment of the same name is unlinked first.
    """

    def __init__(self, spec: RingSpec) -> None:
        super().__init__(spec.name, spec.dtype)
        self.spec = spec
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
        _store_magic(self._buf)  # last: a reader that sees the magic sees the whole header

    # publish(records) -> int and next_seq come from WriterCore (shm/_ringc.c): a contiguous
    # 1-d batch of this ring's dtype is copied in with one or two memcpy; anything else lands in
    # _publish_slow

    def _publish_slow(self, records: Records) -> int:
        dtype = getattr(records, "dtype", None)
        if dtype != self._dtype:
            raise ValueError(f"ring {self.name}: records have dtype {dtype}")
        if records.ndim != 1:
            raise ValueError(f"ring {self.name}: records must be 1-d, shape {records.shape}")
        if len(records) > self._capacity:
            raise ValueError(
                f"ring {self.name}: batch of {len(records)} exceeds capacity {self._capacity}"
            )
        if self._seg is None:
            raise ValueError(f"ring {self.name}: closed")
        if len(records) == 0:
            return self.next_seq
        if records.flags.c_contiguous:  # pragma: no cover - the C path takes every such batch
            raise RuntimeError(f"ring {self.name}: publish fell back on a contiguous batch")
        return self.publish(np.ascontiguousarray(records))

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
        capacity = _check_header(name, seg, dtype)
    except ShmError:
        close_segment(seg)
        raise
    prefault(seg, write=False)  # this mapping's pages now, not in the first pass over the ring
    return seg, capacity


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


class RingReader(_RingMap, ReaderCore):
    """A private cursor over a ring, joining at the live edge (or the oldest record held).

    Attaches untracked: the reader's exit never removes the writer's segment. Never gates the
    writer: when lapped it skips ahead and counts the loss in ``dropped_total``. When idle it
    notices a restarted writer's new segment and reattaches (``reattach_total``). One thread.

    ``poll(max_records)``, ``poll_into(out)``, ``lag_records`` and ``dropped_total`` come from
    ReaderCore (shm/_ringc.c). ``poll`` returns a private copy, never a view into shared memory;
    ``poll_into`` is its allocation-free variant for latency-critical loops: pass the same
    preallocated, C-contiguous array each time (binding a new array costs ~1 µs once).
    """

    def __init__(self, name: str, dtype: Dtype, *, from_start: bool = False) -> None:
        super().__init__(name, dtype)
        try:
            dtype_name(dtype)
        except KeyError:
            raise ValueError(f"ring {name}: dtype must be registered in shm.records") from None
        self._core_types(np.ndarray, np.empty(0, dtype), _CHECK_NS)
        seg, capacity = _attach_checked(name, dtype)
        self._map(seg, capacity)
        published = self._published
        self._cursor = max(0, published - capacity) if from_start else published
        self.reattach_total = 0

    @property
    def cursor(self) -> int:
        """Return the sequence number of the next record this reader will read."""
        return self._cursor

    @property
    def published(self) -> int:
        """Return the writer's ``published`` counter."""
        return self._published

    def _check_into(self, out: Records) -> None:
        # poll_into's validation of a newly passed buffer (the C side then takes its buffer)
        if (
            getattr(out, "dtype", None) != self._dtype
            or out.ndim != 1
            or not out.flags.c_contiguous
        ):
            raise ValueError(
                f"ring {self.name}: poll_into needs a 1-d C-contiguous {dtype_name(self._dtype)} "
                f"array, got {getattr(out, 'dtype', type(out))} with shape "
                f"{getattr(out, 'shape', None)}"
            )
        if not out.flags.writeable:
            raise ValueError(f"ring {self.name}: poll_into needs a writeable array")
        if out.size == 0:
            raise ValueError(f"ring {self.name}: poll_into needs a non-empty array")

    def _check_writer(self) -> None:
        # called by an idle poll every WRITER_CHECK_S
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
