"""Transport demo producer: writes paced BENCH_V1 records into its ring and wakes readers.

Reads nothing. Writes ring ``{ns}.producer.bench`` and topic ``wake.bench.``. Owns the ring.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Final

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry, Counter

from ipc.messages import wake_topic
from ipc.sockets import WakeSender
from procs._config import RuntimeConfig, config_file, load_section
from procs._runtime import Runtime
from procs.observe import NAMESPACE
from shm.records import BENCH_V1, Records
from shm.ring import RingSpec, RingWriter
from shm.waiters import Waker

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
STREAM: Final = "bench"


class ProducerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    ring: str  # e.g. "{ns}.producer.bench"
    capacity_records: PositiveInt = 1 << 16
    rate_per_s: PositiveFloat = 1000.0  # records per second, paced on the wall clock
    batch_max: PositiveInt = 1024


class ProducerProc:
    """Publishes the records that are due at ``rate_per_s``; stamps ``ts_event_ns`` at publish."""

    name = "producer"

    def __init__(
        self, config: ProducerConfig, *, ring: RingWriter, waker: Waker, records_total: Counter
    ) -> None:
        self._ring = ring
        self._waker = waker
        self._rate = config.rate_per_s
        self._batch = np.zeros(config.batch_max, dtype=BENCH_V1)
        self._t0_ns = time.monotonic_ns()
        self._sent = 0
        self._records_total = records_total

    def step(self) -> int:
        due = int((time.monotonic_ns() - self._t0_ns) * self._rate / 1e9) - self._sent
        if due <= 0:
            return 0
        n = min(due, len(self._batch))
        out: Records = self._batch[:n]
        out["seq"] = np.arange(self._sent, self._sent + n)
        out["ts_event_ns"] = time.time_ns()
        self._ring.publish(out)
        self._waker.notify()
        self._sent += n
        self._records_total.inc(n)
        return n

    def health(self) -> dict[str, float | int | str]:
        elapsed_s = max((time.monotonic_ns() - self._t0_ns) / 1e9, 1e-9)
        return {
            "last_seq": self._sent - 1,
            "published_total": self._sent,
            "rate_per_s": self._sent / elapsed_s,
        }

    def close(self) -> None:
        self._ring.close()


def main(argv: list[str] | None = None) -> int:
    config = load_section(argv, "producer", ProducerConfig)
    registry = CollectorRegistry()
    records_total = Counter(f"{NAMESPACE}_producer_records", "records published", registry=registry)
    with Runtime("producer", config.runtime, registry, config_path=config_file(argv)) as rt:
        rt.start()
        ring = RingWriter(
            RingSpec(name=config.ring, dtype=BENCH_V1, capacity=config.capacity_records)
        )
        waker = WakeSender(rt.publisher, wake_topic(STREAM))
        proc = ProducerProc(config, ring=ring, waker=waker, records_total=records_total)
        return rt.run(proc, rt.make_waiter())


if __name__ == "__main__":
    sys.exit(main())
