"""Bare cross-core wake-up for tick_to_order: pipe ping-pong between two processes pinned to
cores 0 and 1, blocking reads; one sample = RTT/2 (``perf_counter_ns``).

Usage: python -m tests.bench._tick_wake N OUT.npy   (N round trips after 1,000 warm-up)
The forks happen in this standalone process, never in the benchmark's own.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np

WARMUP = 1000


def _pong(r: int, w: int, n: int) -> None:
    os.sched_setaffinity(0, {1})
    for _ in range(n):
        os.read(r, 1)
        os.write(w, b"x")


def main(argv: list[str]) -> int:
    n, out = int(argv[0]), argv[1]
    total = n + WARMUP
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        gc.disable()
        _pong(a_r, b_w, total)
        os._exit(0)
    os.sched_setaffinity(0, {0})
    gc.disable()
    rtt = np.zeros(total, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(total):
        t0 = clock()
        os.write(a_w, b"x")
        os.read(b_r, 1)
        rtt[i] = clock() - t0
    os.waitpid(pid, 0)
    np.save(out, rtt[WARMUP:] // 2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
