"""``bitrader capture ls | info | export``: look inside HDF5 capture files.

``export`` takes a file or a directory of rotated files, selects by ``--symbol`` and
``--start``/``--end`` (binary search on the time column: only the rows in range are read), and
writes CSV (shortest round-trip floats, unused book levels empty), Parquet (``bitrader[analysis]``)
or ``.npy`` (the exact records), by default into the current directory.

Exit codes: 0 done, 2 bad arguments, 78 a missing, truncated or corrupt capture (one line on
stderr each, no traceback; ``ls`` lists every other file first).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from procs._config import EXIT_CONFIG
from procs.tickstore.query import Column, capture_files, flat_columns, query, symbol_map
from procs.tickstore.store import CaptureError, CaptureReader, list_captures
from shm.records import Records, dtype_crc

EXIT_USAGE = 2
EXIT_BAD_FILE = EXIT_CONFIG  # 78: the input cannot be used, as for a bad configuration


def _iso(ns: int | None) -> str:
    if ns is None:
        return "-"
    secs, rem = divmod(int(ns), 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rem // 1000:06d}Z"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _stamps(r: CaptureReader, stream: str, field: str) -> tuple[int | None, int | None]:
    n = r.count(stream)
    if n == 0 or field not in (r.dtype(stream).names or ()):
        return None, None
    first, last = r.read(stream, 0, 1), r.read(stream, n - 1, n)
    return int(first[field][0]), int(last[field][0])


def _span(r: CaptureReader) -> tuple[int | None, int | None]:
    firsts, lasts = [], []
    for s in r.streams:
        a, b = _stamps(r, s, "ts_recv_ns")
        if a and b:  # 0 = no tick behind the record (e.g. an order event from the venue)
            firsts.append(a)
            lasts.append(b)
    return (min(firsts), max(lasts)) if firsts else (None, None)


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        raise CaptureError(f"{directory}: no such directory")
    files = list_captures(directory)
    if not files:
        print(f"no capture files in {directory}", file=out)
        return 0
    print(
        f"{'file':<44} {'size':>10}  {'first ts_recv':<28} {'last ts_recv':<28} records", file=out
    )
    bad = 0
    for path in files:
        size = _human_bytes(path.stat().st_size)
        try:
            with CaptureReader(path) as r:
                first, last = _span(r)
                counts = " ".join(f"{s}={r.count(s)}" for s in r.streams)
                lost = int(r.gaps()["lost"].sum())
                mark = "" if r.clean else "  (still open, or its writer was killed)"
                mark += f"  lost={lost} (see info)" if lost else ""
        except (CaptureError, OSError, RuntimeError, KeyError) as e:
            bad += 1
            print(f"{path.name:<44} {size:>10}  unreadable: {e}", file=out)
            continue
        print(
            f"{path.name:<44} {size:>10}  {_iso(first):<28} {_iso(last):<28} {counts}{mark}",
            file=out,
        )
    if bad:
        print(f"bitrader capture ls: {bad} unreadable file(s) in {directory}", file=sys.stderr)
        return EXIT_BAD_FILE
    return 0


def _info(r: CaptureReader) -> dict[str, Any]:
    info: dict[str, Any] = {
        "file": str(r.path),
        "size_bytes": r.path.stat().st_size,
        "closed_cleanly": r.clean,
        "attrs": r.attrs,
        "symbols": r.symbols,
        "streams": {},
    }
    for s in r.streams:
        dtype = r.dtype(s)
        entry: dict[str, Any] = {
            "dtype_name": r.dtype_name(s) or "(unregistered)",
            "dtype_crc": dtype_crc(dtype),
            "itemsize": dtype.itemsize,
            "records": r.count(s),
            "time_field": r.time_field(s),
        }
        for field in ("seq", "ts_event_ns", "ts_recv_ns"):
            first, last = _stamps(r, s, field)
            if first is not None:
                entry[f"first_{field}"] = first
                entry[f"last_{field}"] = last
        if "first_ts_recv_ns" in entry:
            entry["first_ts_recv_utc"] = _iso(entry["first_ts_recv_ns"])
            entry["last_ts_recv_utc"] = _iso(entry["last_ts_recv_ns"])
        info["streams"][s] = entry
    lost: Counter[str] = Counter()
    for g in r.gaps().tolist():
        lost[f"{g[4].decode()} {g[5].decode()}"] += int(g[3])
    info["lost_records"] = dict(lost)
    return info


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    with CaptureReader(args.file) as r:
        info = _info(r)
    if args.json:
        print(json.dumps(info, indent=2, default=str), file=out)
        return 0
    print(f"file: {info['file']} ({_human_bytes(info['size_bytes'])})", file=out)
    state = "yes" if r.clean else "no (still being written, or its writer was killed; SWMR read)"
    print(f"closed cleanly: {state}", file=out)
    for k, v in info["attrs"].items():
        print(f"attr {k}: {v}", file=out)
    print("symbols: " + " ".join(f"{i}={s}" for i, s in enumerate(info["symbols"])), file=out)
    for s, e in info["streams"].items():
        print(
            f"stream {s}: {e['dtype_name']} crc={e['dtype_crc']:#010x} records={e['records']}",
            file=out,
        )
        if "first_seq" in e:
            print(f"  seq {e['first_seq']} .. {e['last_seq']}", file=out)
        if "first_ts_recv_ns" in e:
            print(f"  ts_recv {e['first_ts_recv_utc']} .. {e['last_ts_recv_utc']}", file=out)
    for key, n in info["lost_records"].items():
        print(f"lost {key}: {n} records", file=out)
    return 0


def _cell(col: Column) -> list[str]:
    """One column as CSV text: ints as they are, floats in the shortest text that reads back to
    the same value (numpy's repr: float32 columns shortest as float32), NaN empty, text as is.
    """
    kind = col.dtype.kind
    if kind == "f":
        text: list[str] = np.where(np.isnan(col), "", col.astype(str)).tolist()
        return text
    return [str(v) for v in col.tolist()]


def write_csv(recs: Records, fh: TextIO, symbols: list[str] | None = None) -> None:
    """Write records as CSV: one header row, one row per record (``flat_columns`` layout)."""
    names, cols = flat_columns(recs, symbols)
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(names)
    w.writerows(zip(*(_cell(c) for c in cols), strict=True))


def write_parquet(recs: Records, target: str, meta: dict[str, str]) -> None:
    """Write records as Parquet (pyarrow: the ``analysis`` extra); ``meta`` goes in the schema."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise CaptureError("Parquet needs pyarrow: pip install 'bitrader[analysis]'") from None
    names, cols = flat_columns(recs, json.loads(meta.get("symbols", "null")))
    arrays = [pa.array(c.tolist() if c.dtype == object else c) for c in cols]
    table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)
    pq.write_table(table, target)


def parse_time(text: str | None) -> int | None:
    """Return ns since the epoch from an integer (ns) or an ISO-8601 time (naive = UTC)."""
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CaptureError(
            f"not a time: {text!r} (ISO-8601, e.g. 2026-01-01T10:00Z, or ns)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    start_ns, end_ns = parse_time(args.start), parse_time(args.end)
    files = capture_files(args.source)
    if not files:
        raise CaptureError(f"{args.source}: no capture files")
    known = set()
    for p in files:
        with CaptureReader(p) as r:
            known |= set(r.streams)
    if args.stream not in known:
        raise CaptureError(f"{args.source}: no stream {args.stream!r}; streams: {sorted(known)}")
    recs = query(files, args.stream, start_ns=start_ns, end_ns=end_ns, symbols=args.symbol)
    symbols = symbol_map(files)
    stem = Path(args.source).name.removesuffix(".h5")
    target = args.out or f"{stem}.{args.stream}.{args.format}"  # relative: the current dir
    if args.format == "npy":
        np.save(target, recs, allow_pickle=False)
    elif args.format == "parquet":
        meta = {"stream": args.stream, "symbols": json.dumps(symbols), "source": str(args.source)}
        write_parquet(recs, target, meta)
    elif target == "-":
        write_csv(recs, out, symbols)
        return 0
    else:
        with open(target, "w", encoding="utf-8", newline="") as fh:
            write_csv(recs, fh, symbols)
    print(f"wrote {recs.size} records of {args.stream} to {target}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bitrader capture", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ls", help="capture files in a directory: size, time span, records")
    p.add_argument("dir", nargs="?", default=".")
    p = sub.add_parser("info", help="attributes, streams, dtypes, counts, first/last stamps")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "export", help="one stream, by symbol and time range, to CSV, Parquet or .npy"
    )
    p.add_argument("source", help="a capture file, or a directory of rotated capture files")
    p.add_argument("stream", help="md.book, md.trade, feat, sig or orders")
    p.add_argument("--format", choices=("csv", "parquet", "npy"), default="csv")
    p.add_argument("--symbol", action="append", help="keep this symbol (repeatable)")
    p.add_argument("--start", help="from this time on (ISO-8601, naive = UTC, or ns)")
    p.add_argument("--end", help="before this time (ISO-8601, naive = UTC, or ns)")
    p.add_argument(
        "--out", help="output path (default: SOURCE.STREAM.FORMAT here; '-' = stdout for csv)"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run ``bitrader capture``; return the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage message already
        return int(e.code or 0)
    handler = {"ls": cmd_ls, "info": cmd_info, "export": cmd_export}[args.cmd]
    try:
        return handler(args, sys.stdout)
    except (CaptureError, KeyError, OSError, RuntimeError, ValueError) as e:  # h5py's errors
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        where = str(getattr(args, "file", None) or getattr(args, "source", None) or args.dir)
        if not msg.startswith(where):
            msg = f"{where}: {msg}"
        print(f"bitrader capture {args.cmd}: {msg}", file=sys.stderr)
        return EXIT_BAD_FILE


if __name__ == "__main__":
    sys.exit(main())
