"""POSIX shared-memory segment lifecycle: create (stale-unlinking), attach untracked, destroy, list.

The only importer of ``multiprocessing.shared_memory``. ``python -m shm.segment --clean [PREFIX]``
removes leftover bitrader segments (``make clean-shm``).
"""

from __future__ import annotations

import argparse
import errno
import mmap
import os
import re
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Final

SHM_DIR: Final = Path("/dev/shm")
PAGE: Final = mmap.PAGESIZE

# Writers that own segments, as the middle part of `<ns>.<writer>.<stream>` names
WRITERS: Final = (
    "bench",
    "capture",
    "demo",
    "execution",
    "features",
    "inference",
    "ingest",
    "simex",
    "test",
)
_BITRADER_NAME: Final = re.compile(
    r"^[A-Za-z0-9_-]+\.(?:" + "|".join(WRITERS) + r")\.[A-Za-z0-9_.-]+$"
)

Segment = SharedMemory


class ShmError(Exception):
    """Base of every error raised by the ``shm`` package."""


def _untrack(seg: SharedMemory) -> None:
    # Python < 3.13 registers every segment it opens with the resource tracker, which unlinks it
    # when this process exits: a reader's exit would delete the writer's ring, and a SIGKILLed
    # writer's tracker would unlink a restarted writer's fresh segment of the same name. Ownership
    # is explicit instead: the writer unlinks on close and stale-unlinks at start
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]  # private name with the leading slash, as registered


def _open(name: str, *, create: bool, size_bytes: int = 0) -> SharedMemory:
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, create=create, size=size_bytes, track=False)
    seg = SharedMemory(name=name, create=create, size=size_bytes)
    _untrack(seg)
    return seg


def unlink_segment(name: str) -> bool:
    """Remove the segment ``name`` if it exists; return whether it did."""
    # shm_unlink(3) on Linux is unlink(2) under /dev/shm; SharedMemory.unlink() would also
    # unregister the name from a resource tracker that no longer tracks it (and print a traceback)
    try:
        os.unlink(SHM_DIR / name)
    except FileNotFoundError:
        return False
    return True


def create_segment(name: str, size_bytes: int) -> SharedMemory:
    """Create a zero-filled segment of ``size_bytes``, first unlinking a stale one of that name.

    After a SIGKILL nobody else removes the old segment, so its writer does on restart. Readers
    still mapping the old segment keep a valid (now orphaned) mapping.

    The segment's memory is reserved now (``posix_fallocate``): a ``/dev/shm`` without room
    for it raises ``ShmError`` here, at start-up, where a sparse segment would kill its writer
    with SIGBUS at the first page the full tmpfs could not give. Every page is then mapped in
    (``prefault``).
    """
    if size_bytes <= 0:
        raise ValueError(f"size_bytes must be positive, was {size_bytes}")
    unlink_segment(name)
    seg = _open(name, create=True, size_bytes=size_bytes)
    try:
        os.posix_fallocate(seg._fd, 0, seg.size)  # type: ignore[attr-defined]  # POSIX SharedMemory keeps its fd
    except OSError as exc:
        destroy_segment(seg)
        if exc.errno != errno.ENOSPC:
            raise
        free = os.statvfs(SHM_DIR)
        raise ShmError(
            f"segment {name}: no room in {SHM_DIR} for {size_bytes} bytes "
            f"({free.f_bavail * free.f_frsize} free)"
        ) from exc
    prefault(seg, write=True)
    return seg


def prefault(seg: SharedMemory, *, write: bool) -> None:
    """Map every page of ``seg`` into this process now, not at its first use on the hot path.

    A ring writes each record into the next slot: until the ring has wrapped once (a minute or
    more at 1 k msg/s), every few records opened a page, and the first touch of a page in a
    mapping is a page fault, 3.3 µs each on the 2-vCPU VM for a write (0.35 µs for a read) inside
    a publish or a poll. ``write``: the creator, in a segment still all zeros, writes a zero
    into each page; otherwise each page is read (a reader's own mapping)."""
    buf = segment_buffer(seg)
    pages = buf[::PAGE]
    try:
        if write:
            pages[:] = bytes(len(pages))
        else:
            pages.tobytes()
    finally:
        pages.release()


def attach_segment(name: str) -> SharedMemory:
    """Map an existing segment without resource tracking; raise FileNotFoundError if absent."""
    return _open(name, create=False)


def segment_buffer(seg: SharedMemory) -> memoryview:
    """Return the mapped bytes of ``seg``; raise ShmError once it is closed."""
    buf = seg.buf
    if buf is None:
        raise ShmError(f"segment {seg.name} is closed")
    return buf


def close_segment(seg: SharedMemory) -> None:
    """Unmap ``seg`` (every numpy view and memoryview of its buffer must be gone)."""
    seg.close()


def destroy_segment(seg: SharedMemory) -> None:
    """Unmap ``seg`` and unlink its name if the name still refers to this very segment.

    A name already gone (``make clean-shm``) or taken over by a newer segment (a restarted
    writer) is left alone.
    """
    ino = mapping_inode(seg)
    seg.close()
    if segment_inode(seg.name) == ino:
        unlink_segment(seg.name)


def mapping_inode(seg: SharedMemory) -> int:
    """Return the inode of the segment ``seg`` maps (stays valid after its name is unlinked)."""
    fd: int = seg._fd  # type: ignore[attr-defined]  # POSIX SharedMemory keeps its fd open
    return os.fstat(fd).st_ino


def segment_inode(name: str) -> int | None:
    """Return the inode of the live segment ``name``, or None when no segment has that name."""
    try:
        return os.stat(SHM_DIR / name).st_ino
    except FileNotFoundError:
        return None


def list_segments(prefix: str = "") -> list[str]:
    """Return the sorted names of segments in /dev/shm that start with ``prefix``."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and (SHM_DIR / n).is_file())


def is_bitrader_name(name: str) -> bool:
    """Return whether ``name`` looks like ``<ns>.<writer>.<stream>`` with a known writer."""
    return _BITRADER_NAME.match(name) is not None


def clean_segments(prefix: str | None = None) -> list[str]:
    """Unlink leftover segments and return their names.

    With ``prefix``, every segment whose name starts with it; without, every segment whose name
    is a bitrader name (``is_bitrader_name``). Run it only while the pipeline is down.
    """
    if prefix is not None and not prefix:
        raise ValueError("prefix must not be empty (omit it to clean bitrader names)")
    names = list_segments(prefix or "")
    if prefix is None:
        names = [n for n in names if is_bitrader_name(n)]
    return [n for n in names if unlink_segment(n)]


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m shm.segment --clean [PREFIX]`` or ``--list [PREFIX]``."""
    ap = argparse.ArgumentParser(prog="python -m shm.segment", description=__doc__)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--clean", action="store_true", help="unlink leftover segments")
    mode.add_argument("--list", action="store_true", help="list segments")
    ap.add_argument(
        "prefix",
        nargs="?",
        default=None,
        help="only names starting with this (default: names <ns>.<writer>.<stream> with a "
        f"known writer: {', '.join(WRITERS)})",
    )
    args = ap.parse_args(argv)
    if args.list:
        names = list_segments(args.prefix or "")
        if args.prefix is None:
            names = [n for n in names if is_bitrader_name(n)]
        for n in names:
            print(n)
        return 0
    try:
        removed = clean_segments(args.prefix)
    except ValueError as e:
        ap.error(str(e))
    for n in removed:
        print(f"removed /dev/shm/{n}")
    print(f"removed={len(removed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
