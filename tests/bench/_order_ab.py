"""Bench-only: the order path against itself with branch i12-order's cuts undone, in one process.

Machine noise on a shared host moves a process-level figure by more than a few µs per order, so
this alternates the two variants order by order in one process (``bench_stages``' execution
harness: paper venue, journal on tmpfs) and compares per block:

- "before": risk from OTHER_TREE's ``procs/trading/risk.py`` (e.g. a ``git archive`` of ``main``
  before the cuts), the intent's and orders' rows through the generic per-value conversion
  (``tests.helpers.journal_values``), SQLite's own WAL merge at 1,000 pages, a
  cancel request's row in a transaction of its own;
- "after": this tree as it is.

Each order: a signal that places a quote (timed: "order step"), the loop acks it, a flat signal
that cancels it (timed: "cancel step"), the loop confirms; as ``bench_stages`` lays them out.

    PYTHONPATH=. .venv/bin/python -m tests.bench._order_ab OTHER_TREE [--orders 300] [--blocks 10]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import procs.trading.journal as journal_module
from tests.bench import bench_stages
from tests.conftest import unique_ns
from tests.helpers.journal_values import intent_values, order_values

_INTENT, _ORDER = "_intent_row", "_order_row"  # journal.py's names for the row builders


def _load_risk(tree: Path) -> Any:
    spec = importlib.util.spec_from_file_location("risk_before", tree / "procs/trading/risk.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["risk_before"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def run(other: Path, orders: int, blocks: int) -> None:
    risk_before = _load_risk(other)
    with tempfile.TemporaryDirectory(dir=bench_stages.JOURNAL_FS) as d:
        ex = bench_stages._Exec(Path(d), unique_ns("oab"))
        p = ex.proc
        j = p.journal
        after: dict[str, Any] = {
            "risk": p.risk, "intent": getattr(journal_module, _INTENT),
            "order": getattr(journal_module, _ORDER), "merge": j.merge_wal,
            "defer": p.sent_later.defer_row, "auto": journal_module.WAL_BACKSTOP_PAGES,
        }  # fmt: skip
        before: dict[str, Any] = {
            "risk": risk_before.RiskEngine(p._c.risk, p._c.symbols),
            "intent": intent_values, "order": order_values,
            "merge": lambda every_s=0.0: (0, 0), "defer": j.record_order, "auto": 1000,
        }  # fmt: skip

        def use(v: dict[str, Any]) -> None:
            p.risk = v["risk"]
            setattr(journal_module, _INTENT, v["intent"])  # what record_intent calls
            setattr(journal_module, _ORDER, v["order"])  # what defer_order & co. call
            j.merge_wal = v["merge"]  # type: ignore[method-assign]
            p.sent_later.defer_row = v["defer"]  # type: ignore[method-assign]
            j._conn.execute(f"PRAGMA wal_autocheckpoint={v['auto']}").fetchone()

        def settle() -> None:
            for _ in range(50):
                ex.pump()
                if not p.tracker.open_orders():
                    return
                ex.put_sig(0.0, with_book=True)
                p.step()
            raise RuntimeError("the bench's quote was not cancelled")

        names = ("before", "after")
        order: dict[str, list[float]] = {n: [] for n in names}
        cancel: dict[str, list[float]] = {n: [] for n in names}
        clock = time.perf_counter_ns
        gc.collect()
        gc.disable()
        try:
            for b in range(blocks):
                t_order = {n: np.empty(orders, np.int64) for n in names}
                t_cancel = {n: np.empty(orders, np.int64) for n in names}
                for i in range(2 * orders):
                    name = names[(i + b) % 2]
                    use(before if name == "before" else after)
                    sent, cancels = (
                        p.counters["orders_sent_total"],
                        p.counters["cancels_sent_total"],
                    )
                    ex.put_sig(0.5, with_book=True)
                    t = clock()
                    p.step()
                    t_order[name][i // 2] = clock() - t
                    p.sent_later.flush()
                    ex.pump()  # sent and acknowledged
                    ex.put_sig(0.0, with_book=True)
                    t = clock()
                    p.step()
                    t_cancel[name][i // 2] = clock() - t
                    assert p.counters["orders_sent_total"] == sent + 1
                    assert p.counters["cancels_sent_total"] == cancels + 1
                    settle()
                for n in names:
                    order[n].append(float(np.median(t_order[n])))
                    cancel[n].append(float(np.median(t_cancel[n])))
        finally:
            gc.enable()
            use(after)
            ex.close()
    for label, got in (("order step", order), ("cancel step", cancel)):
        diff = np.array(got["before"]) - np.array(got["after"])
        print(
            f"{label}: p50 before {np.median(got['before']) / 1e3:.1f} us, after "
            f"{np.median(got['after']) / 1e3:.1f} us; before - after per block "
            f"{np.round(diff / 1e3, 1).tolist()} ({(diff > 0).sum()} of {blocks} > 0)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("other", type=Path, help="a tree whose procs/trading/risk.py is 'before'")
    ap.add_argument("--orders", type=int, default=300, help="orders per variant and block")
    ap.add_argument("--blocks", type=int, default=10)
    args = ap.parse_args(argv)
    run(args.other, args.orders, args.blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
