"""The capture file writer: append, flush, rotate; pause-safe after a failed write.

See ``procs.tickstore.store`` for the file layout and durability rules.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from procs._files import chmod_private
from procs.tickstore.files import (
    LIBVER,
    RDCC_BYTES,
    SCHEMA_VERSION,
    AttrValue,
    capture_filename,
    encode_attr,
)
from procs.tickstore.layout import GAP_V1, GAPS, dataset_attrs
from shm.records import Dtype, Records


@dataclass
class _Stream:
    dtype: Dtype
    dsid: Any  # h5py.h5d.DatasetID
    mtype: Any  # h5py.h5t.TypeID, built once: rebuilding it costs ~30 µs per append
    count: int = 0
    flushed: int = 0  # rows on disk at the last successful flush
    unflushed_seq: int = 0  # seq of row ``flushed`` (the first one not yet flushed)


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
        tolerate_failure: bool = False,
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
        self._rolled_back: dict[str, tuple[int, int]] = {}  # see take_rolled_back
        self._abandoned: list[h5py.File] = []  # files whose close failed: never touched again
        self.error = ""  # the last failed write's error
        self.paths: list[Path] = []
        self.records_total: dict[str, int] = dict.fromkeys(self._dtypes, 0)
        try:
            self._open(self._clock())
        except (OSError, RuntimeError, ValueError) as exc:  # e.g. a full disk at start
            if not tolerate_failure:
                raise
            self.broken, self.error = True, str(exc)  # reopen() will try again

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
        chmod_private(path)  # ticks and our orders are nobody else's business
        try:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["created_ns"] = now_ns
            f.attrs["created_utc"] = capture_filename("", now_ns)[1:-3]
            for key, value in self._attrs.items():
                f.attrs[key] = encode_attr(value)
            f.attrs["streams"] = json.dumps(list(self._dtypes))
            self._streams = {n: self._create(f, n, d) for n, d in self._dtypes.items()}
            self._gaps = self._create(f, GAPS, GAP_V1, chunk=64)
            f.swmr_mode = True  # from here on the file on disk is always consistent
            f.flush()
        except BaseException:
            try:
                f.close()
            finally:
                path.unlink(missing_ok=True)  # a half-made file (disk full) would only confuse
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
        self._check_usable()
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
        self._guarded(self._write_rows, st, records)  # raises: the batch is not in the file
        self._file_bytes += nbytes
        self.records_total[stream] += n
        if now - self._last_flush_ns >= self._flush_ns:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.flush(now)  # failing, it sets broken: reopen rolls the batch back, reports it

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
        if start == st.flushed and n:
            st.unflushed_seq = int(arr["seq"][0])
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
        except (OSError, RuntimeError, ValueError) as exc:
            self.broken = True  # HDF5's state after a failed write: close it, never write again
            self.error = str(exc)
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
            for st in self._all_streams():
                st.flushed = st.count
        self._last_flush_ns = self._clock() if now_ns is None else now_ns

    def rotate(self, now_ns: int | None = None) -> None:
        """Close the current file and start a new one."""
        if not self.broken:
            self.flush()  # a failure here leaves the file open, so it can be rolled back
        self._guarded(self._close_file)
        self._guarded(self._open, self._clock() if now_ns is None else now_ns)

    def reopen(self) -> None:
        """After a failed write: close the broken file (needs room for its metadata) and start a
        new one. Raises OSError/RuntimeError while that is still impossible (try again later).
        """
        self.rotate()

    def take_rolled_back(self) -> dict[str, tuple[int, int]]:
        """Return, and forget, stream -> (seq of the first row lost, rows) for rows that were
        appended but never flushed to a file that then failed.
        """
        out, self._rolled_back = self._rolled_back, {}
        return out

    def _all_streams(self) -> list[_Stream]:
        return [*self._streams.values(), *([self._gaps] if self._gaps else [])]

    def _unflushed(self) -> None:
        """Count the rows appended since the last successful flush as rolled back."""
        for name, st in self._streams.items():
            if st.count > st.flushed:
                first, n = self._rolled_back.get(name, (st.unflushed_seq, 0))
                self._rolled_back[name] = (first, n + st.count - st.flushed)
                self.records_total[name] -= st.count - st.flushed

    def _rollback(self) -> None:
        """Cut every dataset of a broken (still open) file back to its last successful flush:
        rows after it may never have reached the disk (they would read back as zeros).
        """
        for st in self._all_streams():
            if st.count > st.flushed:
                st.dsid.set_extent((st.flushed,))  # raises while it cannot: try again later
        self._unflushed()
        for st in self._all_streams():
            st.count = st.flushed

    def _close_file(self) -> None:
        if self._file is None:
            return
        if self.broken:
            self._rollback()
        try:
            self._file.close()
        except (OSError, RuntimeError, ValueError):
            # after a failed close HDF5's ids are unusable (touching them crashes): abandon the
            # file, readable up to its last flush like a killed writer's; its later rows are lost
            self._abandoned.append(self._file)
            self._file = None
            if not self.broken:
                self._unflushed()
            raise
        self._file = None

    @property
    def unclosed(self) -> bool:
        """True while a file is open, or after a close that failed (HDF5's exit cleanup would
        then crash: the process should leave with ``os._exit``).
        """
        return self._file is not None or bool(self._abandoned)

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


__all__ = ["CaptureWriter"]
