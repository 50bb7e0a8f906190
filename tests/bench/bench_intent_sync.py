"""When an order's intent is synced (``[execution.journal] intent_sync``), measured on the disk
the demo's run directory is on (``run/``), not tmpfs: ``Journal.record_intent`` as an order pays
it, with ``after_send`` (the line written; the log's thread syncs it) against ``before_send``
(the line written and fdatasync'd before the call returns), in the same run.

One order every 2 ms (a steady flow; a sync has finished before the next order), the two modes
alternated in blocks, the first orders of each journal not counted. Rows:

- ``record_intent p50`` / ``p99``, after_send against before_send;
- ``sync window p50`` / ``p99`` (info): after_send's line written → on the disk, against
  before_send's ``record_intent`` (which holds one sync): how much longer the line waits to be
  durable than an inline sync takes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from procs.group.supervise import ROOT
from procs.trading.intent_log import Sync
from procs.trading.journal import Journal
from tests.bench._common import Result, percentiles_us
from tests.unit.procs.execution.helpers import req

GAP_S = 0.002
WARMUP = 20


def _block(where: Path, sync: Sync, n: int, first: int) -> tuple[list[int], list[int]]:
    """``n`` orders' record_intent times (ns) and, for after_send, the sync windows (ns)."""
    j = Journal.open(where / f"j-{sync}-{first}.sqlite", intent_sync=sync)
    log = j.intent_log
    assert log is not None
    took: list[int] = []
    windows: list[int] = []
    try:
        for i in range(first, first + n + WARMUP):
            r = req(cid=f"b-{i}")
            t0 = time.perf_counter_ns()
            assert j.record_intent(r, i)
            took.append(time.perf_counter_ns() - t0)
            time.sleep(GAP_S)
            if i % 50 == 0:
                j.merge_wal(every_s=0.0)  # as housekeeping does: the log emptied
            if i == first + WARMUP - 1:
                log.drain_sync_lags()  # the warm-up's
        assert log.wait_synced(10.0)
        windows = log.drain_sync_lags()
    finally:
        j.close()
    return took[WARMUP:], windows


def run(quick: bool = False) -> list[Result]:
    blocks, per_block = (2, 100) if quick else (4, 250)
    run_dir = ROOT / "run"
    run_dir.mkdir(exist_ok=True)
    after: list[int] = []
    before: list[int] = []
    windows: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-intent-sync-", dir=run_dir) as d:
        for b in range(blocks):
            modes: tuple[Sync, Sync] = (
                ("after_send", "before_send") if b % 2 == 0 else ("before_send", "after_send")
            )
            for sync in modes:
                took, win = _block(Path(d), sync, per_block, b * 10_000)
                (after if sync == "after_send" else before).extend(took)
                windows.extend(win)
    a50, a99 = percentiles_us(np.asarray(after), (50, 99))
    b50, b99 = percentiles_us(np.asarray(before), (50, 99))
    w50, w99 = percentiles_us(np.asarray(windows), (50, 99))
    base50, base99 = "record_intent p50, before_send", "record_intent p99, before_send"
    return [
        Result("intent_sync", "record_intent p50, after_send", a50, "us", base50, b50),
        Result("intent_sync", "record_intent p99, after_send", a99, "us", base99, b99),
        Result("intent_sync", "sync window p50, after_send (info)", w50, "us", base50, b50),
        Result("intent_sync", "sync window p99, after_send (info)", w99, "us", base99, b99),
    ]
