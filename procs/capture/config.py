"""The ``[capture]`` config section."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from procs._config import RuntimeConfig
from procs.tickstore import STREAM_BOOK, STREAM_FEAT, STREAM_SIG, STREAM_TRADE

__all__ = ["ALL_ORDER_TOPICS", "CaptureConfig"]

PosInt = Annotated[int, msgspec.Meta(gt=0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
RingStream = Literal["md.book", "md.trade", "feat", "sig"]
# execution's topics; with all of them subscribed its seq has no gap unless an event was lost
ALL_ORDER_TOPICS: Final = ("ord.", "fill.", "pos.", "risk.", "brk.")


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
    # every topic by default: then a gap in execution's seq is a real loss, counted in 'gaps'
    order_topics: list[str] = msgspec.field(default_factory=lambda: list(ALL_ORDER_TOPICS))
    from_start: bool = True  # on attach, take the oldest records the ring still holds
    batch_max: PosInt = 8192  # records per ring per step
    orders_batch_max: PosInt = 1024  # order events per step
    attach_retry_s: PosFloat = 0.5  # a missing ring is looked for again this often
    rotate_bytes: PosInt = 1 << 30
    rotate_s: PosFloat = 86_400.0
    flush_s: PosFloat = 1.0  # a SIGKILL loses at most this much (plus one batch)
    compression: Literal["none", "lzf", "gzip"] = "none"
    chunk_bytes: PosInt = 1 << 20
    # below this much free space on the capture disk, writing pauses (records dropped, counted,
    # logged) until twice as much is free again: HDF5 never meets a full disk. 0: no check
    min_free_bytes: Annotated[int, msgspec.Meta(ge=0)] = 64 << 20

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
