"""Captures in, one event-time market out: books, trades (and the feat/sig streams the live group
recorded, for the parity check) from HDF5 capture files, checked, filtered and ordered.

Checks each file with ``procs.tickstore.store.CaptureReader``, then reads the time range with the
capture's own query (``procs.tickstore.query.query``: a binary search per file, only the rows in
range). Refuses, with ``ReplayError``, what it cannot replay faithfully: a file that is not a
capture, an unknown schema or record layout, a stream with lost records (the capture's ``gaps``
table, or a sequence gap in what was read): the book the strategy saw is unknown there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs.tickstore import STREAM_BOOK, STREAM_FEAT, STREAM_SIG, STREAM_TRADE
from procs.tickstore.query import query
from procs.tickstore.store import SCHEMA_VERSION, CaptureError, CaptureReader, list_captures
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Dtype, Records

__all__ = ["Market", "ReplayError", "capture_files", "load_market"]

READABLE_SCHEMAS: Final = frozenset({1, SCHEMA_VERSION})  # what CaptureReader reads
STREAMS: Final[dict[str, Dtype]] = {
    STREAM_BOOK: BOOK_V1,
    STREAM_TRADE: TRADE_V1,
    STREAM_FEAT: FEAT_V1,
    STREAM_SIG: SIG_V1,
}


class ReplayError(Exception):
    """The captures cannot be replayed (the message says which file and why)."""


@dataclass(slots=True)
class Market:
    """Replayable streams, each in the order the live processes read it (the ring's)."""

    books: Records
    trades: Records
    feat: Records  # recorded by the live group (empty when the capture has none)
    sig: Records
    files: list[Path]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return int(self.books.size + self.trades.size)


def capture_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories to their capture files (time order); keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_captures(p)
            if not found:
                raise ReplayError(f"{p}: no capture files (*.h5) in this directory")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ReplayError(f"{p}: no such file or directory")
    return out


def _check_file(path: Path) -> dict[str, Any]:
    """Refuse a file this build cannot replay; return its attributes."""
    try:
        with CaptureReader(path) as r:
            version = r.attrs.get("schema_version")
            if version not in READABLE_SCHEMAS:
                raise ReplayError(
                    f"{path}: capture schema_version {version!r}; this build replays "
                    f"{sorted(READABLE_SCHEMAS)}"
                )
            for stream, dtype in STREAMS.items():
                if stream in r.streams and r.dtype(stream) != dtype:
                    raise ReplayError(
                        f"{path}: stream {stream!r} has record layout {r.dtype_name(stream)!r} "
                        f"(itemsize {r.dtype(stream).itemsize}, dtype CRC differs), not the "
                        f"layout this build writes: another schema"
                    )
            gaps = r.gaps()
            lost = [g for g in gaps if g["stream"].decode() in STREAMS]
            if lost:
                g = lost[0]
                raise ReplayError(
                    f"{path}: the capture lost records: stream {g['stream'].decode()!r} "
                    f"expected seq {int(g['expected_seq'])}, got {int(g['seq'])} "
                    f"({int(g['lost'])} lost, {g['reason'].decode()}); {len(lost)} gap(s) "
                    f"recorded in all: replay only gap-free captures"
                )
            return dict(r.attrs)
    except CaptureError as exc:
        raise ReplayError(str(exc)) from None


def _check_gaps(stream: str, recs: Records, files: Sequence[Path]) -> None:
    seq = recs["seq"].astype(np.int64)
    if seq.size < 2:
        return
    steps = np.diff(seq)
    bad = np.flatnonzero(steps != 1)
    if bad.size:
        i = int(bad[0])
        raise ReplayError(
            f"stream {stream!r} in {', '.join(str(f) for f in files)}: sequence gap after seq "
            f"{int(seq[i])} (next {int(seq[i + 1])}), {bad.size} gap(s) in all: the capture lost "
            f"records (a lapped reader or a missing file); replay only gap-free captures"
        )


def load_market(
    paths: Iterable[str | Path],
    *,
    symbol_ids: Sequence[int] | None = None,
    from_ns: int | None = None,
    to_ns: int | None = None,
) -> Market:
    """Read, check and order the captures; keep ``symbol_ids`` and ``[from_ns, to_ns)`` (on
    ``ts_recv_ns``, the time our side saw each record)."""
    files = capture_files(paths)
    checked = [_check_file(f) for f in files]  # every file, before reading any
    attrs = checked[0]
    try:
        merged = {
            s: _as(query(files, s, start_ns=from_ns, end_ns=to_ns), dtype)
            for s, dtype in STREAMS.items()
        }
    except CaptureError as exc:
        raise ReplayError(str(exc)) from None
    if merged[STREAM_BOOK].size == 0:
        raise ReplayError(f"{', '.join(map(str, files))}: no book records to replay")
    for s in STREAMS:
        _check_gaps(s, merged[s], files)
    out = {s: _select(r, symbol_ids, from_ns, to_ns) for s, r in merged.items()}
    return Market(
        books=out[STREAM_BOOK],
        trades=out[STREAM_TRADE],
        feat=out[STREAM_FEAT],
        sig=out[STREAM_SIG],
        files=files,
        attrs=attrs,
    )


def _as(recs: Records, dtype: Dtype) -> Records:
    """``query``'s answer in the stream's dtype (it answers a bare ``seq`` array when empty)."""
    if recs.dtype == dtype:
        return recs
    if recs.size:
        raise ReplayError(f"records of {recs.dtype} where {dtype} was expected")
    return np.zeros(0, dtype)


def _select(
    recs: Records, symbol_ids: Sequence[int] | None, from_ns: int | None, to_ns: int | None
) -> Records:
    keep = np.ones(recs.size, dtype=bool)
    if symbol_ids is not None:
        keep &= np.isin(recs["symbol_id"], np.asarray(symbol_ids))
    if from_ns is not None:
        keep &= recs["ts_recv_ns"] >= from_ns
    if to_ns is not None:
        keep &= recs["ts_recv_ns"] < to_ns
    sel = recs[keep]
    # the capture's own order, which is each ring's publish order: the order the live processes
    # read them in (and so batched them); receive stamps follow it within a ring
    out: Records = sel
    return out
