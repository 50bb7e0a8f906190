"""Transport demo consumer: reads the producer's ring and measures one-way latency per record.

Reads ring ``{ns}.producer.bench`` (woken by ``wake.bench.``). Writes nothing. Owns its stats.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from ipc.messages import wake_topic
from ipc.sockets import WakeListener
from procs._config import RuntimeConfig, config_file, load_section
from procs._runtime import Runtime
from procs.observe import LATENCY_BUCKETS_S, NAMESPACE
from shm.records import BENCH_V1
from shm.ring import RingReader, attach_reader

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
WINDOW: Final = 1 << 16  # latency samples kept for the percentiles in health


class ConsumerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    ring: str
    producer_pub: str  # the producer's PUB endpoint, for wake-ups
    batch_max: PositiveInt = 1024
    attach_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0


@dataclass(frozen=True)
class ConsumerMetrics:
    records: Counter
    latency: Histogram


def make_metrics(registry: CollectorRegistry) -> ConsumerMetrics:
    return ConsumerMetrics(
        records=Counter(f"{NAMESPACE}_consumer_records", "records read", registry=registry),
        latency=Histogram(
            f"{NAMESPACE}_consumer_latency_seconds",
            "one-way ring latency, last record of each batch",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
    )


class ConsumerProc:
    """Drains the ring in batches; keeps the last ``WINDOW`` latencies for percentiles."""

    name = "consumer"

    def __init__(
        self, config: ConsumerConfig, *, ring: RingReader, metrics: ConsumerMetrics
    ) -> None:
        self._ring = ring
        self._batch_max = config.batch_max
        self._m = metrics
        self._lat_ns = np.zeros(WINDOW, dtype=np.int64)
        self._n = 0  # samples ever written into the window
        self._received = 0
        self._last_seq = -1
        self._gaps = 0

    def step(self) -> int:
        batch = self._ring.poll(self._batch_max)
        n = len(batch)
        if n == 0:
            return 0
        now = time.time_ns()
        lat = now - batch["ts_event_ns"]
        idx = (np.arange(self._n, self._n + n) & (WINDOW - 1)) if n <= WINDOW else None
        if idx is not None:
            self._lat_ns[idx] = lat
        self._n += n
        seq = batch["seq"]
        self._gaps += int(np.count_nonzero(np.diff(seq) != 1)) + int(
            self._last_seq >= 0 and int(seq[0]) != self._last_seq + 1
        )
        self._last_seq = int(seq[-1])
        self._received += n
        self._m.records.inc(n)
        self._m.latency.observe(float(lat[-1]) / 1e9)
        return n

    def health(self) -> dict[str, float | int | str]:
        k = min(self._n, WINDOW)
        p50, p99, p999 = (
            np.percentile(self._lat_ns[:k], (50, 99, 99.9)) / 1e3 if k else (0.0, 0.0, 0.0)
        )
        return {
            "last_seq": self._last_seq,
            "received_total": self._received,
            "ring_dropped_total": self._ring.dropped_total,
            "ring_lag_records": self._ring.lag_records,
            "seq_gaps_total": self._gaps,
            "latency_p50_us": float(p50),
            "latency_p99_us": float(p99),
            "latency_p999_us": float(p999),
        }

    def close(self) -> None:
        self._ring.close()


def main(argv: list[str] | None = None) -> int:
    config = load_section(argv, "consumer", ConsumerConfig)
    registry = CollectorRegistry()
    with Runtime("consumer", config.runtime, registry, config_path=config_file(argv)) as rt:
        rt.start()
        ring = attach_reader(config.ring, BENCH_V1, config.attach_timeout_s)
        rt.watch_ring("bench", ring)
        notifier = WakeListener(config.producer_pub, wake_topic("bench"))
        try:
            proc = ConsumerProc(config, ring=ring, metrics=make_metrics(registry))
            return rt.run(proc, rt.make_waiter(notifier))
        finally:
            notifier.close()


if __name__ == "__main__":
    sys.exit(main())
