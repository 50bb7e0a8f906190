"""FeaturesConfig: the ``[features]`` section (rings, symbols, batch size, runtime)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from procs._config import RuntimeConfig, check_endpoint

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]


class FeaturesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    n_symbols: PositiveInt  # symbol ids 0..n_symbols-1, as ingest numbers them
    book_ring: str = "{ns}.ingest.md.book"
    trade_ring: str = "{ns}.ingest.md.trade"
    feat_ring: str = "{ns}.features.feat"
    ingest_pub: str = "ipc://{run_dir}/ingest.pub"  # ingest wake-ups on wake.md. (hybrid waiter)
    capacity_records: PositiveInt = 1 << 16  # feat ring; a power of two
    batch_max: PositiveInt = 1024
    # a step with at most this many books feeds them to the engine one at a time and publishes
    # each at once; more books go in one call (hot, on the development VM: ~4 µs for one book,
    # ~5 for two, ~9 for four, ~14 for twelve: cheaper per book in a batch, and CPU is what the
    # stages sharing a core compete for), so by default only a lone book
    single_books_max: Annotated[int, msgspec.Meta(ge=0)] = 1
    metrics_flush_s: PositiveFloat = 0.1  # counters reach Prometheus this often
    attach_timeout_s: PositiveFloat = 10.0
    mark_degenerate_stale: bool = True

    def __post_init__(self) -> None:
        check_endpoint(
            "ingest_pub", self.ingest_pub, allow_remote=self.runtime.allow_remote_endpoints
        )
        cap = self.capacity_records
        if cap & (cap - 1):
            raise ValueError(f"capacity_records must be a power of two, was {cap}")
        if self.batch_max > cap:
            raise ValueError(f"batch_max ({self.batch_max}) must not exceed capacity_records")
