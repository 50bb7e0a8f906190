"""HDF5 capture files: the writer (append, flush, rotate) and the reader. The only h5py importer.

Layout: one file per rotation period, named ``<prefix>-YYYYmmddTHHMMSS.nnnnnnnnnZ.h5`` after its
start time (UTC), so names sort in time order. Each stream is a resizable, chunked 1-D dataset
whose dtype is the ring record's dtype, bytes and padding included, and a ``gaps`` dataset counts
records known to be lost (``procs.tickstore.layout`` says what every field and attribute means).
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

import ctypes
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

import h5py
import numpy as np

from procs.tickstore import concat_records
from procs.tickstore.files import (
    LIBVER,
    RDCC_BYTES,
    SCHEMA_VERSION,
    AttrValue,
    CaptureError,
    CaptureFormatError,
    capture_filename,
    check_superblock,
    disk_free_bytes,
    list_captures,
    parse_start_ns,
)
from procs.tickstore.layout import (
    CAPTURE_DTYPES,
    GAP_V1,
    GAPS,
    capture_dtype_name,
    dtype_by_crc,
    time_field,
)
from procs.tickstore.writer import CaptureWriter
from shm.records import Dtype, Records, dtype_crc

# HDF5 retries a SWMR read whose metadata checksum fails (a writer may be mid-update), backing
# off from 1 µs, doubling: its default of 100 attempts waits hours on a corrupt file. 20: ~1 s.
SWMR_READ_ATTEMPTS: Final = 20


@functools.cache
def _hdf5() -> ctypes.CDLL | None:
    """The libhdf5 that h5py loaded (for the one call h5py does not wrap), or None."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {ln.split()[-1] for ln in fh if "/libhdf5" in ln and "_hl" not in ln}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        fn = getattr(lib, "H5Pset_metadata_read_attempts", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            return lib
    return None


def _open_swmr(path: Path) -> h5py.File:
    """Open ``path`` for SWMR reading with a bounded number of metadata read attempts."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    lib = _hdf5()
    if lib is not None and lib.H5Pset_metadata_read_attempts(fapl.id, SWMR_READ_ATTEMPTS) < 0:
        raise RuntimeError("H5Pset_metadata_read_attempts failed")
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))


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
                self._file = _open_swmr(self.path)
            except (OSError, RuntimeError) as e:
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
    "RDCC_BYTES",
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
