"""Ring writer process for tests: ``python -m tests.helpers.ring_producer NAME``.

Creates a BENCH_V1 ring (stale-unlinking), prints ``ready``, then publishes paced batches whose
payload mirrors seq until ``--count`` records (0: until SIGTERM), then closes (unlinks), exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from shm.records import BENCH_V1
from shm.ring import RingSpec, RingWriter
from tests.helpers.ring_records import make_batch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--capacity", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--interval-s", type=float, default=0.001)
    ap.add_argument("--count", type=int, default=0)
    args = ap.parse_args(argv)
    stop = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    writer = RingWriter(RingSpec(name=args.name, dtype=BENCH_V1, capacity=args.capacity))
    print("ready", flush=True)
    try:
        while not stop and (args.count == 0 or writer.next_seq < args.count):
            n = args.batch if args.count == 0 else min(args.batch, args.count - writer.next_seq)
            writer.publish(make_batch(writer.next_seq, n))
            time.sleep(args.interval_s)  # paced producer: tests must not spin
    finally:
        writer.close()
    print(f"published={writer.next_seq}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
