"""``bitrader capture ls | info | export``: look inside HDF5 capture files.

Exit codes: 0 done, 2 bad arguments or a missing/corrupt file (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from procs.capture.store import CaptureError, CaptureReader, list_captures
from shm.records import Records, dtype_crc

EXIT_USAGE = 2


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
    for path in files:
        try:
            with CaptureReader(path) as r:
                first, last = _span(r)
                counts = " ".join(f"{s}={r.count(s)}" for s in r.streams)
                mark = "" if r.clean else "  (still open, or its writer was killed)"
        except CaptureError as e:
            print(f"{path.name:<44} {'?':>10}  unreadable: {e}", file=out)
            continue
        size = _human_bytes(path.stat().st_size)
        print(
            f"{path.name:<44} {size:>10}  {_iso(first):<28} {_iso(last):<28} {counts}{mark}",
            file=out,
        )
    return 0


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    with CaptureReader(args.file) as r:
        info: dict[str, Any] = {
            "file": str(r.path),
            "size_bytes": r.path.stat().st_size,
            "closed_cleanly": r.clean,
            "attrs": r.attrs,
            "streams": {},
        }
        for s in r.streams:
            dtype = r.dtype(s)
            entry: dict[str, Any] = {
                "dtype_name": r.dtype_name(s) or "(unregistered)",
                "dtype_crc": dtype_crc(dtype),
                "itemsize": dtype.itemsize,
                "records": r.count(s),
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
    if args.json:
        print(json.dumps(info, indent=2, default=str), file=out)
        return 0
    print(f"file: {info['file']} ({_human_bytes(info['size_bytes'])})", file=out)
    state = "yes" if r.clean else "no (still being written, or its writer was killed; SWMR read)"
    print(f"closed cleanly: {state}", file=out)
    for k, v in info["attrs"].items():
        print(f"attr {k}: {v}", file=out)
    for s, e in info["streams"].items():
        print(
            f"stream {s}: {e['dtype_name']} crc={e['dtype_crc']:#010x} records={e['records']}",
            file=out,
        )
        if "first_seq" in e:
            print(f"  seq {e['first_seq']} .. {e['last_seq']}", file=out)
        if "first_ts_recv_ns" in e:
            print(f"  ts_recv {e['first_ts_recv_utc']} .. {e['last_ts_recv_utc']}", file=out)
    return 0


def flat_columns(recs: Records) -> tuple[list[str], list[np.ndarray]]:
    """Flatten a record array into named 1-D columns (sub-array fields become name_0, name_1...)."""
    names: list[str] = []
    cols: list[np.ndarray] = []
    for name in recs.dtype.names or ():
        col = recs[name]
        if col.ndim == 1:
            names.append(name)
            cols.append(col)
        else:
            flat = col.reshape(col.shape[0], -1)
            names += [f"{name}_{i}" for i in range(flat.shape[1])]
            cols += [flat[:, i] for i in range(flat.shape[1])]
    return names, cols


def _write_csv(recs: Records, fh: TextIO) -> None:
    names, cols = flat_columns(recs)
    fh.write(",".join(names) + "\n")
    text = [c.astype(str) if c.dtype.kind in "iub" else np.char.mod("%.17g", c) for c in cols]
    for row in zip(*text, strict=True):
        fh.write(",".join(row) + "\n")


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    with CaptureReader(args.file) as r:
        if args.stream not in r.streams:
            raise CaptureError(f"{args.file}: no stream {args.stream!r}; streams: {r.streams}")
        recs = r.read(args.stream)
    target = args.out or str(Path(args.file).with_suffix("")) + f".{args.stream}.{args.format}"
    if args.format == "npy":
        np.save(target, recs, allow_pickle=False)
    elif target == "-":
        _write_csv(recs, out)
        return 0
    else:
        with open(target, "w", encoding="utf-8") as fh:
            _write_csv(recs, fh)
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
    p = sub.add_parser("export", help="one stream to CSV or .npy (exact dtype)")
    p.add_argument("file")
    p.add_argument("stream")
    p.add_argument("--format", choices=("csv", "npy"), default="csv")
    p.add_argument("--out", help="output path ('-' = stdout for csv)")
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
        print(f"bitrader capture {args.cmd}: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
