"""HDF5 capture files: the writer (append, flush, rotate) and the reader. The only h5py importer.

Layout: one file per rotation period, named ``<prefix>-YYYYmmddTHHMMSS.nnnnnnnnnZ.h5`` after its
start time (UTC), so names sort in time order. Each stream is a resizable, chunked 1-D dataset
whose dtype is the ring record's dtype, bytes and padding included. File attributes:
``schema_version``, ``created_ns``, ``created_utc``, ``venue``, ``symbols`` (JSON list),
``config_hash`` and any extra ones given; dataset attributes: ``dtype_name``, ``dtype_crc``.

Durability: files are written in HDF5's SWMR mode, so what is on disk is always a consistent file.
A writer killed with SIGKILL loses what it appended since its last flush (at most ``flush_s`` of
data plus the current batch: the chunk cache and metadata cache are only written out on a flush).
A killed writer leaves the file's "open for write" flag set: plain ``h5py.File(path)`` then
refuses it (``h5clear -s`` clears the flag), while ``open_capture`` falls back to a SWMR read and
reports ``clean=False``. Cleanly closed files open with plain h5py.

Errors: ``CaptureError`` -> ``CaptureFormatError`` (not a readable bitrader capture).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import h5py
import numpy as np

from procs.capture import concat_records
from shm.records import DTYPES, Dtype, Records, dtype_crc

SCHEMA_VERSION: Final = 1
RDCC_BYTES: Final = 64 << 20  # chunk cache per dataset: a whole chunk never needs a re-read
_NAME_RE: Final = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6})\.(?P<ns>\d{9})Z\.h5$")

AttrValue = str | int | float | bool | list[str] | list[int]


class CaptureError(Exception):
    """Base of capture errors."""


class CaptureFormatError(CaptureError):
    """The file is missing, unreadable, or not a bitrader capture."""


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
        self._file_bytes = 0
        self._file_start_ns = 0
        self._last_flush_ns = 0
        self.paths: list[Path] = []
        self.records_total: dict[str, int] = dict.fromkeys(self._dtypes, 0)
        self._open(self._clock())

    @property
    def path(self) -> Path:
        """The file being written now."""
        return self.paths[-1]

    def _open(self, now_ns: int) -> None:
        path = self._dir / capture_filename(self._prefix, now_ns)
        while path.exists():  # two rotations within a nanosecond of the wall clock
            now_ns += 1
            path = self._dir / capture_filename(self._prefix, now_ns)
        f = h5py.File(path, "w", libver="latest", rdcc_nbytes=RDCC_BYTES)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created_ns"] = now_ns
        f.attrs["created_utc"] = capture_filename("", now_ns)[1:-3]
        for key, value in self._attrs.items():
            f.attrs[key] = _encode_attr(value)
        f.attrs["streams"] = json.dumps(list(self._dtypes))
        self._streams = {}
        for name, dtype in self._dtypes.items():
            chunk = max(1, self._chunk_bytes // dtype.itemsize)
            ds = f.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype=dtype,
                chunks=(chunk,),
                compression=self._compression,
            )
            ds.attrs["dtype_name"] = next((k for k, v in DTYPES.items() if v == dtype), "")
            ds.attrs["dtype_crc"] = dtype_crc(dtype)
            self._streams[name] = _Stream(dtype, ds.id, h5py.h5t.py_create(dtype))
        f.swmr_mode = True  # from here on the file on disk is always consistent
        f.flush()
        self._file = f
        self._file_bytes = 0
        self._file_start_ns = now_ns
        self._last_flush_ns = now_ns
        self.paths.append(path)

    def append(self, stream: str, records: Records) -> None:
        """Append a batch to ``stream``; rotate and flush when their time or size has come."""
        st = self._streams.get(stream)
        if st is None:
            raise KeyError(f"unknown stream {stream!r}; streams: {', '.join(self._streams)}")
        if records.dtype != st.dtype:
            raise TypeError(f"stream {stream!r} takes {st.dtype}, got {records.dtype}")
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
        arr = np.ascontiguousarray(records)
        start = st.count
        st.dsid.set_extent((start + n,))
        fspace = st.dsid.get_space()
        fspace.select_hyperslab((start,), (n,))
        st.dsid.write(h5py.h5s.create_simple((n,)), fspace, arr, mtype=st.mtype)
        st.count = start + n
        self._file_bytes += nbytes
        self.records_total[stream] += n
        if now - self._last_flush_ns >= self._flush_ns:
            self.flush(now)

    def maybe_flush(self) -> None:
        """Flush if ``flush_s`` has passed since the last flush (call it when idle)."""
        now = self._clock()
        if now - self._last_flush_ns >= self._flush_ns:
            self.flush(now)

    def flush(self, now_ns: int | None = None) -> None:
        """Write everything appended so far to the file (survives a SIGKILL after this)."""
        if self._file is not None:
            self._file.flush()
        self._last_flush_ns = self._clock() if now_ns is None else now_ns

    def rotate(self, now_ns: int | None = None) -> None:
        """Close the current file and start a new one."""
        self._close_file()
        self._open(self._clock() if now_ns is None else now_ns)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] == "[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


class CaptureReader:
    """Read-only view of one capture file; opens a killed writer's file through SWMR."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptureFormatError(f"{self.path}: no such file")
        self.clean = True
        try:
            self._file = h5py.File(self.path, "r")
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
    def streams(self) -> list[str]:
        return [k for k, v in self._file.items() if isinstance(v, h5py.Dataset)]

    def count(self, stream: str) -> int:
        return int(self._dataset(stream).shape[0])

    def dtype(self, stream: str) -> Dtype:
        """Return the registered dtype when name and CRC match, else the file's own."""
        ds = self._dataset(stream)
        known = DTYPES.get(str(_decode_attr(ds.attrs.get("dtype_name", ""))))
        if known is not None and int(ds.attrs.get("dtype_crc", -1)) == dtype_crc(known):
            return known
        file_dtype: Dtype = ds.dtype
        return file_dtype

    def dtype_name(self, stream: str) -> str:
        return str(_decode_attr(self._dataset(stream).attrs.get("dtype_name", "")))

    def _dataset(self, stream: str) -> h5py.Dataset:
        ds = self._file.get(stream)
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
        return Capture(r.path, r.attrs, streams, r.clean, names)


def read_stream(paths: list[Path], stream: str, dtype: Dtype) -> Records:
    """Concatenate ``stream`` over several capture files (missing streams read as empty)."""
    parts = []
    for p in paths:
        with CaptureReader(p) as r:
            if stream in r.streams:
                parts.append(r.read(stream))
    return concat_records(parts, dtype)
