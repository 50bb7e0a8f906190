"""Captures in, one event-time market out: books, trades (and the feat/sig streams the live group
recorded, for the parity check) from HDF5 capture files, checked, filtered and ordered.

Reads through ``procs.capture.store.CaptureReader``. Refuses, with ``ReplayError``, what it cannot
replay faithfully: a file that is not a capture, another schema or record layout, a stream with
a sequence gap (a lapped capture lost records: the book the strategy saw is unknown there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from procs.capture import STREAM_BOOK, STREAM_FEAT, STREAM_SIG, STREAM_TRADE, concat_records
from procs.capture.store import SCHEMA_VERSION, CaptureError, CaptureReader, list_captures
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Dtype, Records

__all__ = ["Market", "ReplayError", "capture_files", "load_market"]

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
    """Replayable streams in receive order (``ts_recv_ns``, then ``seq``)."""

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


def _read_file(path: Path) -> tuple[dict[str, Records], dict[str, Any]]:
    try:
        with CaptureReader(path) as r:
            version = r.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise ReplayError(
                    f"{path}: capture schema_version {version!r}, this build reads {SCHEMA_VERSION}"
                )
            out: dict[str, Records] = {}
            for stream, dtype in STREAMS.items():
                if stream not in r.streams:
                    continue
                found = r.dtype(stream)
                if found != dtype:
                    raise ReplayError(
                        f"{path}: stream {stream!r} has record layout {r.dtype_name(stream)!r} "
                        f"(itemsize {found.itemsize}, dtype CRC differs), not the layout this "
                        f"build writes: another schema"
                    )
                out[stream] = r.read(stream)
            return out, dict(r.attrs)
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
    parts: dict[str, list[Records]] = {s: [] for s in STREAMS}
    attrs: dict[str, Any] = {}
    for f in files:
        streams, a = _read_file(f)
        attrs = attrs or a
        for s, recs in streams.items():
            parts[s].append(recs)
    merged = {s: concat_records(parts[s], STREAMS[s]) for s in STREAMS}
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
    order = np.lexsort((sel["seq"], sel["ts_recv_ns"]))  # stable: receive time, then seq
    out: Records = sel[order]
    return out
