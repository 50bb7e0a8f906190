"""Capture: reads rings md.book, md.trade, feat, sig and execution's order events (ZeroMQ SUB).

Writes them to rotated HDF5 files through ``CaptureWriter`` (one dataset per stream, the ring's
dtype; order events as ``ORDER_V1`` below). Owns the capture files. Only a reader: it never
gates a ring's writer; when it falls behind it is lapped and counts the loss.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from ipc.orders import (
    ORDER_EVENT_DECODER,
    BreakerEvent,
    FillEvent,
    OrderEvent,
    OrderMessage,
    PositionEvent,
    RiskEvent,
)
from procs._config import RuntimeConfig, load_section
from procs._runtime import Runtime
from procs.capture import STREAM_BOOK, STREAM_FEAT, STREAM_SIG, STREAM_TRADE
from procs.capture.metrics import CaptureMetrics, make_metrics, watch_disk
from procs.capture.store import SCHEMA_VERSION, AttrValue, CaptureWriter
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Dtype, Records
from shm.ring import RingNotReady, RingReader

__all__ = [
    "KIND_BREAKER",
    "KIND_FILL",
    "KIND_ORDER",
    "KIND_POSITION",
    "KIND_RISK",
    "ORDER_V1",
    "RING_DTYPES",
    "STREAM_ORDERS",
    "CaptureConfig",
    "CaptureMetrics",
    "CaptureProc",
    "CaptureWriteError",
    "CountingWriter",
    "main",
    "make_metrics",
    "order_row",
]

log = logging.getLogger(__name__)

PosInt = Annotated[int, msgspec.Meta(gt=0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
RingStream = Literal["md.book", "md.trade", "feat", "sig"]

STREAM_ORDERS: Final = "orders"
RING_DTYPES: Final[dict[str, Dtype]] = {
    STREAM_BOOK: BOOK_V1,
    STREAM_TRADE: TRADE_V1,
    STREAM_FEAT: FEAT_V1,
    STREAM_SIG: SIG_V1,
}
RATE_WINDOW_NS: Final = 1_000_000_000  # health's records_per_s is recomputed this often

# ORDER_V1: one row per order/fill/position/risk/breaker event, capture-local (never in a ring,
# so not in shm.records). Stamps as in OrderEvent (0 where the event has none); ts_capture_ns is
# when capture received it. Decimals become float64 (analytics only: the journal keeps the exact
# values); text is UTF-8, truncated to its field. ``price`` is NaN when the order had none.
KIND_ORDER: Final = 1
KIND_FILL: Final = 2
KIND_POSITION: Final = 3
KIND_RISK: Final = 4
KIND_BREAKER: Final = 5
_ORDER_FIELDS: Final = [
    ("seq", "<i8"),  # the publisher's sequence number
    ("ts_event_ns", "<i8"),
    ("ts_recv_ns", "<i8"),
    ("ts_feat_ns", "<i8"),
    ("ts_sig_ns", "<i8"),
    ("ts_order_ns", "<i8"),
    ("ts_ns", "<i8"),  # when the change happened (every event has it)
    ("ts_capture_ns", "<i8"),
    ("kind", "<u1"),  # KIND_*
    ("side", "<i1"),  # +1 BUY, -1 SELL, 0 none
    ("reduce_only", "<u1"),
    ("symbol", "S24"),
    ("client_id", "S48"),
    ("order_id", "S48"),
    ("fill_id", "S48"),
    ("order_type", "S8"),
    ("tif", "S8"),
    ("status", "S16"),  # order: status; breaker: new state
    ("old_status", "S16"),  # order: previous status; breaker: old state
    ("position_side", "S8"),
    ("reason", "S32"),  # order: reason; risk: reason; breaker: trigger
    ("detail", "S64"),  # risk and breaker: detail
    ("qty", "<f8"),  # position: signed qty
    ("price", "<f8"),  # fill price; position: avg_price
    ("filled_qty", "<f8"),
    ("avg_price", "<f8"),
    ("fee", "<f8"),  # position: fees
    ("realised", "<f8"),
    ("unrealised", "<f8"),
    ("funding", "<f8"),
    ("mark", "<f8"),
]


def _order_dtype() -> Dtype:
    base = np.dtype(_ORDER_FIELDS, align=True)
    spec: Any = {  # dict-form spec: numpy's stubs type it loosely
        "names": [f[0] for f in _ORDER_FIELDS],
        "formats": [f[1] for f in _ORDER_FIELDS],
        "itemsize": -(-base.itemsize // 64) * 64,  # whole cache lines, as shm.records
    }
    dtype: Dtype = np.dtype(spec, align=True)
    return dtype


ORDER_V1: Final = _order_dtype()
assert ORDER_V1.itemsize == 512


class CaptureConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[capture]`` section; strings may contain ``{ns}`` and ``{run_dir}``."""

    runtime: RuntimeConfig
    directory: str  # capture files go here, e.g. "{run_dir}/capture"
    prefix: str = "capture"
    venue: str = "bitunix"
    symbols: list[str] = []  # symbol ids are positions, as ingest numbers them
    streams: list[RingStream] = msgspec.field(
        default_factory=lambda: ["md.book", "md.trade", "feat", "sig"]
    )
    book_ring: str = "{ns}.ingest.md.book"
    trade_ring: str = "{ns}.ingest.md.trade"
    feat_ring: str = "{ns}.features.feat"
    sig_ring: str = "{ns}.inference.sig"
    order_endpoints: list[str] = []  # execution's PUB; empty: no orders stream
    order_topics: list[str] = msgspec.field(default_factory=lambda: ["ord.", "fill.", "pos."])
    from_start: bool = True  # on attach, take the oldest records the ring still holds
    batch_max: PosInt = 8192  # records per ring per step
    orders_batch_max: PosInt = 1024  # order events per step
    attach_retry_s: PosFloat = 0.5  # a missing ring is looked for again this often
    rotate_bytes: PosInt = 1 << 30
    rotate_s: PosFloat = 86_400.0
    flush_s: PosFloat = 1.0  # a SIGKILL loses at most this much (plus one batch)
    compression: Literal["none", "lzf", "gzip"] = "none"
    chunk_bytes: PosInt = 1 << 20

    def __post_init__(self) -> None:
        if not self.streams and not self.order_endpoints:
            raise ValueError("nothing to capture: streams and order_endpoints are both empty")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be unique, was {self.streams}")
        for topic in self.order_topics:
            if not topic.endswith("."):
                raise ValueError(f"order_topics must end with '.', was {topic!r}")

    def ring_names(self) -> dict[str, str]:
        """Return stream -> ring name for the configured streams."""
        names = {
            STREAM_BOOK: self.book_ring,
            STREAM_TRADE: self.trade_ring,
            STREAM_FEAT: self.feat_ring,
            STREAM_SIG: self.sig_ring,
        }
        return {s: names[s] for s in self.streams}


class CaptureWriteError(Exception):
    """Writing the capture file failed (full disk, I/O error): the process must stop."""


class Sink(Protocol):
    """What the stage needs of ``CaptureWriter`` (``CountingWriter`` in production)."""

    paths: list[Path]
    flushes_total: int

    def append(self, stream: str, records: Records) -> None: ...

    def maybe_flush(self) -> None: ...

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


def _side(side: str) -> int:
    s = side.upper()
    return 1 if s == "BUY" else -1 if s == "SELL" else 0


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def order_row(msg: OrderMessage, ts_capture_ns: int) -> dict[str, Any]:
    """Return the ORDER_V1 field values for one decoded order event (absent fields: zero)."""
    row: dict[str, Any] = {"seq": msg.seq, "ts_ns": msg.ts_ns, "ts_capture_ns": ts_capture_ns}
    if isinstance(msg, (OrderEvent, FillEvent)):
        row |= {
            "ts_event_ns": msg.ts_event_ns,
            "ts_recv_ns": msg.ts_recv_ns,
            "ts_feat_ns": msg.ts_feat_ns,
            "ts_sig_ns": msg.ts_sig_ns,
            "ts_order_ns": msg.ts_order_ns,
            "symbol": msg.symbol,
            "client_id": msg.client_id,
            "order_id": msg.order_id,
            "side": _side(msg.side),
            "qty": float(msg.qty),
            "fee": float(msg.fee),
        }
    if isinstance(msg, OrderEvent):
        row |= {
            "kind": KIND_ORDER,
            "order_type": msg.order_type,
            "tif": msg.tif,
            "price": _f(msg.price),
            "status": msg.status,
            "old_status": msg.old_status,
            "filled_qty": float(msg.filled_qty),
            "avg_price": float(msg.avg_price),
            "reduce_only": int(msg.reduce_only),
            "reason": msg.reason,
        }
    elif isinstance(msg, FillEvent):
        row |= {"kind": KIND_FILL, "fill_id": msg.fill_id, "price": float(msg.price)}
        row["position_side"] = msg.position_side
    elif isinstance(msg, PositionEvent):
        row |= {
            "kind": KIND_POSITION,
            "symbol": msg.symbol,
            "position_side": msg.position_side,
            "qty": float(msg.qty),
            "price": float(msg.avg_price),
            "avg_price": float(msg.avg_price),
            "realised": float(msg.realised),
            "unrealised": float(msg.unrealised),
            "fee": float(msg.fees),
            "funding": float(msg.funding),
            "mark": float(msg.mark),
        }
    elif isinstance(msg, RiskEvent):
        row |= {"kind": KIND_RISK, "client_id": msg.client_id, "symbol": msg.symbol}
        row |= {"reason": msg.reason, "detail": msg.detail}
    elif isinstance(msg, BreakerEvent):
        row |= {"kind": KIND_BREAKER, "old_status": msg.old, "status": msg.new}
        row |= {"reason": msg.trigger, "detail": msg.detail}
    return {k: v.encode() if isinstance(v, str) else v for k, v in row.items()}


@dataclass
class _Ring:
    stream: str
    name: str
    dtype: Dtype
    buf: Records
    reader: RingReader | None = None
    next_attach_ns: int = 0
    dropped_seen: int = 0
    reattach_seen: int = 0


class CaptureProc:
    """Per step: up to ``batch_max`` records from each ring, then up to ``orders_batch_max``
    order events; appends them to the sink. Attaches missing rings every ``attach_retry_s``.
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
        self._order_buf: Records = np.zeros(config.orders_batch_max, ORDER_V1)
        self._records: dict[str, int] = {r.stream: 0 for r in self._rings}
        if orders is not None:
            self._records[STREAM_ORDERS] = 0
        self._orders_malformed = 0
        self._write_errors = 0
        self._failed = False
        self._rotations_seen = 0
        self._flushes_seen = 0
        self._rate = 0.0
        self._rate_mark = (mono_ns(), 0)
        self._next_export_ns = 0
        self.on_attach: Callable[[str, RingReader], None] | None = None  # the runtime's watch_ring

    # -- the loop -------------------------------------------------------------------------------

    def step(self) -> int:
        now = self._mono()
        n = 0
        for ring in self._rings:
            reader = ring.reader
            if reader is None:
                if now < ring.next_attach_ns:
                    continue
                reader = self._attach(ring, now)
                if reader is None:
                    continue
            got = reader.poll_into(ring.buf)
            if got:
                self._write(ring.stream, ring.buf[:got])
                n += got
        if self._orders is not None:
            n += self._read_orders()
        if n == 0:
            self._guarded(self._sink.maybe_flush)
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
            buf[k] = np.zeros((), ORDER_V1)
            for key, value in order_row(msg, self._clock()).items():
                buf[k][key] = value
            k += 1
        if k:
            self._write(STREAM_ORDERS, buf[:k])
        return k

    def _write(self, stream: str, records: Records) -> None:
        self._guarded(lambda: self._sink.append(stream, records))
        n = int(records.size)
        self._records[stream] += n
        self._m.records.labels(stream).inc(n)
        self._m.bytes.labels(stream).inc(n * records.dtype.itemsize)

    def _guarded(self, op: Callable[[], None]) -> None:
        try:
            op()
        except (OSError, RuntimeError, ValueError) as exc:  # h5py: full disk, I/O error
            self._write_errors += 1
            self._failed = True
            self._m.write_errors.inc()
            log.error("capture write failed file=%s error=%s", self._path(), exc)
            raise CaptureWriteError(f"{self._path()}: {exc}") from exc

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
        flushed = getattr(self._sink, "flushed_records_total", None)
        if isinstance(flushed, int):
            out["flushed_records_total"] = flushed
        return out

    def close(self) -> None:
        """Close the readers and the SUB, then flush and close the file (final flush)."""
        for ring in self._rings:
            if ring.reader is not None:
                ring.reader.close()
                ring.reader = None
        if self._orders is not None:
            self._orders.close()
            self._orders = None
        try:
            self._sink.close()
        except (OSError, RuntimeError, ValueError) as exc:
            self._write_errors += 1
            self._m.write_errors.inc()
            log.error("capture close failed file=%s error=%s", self._path(), exc)
            if not self._failed:  # a clean stop that could not close its file is a fault
                raise CaptureWriteError(f"{self._path()}: {exc}") from exc
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
        "orders_dtype": "ORDER_V1",
    }


def make_streams(config: CaptureConfig) -> Mapping[str, Dtype]:
    """Return stream -> dtype for the writer: the configured rings, plus orders when wired."""
    streams = {s: RING_DTYPES[s] for s in config.ring_names()}
    if config.order_endpoints:
        streams[STREAM_ORDERS] = ORDER_V1
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
        )
        log.info("capture file=%s config_hash=%s", writer.path, config_hash)
        orders = None
        if config.order_endpoints:
            topics = [t.encode() for t in config.order_topics]
            remote = config.runtime.allow_remote_endpoints
            orders = connect_sub(config.order_endpoints, topics, allow_remote=remote)
        metrics = make_metrics(registry)
        watch_disk(metrics, config.directory)
        proc = CaptureProc(config, sink=writer, metrics=metrics, orders=orders)
        proc.on_attach = rt.watch_ring
        return rt.run(proc, waiter)


if __name__ == "__main__":
    sys.exit(main())
