"""Bench-only: what a frame leaves for the loop after it, (b)'s compute in one process.

A frame that places an order leaves work on the loop: the order's send task (the paper venue's
matching), its venue answer, the journal rows and events written after the step. In
procs.hotpath a frame arriving meanwhile waits for it; in baseline (b) it waits too, unseen (its
stamp is taken when it reads the frame). This replays recorded frames (``_colo_ab prep``'s
``frames.msgpack``, with its ``tick_to_order.toml``) back to back through ``_tick_chain.Decider``
(features, model, ``ExecutionProc.step`` with the paper venue, journal on tmpfs), runs the
loop's ready callbacks after each frame (timed: "after"), then writes the deferred journal rows
as hotpath's idle job does (timed: "idle"), and prints per-frame figures over the last three of
four passes over the frames (the first warms up). Run it in each tree to compare:

    cd TREE && PYTHONPATH=TREE REPO/.venv/bin/python REPO/tests/bench/_after_frame.py CFG_DIR LABEL

(REPO: this checkout; TREE: the tree under test, e.g. a ``git archive`` with the built
extensions copied in, as ``_colo_ab`` makes them).

The order count moves between runs (the strategy's volatility estimate reads the wall clock).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.bench._tick_asyncio import UserClient, load_frames
from tests.bench._tick_chain import JOURNAL_FS, Decider, execution_config


def main(cfg_dir: Path, label: str) -> None:
    frames = load_frames(cfg_dir / "frames.msgpack")
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="after", dir=JOURNAL_FS) as tmp:
        cfg = execution_config((cfg_dir / "tick_to_order.toml").read_text(), Path(tmp))
        d = Decider(cfg, loop)
        loop.run_until_complete(d.open())
        sent = d.proc.sent_later
        at_idle = hasattr(sent, "flush_at_idle")  # trees before the idle job: a loop callback
        if at_idle:
            sent.flush_at_idle()
        flush = sent.flush
        sent.flush = lambda: None  # type: ignore[method-assign]  # Decider.decide's own flush
        user = UserClient(d)
        own, after, idle = [], [], []
        gc.disable()
        try:
            for rep in range(4):
                for i, (_, raw) in enumerate(frames):
                    t0 = time.perf_counter_ns()
                    user.on_message(raw, time.time_ns())
                    t1 = time.perf_counter_ns()
                    d.pump()
                    t2 = time.perf_counter_ns()
                    if sent.due if at_idle else bool(sent):
                        flush()
                    t3 = time.perf_counter_ns()
                    if rep:
                        own.append(t1 - t0)
                        after.append(t2 - t1)
                        idle.append(t3 - t2)
                    if i % 500 == 0:
                        gc.collect(0)
        finally:
            gc.enable()
        a, b, c = (np.asarray(x, np.float64) / 1e3 for x in (own, after, idle))
        print(
            f"{label}: frame p50 {np.percentile(a, 50):.0f} us | after it: mean {b.mean():.1f}"
            f" p99 {np.percentile(b, 99):.0f} max {b.max():.0f} | idle flush mean {c.mean():.1f}"
            f" | per frame {(a + b + c).mean():.1f} us | orders"
            f" {d.proc.counters['orders_sent_total']}"
        )
        loop.run_until_complete(d.aclose())
        d.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
