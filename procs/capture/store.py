"""HDF5 capture files: the writer (append, flush, rotate) and the reader. The only h5py importer.

Layout: one file per rotation period, named ``<prefix>-YYYYmmddTHHMMSS.nnnnnnnnnZ.h5`` after its
start time (UTC), so names sort in time order. Each stream is a resizable, chunked 1-D dataset
whose dtype is the ring record's dtype, bytes and padding included, and a ``gaps`` dataset counts
records known to be lost (``procs.capture.layout`` says what every field and attribute means).
File attributes: ``schema_version``, ``created_ns``, ``created_utc``, ``streams``, ``venue``,
``symbols`` (JSON list: ``symbol_id`` is a position in it), ``config_hash`` and any extra ones
given; dataset attributes: ``dtype_name``, ``dtype_crc``, ``time_field``, units and meanings.

Compatibility: files are written with library-version bounds ``("v110", "v110")``: the oldest
format that keeps SWMR, so HDF5 1.10 and later readers (Debian's ``h5dump``, PyTables, older
h5py builds) open them. ``libver="latest"`` under HDF5 2.0 wrote datatype messages that only
HDF5 2.0 reads (schema 1 files; this reader still opens them).

Durability: files are written in HDF5's SWMR mode, so what is on disk is always a consistent file.
A writer killed with SIGKILL loses what it appended since its last flush (at most ``flush_s`` of
data plus the current batch: the chunk cache and metadata cache are only written out on a flush).
A killed writer leaves the file's "open for write" flag set: plain ``h5py.File(path)`` then
refuses it (``h5clear -s`` clears the flag), while ``CaptureReader`` falls back to a SWMR read and
reports ``clean=False``, after checking the file is not shorter than its superblock says (a
truncated file is refused at once: a SWMR open of one retries for minutes or reads zeros).
A failed write (full disk) leaves the file ``broken``: nothing more is written to it; ``reopen``
closes it (once there is space for its last metadata) and starts a new file.

Errors: ``CaptureError`` -> ``CaptureFormatError`` (not a readable bitrader capture).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

import h5py
import numpy as np

from procs.capture import concat_records
from procs.capture.layout import (
    CAPTURE_DTYPES,
    GAP_V1,
    GAPS,
    capture_dtype_name,
    dataset_attrs,
    dtype_by_crc,
    time_field,
)
from shm.records import Dtype, Records, dtype_crc

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


def _encode_attr(value: AttrValue) -> str | int | float | bool:
    return json.dumps(value) if isinstance(value, list) else value


@dataclass
class _Stream:
    dtype: Dtype
    dsid: Any  # h5py.h5d.DatasetID
    mtype: Any  # h5py.h5t.TypeID, built once: rebuilding it costs ~30 µs per append
    count: int = 0


class CaptureWriter:
    """Creates capture files in ``directory`` and is their only writer; single-threaded."""

    def __init__(
        self,
        directory: str | Path,
        *,
        streams: Mapping[str, Dtype],
        attrs: Mapping[str, AttrValue] | None = None,
        rotate_bytes: int = 1 << 30,
        rotate_s: float = 86_400.0,
        flush_s: float = 1.0,
        compression: str | None = None,
        chunk_bytes: int = 1 << 20,
        prefix: str = "capture",
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not streams:
            raise ValueError("streams must name at least one stream")
        if GAPS in streams:
            raise ValueError(f"{GAPS!r} is the loss table's name, not a stream")
        if rotate_bytes <= 0 or rotate_s <= 0 or flush_s <= 0 or chunk_bytes <= 0:
            raise ValueError(
                f"rotate_bytes, rotate_s, flush_s, chunk_bytes must be positive, were "
                f"{rotate_bytes}, {rotate_s}, {flush_s}, {chunk_bytes}"
            )
        if compression not in (None, "lzf", "gzip"):
            raise ValueError(f"compression must be None, 'lzf' or 'gzip', was {compression!r}")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dtypes = dict(streams)
        self._attrs = dict(attrs or {})
        self._rotate_bytes = rotate_bytes
        self._rotate_ns = int(rotate_s * 1e9)
        self._flush_ns = int(flush_s * 1e9)
        self._compression = compression
        self._chunk_bytes = chunk_bytes
        self._prefix = prefix
        self._clock = clock_ns
        self._file: h5py.File | None = None
        self._streams: dict[str, _Stream] = {}
        self._gaps: _Stream | None = None
        self._file_bytes = 0
        self._file_start_ns = 0
        self._last_flush_ns = 0
        self.broken = False  # a write failed: nothing more goes into this file (see reopen)
        self.paths: list[Path] = []
        self.records_total: dict[str, int] = dict.fromkeys(self._dtypes, 0)
        self._open(self._clock())

    @property
    def path(self) -> Path:
        """The file being written now."""
        return self.paths[-1]

    @property
    def directory(self) -> Path:
        return self._dir

    def _open(self, now_ns: int) -> None:
        path = self._dir / capture_filename(self._prefix, now_ns)
        while path.exists():  # two rotations within a nanosecond of the wall clock
            now_ns += 1
            path = self._dir / capture_filename(self._prefix, now_ns)
        f = h5py.File(path, "w", libver=LIBVER, rdcc_nbytes=RDCC_BYTES)
        try:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["created_ns"] = now_ns
            f.attrs["created_utc"] = capture_filename("", now_ns)[1:-3]
            for key, value in self._attrs.items():
                f.attrs[key] = _encode_attr(value)
            f.attrs["streams"] = json.dumps(list(self._dtypes))
            self._streams = {n: self._create(f, n, d) for n, d in self._dtypes.items()}
            self._gaps = self._create(f, GAPS, GAP_V1, chunk=64)
            f.swmr_mode = True  # from here on the file on disk is always consistent
            f.flush()
        except BaseException:
            f.close()
            raise
        self._file = f
        self.broken = False
        self._file_bytes = 0
        self._file_start_ns = now_ns
        self._last_flush_ns = now_ns
        self.paths.append(path)

    def _create(self, f: h5py.File, name: str, dtype: Dtype, chunk: int = 0) -> _Stream:
        ds = f.create_dataset(
            name,
            shape=(0,),
            maxshape=(None,),
            dtype=dtype,
            chunks=(chunk or max(1, self._chunk_bytes // dtype.itemsize),),
            compression=self._compression,
        )
        for key, value in dataset_attrs(name, dtype).items():
            ds.attrs[key] = value
        return _Stream(dtype, ds.id, h5py.h5t.py_create(dtype))

    def append(self, stream: str, records: Records) -> None:
        """Append a batch to ``stream``; rotate and flush when their time or size has come."""
        st = self._streams.get(stream)
        if st is None:
            raise KeyError(f"unknown stream {stream!r}; streams: {', '.join(self._streams)}")
        if records.dtype != st.dtype:
            raise TypeError(f"stream {stream!r} takes {st.dtype}, got {records.dtype}")
        self._check_usable()
        n = int(records.size)
        if n == 0:
            self.maybe_flush()
            return
        now = self._clock()
        nbytes = n * st.dtype.itemsize
        too_big = self._file_bytes and self._file_bytes + nbytes > self._rotate_bytes
        if too_big or now - self._file_start_ns >= self._rotate_ns:
            self.rotate(now)
            st = self._streams[stream]
        self._guarded(self._write_rows, st, records)
        self._file_bytes += nbytes
        self.records_total[stream] += n
        if now - self._last_flush_ns >= self._flush_ns:
            self.flush(now)

    def append_gap(self, row: Records) -> None:
        """Append rows of ``GAP_V1`` (records known lost) to this file's ``gaps`` table."""
        assert self._gaps is not None
        self._check_usable()
        self._guarded(self._write_rows, self._gaps, row)

    def _write_rows(self, st: _Stream, records: Records) -> None:
        """The one place rows reach HDF5 (a test seam for write failures)."""
        arr = np.ascontiguousarray(records)
        n = int(arr.size)
        start = st.count
        st.dsid.set_extent((start + n,))
        fspace = st.dsid.get_space()
        fspace.select_hyperslab((start,), (n,))
        st.dsid.write(h5py.h5s.create_simple((n,)), fspace, arr, mtype=st.mtype)
        st.count = start + n

    def _check_usable(self) -> None:
        if self.broken:
            raise OSError(f"{self.path}: an earlier write failed; call reopen() first")

    def _guarded(self, op: Callable[..., None], *args: Any) -> None:
        try:
            op(*args)
        except (OSError, RuntimeError, ValueError):
            self.broken = True  # HDF5's state after a failed write: close it, never write again
            raise

    def maybe_flush(self) -> None:
        """Flush if ``flush_s`` has passed since the last flush (call it when idle)."""
        if self.broken:
            return
        now = self._clock()
        if now - self._last_flush_ns >= self._flush_ns:
            self.flush(now)

    def flush(self, now_ns: int | None = None) -> None:
        """Write everything appended so far to the file (survives a SIGKILL after this)."""
        if self._file is not None and not self.broken:
            self._guarded(self._file.flush)
        self._last_flush_ns = self._clock() if now_ns is None else now_ns

    def rotate(self, now_ns: int | None = None) -> None:
        """Close the current file and start a new one."""
        self._close_file()
        self._open(self._clock() if now_ns is None else now_ns)

    def reopen(self) -> None:
        """After a failed write: close the broken file (needs room for its metadata) and start a
        new one. Raises OSError/RuntimeError while that is still impossible (try again later).
        """
        self.rotate()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()  # raises while the disk is full: the file stays ours, open
            self._file = None

    @property
    def unclosed(self) -> bool:
        """True while a file is open (after ``close``: one whose close failed)."""
        return self._file is not None

    def close(self) -> None:
        """Flush and close the current file; the writer cannot be used afterwards."""
        self._close_file()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Capture:
    """A whole capture file in memory: attributes and one record array per stream."""

    path: Path
    attrs: dict[str, Any]
    streams: dict[str, Records]
    clean: bool  # False: still being written, or its writer was killed; read to its last flush
    dtype_names: dict[str, str] = field(default_factory=dict)
    gaps: Records = field(default_factory=lambda: np.zeros(0, GAP_V1))


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{" and value:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class ReadStats:
    """What a reader took from its file: single time-column probes and row ranges read."""

    probes: int = 0
    rows: int = 0
    ranges: list[tuple[str, int, int]] = field(default_factory=list)


class CaptureReader:
    """Read-only view of one capture file; opens a killed writer's file through SWMR.

    ``fileobj``: read through a Python file object instead of the path (h5py's fileobj driver;
    tests use it to count the bytes a query reads). ``stats`` counts what was read.
    """

    def __init__(self, path: str | Path, *, fileobj: BinaryIO | None = None) -> None:
        self.path = Path(path)
        self.stats = ReadStats()
        if not self.path.is_file():
            raise CaptureFormatError(f"{self.path}: no such file")
        check_superblock(self.path)
        self.clean = True
        try:
            self._file = h5py.File(fileobj or self.path, "r")
        except OSError:
            self.clean = False
            try:
                self._file = h5py.File(self.path, "r", swmr=True)
            except OSError as e:
                raise CaptureFormatError(f"{self.path}: not a readable HDF5 file ({e})") from None
        try:
            if "schema_version" not in self._file.attrs:
                raise CaptureFormatError(
                    f"{self.path}: HDF5 file without a bitrader capture schema"
                )
            self.attrs: dict[str, Any] = {k: _decode_attr(v) for k, v in self._file.attrs.items()}
        except (OSError, RuntimeError, CaptureFormatError) as e:
            self._file.close()
            if isinstance(e, CaptureFormatError):
                raise
            raise CaptureFormatError(f"{self.path}: corrupt capture file ({e})") from None

    @property
    def symbols(self) -> list[str]:
        """The file's symbol map: ``symbol_id`` i is ``symbols[i]``."""
        syms = self.attrs.get("symbols", [])
        return [str(s) for s in syms] if isinstance(syms, list) else []

    @property
    def streams(self) -> list[str]:
        return [k for k, v in self._file.items() if isinstance(v, h5py.Dataset) and k != GAPS]

    def count(self, stream: str) -> int:
        return int(self._dataset(stream).shape[0])

    def dtype(self, stream: str) -> Dtype:
        """Return the registered dtype when name (or, unnamed, CRC) matches, else the file's."""
        known = CAPTURE_DTYPES.get(self.dtype_name(stream))
        if known is not None:
            return known
        file_dtype: Dtype = self._dataset(stream).dtype
        return file_dtype

    def dtype_name(self, stream: str) -> str:
        """Return the layout's versioned name; files that left it empty are matched by CRC."""
        ds = self._dataset(stream)
        crc = int(ds.attrs.get("dtype_crc", -1))
        name = str(_decode_attr(ds.attrs.get("dtype_name", "")))
        known = CAPTURE_DTYPES.get(name)
        if known is not None and dtype_crc(known) == crc:
            return name
        return dtype_by_crc(crc) if not name else ""

    def dataset_attrs(self, stream: str) -> dict[str, Any]:
        """Return the attributes of ``stream`` (or ``gaps``), JSON values decoded."""
        ds = self._file.get(stream)
        if not isinstance(ds, h5py.Dataset):
            raise KeyError(f"{self.path}: no dataset {stream!r}")
        return {k: _decode_attr(v) for k, v in ds.attrs.items()}

    def time_field(self, stream: str) -> str:
        """Return the column time-range queries search (attribute, or the schema-1 default)."""
        ds = self._dataset(stream)
        name = _decode_attr(ds.attrs.get("time_field", ""))
        return str(name) if name else time_field(stream, self.dtype(stream))

    def _dataset(self, stream: str) -> h5py.Dataset:
        ds = self._file.get(stream) if stream != GAPS else None
        if not isinstance(ds, h5py.Dataset):
            raise KeyError(f"{self.path}: no stream {stream!r}; streams: {self.streams}")
        return ds

    def read(self, stream: str, start: int = 0, stop: int | None = None) -> Records:
        """Return records ``[start, stop)`` of ``stream`` with the stream's exact dtype."""
        ds = self._dataset(stream)
        n = int(ds.shape[0])
        stop = n if stop is None else min(stop, n)
        start = min(max(start, 0), stop)
        out: Records = np.empty(stop - start, dtype=self.dtype(stream))
        if out.size:
            try:
                ds.read_direct(out, source_sel=np.s_[start:stop])
            except (OSError, RuntimeError) as e:
                raise CaptureFormatError(f"{self.path}: cannot read {stream!r} ({e})") from None
            self.stats.rows += out.size
            self.stats.ranges.append((stream, start, stop))
        return out

    def gaps(self) -> Records:
        """Return the ``gaps`` table (empty for schema-1 files, which had none)."""
        ds = self._file.get(GAPS)
        if not isinstance(ds, h5py.Dataset):
            return np.zeros(0, GAP_V1)
        out: Records = np.empty(int(ds.shape[0]), GAP_V1)
        if out.size:
            ds.read_direct(out)
        return out

    def time_at(self, stream: str, index: int) -> int:
        """Return the time column's value at record ``index`` (one value read)."""
        ds = self._dataset(stream)
        tf = self.time_field(stream)
        try:
            value = ds.fields(tf)[index]
        except (OSError, RuntimeError) as e:
            raise CaptureFormatError(f"{self.path}: cannot read {stream!r} ({e})") from None
        self.stats.probes += 1
        return int(value)

    def search(self, stream: str, t_ns: int, *, right: bool = False) -> int:
        """Binary search on the time column: the first index whose time is >= ``t_ns`` (with
        ``right``: > ``t_ns``). Reads about log2(count) single values, never the column.
        """
        lo, hi = 0, self.count(stream)
        while lo < hi:
            mid = (lo + hi) // 2
            t = self.time_at(stream, mid)
            if t < t_ns or (right and t == t_ns):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def span(self, stream: str) -> tuple[int, int] | None:
        """Return the first and last value of the time column, or None when empty."""
        n = self.count(stream)
        if n == 0:
            return None
        return self.time_at(stream, 0), self.time_at(stream, n - 1)

    def read_range(
        self,
        stream: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        symbol_ids: list[int] | None = None,
    ) -> Records:
        """Return the records with ``start_ns <= time < end_ns`` (either bound optional) and,
        when given, a ``symbol_id`` in ``symbol_ids``: a binary search finds the index range,
        only those rows are read.
        """
        lo = 0 if start_ns is None else self.search(stream, start_ns)
        hi = self.count(stream) if end_ns is None else self.search(stream, end_ns)
        recs = self.read(stream, lo, hi) if hi > lo else self.read(stream, 0, 0)
        keep = np.ones(recs.size, dtype=bool)
        if recs.size and (start_ns is not None or end_ns is not None):
            t = recs[self.time_field(stream)]  # a wall clock stepping back leaves strays
            if start_ns is not None:
                keep &= t >= start_ns
            if end_ns is not None:
                keep &= t < end_ns
        if symbol_ids is not None and recs.size:
            keep &= np.isin(recs["symbol_id"], np.asarray(symbol_ids, dtype=np.int32))
        out: Records = recs if bool(keep.all()) else recs[keep]
        return out

    def iter_batches(self, stream: str, batch_records: int = 65_536) -> Iterator[Records]:
        """Yield ``stream`` in consecutive batches (bounded memory for big files)."""
        for start in range(0, self.count(stream), batch_records):
            yield self.read(stream, start, start + batch_records)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_capture(path: str | Path) -> Capture:
    """Read a whole capture file into memory."""
    with CaptureReader(path) as r:
        streams = {s: r.read(s) for s in r.streams}
        names = {s: r.dtype_name(s) for s in r.streams}
        return Capture(r.path, r.attrs, streams, r.clean, names, r.gaps())


def read_stream(paths: list[Path], stream: str, dtype: Dtype) -> Records:
    """Concatenate ``stream`` over several capture files (missing streams read as empty)."""
    parts = []
    for p in paths:
        with CaptureReader(p) as r:
            if stream in r.streams:
                parts.append(r.read(stream))
    return concat_records(parts, dtype)


__all__ = [
    "LIBVER",
    "SCHEMA_VERSION",
    "AttrValue",
    "Capture",
    "CaptureError",
    "CaptureFormatError",
    "CaptureReader",
    "CaptureWriter",
    "ReadStats",
    "capture_dtype_name",
    "capture_filename",
    "check_superblock",
    "disk_free_bytes",
    "list_captures",
    "open_capture",
    "parse_start_ns",
    "read_stream",
]
