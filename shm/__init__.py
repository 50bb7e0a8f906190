"""Shared memory: segments, single-writer broadcast rings of numpy records, idle strategies.

Errors: ``ShmError`` -> ``RingLayoutError``, ``RingNotReady``. Record dtypes: ``shm.records``.
Names are imported on first use, so ``python -m shm.segment`` runs without importing itself twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from shm.records import Records
    from shm.ring import (
        RecordSink,
        RecordSource,
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
    "RecordSink",
    "RecordSource",
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

_HOME: Final = {
    "Records": "shm.records",
    **dict.fromkeys(
        (
            "RecordSink",
            "RecordSource",
            "RingLayoutError",
            "RingNotReady",
            "RingReader",
            "RingSpec",
            "RingWriter",
        ),
        "shm.ring",
    ),
    "attach_reader": "shm.ring",
    **dict.fromkeys(
        (
            "ShmError",
            "attach_segment",
            "clean_segments",
            "create_segment",
            "destroy_segment",
            "list_segments",
        ),
        "shm.segment",
    ),
    **dict.fromkeys(
        (
            "BlockWaiter",
            "HybridWaiter",
            "Notifier",
            "SpinWaiter",
            "Waiter",
            "Waker",
            "make_waiter",
        ),
        "shm.waiters",
    ),
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'shm' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
