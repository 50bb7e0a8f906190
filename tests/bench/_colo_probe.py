"""Bench-only: ``procs.hotpath`` with every part of its pass stamped (``time.time_ns``).

Run instead of ``python -m procs.hotpath CONFIG`` (``_colo_ab --probe`` points a scratch copy's
supervisord.conf here); at exit the stamps go to ``$COLO_PROBE_OUT`` (a ``.npy`` of rows
``(kind, t_ns, n)``). Nothing in the product imports this; it patches classes in this process only.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

EV: list[tuple[int, int, int]] = []
KINDS = {
    "flush_queued": 0,
    "flush_start": 1,
    "flush_end": 2,
    "pass_queued": 3,
    "pass_start": 4,
    "pass_end": 5,
    "stage_start": 10,  # + stage index
    "stage_end": 20,
    "gc_start": 30,
    "gc_stop": 31,
    "service_start": 40,
    "service_end": 41,
    "books_start": 50,
    "books_end": 51,
    "sigs_start": 52,
    "sigs_end": 53,
    "hk_start": 54,
    "hk_end": 55,
    "intent_start": 56,
    "intent_end": 57,
    "place_start": 58,
    "place_end": 59,
    "frame": 60,
    "wake_send_start": 61,
    "wake_send_end": 62,
    "ingest_tick_start": 63,
    "ingest_tick_end": 64,
    "idle_start": 65,  # LoopRunner._on_idle (a turn of idle work), n: jobs run so far
    "idle_end": 66,
    "send_start": 67,  # the order's send task starts (the venue call; after the pass's tail)
    "release_start": 68,  # TaskRunner.release: the step's venue calls start (n: how many)
    "release_end": 69,
    "txn_start": 80,  # Journal._txn, n: rows deferred before it
    "txn_end": 81,  # n: rows written (deferred + its own)
    "ckpt_start": 82,  # Journal.checkpoint (the signed head file)
    "ckpt_end": 83,
    "append_start": 84,  # Journal._append (one row and its audit row)
    "append_end": 85,
    # a book's paper matching and what a fill it makes costs (86-99)
    "paper_record_start": 86,  # PaperVenueAdapter.on_record
    "paper_record_end": 87,
    "apply_start": 88,  # ExecutionProc.apply
    "apply_end": 89,
    "record_tr_start": 90,  # Journal.record_transition
    "record_tr_end": 91,
    "publish_pos_start": 92,  # ExecutionProc._publish_position
    "publish_pos_end": 93,
    "pnl_start": 94,  # ExecutionProc._update_pnl
    "pnl_end": 95,
    "paper_book_start": 96,  # PaperVenue.on_book (a book that may fill: the levels it reads)
    "paper_book_end": 97,
    "shrink_start": 98,  # PaperVenue.shrink_queues
    "shrink_end": 99,
    "has_fill_start": 100,  # Journal._has_fill
    "has_fill_end": 101,
    "log_rows_start": 102,  # Journal._log_rows
    "log_rows_end": 103,
    "levels_start": 104,  # RecordBook.levels (both sides; no longer on a fill's path, 6c102d5)
    "levels_end": 105,
    "tracker_update_start": 106,  # OrderTracker.on_venue_update
    "tracker_update_end": 107,
    "apply_fill_start": 108,  # PositionBook.apply_fill
    "apply_fill_end": 109,
    "publish_start": 110,  # SentAfterSend.publish
    "publish_end": 111,
    "emit_start": 112,  # ExecutionProc._emit (EventOutbox.emit once there is one)
    "emit_end": 113,
    "outbox_release_start": 114,  # EventOutbox.release: a step's events, sent as it ends
    "outbox_release_end": 115,
}


def _install() -> None:
    from procs import _looprun
    from procs.hotpath import proc as hp
    from procs.marketdata import stage as ing
    from procs.trading import engine

    now = time.time_ns
    ev = EV.append

    def wrap(cls: Any, name: str, k0: int, k1: int) -> None:
        orig = getattr(cls, name)

        def f(self: Any, *a: Any, **kw: Any) -> Any:
            ev((k0, now(), 0))
            r = orig(self, *a, **kw)
            ev((k1, now(), r if isinstance(r, int) else 0))
            return r

        setattr(cls, name, f)

    orig_want = ing.IngestProc._want_flush

    def want(self: Any) -> None:
        if self._loop is not None and not self._flush_due:
            ev((0, now(), 0))
        orig_want(self)

    ing.IngestProc._want_flush = want  # type: ignore[method-assign]
    wrap(ing.IngestProc, "_flush_soon", 1, 2)
    wrap(ing.IngestProc, "tick", 63, 64)

    orig_notify = _looprun.LoopRunner.notify

    def notify(self: Any) -> None:
        if not self._queued:
            ev((3, now(), 0))
        orig_notify(self)

    _looprun.LoopRunner.notify = notify  # type: ignore[method-assign]
    run_pass = "_run_pass" if hasattr(_looprun.LoopRunner, "_run_pass") else "_pass"
    wrap(_looprun.LoopRunner, run_pass, 4, 5)
    _install_idle_and_send(ev, now)

    def step(self: Any) -> int:
        n = 0
        for i, stage in enumerate(self._stages):
            ev((10 + i, now(), 0))
            k = stage.step()
            ev((20 + i, now(), k))
            n += k
        wakes = getattr(self, "_wakes", None)
        if wakes is not None:
            wakes.send()
        return n

    hp.HotPath.step = step  # type: ignore[method-assign]

    inline = getattr(hp, "InlineBooks", None)
    if inline is not None and hasattr(inline, "_measure"):
        orig_measure = inline._measure

        def measure(self: Any, t: int) -> None:
            orig_measure(self, t)
            ev((70, now(), int(self._on)))

        inline._measure = measure

    wrap(engine.ExecutionProc, "_on_books", 50, 51)
    wrap(engine.ExecutionProc, "_on_signals", 52, 53)
    wrap(engine.ExecutionProc, "housekeeping", 54, 55)
    wrap(engine.ExecutionProc, "place", 58, 59)

    from ipc import sockets

    wrap(sockets.WakeSender, "notify", 61, 62)

    from procs._runtime import Runtime
    from procs.trading.journal import Journal

    wrap(Runtime, "service", 40, 41)

    wrap(Journal, "record_intent", 56, 57)
    wrap(Journal, "checkpoint", 82, 83)
    wrap(Journal, "_append", 84, 85)
    _install_txn(Journal, ev, now)
    wrap(Journal, "record_transition", 90, 91)
    wrap(engine.ExecutionProc, "apply", 88, 89)
    wrap(engine.ExecutionProc, "_publish_position", 92, 93)
    wrap(engine.ExecutionProc, "_update_pnl", 94, 95)
    from procs.trading import paper, venue

    wrap(venue.PaperVenueAdapter, "on_record", 86, 87)
    wrap(paper.PaperVenue, "on_book", 96, 97)
    wrap(paper.PaperVenue, "shrink_queues", 98, 99)
    _install_fill_path(ev, now, wrap)

    _install_gc_and_dump(ev, now)


def _install_fill_path(ev: Any, now: Any, wrap: Any) -> None:
    from procs.trading import engine, journal, orders, paper, positions, sent

    wrap(journal.Journal, "_has_fill", 100, 101)
    wrap(journal.Journal, "_log_rows", 102, 103)
    wrap(paper.RecordBook, "levels", 104, 105)
    wrap(orders.OrderTracker, "on_venue_update", 106, 107)
    wrap(positions.PositionBook, "apply_fill", 108, 109)
    wrap(sent.SentAfterSend, "publish", 110, 111)
    from procs.trading import events

    if hasattr(events, "EventOutbox"):
        wrap(events.EventOutbox, "emit", 112, 113)
        wrap(events.EventOutbox, "release", 114, 115)
    else:
        wrap(engine.ExecutionProc, "_emit", 112, 113)


def _install_txn(journal: Any, ev: Any, now: Any) -> None:
    orig_txn = journal._txn

    def txn(self: Any, rows: Any, **kw: Any) -> Any:
        d = len(self._deferred)
        ev((80, now(), d))
        r = orig_txn(self, rows, **kw)
        ev((81, now(), d + len(rows)))
        return r

    journal._txn = txn


def _install_idle_and_send(ev: Any, now: Any) -> None:
    from procs import _looprun
    from procs.trading import driver

    if hasattr(_looprun.LoopRunner, "_on_idle"):
        orig_idle = _looprun.LoopRunner._on_idle

        def on_idle(self: Any) -> None:
            ev((65, now(), self.idle_deferred_total))
            orig_idle(self)
            ev((66, now(), self.idle_runs_total))

        _looprun.LoopRunner._on_idle = on_idle  # type: ignore[method-assign]

    orig_send = driver.OrderDriver.send

    async def send(self: Any, *a: Any, **kw: Any) -> Any:
        ev((67, now(), 0))
        return await orig_send(self, *a, **kw)

    driver.OrderDriver.send = send  # type: ignore[method-assign]

    from procs.trading import tasks

    if hasattr(tasks.TaskRunner, "release"):  # the step's calls start as it ends (i12-send)
        orig_release = tasks.TaskRunner.release

        def release(self: Any) -> None:
            n = len(self._held or ())
            if not n:
                return orig_release(self)
            ev((68, now(), n))
            orig_release(self)
            ev((69, now(), n))
            return None

        tasks.TaskRunner.release = release  # type: ignore[method-assign]


def _install_gc_and_dump(ev: Any, now: Any) -> None:
    def on_gc(phase: str, info: dict[str, int]) -> None:
        ev((30 if phase == "start" else 31, now(), info.get("generation", -1)))

    gc.callbacks.append(on_gc)

    out = os.environ.get("COLO_PROBE_OUT", f"/tmp/colo-probe-{os.getpid()}.npy")

    def dump() -> None:
        np.save(out, np.array(EV, dtype=np.int64).reshape(-1, 3))
        kinds = Counter(type(o).__name__ for o in gc.get_objects())
        Path(out).with_suffix(".gc.json").write_text(
            json.dumps({"tracked": sum(kinds.values()), "top": kinds.most_common(15)})
        )

    atexit.register(dump)


def main() -> int:
    _install()
    from procs.hotpath.proc import main as hot_main

    return hot_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
