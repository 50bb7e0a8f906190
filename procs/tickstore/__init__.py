"""HDF5 tick capture: one chunked dataset per stream, with the ring record's dtype.

``procs.tickstore.store`` is the only module that imports h5py; this package root stays light
(pure numpy) so the trainer and CLI can import record helpers without paying for HDF5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from shm.records import Dtype, Records

# dataset names inside a capture file: the ring's stream name (docs/architecture.md)
STREAM_BOOK: Final = "md.book"
STREAM_TRADE: Final = "md.trade"
STREAM_FEAT: Final = "feat"
STREAM_SIG: Final = "sig"


def concat_records(parts: Sequence[Records], dtype: Dtype) -> Records:
    """Concatenate record batches keeping ``dtype`` exactly.

    ``np.concatenate`` on numpy 2 canonicalises structured dtypes and drops the cache-line
    padding, which changes itemsize and the dtype CRC; this copies into a preallocated array.
    """
    out: Records = np.zeros(sum(p.size for p in parts), dtype=dtype)
    raw = out.view(np.dtype((np.void, dtype.itemsize)))
    at = 0
    for p in parts:
        if p.dtype == dtype:  # bytes and padding as they are: one memcpy, not field by field
            raw[at : at + p.size] = np.ascontiguousarray(p).view(raw.dtype)
        else:
            out[at : at + p.size] = p
        at += p.size
    return out


__all__ = ["STREAM_BOOK", "STREAM_FEAT", "STREAM_SIG", "STREAM_TRADE", "concat_records"]
