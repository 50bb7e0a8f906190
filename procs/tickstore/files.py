"""Capture file basics shared by the writer and the reader: names, errors, format checks.

``schema_version`` 2 (``SCHEMA_VERSION``): library-version bounds v110, the ``gaps`` table,
field meanings as attributes, ``ORDER_V2``, NaN for unused book levels.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

SCHEMA_VERSION: Final = 2  # 2: libver v110, gaps table, field meanings, ORDER_V2, NaN levels
LIBVER: Final = ("v110", "v110")  # oldest bounds with SWMR: HDF5 >= 1.10 readers open the files
RDCC_BYTES: Final = 64 << 20  # chunk cache per dataset: a whole chunk never needs a re-read
_NAME_RE: Final = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6})\.(?P<ns>\d{9})Z\.h5$")
_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"

AttrValue = str | int | float | bool | list[str] | list[int]


class CaptureError(Exception):
    """Base of capture errors."""


class CaptureFormatError(CaptureError):
    """The file is missing, unreadable, truncated, or not a bitrader capture."""


def capture_filename(prefix: str, start_ns: int) -> str:
    """Return the file name for a capture started at ``start_ns`` (UTC, ns since epoch)."""
    secs, ns = divmod(start_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{prefix}-{stamp}.{ns:09d}Z.h5"


def parse_start_ns(name: str) -> int | None:
    """Return the start time encoded in a capture file name, or None for other names."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    day = dt.datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return int(day.timestamp()) * 1_000_000_000 + int(m["ns"])


def list_captures(directory: str | Path) -> list[Path]:
    """Return the capture files in ``directory`` (not recursive), oldest first."""
    return sorted(p for p in Path(directory).glob("*.h5") if p.is_file())


def check_superblock(path: Path) -> None:
    """Raise ``CaptureFormatError`` unless ``path`` starts with an HDF5 superblock and is at
    least as long as the end-of-file address it records (superblock versions 2 and 3).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(48)
            size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise CaptureFormatError(f"{path}: cannot read ({e.strerror})") from None
    if len(head) < 9 or head[:8] != _SIGNATURE:
        raise CaptureFormatError(f"{path}: not an HDF5 file (no superblock signature)")
    if head[8] < 2:
        return  # version 0/1 superblock (not written by bitrader): HDF5 checks it itself
    if len(head) < 48:
        raise CaptureFormatError(f"{path}: truncated ({size} bytes, superblock cut short)")
    (eof,) = struct.unpack_from("<Q", head, 28)
    if size < eof:
        raise CaptureFormatError(f"{path}: truncated ({size} bytes, its superblock says {eof})")


def disk_free_bytes(directory: str | Path) -> Callable[[], int]:
    """Return a function giving the bytes an unprivileged writer may still use there."""

    def free() -> int:
        st = os.statvfs(directory)
        return st.f_bavail * st.f_frsize

    return free


def encode_attr(value: AttrValue) -> str | int | float | bool:
    return json.dumps(value) if isinstance(value, list) else value


__all__ = [
    "LIBVER",
    "RDCC_BYTES",
    "SCHEMA_VERSION",
    "AttrValue",
    "CaptureError",
    "CaptureFormatError",
    "capture_filename",
    "check_superblock",
    "disk_free_bytes",
    "encode_attr",
    "list_captures",
    "parse_start_ns",
]
