"""Every structured record dtype that travels through a ring, each with its itemsize asserted.

Field order: ``seq``, ``ts_event_ns``, ``ts_recv_ns``, then stage stamps, then payload. Changing a
layout means a new versioned name (``BOOK_V2``); readers refuse a writer whose dtype CRC differs.
"""

from __future__ import annotations

import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

Records = npt.NDArray[np.void]
Dtype = np.dtype[np.void]

BOOK_DEPTH: Final = 15  # levels kept per side in md.book (depth_book15)
FEATURE_SLOTS: Final = 32  # float32 slots in a feat record; the engine declares the names


def _padded(name: str, fields: list[tuple[str, str] | tuple[str, str, tuple[int]]]) -> Dtype:
    base = np.dtype(fields, align=True)
    size = -(-base.itemsize // 64) * 64  # pad to whole cache lines
    names = [f[0] for f in fields]
    spec = {"names": names, "formats": [f[1:] if len(f) == 3 else f[1] for f in fields]}
    dt: Dtype = np.dtype({**spec, "itemsize": size}, align=True)  # type: ignore[call-overload]  # dict-form dtype spec is untyped in numpy stubs
    if dt.itemsize % 64 or dt.itemsize < base.itemsize:
        raise AssertionError(f"{name}: bad itemsize {dt.itemsize}")
    return dt


# md.book: top-N snapshot after ingest normalisation; prices/qty as float64 (analytics, never
# booked money: execution re-derives Decimal prices from the venue's precision)
BOOK_V1: Final = _padded(
    "BOOK_V1",
    [
        ("seq", "<i8"),
        ("ts_event_ns", "<i8"),  # exchange stamp (ms precision from the venue, in ns)
        ("ts_recv_ns", "<i8"),  # our WS receive stamp, CLOCK_REALTIME ns
        ("ts_pub_ns", "<i8"),  # ingest publish stamp
        ("symbol_id", "<i4"),
        ("flags", "<u4"),  # FLAG_* bits
        ("n_bids", "<i2"),
        ("n_asks", "<i2"),
        ("bid_px", "<f8", (BOOK_DEPTH,)),
        ("bid_qty", "<f8", (BOOK_DEPTH,)),
        ("ask_px", "<f8", (BOOK_DEPTH,)),
        ("ask_qty", "<f8", (BOOK_DEPTH,)),
    ],
)
assert BOOK_V1.itemsize == 576

TRADE_V1: Final = _padded(
    "TRADE_V1",
    [
        ("seq", "<i8"),
        ("ts_event_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("ts_pub_ns", "<i8"),
        ("symbol_id", "<i4"),
        ("side", "<i1"),  # +1 taker buy, -1 taker sell
        ("flags", "<u1"),
        ("px", "<f8"),
        ("qty", "<f8"),
    ],
)
assert TRADE_V1.itemsize == 64

FEAT_V1: Final = _padded(
    "FEAT_V1",
    [
        ("seq", "<i8"),
        ("ts_event_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("ts_feat_ns", "<i8"),  # features publish stamp
        ("symbol_id", "<i4"),
        ("flags", "<u4"),
        ("mid", "<f8"),
        ("x", "<f4", (FEATURE_SLOTS,)),  # names and order: procs.features engine FEATURES
    ],
)
assert FEAT_V1.itemsize == 192

SIG_V1: Final = _padded(
    "SIG_V1",
    [
        ("seq", "<i8"),
        ("ts_event_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("ts_feat_ns", "<i8"),
        ("ts_sig_ns", "<i8"),  # inference publish stamp
        ("symbol_id", "<i4"),
        ("flags", "<u4"),
        ("mid", "<f8"),
        ("score", "<f4"),  # champion's (or the fallback's) signal in [-1, 1]
        ("challenger", "<f4"),  # challenger's score, NaN when none
        ("model_version", "<u4"),
    ],
)
assert SIG_V1.itemsize == 128

# 64-byte record for transport benchmarks and the transport demo
BENCH_V1: Final = _padded(
    "BENCH_V1",
    [
        ("seq", "<i8"),
        ("ts_event_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("payload", "<f8", (5,)),
    ],
)
assert BENCH_V1.itemsize == 64

# flags shared by md/feat/sig records
FLAG_STALE: Final = 1 << 0  # staleness watchdog verdict: do not trade on this
FLAG_SNAPSHOT: Final = 1 << 1  # first record after a (re)subscribe or resync
FLAG_FALLBACK: Final = 1 << 2  # signal came from the rule-based fallback scorer
FLAG_CROSSED: Final = 1 << 3  # book crossed; ingest is resyncing

DTYPES: Final[dict[str, Dtype]] = {
    "BOOK_V1": BOOK_V1,
    "TRADE_V1": TRADE_V1,
    "FEAT_V1": FEAT_V1,
    "SIG_V1": SIG_V1,
    "BENCH_V1": BENCH_V1,
}


def dtype_crc(dtype: Dtype) -> int:
    """Return a CRC32 of the dtype's full description (names, formats, offsets, itemsize)."""
    return zlib.crc32(repr(dtype.descr).encode() + str(dtype.itemsize).encode()) & 0xFFFFFFFF


def dtype_name(dtype: Dtype) -> str:
    """Return the versioned name of a registered dtype, or raise KeyError."""
    for name, dt in DTYPES.items():
        if dt == dtype:
            return name
    raise KeyError(f"dtype is not registered in shm.records: {dtype}")
