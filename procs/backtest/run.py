"""The backtest run: captures replayed in event time through the live execution process.

``ExecutionProc`` itself trades: its strategy, risk checks, breaker, order state machine,
journal, positions and PnL, stepped on a simulated clock. Its rings are replaced by
in-process feeds, its journal file lives in ``work_dir`` and its venue is ``BacktestVenue``
(the shared matcher, with latency). One merged timeline: the venue's view of the market
(``ts_event_ns``), each signal when execution would read it (the sig's publish stamp), venue
answers when their latency has passed, and funding settlements. Nothing reads a wall clock:
the same inputs give the same outputs.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np
from prometheus_client import CollectorRegistry

from procs.backtest.config import BacktestConfig
from procs.backtest.latency import LatencyModel
from procs.backtest.venue import BacktestVenue, SimClock
from procs.matching.engine import FillReport
from procs.trading.config import ExecutionConfig
from procs.trading.engine import ExecutionProc
from procs.trading.journal import Journal
from procs.trading.killswitch import FileStore, KillSwitch
from procs.trading.metrics import make_metrics
from shm.records import BOOK_V1, SIG_V1, Records

__all__ = ["Feed", "RunResult", "run_execution", "scratch_dir"]

log = logging.getLogger(__name__)

NS: Final = 1_000_000_000
EX_TRADE, EX_BOOK, SIG = 0, 1, 2  # same-time order: a trade, then the book after it, then us
PUMP_PASSES: Final = 9  # event-loop passes per pump (_Replay.pump)


def scratch_dir() -> str | None:
    """Where the run's journal goes: tmpfs when there is one (the journal fsyncs each intent,
    which costs nothing there), else the system's temporary directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


class Feed:
    """A ring stand-in: ``poll`` returns what the replay put in since the last poll."""

    dropped_total = 0
    lag_records = 0

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self._empty: Records = np.zeros(0, dtype=dtype)
        self._next: Records = self._empty

    def put(self, records: Records) -> None:
        self._next = records

    def poll(self, max_records: int) -> Records:
        out, self._next = self._next[:max_records], self._empty
        return out

    def close(self) -> None:
        """Nothing to release."""


class _NoIoSelector(selectors.SelectSelector):
    """The replay's event loop has no sockets (the venue is in-process): a poll for I/O finds
    none without a system call, and a wait is a sleep. Nine passes per pump, each polling,
    made the epoll call ~4 % of a backtest."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("the backtest's event loop would wait for I/O that cannot come")
        if timeout > 0:
            time.sleep(timeout)  # a timer (a venue call's timeout): nothing else can wake us
        return []


class _NoPublisher:
    def send(self, topic: bytes, payload: bytes) -> bool:
        return True


@dataclass
class RunResult:
    """What the run produced, for the report and the parity checks."""

    proc: ExecutionProc
    venue: BacktestVenue
    fills: list[FillReport]
    funding: list[tuple[int, str, Decimal]]
    equity: list[tuple[int, Decimal, dict[str, Decimal]]]  # (ts, net pnl, positions)
    intents: list[dict[str, Any]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)


def _timeline(books: Records, trades: Records, sigs: Records) -> tuple[np.ndarray, np.ndarray]:
    """(kind, index) of every event, in time order (kind breaks ties, then the index)."""
    ex_b = np.minimum(books["ts_event_ns"], books["ts_recv_ns"])  # never seen before it happened
    ex_t = np.minimum(trades["ts_event_ns"], trades["ts_recv_ns"])
    t = np.concatenate([ex_t, ex_b, sigs["ts_sig_ns"]]).astype(np.int64)
    kind = np.concatenate(
        [np.full(trades.size, EX_TRADE), np.full(books.size, EX_BOOK), np.full(sigs.size, SIG)]
    ).astype(np.int8)
    idx = np.concatenate([np.arange(trades.size), np.arange(books.size), np.arange(sigs.size)])
    order = np.lexsort((idx, kind, t))
    return kind[order], idx[order]


def run_execution(
    config: ExecutionConfig,
    bt: BacktestConfig,
    latency: LatencyModel,
    books: Records,
    trades: Records,
    sigs: Records,
    *,
    work_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Replay ``books``/``trades`` (venue side) and ``sigs`` (execution side) through a fresh
    ``ExecutionProc``; ``books``, ``trades`` and ``sigs`` are in ring (publish) order."""
    loop = asyncio.SelectorEventLoop(_NoIoSelector())
    clock = SimClock(int(min(books["ts_recv_ns"][0], sigs["ts_sig_ns"][0])) if books.size else 0)
    ref: list[ExecutionProc] = []
    venue = BacktestVenue(
        config.paper,
        bt.queue,
        latency,
        clock,
        positions=lambda: ref[0].positions.snapshots(),
        balance=lambda: ref[0].local_balance() or Decimal(0),
    )
    sig_feed, book_feed = Feed(SIG_V1), Feed(BOOK_V1)
    events: list[bytes] = []
    proc = ExecutionProc(
        config,
        sig=sig_feed,
        book=book_feed,
        venue=venue,
        # the live journal's own code; a scratch file nothing outlives: no fsync (durable=False)
        journal=Journal.open(work_dir / "journal.sqlite", durable=False),
        publisher=_NoPublisher(),
        killswitch=KillSwitch(FileStore(work_dir / "killswitch.json"), config.killswitch_poll_s),
        metrics=make_metrics(CollectorRegistry()),
        loop=loop,
        clock=clock,
        event_log=events.append,
    )
    ref.append(proc)
    try:
        loop.run_until_complete(proc.open())
        result = RunResult(proc, venue, [], [], [], events=events)
        replay = _Replay(proc, venue, clock, loop, bt, result, (book_feed, sig_feed))
        replay.reconcile()
        replay.run(books, trades, sigs, progress)
        result.fills = list(venue.matcher.fills or [])
        result.intents = _intents(proc)
        loop.run_until_complete(proc.aclose())
    finally:
        proc.reads.flush()  # journal.reads_flush_s > 0: the run can itself be followed
        proc.journal.close()
        loop.close()
    return result


class _Replay:
    def __init__(
        self,
        proc: ExecutionProc,
        venue: BacktestVenue,
        clock: SimClock,
        loop: asyncio.AbstractEventLoop,
        bt: BacktestConfig,
        result: RunResult,
        feeds: tuple[Feed, Feed],
    ) -> None:
        self.proc, self.venue, self.clock, self.loop = proc, venue, clock, loop
        self.book_feed, self.sig_feed = feeds
        self.bt, self.r = bt, result
        self.sym = {i.symbol_id: i.symbol for i in proc.instruments.values()}
        self.fund_ns = int(bt.funding_interval_s * NS)
        self.eq_ns = int(bt.equity_interval_s * NS)
        self.next_fund = 0
        self.next_eq = 0

    def reconcile(self) -> None:
        """Start the first reconciliation: execution trades once the venue's snapshot (a REST
        round trip, with its latency) came back and agreed, as the live process does."""
        self.proc.step()
        self.pump()

    def pump(self) -> None:
        """Let the loop run what is ready: spawned venue calls, answers, pushes.

        Nine loop iterations, each running the callbacks ready at its start: the passes that
        three ``run_until_complete(asyncio.sleep(0))`` made (three each), without their tasks."""
        loop, left = self.loop, [PUMP_PASSES]

        def tick() -> None:
            left[0] -= 1
            if left[0]:
                loop.call_soon(tick)  # behind what this pass made ready: the next pass
            else:
                loop.stop()  # the loop stops after this pass

        loop.call_soon(tick)
        loop.run_forever()

    def advance(self, t: int) -> None:
        """Run venue actions, funding and equity samples due before ``t``; then stand at ``t``."""
        v = self.venue
        while True:
            due = v.next_due()
            cut = self.next_fund if self.next_fund < self.next_eq else self.next_eq
            if due is not None and due < cut:
                cut = due
            if cut > t:
                break
            if due is not None and due == cut:
                v.run_due(due)
                self.pump()
                self.proc.step()  # housekeeping on time, as the live loop's idle steps do
                self.pump()
            elif cut == self.next_fund:
                self.clock.now = max(self.clock.now, cut)
                self.funding(cut)
            else:
                self.clock.now = max(self.clock.now, cut)
                self.sample(cut)
        self.clock.now = max(self.clock.now, t)

    def funding(self, t: int) -> None:
        self.next_fund = t + self.fund_ns
        if t == 0 or not self.bt.funding_rate:
            return
        for sym in self.sym.values():
            ev = self.venue.funding(sym, self.bt.funding_rate, t)
            if ev is not None:
                self.r.funding.append((t, sym, ev.amount))
                self.proc.on_funding(ev)

    def sample(self, t: int) -> None:
        self.next_eq = t + self.eq_ns
        p = self.proc
        marks = {s: m for s in self.sym.values() if (m := self.venue.mark(s)) is not None}
        if any(x.qty and x.symbol not in marks for x in p.positions.snapshots()):
            return
        pos = {s: p.positions.net_qty(s) for s in self.sym.values()}
        self.r.equity.append((t, p.positions.totals(marks).net, pos))

    def signals(self, books: Records, sigs: Records, batch: list[int]) -> None:
        """Execution reads the books and the signals published at this time, in one step."""
        if len(batch) == 1:
            i = batch[0]
            self.book_feed.put(books[i : i + 1])
            self.sig_feed.put(sigs[i : i + 1])
        else:
            self.book_feed.put(books[batch])
            self.sig_feed.put(sigs[batch])
        self.proc.step()
        if self.proc.tasks.busy:
            self.pump()  # venue calls it spawned, or ones still waiting

    def run(
        self,
        books: Records,
        trades: Records,
        sigs: Records,
        progress: Callable[[int], None] | None,
    ) -> None:
        kinds, idxs = _timeline(books, trades, sigs)
        t_ex_b = np.minimum(books["ts_event_ns"], books["ts_recv_ns"]).tolist()
        t_ex_t = np.minimum(trades["ts_event_ns"], trades["ts_recv_ns"]).tolist()
        t_sig = sigs["ts_sig_ns"].tolist()
        first = int(sigs["ts_sig_ns"][0]) if sigs.size else 0
        self.next_fund = (first // self.fund_ns + 1) * self.fund_ns
        self.next_eq = first
        rows = books.tolist()
        trows = trades[["symbol_id", "px", "qty", "side"]].tolist()
        sym, venue, step = self.sym, self.venue, 0
        kl, il = kinds.tolist(), idxs.tolist()
        batch: list[int] = []
        for n, (kind, i) in enumerate(zip(kl, il, strict=True)):
            if kind == EX_BOOK:
                self.advance(t_ex_b[i])
                s = sym.get(rows[i][4])
                if s is not None:
                    venue.on_exchange_book(s, rows[i])
            elif kind == EX_TRADE:
                self.advance(t_ex_t[i])
                sid, px, qty, side = trows[i]
                s = sym.get(sid)
                if s is not None:
                    venue.on_exchange_trade(s, px, qty, side, t_ex_t[i])
            else:
                batch.append(i)
                if n + 1 < len(kl) and kl[n + 1] == SIG and t_sig[il[n + 1]] == t_sig[i]:
                    continue  # published together: execution reads them in one step
                self.advance(t_sig[i])
                self.signals(books, sigs, batch)
                batch = []
            step += 1
            if progress is not None and step % 4096 == 0:
                progress(4096)
        if progress is not None:
            progress(step % 4096)
        end = max(t_sig[-1] if t_sig else 0, t_ex_b[-1] if t_ex_b else 0)
        self.advance(end + 10 * NS)  # answers still in flight come back
        self.sample(self.clock.now)


def _intents(proc: ExecutionProc) -> list[dict[str, Any]]:
    rec = proc.journal.recover(hedge=proc.positions.hedge)
    out = []
    for o in sorted(rec.orders, key=lambda o: (o.request.ts_order_ns, o.client_id)):
        r = o.request
        out.append(
            {
                "client_id": r.client_id,
                "symbol": r.symbol,
                "side": str(r.side),
                "order_type": str(r.order_type),
                "tif": str(r.tif),
                "qty": str(r.qty),
                "price": None if r.price is None else str(r.price),
                "reduce_only": r.reduce_only,
                "position_side": str(r.position_side),
                "tag": r.tag,
                "ts_event_ns": r.stamps.ts_event_ns,
                "ts_recv_ns": r.stamps.ts_recv_ns,
                "ts_order_ns": r.ts_order_ns,
                "ts_ns": o.ts_created_ns,
                "status": str(o.status),
                "filled_qty": str(o.filled_qty),
            }
        )
    return out
