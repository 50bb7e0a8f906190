"""Where a sweep's captures are, as the worker that reads them sees them; and the periods they
cover.

A capture source is a local path or an fsspec URL (``file://``, ``s3://``, ``gcs://``,
``memory://`` ...), a file or a directory of ``*.h5`` files. It is opened where the task runs:
``file://`` and plain paths in place; any other scheme is copied whole to the worker's local
cache first (fsspec ``simplecache``), because the capture reader works on paths (superblock
check, SWMR fallback) and HDF5 over a remote file object is a stream of small range reads, where
one sequential copy per file and worker is cheap. Nothing here runs on the client: the client
submits these functions with the URLs and gets back names, sizes and time spans.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CaptureInfo",
    "Period",
    "expand_sources",
    "local_path",
    "parse_period",
    "scan_sources",
    "split_periods",
]

NS: Final = 1_000_000_000
DAY_NS: Final = 86_400 * NS
_UNITS: Final = {"s": NS, "m": 60 * NS, "h": 3600 * NS, "d": DAY_NS}
LOCAL: Final = ("file", "local")


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """One capture file: its URL, its identity (size and modification stamp) and the time span
    of its books (``ts_recv_ns``, the time replays select on), first and last inclusive."""

    url: str
    size: int
    mtime: str
    first_ns: int
    last_ns: int

    def identity(self) -> list[object]:
        return [self.url, self.size, self.mtime]


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start_ns: int  # inclusive
    end_ns: int  # exclusive
    files: tuple[CaptureInfo, ...]  # the files with books in [start_ns, end_ns)

    def contains_files(self) -> bool:
        """Each file's books lie wholly inside the period (walk-forward trains on whole files)."""
        return all(self.start_ns <= f.first_ns and f.last_ns < self.end_ns for f in self.files)


def _scheme(url: str) -> str | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return m.group(1).lower() if m else None


def _cache_dir() -> str:
    d = Path(tempfile.gettempdir()) / f"bitrader-sweep-cache-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return str(d)


def local_path(url: str) -> str:
    """A local file for ``url``: the path itself for plain paths and ``file://``, else a copy
    in this machine's cache (fsspec ``simplecache``: fetched once per file and worker)."""
    scheme = _scheme(url)
    if scheme is None:
        return url
    import fsspec

    if scheme in LOCAL:
        _fs, path = fsspec.core.url_to_fs(url)
        return str(path)
    got = fsspec.open_local(f"simplecache::{url}", simplecache={"cache_storage": _cache_dir()})
    return str(got if isinstance(got, str) else got[0])


def expand_sources(sources: list[str]) -> list[str]:
    """Each directory replaced by its ``*.h5`` files (name order, which is time order for the
    capture's own file names); files kept as given. ``FileNotFoundError`` for a missing one."""
    out: list[str] = []
    for src in sources:
        if _scheme(src) is None:
            p = Path(src)
            if p.is_dir():
                found = sorted(str(f) for f in p.glob("*.h5") if f.is_file())
                if not found:
                    raise FileNotFoundError(f"{src}: no capture files (*.h5) in this directory")
                out += found
            elif p.is_file():
                out.append(src)
            else:
                raise FileNotFoundError(f"{src}: no such file or directory")
            continue
        import fsspec

        fs, path = fsspec.core.url_to_fs(src)
        if fs.isdir(path):
            names = sorted(n for n in fs.ls(path, detail=False) if str(n).endswith(".h5"))
            if not names:
                raise FileNotFoundError(f"{src}: no capture files (*.h5) at this URL")
            out += [fs.unstrip_protocol(n) for n in names]
        elif fs.isfile(path):
            out.append(src)
        else:
            raise FileNotFoundError(f"{src}: no such file or directory")
    return out


def _identity(url: str) -> tuple[int, str]:
    """(size, modification stamp) of ``url`` as its file system reports them."""
    if _scheme(url) is None:
        st = os.stat(url)
        return st.st_size, str(st.st_mtime_ns)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    info: dict[str, Any] = fs.info(path)
    stamp = next(
        (
            str(info[k])
            for k in ("mtime", "LastModified", "last_modified", "updated", "created", "ETag")
            if info.get(k) is not None
        ),
        "",
    )
    return int(info.get("size") or 0), stamp


def scan_sources(sources: list[str]) -> list[CaptureInfo]:
    """Run on a worker: every capture file of ``sources`` with its identity and book span.
    Raises ``FileNotFoundError`` or ``procs.tickstore.store.CaptureError`` for what it cannot read.
    """
    from procs.tickstore import STREAM_BOOK
    from procs.tickstore.store import CaptureError, CaptureReader

    out = []
    for url in expand_sources(sources):
        size, stamp = _identity(url)
        with CaptureReader(local_path(url)) as r:
            span = r.span(STREAM_BOOK) if STREAM_BOOK in r.streams else None
        if span is None:
            raise CaptureError(f"{url}: no book records")
        out.append(CaptureInfo(url, size, stamp, int(span[0]), int(span[1])))
    return out


def parse_period(text: str) -> int | None:
    """``day`` (UTC days), ``all`` (one period: everything), or a length like ``6h``, ``30m``,
    ``90s``, ``2d``; periods start at UTC epoch multiples of the length."""
    if text == "day":
        return DAY_NS
    if text == "all":
        return None
    m = re.fullmatch(r"(\d+)([smhd])", text)
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"--period {text!r}: day, all, or a length like 6h, 30m, 90s, 2d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _label(start_ns: int, length_ns: int | None) -> str:
    if length_ns is None:
        return "all"
    t = dt.datetime.fromtimestamp(start_ns // NS, tz=dt.UTC)
    if length_ns % DAY_NS == 0:
        return t.strftime("%Y-%m-%d")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def split_periods(files: list[CaptureInfo], length_ns: int | None) -> list[Period]:
    """The periods that hold books, in time order, each with the files overlapping it."""
    if not files:
        return []
    lo = min(f.first_ns for f in files)
    hi = max(f.last_ns for f in files)
    if length_ns is None:
        return [Period("all", lo, hi + 1, tuple(files))]
    out = []
    start = lo - lo % length_ns
    while start <= hi:
        end = start + length_ns
        held = tuple(f for f in files if f.first_ns < end and f.last_ns >= start)
        if held:
            out.append(Period(_label(start, length_ns), start, end, held))
        start = end
    return out
