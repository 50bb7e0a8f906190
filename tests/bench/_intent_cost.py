"""Bench-only: an order's journal cost in process, hot: ``record_intent``, then the flush that
writes its SENT row (and, since the intent log, the intent's row), on tmpfs or a disk.

    python -m tests.bench._intent_cost [TREE] [--dir DIR]
    (TREE: a ``git archive`` of another commit; DIR: where the journal goes, /dev/shm by default)

Prints p50 / p99 µs of each over 2,500 orders (after 500 warm-up ones).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    where = "/dev/shm"
    if "--dir" in argv:
        i = argv.index("--dir")
        where = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if argv:
        sys.path.insert(0, argv[0])
        os.chdir(argv[0])
    from procs.trading.journal import Journal
    from procs.trading.model import OrderStatus
    from procs.trading.orders import Order
    from tests.unit.procs.execution.helpers import req

    with tempfile.TemporaryDirectory(dir=where) as d:
        j = Journal.open(f"{d}/j.sqlite")
        intent, flush = [], []
        for i in range(3000):
            r = req(cid=f"c-{i}")
            t0 = time.perf_counter_ns()
            j.record_intent(r, i)
            t1 = time.perf_counter_ns()
            j.defer_order(
                Order(request=r, status=OrderStatus.SENT), OrderStatus.NEW_INTENT, "sent", i
            )
            j.flush()
            t2 = time.perf_counter_ns()
            intent.append(t1 - t0)
            flush.append(t2 - t1)
            if i % 250 == 0:
                j.merge_wal(every_s=0.0)
        j.close()

    def pct(a: list[int]) -> str:
        a = sorted(a[500:])
        return f"{statistics.median(a) / 1e3:.1f} / {a[int(0.99 * len(a))] / 1e3:.1f}"

    tree = argv[0] if argv else "."
    print(f"{tree} in {where}: intent p50/p99 {pct(intent)} us, flush {pct(flush)} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
