"""Shared memory: segments, single-writer broadcast rings of numpy records, idle strategies.

Errors: ``ShmError`` -> ``RingLayoutError``, ``RingNotReady``. Record dtypes: ``shm.records``.
"""

from __future__ import annotations

from shm.records import Records
from shm.ring import (
    RingLayoutError,
    RingNotReady,
    RingReader,
    RingSpec,
    RingWriter,
    attach_reader,
)
from shm.segment import (
    ShmError,
    attach_segment,
    clean_segments,
    create_segment,
    destroy_segment,
    list_segments,
)
from shm.waiters import (
    BlockWaiter,
    HybridWaiter,
    Notifier,
    SpinWaiter,
    Waiter,
    Waker,
    make_waiter,
)

__all__ = [
    "BlockWaiter",
    "HybridWaiter",
    "Notifier",
    "Records",
    "RingLayoutError",
    "RingNotReady",
    "RingReader",
    "RingSpec",
    "RingWriter",
    "ShmError",
    "SpinWaiter",
    "Waiter",
    "Waker",
    "attach_reader",
    "attach_segment",
    "clean_segments",
    "create_segment",
    "destroy_segment",
    "list_segments",
    "make_waiter",
]
