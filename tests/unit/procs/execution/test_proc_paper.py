"""ExecutionProc in paper mode: when each step's book reaches the paper venue, and in what form.

Every book reaches the venue before the step's signals. A book that may fill a resting order is
matched at once (its fills reach the strategy first); any other book is kept as its ring record
and turned into Decimal levels only when an order is placed on it (on the loop, after the step).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from procs.trading.config import PaperConfig
from procs.trading.engine import ExecutionProc
from procs.trading.model import OrderStatus
from procs.trading.paper import RecordBook
from procs.trading.venue import PaperVenueAdapter
from tests.helpers.execution_fakes import Rig, book_records, make_rig, reconciled, sig_records

D = Decimal


def _paper_rig(tmp_path: Path, ns: str) -> Rig:
    holder: list[ExecutionProc] = []
    venue = PaperVenueAdapter(
        PaperConfig(),
        local=lambda cid: holder[0].tracker.get(cid) if cid in holder[0].tracker else None,
        positions=lambda: holder[0].positions.snapshots(),
        balance=lambda: holder[0].local_balance() or D(0),  # as the paper program's
    )
    r = make_rig(tmp_path, ns, venue=venue, mode="paper")
    holder.append(r.proc)
    assert reconciled(r)
    return r


@pytest.fixture
def paper(tmp_path, ns) -> Iterator[Rig]:
    r = _paper_rig(tmp_path, ns)
    yield r
    r.close()


def _record_decisions(r: Rig) -> list[tuple[int, list[str]]]:
    """Wrap the strategy: what position and working orders each decision saw; the paper
    venue's book at that moment goes to ``r.books_seen``."""
    seen: list[tuple[int, list[str]]] = []
    books: list[Any] = []
    r.books_seen = books  # type: ignore[attr-defined]
    strategy = r.proc.strategy
    assert strategy is not None
    decide = strategy.decide

    def spy(sig: Any, quote: Any, position: int, working: Any, now: int) -> Any:
        seen.append((position, [o.client_id for o in working]))
        books.append(r.proc.venue._books["BTCUSDT"])  # type: ignore[attr-defined]
        return decide(sig, quote, position, working, now)

    strategy.decide = spy  # type: ignore[method-assign]
    return seen


def _book_and_signal(r: Rig, bid: float, ask: float, score: float) -> None:
    ts = r.now() - 100_000
    r.book_w.publish(book_records(bid, ask, ts))
    r.sig_w.publish(sig_records(score, (bid + ask) / 2, ts))


def test_proc_paper_order_matched_against_its_own_steps_book(paper):
    r = paper
    r.book_w.publish(book_records(59000.0, 59000.2, r.now() - 200_000))
    r.run(1)  # the venue holds a book whose ask is far under the next bid
    _book_and_signal(r, 59999.9, 60000.1, 0.5)
    r.proc.step()  # one step: the book and the signal together
    r.waiter.reset()  # the loop sends the order

    [o] = r.proc.tracker.open_orders()
    # a post-only bid at 59999.9 matched against the older book would cross and be cancelled
    assert o.request.price == D("59999.9")
    assert o.status is OrderStatus.ACKED
    assert r.proc.venue._books["BTCUSDT"].asks[0][0] == D("60000.1")


def test_proc_paper_book_filling_resting_order_reaches_strategy_before_signal(paper):
    r = paper
    r.tick(0.5)  # post-only bid at 59999.9 rests
    [o] = r.proc.tracker.open_orders()
    seen = _record_decisions(r)

    _book_and_signal(r, 59999.5, 59999.8, 0.5)  # the ask moves through it, with a signal
    r.proc.step()

    assert r.proc.tracker.get(o.client_id).status is OrderStatus.FILLED
    assert seen[:1] == [(16, [])]  # the fill (0.0016, in lots), then the decision


def test_proc_paper_book_not_touching_resting_order_stays_a_record(paper):
    r = paper
    r.tick(0.5)  # post-only bid at 59999.9 rests
    [o] = r.proc.tracker.open_orders()
    seen = _record_decisions(r)

    _book_and_signal(r, 59999.9, 60000.0, 0.5)  # the ask comes closer without touching
    r.proc.step()

    assert seen[:1] == [(0, [o.client_id])]
    [book] = r.books_seen[:1]  # the venue had the step's book at the decision ...
    assert isinstance(book, RecordBook)
    assert book.ts_ns == r.now() - 100_000 - 500
    assert book._levels is None  # ... as its record: nothing could fill, nothing converted
    assert book.asks[0][0] == D("60000.0")
    assert r.proc.tracker.get(o.client_id).status is OrderStatus.ACKED
    r.book_w.publish(book_records(59999.5, 59999.9, r.now()))  # now it touches and fills
    r.run(2)
    assert r.proc.tracker.get(o.client_id).status is OrderStatus.FILLED


def test_proc_paper_send_runs_from_the_loop_after_the_step(paper):
    # the paper venue's matching and answer stand for a remote venue's work: they run as a
    # task after the pass (``eager_sends`` False), not as the step ends (a live venue's send)
    r = paper
    assert r.proc.venue.eager_sends is False
    _book_and_signal(r, 59999.9, 60000.1, 0.5)
    r.proc.step()

    [o] = r.proc.tracker.open_orders()
    assert o.status is OrderStatus.SENT  # journaled and handed over; the venue has not run
    r.waiter.reset()  # the loop runs the send
    assert r.proc.tracker.get(o.client_id).status is OrderStatus.ACKED


def test_proc_paper_fills_after_a_restart_are_booked_not_taken_for_repeats(tmp_path, ns):
    # a fill's id is its venue order id and filled qty: a paper venue that numbered its orders
    # from 1 again in each process gave the first order after a restart the id of the first
    # one before it, and its fill was taken for a repeat of that one (not journaled)
    ids = []
    for life, (score, bid, ask) in enumerate([(0.5, 59999.5, 59999.8), (-0.5, 60000.2, 60000.4)]):
        r = _paper_rig(tmp_path, f"{ns}{life}")
        try:
            r.tick(score)  # a post-only bid (then an ask) rests ...
            [o] = r.proc.tracker.open_orders()
            _book_and_signal(r, bid, ask, 0.0)  # ... and the book moves through it
            r.run(2)
            assert r.proc.tracker.get(o.client_id).status is OrderStatus.FILLED
            ids.append(r.proc.tracker.get(o.client_id).order_id)
            assert r.proc.positions.net_lots("BTCUSDT") == [16, 0][life]
            assert r.proc.journal.count("fills") == life + 1
            r.proc.cancel_all(r.now(), "the test's restart")  # (the venue forgets its orders)
            r.run(2)
        finally:
            r.close()
    assert ids[0] != ids[1]
    r = _paper_rig(tmp_path, f"{ns}2")  # the journal's position is the one that was traded
    try:
        assert r.proc.positions.net_lots("BTCUSDT") == 0
    finally:
        r.close()


def test_proc_paper_pnl_gauges_follow_a_fill_at_the_next_housekeeping(paper):
    # a fill's P&L reaches the breaker at once; Prometheus from housekeeping (off the tick)
    r = paper
    r.tick(0.5)  # a post-only bid at 59999.9 rests
    _book_and_signal(r, 59999.5, 59999.8, 0.0)  # the ask moves through it
    r.proc.step()

    def fees() -> float | None:
        return r.registry.get_sample_value("bitrader_pnl_usdt", {"kind": "fees"})

    assert r.proc.counters["fills_total"] == 1
    assert fees() in (None, 0.0)
    r.proc.housekeeping()
    assert fees() == pytest.approx(float(r.proc.positions.totals({"BTCUSDT": D(60000)}).fees))
    assert fees() != 0.0
