"""Queries over a directory of rotated capture files: by stream, symbol and time range.

``query`` opens each file, skips those whose time span misses the range (two single-value
reads), binary-searches the time column of the others (``CaptureReader.read_range``) and reads
only the rows in range. ``flat_columns`` turns records into named 1-D columns (book levels
``bid_px_0 .. bid_px_14``, unused levels NaN, text decoded); ``to_frame`` makes them a pandas
DataFrame, one row per record (pandas is the optional ``analysis`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from procs.tickstore import concat_records
from procs.tickstore.store import CaptureError, CaptureReader, list_captures
from shm.records import Dtype, Records

if TYPE_CHECKING:
    import pandas as pd

Column = npt.NDArray[Any]

# level fields and the count that says how many of their entries are real
_LEVEL_COUNTS = {"bid_px": "n_bids", "bid_qty": "n_bids", "ask_px": "n_asks", "ask_qty": "n_asks"}


def capture_files(source: str | Path | Sequence[Path]) -> list[Path]:
    """Return the capture files of a directory (oldest first), a single file, or a list."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return list_captures(path)
        if not path.exists():
            raise CaptureError(f"{path}: no such file or directory")
        return [path]
    return [Path(p) for p in source]


def _upgrade(recs: Records, dtype: Dtype) -> Records:
    """Copy ``recs`` into ``dtype`` field by field (an older layout of the same stream)."""
    if recs.dtype == dtype:
        return recs
    out: Records = np.zeros(recs.size, dtype)
    names = set(recs.dtype.names or ())
    for name in dtype.names or ():
        if name in names:
            out[name] = recs[name]
        elif name == "symbol_id":
            out[name] = -1
    return out


def _by_text_symbol(recs: Records, symbols: Sequence[str] | None) -> Records:
    """Keep the records whose text ``symbol`` is one of ``symbols`` (orders, every layout)."""
    if symbols is None:
        return recs
    if "symbol" not in (recs.dtype.names or ()):
        raise CaptureError(f"records of {recs.dtype} carry no symbol")
    want = np.array([s.encode() for s in symbols], dtype=recs.dtype["symbol"])
    kept: Records = recs[np.isin(recs["symbol"], want)]
    return kept


def query(
    source: str | Path | Sequence[Path],
    stream: str,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    symbols: Sequence[str] | None = None,
) -> Records:
    """Return ``stream``'s records with ``start_ns <= time < end_ns`` (each bound optional) of
    the given symbols, over every file of ``source``, in file order. Files holding an older
    layout of the stream are converted field by field to the newest file's layout.
    """
    parts: list[Records] = []
    empty: Records = np.zeros(0, np.dtype([("seq", "<i8")]))
    for path in capture_files(source):
        with CaptureReader(path) as r:
            if stream not in r.streams:
                continue
            empty = np.zeros(0, r.dtype(stream))  # the answer's layout when nothing is in range
            span = r.span(stream)
            if span is None:
                continue
            if (end_ns is not None and span[0] >= end_ns) or (
                start_ns is not None and span[1] < start_ns
            ):
                continue
            names = r.dtype(stream).names or ()
            by_id = symbols is not None and "symbol_id" in names and "symbol" not in names
            ids = [i for i, s in enumerate(r.symbols) if s in (symbols or ())] if by_id else None
            recs = r.read_range(stream, start_ns, end_ns, ids)
            if not by_id:
                recs = _by_text_symbol(recs, symbols)
            parts.append(recs)
    if not parts:
        return empty
    dtype = parts[-1].dtype
    return concat_records([_upgrade(p, dtype) for p in parts], dtype)


def _text(col: Column) -> Column:
    out: Column = np.array([b.decode("utf-8", "replace") for b in col.tolist()], dtype=object)
    return out


def flat_columns(
    recs: Records, symbols: Sequence[str] | None = None
) -> tuple[list[str], list[Column]]:
    """Flatten records into named 1-D columns: sub-array fields become ``name_0, name_1 ...``;
    book levels at or past ``n_bids``/``n_asks`` are NaN; text fields are ``str`` objects.
    With ``symbols`` (a file's symbol map) a ``symbol`` column follows ``symbol_id``.
    """
    names: list[str] = []
    cols: list[Column] = []
    fields = recs.dtype.names or ()
    for name in fields:
        col = recs[name]
        if col.ndim == 1:
            names.append(name)
            cols.append(_text(col) if col.dtype.kind == "S" else col)
            if name == "symbol_id" and symbols is not None and "symbol" not in fields:
                table = np.array([*symbols, ""], dtype=object)  # -1 (unknown) -> ""
                ids = col.astype(np.int64)
                names.append("symbol")
                cols.append(table[np.where((ids >= 0) & (ids < len(symbols)), ids, len(symbols))])
            continue
        flat = col.reshape(col.shape[0], -1)
        count = _LEVEL_COUNTS.get(name)
        if count in fields and flat.dtype.kind == "f":
            used = np.arange(flat.shape[1])[None, :] < recs[count][:, None]
            flat = np.where(used, flat, np.nan)
        names += [f"{name}_{i}" for i in range(flat.shape[1])]
        cols += [flat[:, i] for i in range(flat.shape[1])]
    return names, cols


def to_frame(recs: Records, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Return a pandas DataFrame, one row per record, book levels as columns (``bid_px_0``...).

    With ``symbols`` (a file's symbol map) a ``symbol`` column names each ``symbol_id``.
    Needs pandas (``pip install 'bitrader[analysis]'``).
    """
    try:
        import pandas as pd
    except ImportError:
        raise CaptureError("to_frame needs pandas: pip install 'bitrader[analysis]'") from None
    names, cols = flat_columns(recs, symbols)
    return pd.DataFrame(dict(zip(names, cols, strict=True)))


def symbol_map(source: str | Path | Sequence[Path]) -> list[str]:
    """Return the symbol map of the newest file of ``source`` (``[]`` when there is none)."""
    files = capture_files(source)
    if not files:
        return []
    with CaptureReader(files[-1]) as r:
        return r.symbols


def read_frame(
    source: str | Path,
    stream: str,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    symbols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``query`` then ``to_frame``, naming symbols from the newest file's symbol map."""
    files = capture_files(source)
    recs = query(files, stream, start_ns=start_ns, end_ns=end_ns, symbols=symbols)
    return to_frame(recs, symbol_map(files))


__all__ = [
    "capture_files",
    "flat_columns",
    "query",
    "read_frame",
    "symbol_map",
    "to_frame",
]
