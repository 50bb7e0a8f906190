"""Ring reader process for tests: ``python -m tests.helpers.ring_consumer NAME N``.

Attaches (BENCH_V1, live edge), prints ``ready``, reads until delivered + dropped >= N with a
BlockWaiter, then prints one JSON line: ordered, torn, delivered, dropped, gaps, reattach_total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from shm.records import BENCH_V1
from shm.ring import attach_reader
from shm.waiters import BlockWaiter
from tests.helpers.ring_records import torn_count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("n", type=int)
    ap.add_argument("--timeout-s", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args(argv)
    reader = attach_reader(args.name, BENCH_V1, timeout_s=5.0)
    print("ready", flush=True)
    waiter = BlockWaiter()
    delivered = torn = gaps = 0
    ordered = True
    last, reattached = reader.cursor - 1, 0  # seq == ring position in these tests
    deadline = time.monotonic() + args.timeout_s
    while delivered + reader.dropped_total < args.n and time.monotonic() < deadline:
        batch = reader.poll(args.batch)
        if batch.size == 0:
            waiter.idle()
            continue
        waiter.reset()
        if reader.reattach_total != reattached:  # a restarted writer numbers from 0 again
            reattached, last = reader.reattach_total, -1
        seq = batch["seq"]
        steps = np.diff(seq, prepend=last)
        ordered = ordered and bool(np.all(steps > 0))
        gaps += int(np.sum(steps - 1))
        last = int(seq[-1])
        torn += torn_count(batch)
        delivered += int(batch.size)
    summary = {
        "ordered": ordered,
        "torn": torn,
        "delivered": delivered,
        "dropped": reader.dropped_total,
        "gaps": gaps,
        "reattach_total": reader.reattach_total,
    }
    reader.close()
    print(json.dumps(summary), flush=True)
    return 0 if delivered + summary["dropped"] >= args.n else 1


if __name__ == "__main__":
    sys.exit(main())
