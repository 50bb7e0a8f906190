"""``CaptureMetrics``: the capture process's Prometheus collectors (``bitrader_capture_*``).

Ring lag, drops and reattaches come from the runtime's ``RingCollector`` (``on_attach`` hands it
each reader); disk space is read when Prometheus scrapes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from procs.observe import NAMESPACE

__all__ = ["CaptureMetrics", "make_metrics", "watch_disk"]


@dataclass(frozen=True)
class CaptureMetrics:
    records: Counter  # label stream
    bytes: Counter  # label stream
    flushes: Counter
    rotations: Counter
    write_errors: Counter
    write_dropped: Counter  # label stream
    gap_records: Counter  # labels stream, reason
    paused: Gauge
    orders_malformed: Counter
    disk_free: Gauge  # read at scrape time (set_function) once the directory is known


def make_metrics(registry: CollectorRegistry) -> CaptureMetrics:
    p = f"{NAMESPACE}_capture"
    by = ["stream"]
    return CaptureMetrics(
        records=Counter(f"{p}_records", "records written", by, registry=registry),
        bytes=Counter(f"{p}_bytes", "record bytes written", by, registry=registry),
        flushes=Counter(f"{p}_flushes", "file flushes", registry=registry),
        rotations=Counter(f"{p}_rotations", "file rotations", registry=registry),
        write_errors=Counter(
            f"{p}_write_errors", "failed writes (writing pauses, then resumes)", registry=registry
        ),
        write_dropped=Counter(
            f"{p}_write_dropped_records",
            "records not written: disk full or a failed write",
            by,
            registry=registry,
        ),
        gap_records=Counter(
            f"{p}_gap_records",
            "records missing from a stream's seq (also in the file's gaps table)",
            ["stream", "reason"],
            registry=registry,
        ),
        paused=Gauge(f"{p}_write_paused", "1 while writing is paused (disk)", registry=registry),
        orders_malformed=Counter(
            f"{p}_orders_malformed", "order events that did not decode", registry=registry
        ),
        disk_free=Gauge(
            f"{p}_disk_free_bytes",
            "bytes available to capture in its directory's file system",
            registry=registry,
        ),
    )


def watch_disk(metrics: CaptureMetrics, directory: str | Path) -> None:
    """Have ``disk_free`` report ``directory``'s free space whenever it is scraped (NaN when it
    cannot be read: a scrape must not fail because the directory went away)."""

    def free() -> float:
        try:
            return float(shutil.disk_usage(directory).free)
        except OSError:
            return math.nan

    metrics.disk_free.set_function(free)
