"""IngestConfig: the ``[ingest]`` section (venue URLs, symbols, channels, rings, watchdog)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from procs._config import HttpUrl, RuntimeConfig, Symbol, WsUrl

__all__ = ["IngestConfig"]

PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
PosInt = Annotated[int, msgspec.Meta(gt=0)]
Capacity = Annotated[int, msgspec.Meta(gt=0, le=1 << 24)]


class IngestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[ingest]`` section; ring names and URLs may contain ``{ns}``/``{run_dir}``.

    Symbol ids are the positions in ``symbols`` (0, 1, ...): every record's ``symbol_id``.
    """

    runtime: RuntimeConfig
    symbols: list[Symbol]
    book_ring: str  # "{ns}.ingest.md.book": templates are expanded in the file's values only
    trade_ring: str  # "{ns}.ingest.md.trade"
    ws_url: WsUrl = "wss://fapi.bitunix.com/public/"
    rest_url: HttpUrl = "https://fapi.bitunix.com"
    depth_channel: Literal["depth_book15", "depth_books"] = "depth_book15"
    channels: list[Literal["trade", "price"]] = msgspec.field(
        default_factory=lambda: ["trade", "price"]
    )
    book_capacity_records: Capacity = 1 << 14
    trade_capacity_records: Capacity = 1 << 16
    batch_max_records: Annotated[int, msgspec.Meta(gt=0, le=1 << 16)] = 512
    stale_after_s: PosFloat = 2.0  # no book update for this long: the symbol is stale
    service_interval_s: PosFloat = 0.01  # heartbeat/control/watchdog period
    resync_min_interval_s: PosFloat = 1.0  # at most one REST resync per symbol per interval
    snapshot_limit: Literal["5", "15", "50", "max"] = "50"  # REST depth levels requested
    rest_timeout_s: PosFloat = 5.0
    rest_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    ping_interval_s: PosFloat = 10.0  # passed to the WS client
    watchdog_intervals: PosFloat = 2.0  # WS silent this many ping intervals: reconnect
    reconnect_min_s: PosFloat = 0.5
    reconnect_max_s: PosFloat = 30.0
    connect_timeout_s: PosFloat = 10.0
    send_rate_per_s: Annotated[float, msgspec.Meta(gt=0, le=5)] = 4.0

    def __post_init__(self) -> None:
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols must be non-empty and unique, was {self.symbols}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must be unique, was {self.channels}")
        for name in ("book_capacity_records", "trade_capacity_records"):
            cap = getattr(self, name)
            if cap & (cap - 1):
                raise ValueError(f"{name} must be a power of two, was {cap}")
        if self.batch_max_records > min(self.book_capacity_records, self.trade_capacity_records):
            raise ValueError("batch_max_records must not exceed either ring's capacity")
        for name in ("book_ring", "trade_ring"):
            ring = getattr(self, name)
            if not 0 < len(ring) <= 200 or "/" in ring:  # shm.ring.RingSpec's rule, checked early
                raise ValueError(f"{name} must be 1-200 characters without '/', was {ring!r}")
        if self.book_ring == self.trade_ring:
            raise ValueError("book_ring and trade_ring must differ")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
