"""Page faults a test can count: whether a mapping's pages were faulted in before use."""

from __future__ import annotations

import resource

from shm.segment import PAGE


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def touch_pages(buf: memoryview, *, write: bool) -> int:
    """Minor page faults taken by touching every page of the mapping ``buf`` once."""
    pages = buf[::PAGE]
    try:
        before = minor_faults()
        if write:
            pages[:] = b"\1" * len(pages)
        else:
            pages.tobytes()
        return minor_faults() - before
    finally:
        pages.release()
