"""Capture: reads rings md.book, md.trade, feat, sig and execution's order events (ZeroMQ SUB).

Writes them to rotated HDF5 files through ``CaptureWriter`` (one dataset per stream, the ring's
dtype; order events as ``ORDER_V2``; meanings in ``procs.tickstore.layout``). Owns the capture
files. Only a reader: it never gates a ring's writer; when it falls behind it is lapped and
counts the loss (in the file's ``gaps`` table too).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.orders import ORDER_EVENT_DECODER
from procs._config import load_section
from procs._runtime import EXIT_FAULT, Runtime
from procs.capture.config import ALL_ORDER_TOPICS, CaptureConfig
from procs.capture.metrics import CaptureMetrics, make_metrics, watch_disk
from procs.capture.orders import find_gaps, order_row
from procs.tickstore import STREAM_BOOK, STREAM_FEAT, STREAM_SIG, STREAM_TRADE
from procs.tickstore.layout import (
    GAP_LAPPED,
    GAP_RESTART,
    GAP_UPSTREAM,
    GAP_V1,
    GAP_WRITE_FAILED,
    KIND_BREAKER,
    KIND_FILL,
    KIND_ORDER,
    KIND_POSITION,
    KIND_RISK,
    ORDER_V2,
    STREAM_ORDERS,
)
from procs.tickstore.store import SCHEMA_VERSION, AttrValue, CaptureWriter, disk_free_bytes
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Dtype, Records
from shm.ring import RingNotReady, RingReader

__all__ = [
    "KIND_BREAKER",
    "KIND_FILL",
    "KIND_ORDER",
    "KIND_POSITION",
    "KIND_RISK",
    "ORDER_DTYPE",
    "ORDER_V2",
    "RING_DTYPES",
    "STREAM_ORDERS",
    "CaptureConfig",
    "CaptureMetrics",
    "CaptureProc",
    "CountingWriter",
    "main",
    "make_metrics",
    "order_row",
]

log = logging.getLogger(__name__)

RING_DTYPES: Final[dict[str, Dtype]] = {
    STREAM_BOOK: BOOK_V1,
    STREAM_TRADE: TRADE_V1,
    STREAM_FEAT: FEAT_V1,
    STREAM_SIG: SIG_V1,
}
ORDER_DTYPE: Final = ORDER_V2  # the layout this version writes (procs.tickstore.layout)
# Each step reads the rings downstream first: a sig's feat, a feat's book, and the trades before
# a book were all published before it, so a step that read a record reads its sources after it.
# Read upstream first, a step could take a feat whose book was published after the book ring's
# read; stopped before its next step, the capture would hold a feat with no book behind it.
READ_ORDER: Final = (STREAM_SIG, STREAM_FEAT, STREAM_BOOK, STREAM_TRADE)
RATE_WINDOW_NS: Final = 1_000_000_000  # health's records_per_s is recomputed this often
DISK_CHECK_NS: Final = 100_000_000  # free space is looked at most this often
RETRY_NS: Final = 1_000_000_000  # a paused writer tries to resume this often
GAP_ROWS_MAX: Final = 64  # gap rows written per batch at most (the counters count all)


class Sink(Protocol):
    """What the stage needs of ``CaptureWriter`` (``CountingWriter`` in production)."""

    paths: list[Path]
    flushes_total: int
    broken: bool
    error: str

    def append(self, stream: str, records: Records) -> None: ...

    def append_gap(self, rows: Records) -> None: ...

    def maybe_flush(self) -> None: ...

    def flush(self, now_ns: int | None = None) -> None: ...

    def reopen(self) -> None: ...

    def take_rolled_back(self) -> dict[str, tuple[int, int]]: ...

    def close(self) -> None: ...


class OrderSource(Protocol):
    """A SUB socket: ``recv(0)`` returns ``(topic, payload)`` or None without waiting."""

    def recv(self, timeout_s: float) -> tuple[bytes, bytes] | None: ...

    def close(self) -> None: ...


ReaderFactory = Callable[[str, Dtype], RingReader]


class CountingWriter(CaptureWriter):
    """``CaptureWriter`` that counts its flushes and what was on disk at the last one."""

    flushes_total = 0
    flushed_records_total = 0  # records appended (over all files) before the last flush

    def flush(self, now_ns: int | None = None) -> None:
        super().flush(now_ns)
        self.flushes_total += 1
        self.flushed_records_total = sum(self.records_total.values())


def _i64(x: int) -> int:
    return max(-(1 << 63), min(x, (1 << 63) - 1))  # garbage seq from a broken producer


@dataclass
class _Ring:
    stream: str
    name: str
    dtype: Dtype
    buf: Records
    reader: RingReader | None = None
    next_attach_ns: int = 0
    dropped_seen: int = 0
    dropped_polled: int = 0  # dropped_total at the last poll: a rise means this batch lapped
    reattach_seen: int = 0


class CaptureProc:
    """Per step: up to ``batch_max`` records from each ring (``READ_ORDER``: downstream first,
    so every record captured has its sources captured too), then up to ``orders_batch_max``
    order events; appends them to the sink. Attaches missing rings every ``attach_retry_s``.

    Losses: each batch's ``seq`` is checked against the last one written; every break goes into
    the file's ``gaps`` table with its cause (lapped, write_failed, upstream, restart).
    Full disk: below ``min_free_bytes`` free, or after a failed write, writing pauses: batches
    are dropped and counted, the cause is logged once; every second it tries again (a broken
    file is closed and a new one started). The process never stops for it.
    """

    name = "capture"

    def __init__(
        self,
        config: CaptureConfig,
        *,
        sink: Sink,
        metrics: CaptureMetrics,
        orders: OrderSource | None = None,
        reader_factory: ReaderFactory | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        disk_free: Callable[[], int] | None = None,
    ) -> None:
        self._sink = sink
        self._m = metrics
        self._orders = orders
        self._clock = clock_ns
        self._mono = mono_ns
        from_start = config.from_start
        self._factory: ReaderFactory = reader_factory or (
            lambda name, dtype: RingReader(name, dtype, from_start=from_start)
        )
        self._retry_ns = int(config.attach_retry_s * 1e9)
        self._rings = [
            _Ring(
                stream, name, RING_DTYPES[stream], np.zeros(config.batch_max, RING_DTYPES[stream])
            )
            for stream, name in config.ring_names().items()
        ]
        self._reading = sorted(self._rings, key=lambda r: READ_ORDER.index(r.stream))
        self._order_buf: Records = np.zeros(config.orders_batch_max, ORDER_DTYPE)
        self._symbol_ids = {s: i for i, s in enumerate(config.symbols)}
        topics = config.order_topics
        self._orders_gapless = all(any(x.startswith(t) for t in topics) for x in ALL_ORDER_TOPICS)
        self._records: dict[str, int] = {r.stream: 0 for r in self._rings}
        if orders is not None:
            self._records[STREAM_ORDERS] = 0
        self._next_seq: dict[str, int | None] = dict.fromkeys(self._records)
        self._write_dropped: dict[str, int] = dict.fromkeys(self._records, 0)
        self._unwritten: dict[str, int] = dict.fromkeys(self._records, 0)  # since last write
        self._dropped_end: dict[str, int] = dict.fromkeys(self._records, 0)  # seq after them
        self._gap_records = 0
        self._orders_malformed = 0
        self._write_errors = 0
        self._min_free = config.min_free_bytes
        self._disk_free = disk_free or disk_free_bytes(config.directory)
        self._next_disk_ns = 0
        self._paused = ""  # "", "low_disk" or "write_failed"
        self._next_retry_ns = 0
        self._rotations_seen = 0
        self._flushes_seen = 0
        self._rate = 0.0
        self._rate_mark = (mono_ns(), 0)
        self._next_export_ns = 0
        self.on_attach: Callable[[str, RingReader], None] | None = None  # the runtime's watch_ring
        if sink.broken:  # the writer could not even create its first file (a full disk)
            self._write_errors += 1
            self._pause("write_failed", f"error={sink.error}")

    # -- the loop -------------------------------------------------------------------------------

    def step(self) -> int:
        now = self._mono()
        self._check_disk(now)
        n = 0
        for ring in self._reading:
            reader = ring.reader
            if reader is None:
                if now < ring.next_attach_ns:
                    continue
                reader = self._attach(ring, now)
                if reader is None:
                    continue
            got = reader.poll_into(ring.buf)
            if got:
                lapped = reader.dropped_total > ring.dropped_polled
                ring.dropped_polled = reader.dropped_total
                self._write(ring.stream, ring.buf[:got], lapped)
                n += got
        if self._orders is not None:
            n += self._read_orders()
        if n == 0 and not self._paused:
            self._try(self._sink.maybe_flush)
        if now >= self._next_export_ns:
            self._export(now)
        return n

    def _attach(self, ring: _Ring, now: int) -> RingReader | None:
        try:
            ring.reader = self._factory(ring.name, ring.dtype)
        except RingNotReady:
            ring.next_attach_ns = now + self._retry_ns
            return None  # its writer has not started yet: look again later
        log.info("attached stream=%s ring=%s", ring.stream, ring.name)
        if self.on_attach is not None:
            self.on_attach(ring.stream, ring.reader)
        ring.dropped_polled = ring.reader.dropped_total
        return ring.reader

    def _read_orders(self) -> int:
        assert self._orders is not None
        buf, k = self._order_buf, 0
        while k < buf.size:
            got = self._orders.recv(0)
            if got is None:
                break
            try:
                msg = ORDER_EVENT_DECODER.decode(got[1])
            except msgspec.DecodeError as exc:
                self._orders_malformed += 1
                self._m.orders_malformed.inc()
                log.warning("order event malformed topic=%r error=%s", got[0], exc)
                continue
            buf[k] = np.zeros((), ORDER_DTYPE)
            for key, value in order_row(msg, self._clock(), self._symbol_ids).items():
                buf[k][key] = value
            k += 1
        if k:
            self._write(STREAM_ORDERS, buf[:k], False)
        return k

    # -- writing, losses, full disk --------------------------------------------------------------

    def _write(self, stream: str, records: Records, lapped: bool) -> None:
        n = int(records.size)
        if self._paused:
            self._drop(stream, n, records)
            return
        gaps = self._gaps(stream, records, lapped)
        if not self._try(lambda: self._sink.append(stream, records)):
            self._drop(stream, n, records)
            return
        self._next_seq[stream] = int(records["seq"][-1]) + 1
        self._unwritten[stream] = 0
        self._records[stream] += n
        self._m.records.labels(stream).inc(n)
        self._m.bytes.labels(stream).inc(n * records.dtype.itemsize)
        if gaps.size and not self._sink.broken:
            self._try(lambda: self._sink.append_gap(gaps))
        if self._sink.broken:  # its flush failed: the rows are rolled back and counted later
            self._write_errors += 1
            self._m.write_errors.inc()
            self._pause("write_failed", f"error={self._sink.error}")

    def _gaps(self, stream: str, records: Records, lapped: bool) -> Records:
        if stream == STREAM_ORDERS and not self._orders_gapless:
            return np.zeros(0, GAP_V1)  # a topic filter: seq gaps are other topics' events
        found, total = find_gaps(records["seq"], self._next_seq[stream], GAP_ROWS_MAX)
        rows: Records = np.zeros(len(found), GAP_V1)
        now = self._clock()
        for i, (want, got) in enumerate(found):
            if got < want:
                reason, lost = GAP_RESTART, 0
            else:
                lost = got - want
                failed = i == 0 and self._unwritten[stream] > 0
                reason = GAP_WRITE_FAILED if failed else GAP_LAPPED if lapped else GAP_UPSTREAM
            rows[i] = (now, _i64(want), _i64(got), _i64(lost), stream.encode(), reason.encode())
            if lost:
                lost = _i64(lost)
                self._gap_records = _i64(self._gap_records + lost)
                self._m.gap_records.labels(stream, reason).inc(lost)
        if total > len(found):
            log.warning(
                "stream=%s %d seq breaks in one batch, %d written", stream, total, len(found)
            )
        return rows

    def _drop(self, stream: str, n: int, records: Records | None = None) -> None:
        if records is not None:
            if self._next_seq[stream] is None:  # nothing written yet: the loss starts here
                self._next_seq[stream] = int(records["seq"][0])
            self._dropped_end[stream] = int(records["seq"][-1]) + 1
        self._write_dropped[stream] += n
        self._unwritten[stream] += n
        self._m.write_dropped.labels(stream).inc(n)

    def _try(self, op: Callable[[], None]) -> bool:
        """Run a sink operation; on a failed write pause writing (counted, logged), never raise."""
        try:
            op()
        except (OSError, RuntimeError, ValueError) as exc:  # h5py: full disk, I/O error
            self._write_errors += 1
            self._m.write_errors.inc()
            self._pause("write_failed", f"error={exc}")
            return False
        return True

    def _pause(self, why: str, detail: str) -> None:
        if self._paused:
            return
        self._paused = why
        self._m.paused.set(1)
        self._next_retry_ns = self._mono() + RETRY_NS
        log.error(
            "capture writing paused (%s) file=%s %s: records are dropped and counted until "
            "there is room again",
            why,
            self._path(),
            detail,
        )

    def _check_disk(self, now: int) -> None:
        if self._paused:
            if now >= self._next_retry_ns:
                self._next_retry_ns = now + RETRY_NS
                self._resume()
            return
        if not self._min_free or now < self._next_disk_ns:
            return
        self._next_disk_ns = now + DISK_CHECK_NS
        free = self._free()
        if free is not None and free < self._min_free:
            self._try(lambda: self._sink.flush())  # what was appended is on disk
            self._pause("low_disk", f"free_bytes={free} min_free_bytes={self._min_free}")

    def _free(self) -> int | None:
        try:
            return self._disk_free()
        except OSError as exc:
            log.warning("cannot stat capture disk: %s", exc)
            return None

    def _resume(self) -> None:
        free = self._free()
        if self._min_free and (free is None or free < 2 * self._min_free):
            return
        if self._sink.broken:
            try:
                self._sink.reopen()  # close the broken file (its metadata), start a new one
            except (OSError, RuntimeError, ValueError) as exc:
                log.debug("capture still cannot write: %s", exc)
                return
            for stream, (first_seq, n) in self._sink.take_rolled_back().items():
                # appended after the last good flush: not on disk, so lost like the dropped
                self._next_seq[stream] = first_seq
                self._records[stream] -= n
                self._drop(stream, n)
                self._dropped_end[stream] = max(self._dropped_end[stream], first_seq + n)
        dropped = sum(self._write_dropped.values())
        log.warning(
            "capture writing resumed (%s) file=%s write_dropped_total=%d",
            self._paused,
            self._path(),
            dropped,
        )
        self._paused = ""
        self._m.paused.set(0)

    # -- counters -------------------------------------------------------------------------------

    def _export(self, now: int) -> None:
        self._next_export_ns = now + RATE_WINDOW_NS // 10
        for ring in self._rings:
            reader = ring.reader
            if reader is None:
                continue
            ring.dropped_seen = reader.dropped_total  # for health; Prometheus reads the reader
            if reader.reattach_total > ring.reattach_seen:
                ring.reattach_seen = reader.reattach_total
                log.info("reattached stream=%s ring=%s (writer restarted)", ring.stream, ring.name)
        rotations = len(self._sink.paths) - 1
        if rotations > self._rotations_seen:
            self._m.rotations.inc(rotations - self._rotations_seen)
            self._rotations_seen = rotations
            log.info("rotated file=%s", self._path())
        flushes = self._sink.flushes_total
        if flushes > self._flushes_seen:
            self._m.flushes.inc(flushes - self._flushes_seen)
            self._flushes_seen = flushes
        t0, n0 = self._rate_mark
        if now - t0 >= RATE_WINDOW_NS:
            total = sum(self._records.values())
            self._rate = (total - n0) * 1e9 / (now - t0)
            self._rate_mark = (now, total)

    def _path(self) -> str:
        return str(self._sink.paths[-1]) if self._sink.paths else ""

    def health(self) -> dict[str, float | int | str]:
        self._export(self._mono())
        out: dict[str, float | int | str] = {
            "last_seq": sum(self._records.values()),
            "file": self._path(),
            "records_total": sum(self._records.values()),
            "records_per_s": self._rate,
            "ring_dropped_total": sum(r.dropped_seen for r in self._rings),
            "ring_lag_records": sum(r.reader.lag_records for r in self._rings if r.reader),
            "flushes_total": self._sink.flushes_total,
            "rotations_total": len(self._sink.paths) - 1,
            "write_errors_total": self._write_errors,
            "write_paused": self._paused or "no",
            "write_dropped_total": sum(self._write_dropped.values()),
            "gap_records_total": self._gap_records,
            "orders_malformed_total": self._orders_malformed,
            "attached": ",".join(r.stream for r in self._rings if r.reader is not None),
        }
        for ring in self._rings:
            out[f"{ring.stream}.records_total"] = self._records[ring.stream]
            out[f"{ring.stream}.ring_dropped_total"] = ring.dropped_seen
            out[f"{ring.stream}.ring_lag_records"] = ring.reader.lag_records if ring.reader else 0
            out[f"{ring.stream}.reattach_total"] = ring.reattach_seen
        if STREAM_ORDERS in self._records:
            out[f"{STREAM_ORDERS}.records_total"] = self._records[STREAM_ORDERS]
        for stream, n in self._write_dropped.items():
            out[f"{stream}.write_dropped_total"] = n
        flushed = getattr(self._sink, "flushed_records_total", None)
        if isinstance(flushed, int):
            out["flushed_records_total"] = flushed
        return out

    def _gaps_at_close(self) -> None:
        """Count in the file what was dropped since the last write (no later batch will)."""
        for stream, n in self._unwritten.items():
            start = self._next_seq[stream]
            if not n or start is None:
                continue
            log.error("capture stopping stream=%s with %d records dropped unwritten", stream, n)
            if not self._sink.broken:  # paused for a low disk, or resumed: the file takes it
                end = max(self._dropped_end[stream], start)
                row = (self._clock(), start, end, end - start, stream.encode(), b"write_failed")
                rows: Records = np.array([row], GAP_V1)
                self._try(functools.partial(self._sink.append_gap, rows))

    def close(self) -> None:
        """Close the readers and the SUB, then flush and close the file (final flush)."""
        for ring in self._rings:
            if ring.reader is not None:
                ring.reader.close()
                ring.reader = None
        if self._orders is not None:
            self._orders.close()
            self._orders = None
        self._gaps_at_close()
        try:
            self._sink.close()
        except (OSError, RuntimeError, ValueError) as exc:
            self._write_errors += 1
            self._m.write_errors.inc()
            log.error(
                "capture close failed file=%s error=%s: the file holds what its last flush wrote",
                self._path(),
                exc,
            )
            return
        for stream, (first_seq, n) in self._sink.take_rolled_back().items():
            log.error("stream=%s %d records from seq %d were never flushed", stream, n, first_seq)
        log.info("closed file=%s records=%d", self._path(), sum(self._records.values()))


def file_attrs(config: CaptureConfig, config_hash: str) -> dict[str, AttrValue]:
    """Return the attributes every capture file carries (besides the writer's own)."""
    rings = config.ring_names()
    return {
        "venue": config.venue,
        "symbols": list(config.symbols),
        "config_hash": config_hash,
        "capture_schema_version": SCHEMA_VERSION,
        "rings": [f"{s}={n}" for s, n in rings.items()],
        "orders_dtype": "ORDER_V2",
        "orders_topics": list(config.order_topics),
    }


def make_streams(config: CaptureConfig) -> Mapping[str, Dtype]:
    """Return stream -> dtype for the writer: the configured rings, plus orders when wired."""
    streams = {s: RING_DTYPES[s] for s in config.ring_names()}
    if config.order_endpoints:
        streams[STREAM_ORDERS] = ORDER_DTYPE
    return streams


def main(argv: list[str] | None = None) -> int:
    from ipc.sockets import connect_sub  # composition root: I/O opens here

    args = sys.argv[1:] if argv is None else list(argv)
    config = load_section(args, "capture", CaptureConfig)
    config_hash = hashlib.sha256(Path(args[0]).read_bytes()).hexdigest()
    registry = CollectorRegistry()
    with Runtime("capture", config.runtime, registry, config_path=args[0]) as rt:
        rt.start()
        waiter = rt.make_waiter(None)  # block (or spin): four rings have no single wake-up
        writer = CountingWriter(
            config.directory,
            streams=make_streams(config),
            attrs=file_attrs(config, config_hash),
            rotate_bytes=config.rotate_bytes,
            rotate_s=config.rotate_s,
            flush_s=config.flush_s,
            compression=None if config.compression == "none" else config.compression,
            chunk_bytes=config.chunk_bytes,
            prefix=config.prefix,
            tolerate_failure=True,  # a full disk at start pauses writing, it does not exit
        )
        log.info("capture file=%s config_hash=%s", writer.paths[-1:], config_hash)
        orders = None
        if config.order_endpoints:
            topics = [t.encode() for t in config.order_topics]
            remote = config.runtime.allow_remote_endpoints
            orders = connect_sub(config.order_endpoints, topics, allow_remote=remote)
        metrics = make_metrics(registry)
        watch_disk(metrics, config.directory)
        proc = CaptureProc(config, sink=writer, metrics=metrics, orders=orders)
        proc.on_attach = rt.watch_ring
        rc = rt.run(proc, waiter)
    if writer.unclosed:  # its close failed (disk still full): HDF5's exit cleanup would crash
        log.error("exiting with a capture file not closed; files=%s", writer.paths[-2:])
        logging.shutdown()
        os._exit(EXIT_FAULT)
    return rc


if __name__ == "__main__":
    sys.exit(main())
