"""Replay a live run's trading steps: ``ExecutionProc`` stepped where the live one stepped.

The live journal's ``reads`` say, for every step in which live execution read signals while it
could trade, which signals it read (a seq range: one batch, as it polled them), the newest book
it had read by then, and its clock. This replay steps a fresh ``ExecutionProc`` (the live code,
on a simulated clock) at exactly those moments with exactly those records (the backtest's own
books and signals, which the parity check shows bit-identical to the live ones), and its venue
(``livevenue.LiveVenue``) answers each order with the live order's answers at their live times.
Each run of the live process (a start; ``reads.run_ms``) is a fresh ``ExecutionProc`` on the
same journal, its client ids from the same epoch: the same decisions give the same ids.

Left out on purpose: periodic reconciliation (the live run was in sync at every recorded step:
only steps that could trade are recorded), and what live execution read while it could not
trade. A recorded step whose records the capture does not hold (execution read past the end
of the capture, or before its start) is not replayed and is counted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry

from procs.backtest.config import BacktestConfig
from procs.backtest.livejournal import LiveRead, LiveRun
from procs.backtest.livevenue import LiveVenue
from procs.backtest.run import Feed, _intents, _NoPublisher
from procs.backtest.venue import SimClock
from procs.trading.config import ExecutionConfig
from procs.trading.engine import ExecutionProc
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics
from procs.trading.model import OrderStatus, VenueOrderUpdate
from shm.records import BOOK_V1, SIG_V1, Records

__all__ = ["FollowResult", "follow_live"]

NS: Final = 1_000_000_000
MS: Final = 1_000_000
STEP, WAKE, FUNDING = 0, 1, 2  # same-time order: the step the live process took, then the rest
NEVER_S: Final = 1e9  # the replay's reconcile interval and retry: only the start-up pass
_OPEN_STATUS: Final = {OrderStatus.ACKED: "NEW", OrderStatus.PART_FILLED: "PART_FILLED"}


@dataclass
class FollowResult:
    intents: list[dict[str, Any]]
    steps: int = 0  # recorded steps replayed
    outside: list[str] = field(default_factory=list)  # recorded steps the capture cannot replay
    outside_ns: list[int] = field(default_factory=list)  # their clocks
    unmatched_orders: int = 0  # orders the live run did not send
    runs: int = 0
    round_trip_ns: int = 0
    breaker: dict[str, int] = field(default_factory=dict)  # transitions journaled, each side

    def describe(self) -> dict[str, Any]:
        return {
            "steps_replayed": self.steps,
            "steps_outside_capture": len(self.outside),
            "outside": self.outside[:20],
            "runs": self.runs,
            "orders_without_live_twin": self.unmatched_orders,
            "median_live_round_trip_ns": self.round_trip_ns,
            "breaker_transitions": self.breaker,
        }


def follow_live(
    config: ExecutionConfig,
    bt: BacktestConfig,
    live: LiveRun,
    books: Records,
    sigs: Records,
    *,
    work_dir: Path,
) -> FollowResult:
    """Replay ``live``'s recorded steps over ``books`` and ``sigs`` (one signal per book, same
    ``seq``, in ring order) through fresh ``ExecutionProc``s; return the intents they made."""
    c = msgspec.structs.replace(
        config,
        reconcile_interval_s=NEVER_S,
        reconcile_retry_s=NEVER_S,  # the first pass is due this long after the start
        publish_events=False,
        journal=msgspec.structs.replace(config.journal, reads_flush_s=0.0),
    )
    return _Follow(c, bt, live, books, sigs, work_dir).run()


class _Follow:
    def __init__(
        self,
        config: ExecutionConfig,
        bt: BacktestConfig,
        live: LiveRun,
        books: Records,
        sigs: Records,
        work_dir: Path,
    ) -> None:
        self.c, self.bt, self.live = config, bt, live
        self.books, self.sigs, self.work = books, sigs, work_dir
        self.seq = books["seq"].astype(np.int64)
        if sigs.size != books.size or not np.array_equal(sigs["seq"], books["seq"]):
            raise ValueError("follow_live: one signal per book, in the books' order")
        self.loop = asyncio.new_event_loop()
        self.clock = SimClock(0)
        self.proc: ExecutionProc | None = None
        self.venue = LiveVenue(
            live,
            self.clock,
            positions=lambda: self._p().positions.snapshots(),
            balance=lambda: self._p().local_balance() or Decimal(0),
            open_orders=self._open_orders,
            unknown_after_s=config.venue.rest_timeout_s,
        )
        self.book_feed, self.sig_feed = Feed(BOOK_V1), Feed(SIG_V1)
        self.sym = {s.symbol_id: s.symbol for s in config.symbols}
        self.res = FollowResult([], round_trip_ns=self.venue.round_trip_ns)
        self.fed = 0  # books handed to execution so far (index into books)

    def _p(self) -> ExecutionProc:
        assert self.proc is not None
        return self.proc

    def _open_orders(self) -> list[VenueOrderUpdate]:
        out = []
        for o in self._p().tracker.open_orders():
            status = _OPEN_STATUS.get(o.status)
            if status is not None and o.order_id:
                r = o.request
                out.append(VenueOrderUpdate(
                    client_id=o.client_id, order_id=o.order_id, symbol=o.symbol, status=status,
                    filled_qty=o.filled_qty, avg_price=o.avg_price, fee=o.fee,
                    mtime_ms=o.mtime_ms, qty=r.qty, price=r.price, side=r.side,
                ))  # fmt: skip
        return out

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> FollowResult:
        try:
            self._replay()
            self.res.unmatched_orders = len(self.venue.unmatched)
        finally:
            self._stop()
            self.loop.close()
        return self.res

    def _replay(self) -> None:
        b = self.books
        t_ex = np.minimum(b["ts_event_ns"], b["ts_recv_ns"]).tolist()
        rows = b.tolist()
        sid_i = BOOK_V1.names.index("symbol_id") if BOOK_V1.names else 0
        # the recorded steps, and moments that are not steps: live breaker transitions (a
        # housekeeping then, so a time-driven trip happens when it did live) and funding
        todo: list[tuple[int, int, int, Any]] = []
        t_read = 0
        for n, r in enumerate(self.live.reads):  # in journal order (a wall clock may step back)
            t_read = max(t_read, r.ts_ns)
            todo.append((t_read, STEP, n, r))
        todo += [(t, WAKE, n, None) for n, (t, *_) in enumerate(self.live.breaker)]
        todo += [(f.ts_ns, FUNDING, n, f) for n, f in enumerate(self.live.funding)]
        todo.sort(key=lambda x: (x[0], x[1], x[2]))
        first = self.live.reads[0].ts_ns
        i, run_ms = 0, None
        for t, kind, _, what in todo:
            if kind != STEP and (self.proc is None or t < first):
                continue  # before the first recorded step: that run's start-up is not replayed
            if kind == STEP and what.run_ms != run_ms:
                run_ms = what.run_ms
                while i < len(t_ex) and t_ex[i] <= run_ms * MS:  # the venue's market so far
                    self._exchange_book(rows[i], sid_i, t_ex[i])
                    i += 1
                self._start(run_ms)
            while i < len(t_ex) and t_ex[i] <= t:
                self._advance(t_ex[i])
                self._exchange_book(rows[i], sid_i, t_ex[i])
                i += 1
            self._advance(t)
            if kind == STEP:
                self._step(what)
            elif kind == WAKE:
                self.clock.now = max(self.clock.now, t)
                self._p().housekeeping(self.clock.now)
                self._pump()
            else:
                self._p().on_funding(what)
        last = self.live.reads[-1].ts_ns
        self._advance(last + 10 * NS)  # answers still due come back
        self.res.intents = _intents(self._p())  # every run's: they share the journal
        live = sum(t >= first for t, *_ in self.live.breaker)  # the replay starts at `first`
        self.res.breaker = {"live": live, "backtest": self._p().journal.count("breaker_events")}

    def _exchange_book(self, row: tuple[Any, ...], sid_i: int, t: int) -> None:
        s = self.sym.get(row[sid_i])
        if s is not None:
            self.clock.now = max(self.clock.now, t)
            self.venue.on_exchange_book(s, row)

    def _start(self, run_ms: int) -> None:
        """A live process start: a fresh ExecutionProc on the journal, reconciled at once."""
        self._stop()
        self.clock.now = max(self.clock.now, run_ms * MS)  # its client id epoch: run_ms
        proc = ExecutionProc(
            self.c,
            sig=self.sig_feed,
            book=self.book_feed,
            venue=self.venue,
            journal=Journal.open(self.work / "journal.sqlite"),
            publisher=_NoPublisher(),
            killswitch=KillSwitch(FileStore(self.work / "killswitch.json"), 1e9),
            metrics=make_metrics(CollectorRegistry()),
            loop=self.loop,
            clock=self.clock,
        )
        self.proc = proc
        self.res.runs += 1
        self.loop.run_until_complete(proc.open())
        proc.step()
        self._pump()
        if not proc.reconciled:
            raise RuntimeError(f"replay: run {run_ms} did not reconcile at start")

    def _stop(self) -> None:
        if self.proc is not None and not self.loop.is_closed():
            self.loop.run_until_complete(self.proc.aclose())
            self.proc.journal.close()
            self.proc = None

    def _pump(self) -> None:
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _advance(self, t: int) -> None:
        """Venue answers due at or before ``t``, each at its own time; then stand at ``t``."""
        v = self.venue
        while (due := v.next_due()) is not None and due <= t:
            v.run_due(due)
            self._pump()
            if self.proc is not None:
                self.proc.step()  # housekeeping on time, as the live loop's idle steps do
                self._pump()
        self.clock.now = max(self.clock.now, t)

    def _step(self, r: LiveRead) -> None:
        lo_b = self.fed
        hi_b = int(np.searchsorted(self.seq, r.book_seq, side="right"))
        lo_s = int(np.searchsorted(self.seq, r.sig_first, side="left"))
        hi_s = int(np.searchsorted(self.seq, r.sig_last, side="right"))
        first, last = (int(self.seq[0]), int(self.seq[-1])) if self.seq.size else (1, 0)
        if not first <= r.sig_first <= r.sig_last <= last or not r.book_seq <= last:
            self.res.outside_ns.append(r.ts_ns)
            self.res.outside.append(
                f"run {r.run_ms} ts_ns {r.ts_ns}: signals {r.sig_first}..{r.sig_last}, "
                f"book {r.book_seq}"
            )
            return
        proc = self._p()
        batch = self.c.batch_max  # the live poll size
        while hi_b - lo_b > batch:  # books the live process read in earlier steps
            self.book_feed.put(self.books[lo_b : lo_b + batch])
            lo_b += batch
            proc.step()
        if hi_b > lo_b:
            self.book_feed.put(self.books[lo_b:hi_b])
        self.fed = max(self.fed, hi_b)
        self.sig_feed.put(self.sigs[lo_s:hi_s])
        self.clock.now = max(self.clock.now, r.ts_ns)  # the live step's clock
        proc.step()
        self.res.steps += 1
        self._pump()
