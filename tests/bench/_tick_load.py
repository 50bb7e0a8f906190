"""Background load for tick_to_order's loaded variant; each kind runs as its own process.

Usage:
  python -m tests.bench._tick_load scrape PORT [PORT ...]   GET every /metrics every 100 ms
  python -m tests.bench._tick_load gc                       GC-heavy allocation bursts
  python -m tests.bench._tick_load write DIR RATE           capture-like HDF5 appends of
                                                            BOOK_V1 rows at RATE rows/s
Runs until SIGTERM; prints one JSON line of what it did on the way out.

``gc``: every 50 ms, build and drop 5,000 small cyclic objects (dicts holding lists that point
back at them), so the cyclic collector runs often: bursty CPU, the way a Python sidecar (a
dashboard, a notebook) loads a host. Each kind reports its CPU seconds (``cpu_s``).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

import numpy as np

PERIOD_S = 0.1
GC_PERIOD_S = 0.05
GC_OBJECTS = 5_000


class _Stop:
    def __init__(self) -> None:
        self.stop = False
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True


def scrape(ports: list[int], flag: _Stop) -> dict[str, int]:
    ok = err = 0
    while not flag.stop:
        t0 = time.monotonic()
        for p in ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=1.0) as r:
                    r.read()
                ok += 1
            except OSError:
                err += 1
        time.sleep(max(0.0, PERIOD_S - (time.monotonic() - t0)))  # the scrape interval
    return {"scrapes": ok, "errors": err}


def churn(flag: _Stop) -> dict[str, int]:
    bursts = 0
    while not flag.stop:
        t0 = time.monotonic()
        objs = []
        for i in range(GC_OBJECTS):
            d: dict[str, object] = {"i": i, "s": str(i)}
            d["self"] = [d, (i, i + 1)]
            objs.append(d)
        del objs
        bursts += 1
        time.sleep(max(0.0, GC_PERIOD_S - (time.monotonic() - t0)))  # the burst interval
    return {"bursts": bursts}


def write(directory: Path, rate: float, flag: _Stop) -> dict[str, int]:
    from procs.tickstore.store import CaptureWriter
    from shm.records import BOOK_V1

    batch = np.zeros(max(1, int(rate * PERIOD_S)), BOOK_V1)
    rows = 0
    with CaptureWriter(directory, streams={"md.book": BOOK_V1}) as w:
        while not flag.stop:
            t0 = time.monotonic()
            batch["ts_recv_ns"] = time.time_ns()
            w.append("md.book", batch)
            w.maybe_flush()
            rows += batch.size
            time.sleep(max(0.0, PERIOD_S - (time.monotonic() - t0)))  # the append interval
    return {"rows": rows}


def main(argv: list[str]) -> int:
    flag = _Stop()
    if argv[0] == "scrape":
        done = scrape([int(p) for p in argv[1:]], flag)
    elif argv[0] == "gc":
        done = churn(flag)
    elif argv[0] == "write":
        done = write(Path(argv[1]), float(argv[2]), flag)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps({"kind": argv[0], "cpu_s": time.process_time(), **done}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
