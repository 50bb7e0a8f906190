"""procs.hotpath's pass: the stages' wake-ups after it, books run inline while there is CPU."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from procs._idle import IDLE, NO, NOW, IdleGC
from procs.hotpath.proc import (
    INLINE_WINDOW_NS,
    DeferredWakes,
    HotPath,
    InlineBooks,
    JournalFlush,
    idle_jobs,
)
from procs.trading.events import EventSequencer
from procs.trading.sent import SentAfterSend


class CountingWaker:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def notify(self) -> None:
        self.log.append(self.name)


class Stage:
    """Notifies its (wrapped) waker ``n`` times per step, as features does per record."""

    def __init__(self, name: str, waker: object, n: int, log: list[str]) -> None:
        self.name, self.waker, self.n, self.log = name, waker, n, log

    def step(self) -> int:
        self.log.append(f"step {self.name}")
        for _ in range(self.n):
            self.waker.notify()  # type: ignore[attr-defined]
        return self.n

    def close(self) -> None:
        pass


def test_wakes_leave_after_the_pass_once_per_waker():
    log: list[str] = []
    wakes = DeferredWakes()
    feat = wakes.wrap(CountingWaker(log, "wake feat"))
    sig = wakes.wrap(CountingWaker(log, "wake sig"))
    hot = HotPath([Stage("features", feat, 3, log), Stage("inference", sig, 1, log)], wakes)

    assert hot.step() == 4
    assert log == ["step features", "step inference", "wake feat", "wake sig"]

    log.clear()
    assert hot.step() == 4  # the next pass owes its own wake-ups again
    assert log == ["step features", "step inference", "wake feat", "wake sig"]


def test_a_pass_that_published_nothing_sends_no_wake():
    log: list[str] = []
    wakes = DeferredWakes()
    hot = HotPath([Stage("features", wakes.wrap(CountingWaker(log, "w")), 0, log)], wakes)

    assert hot.step() == 0
    assert log == ["step features"]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


class PlacingStage(Stage):
    """A stage whose step queues a loop callback, as execution's order send task is queued."""

    def __init__(self, loop: asyncio.AbstractEventLoop, waker: object, log: list[str]) -> None:
        super().__init__("execution", waker, 1, log)
        self.loop = loop

    def step(self) -> int:
        self.loop.call_soon(self.log.append, "order sent")
        return super().step()


def test_with_the_loop_wakes_leave_after_the_orders_once_per_turn(loop):
    log: list[str] = []
    wakes = DeferredWakes(loop.call_soon)
    feat = wakes.wrap(CountingWaker(log, "wake feat"))
    hot = HotPath([Stage("features", feat, 2, log), PlacingStage(loop, feat, log)], wakes)

    assert hot.step() == 3
    assert hot.step() == 3  # a second pass in the same turn (inline books of one read)
    assert "wake feat" not in log  # queued, not sent inside the pass
    loop.run_until_complete(asyncio.sleep(0))

    steps = ["step features", "step execution"] * 2
    # after the first pass's order; one wake for both passes (both batches are in the ring)
    assert log == [*steps, "order sent", "wake feat", "order sent"]

    log.clear()
    assert hot.step() == 3  # the next turn owes its own
    loop.run_until_complete(asyncio.sleep(0))
    assert log == [*steps[:2], "order sent", "wake feat"]


class Runner:
    def __init__(self) -> None:
        self.passes = 0
        self.refuse = False

    def run_now(self) -> bool:
        if self.refuse:
            return False
        self.passes += 1
        return True


class Clocks:
    def __init__(self) -> None:
        self.mono = 0
        self.cpu = 0


def _inline(loop, limit=2, busy_max=0.5, chunk=(100, 100, 100), chunk_busy=(0.7, 0.85)):
    runner, clocks = Runner(), Clocks()
    books = InlineBooks(
        loop, runner, limit, busy_max, chunk, chunk_busy,  # type: ignore[arg-type]
        mono_ns=lambda: clocks.mono, cpu_ns=lambda: clocks.cpu,
    )  # fmt: skip
    return books, runner, clocks


def test_the_first_books_of_a_turn_run_inline_the_rest_queue(loop):
    books, runner, _ = _inline(loop, limit=2)

    got = [books() for _ in range(4)]  # one read: four books in one turn of the loop

    assert got == [True, True, False, False]  # False: ingest queues its flush (one pass)
    assert runner.passes == 2
    loop.run_until_complete(asyncio.sleep(0))  # the turn ends
    assert books() is True  # the next turn runs inline again
    assert books.inline_total == 3


def test_a_busy_thread_queues_every_book_until_it_has_time_again(loop):
    books, runner, clocks = _inline(loop, limit=4, busy_max=0.5)
    clocks.mono, clocks.cpu = INLINE_WINDOW_NS, INLINE_WINDOW_NS * 6 // 10  # 60 % busy

    assert books() is False
    assert books() is False
    assert runner.passes == 0
    assert books.windows_off_total == 1
    assert books.busy() is True  # the runner's idle jobs then run after the pass

    loop.run_until_complete(asyncio.sleep(0))  # the turn ends
    clocks.mono += INLINE_WINDOW_NS
    clocks.cpu += INLINE_WINDOW_NS // 10  # 10 % busy over the next window

    assert books() is True
    assert runner.passes == 1
    assert books.busy() is False


class FakeIngest:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.flush_pending = False

    def input_fd(self) -> int:
        return self.fd


def test_input_waits_while_the_socket_holds_bytes_or_a_flush_is_queued():
    import socket

    from procs.hotpath.proc import InputWaiting

    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        waiting = InputWaiting()
        assert waiting() is False  # no ingest yet
        ingest = FakeIngest(a.fileno())
        waiting.proc = ingest  # type: ignore[assignment]
        assert waiting() is False
        b.send(b"frame")
        assert waiting() is True  # bytes the loop has not read
        a.recv(16)
        assert waiting() is False
        ingest.flush_pending = True
        assert waiting() is True  # a book waits for ingest's queued flush
        ingest.flush_pending = False
        ingest.fd = c.fileno()  # a reconnect: the new socket is polled, not the old one
        b.send(b"old")
        assert waiting() is False
        d.send(b"new")
        assert waiting() is True
        ingest.fd = -1  # between connections
        assert waiting() is False
    finally:
        for s in (a, b, c, d):
            s.close()


def test_past_the_inline_books_a_pass_runs_every_chunk_of_the_turn(loop):
    books, runner, _ = _inline(loop, limit=1, chunk=(3, 3, 3))

    got = [books() for _ in range(8)]  # one read of eight books

    # the first inline; then a pass at every third book; the last two wait for the read's end
    assert got == [True, False, False, True, False, False, True, False]
    assert runner.passes == 3
    assert (books.inline_total, books.chunks_total) == (1, 2)
    loop.run_until_complete(asyncio.sleep(0))  # the turn ends: its queued pass takes the rest
    assert books() is True  # the next turn starts inline again


def test_a_busy_thread_runs_a_pass_per_chunk_of_a_long_read(loop):
    books, _, clocks = _inline(loop, limit=4, busy_max=0.5, chunk=(4, 4, 4))
    clocks.mono, clocks.cpu = INLINE_WINDOW_NS, INLINE_WINDOW_NS * 6 // 10  # 60 % busy

    got = [books() for _ in range(10)]

    assert got == [False, False, False, True] * 2 + [False, False]
    assert (books.inline_total, books.chunks_total) == (0, 2)
    loop.run_until_complete(asyncio.sleep(0))
    assert [books() for _ in range(3)] == [False, False, False]  # the count starts afresh


def test_a_refused_pass_leaves_the_book_to_the_queued_pass(loop):
    books, runner, _ = _inline(loop, limit=1, chunk=(2, 2, 2))
    runner.refuse = True  # inside a pass, or the runner ended

    assert [books() for _ in range(3)] == [False, False, False]
    assert runner.passes == 0
    assert (books.inline_total, books.chunks_total) == (0, 0)


def test_the_chunk_doubles_when_busy_and_halves_when_idle(loop):
    books, _, clocks = _inline(loop, limit=0, chunk=(2, 2, 8), chunk_busy=(0.5, 0.8))
    got = []

    def window(busy_tenths: int) -> None:
        loop.run_until_complete(asyncio.sleep(0))  # a turn ends
        clocks.mono += INLINE_WINDOW_NS
        clocks.cpu += INLINE_WINDOW_NS * busy_tenths // 10
        books()  # the turn's first book measures the window that ended
        got.append(books.chunk)

    for tenths in (9, 9, 9, 9, 7, 3, 3, 3):
        window(tenths)

    assert got == [4, 8, 8, 8, 8, 4, 2, 2]  # kept between the bounds; between them, kept


def test_the_chunk_starts_between_its_bounds(loop):
    runner = Runner()
    assert InlineBooks(loop, runner, chunk=(4, 12, 48)).chunk == 12  # type: ignore[arg-type]
    assert InlineBooks(loop, runner, chunk=(4, 2, 48)).chunk == 4  # type: ignore[arg-type]
    assert InlineBooks(loop, runner, chunk=(4, 99, 48)).chunk == 48  # type: ignore[arg-type]


class RowJournal:
    """What SentAfterSend uses of the journal: rows deferred, then written by ``flush``."""

    def __init__(self) -> None:
        self.deferred: list[object] = []
        self.written: list[object] = []

    def defer_order(self, order: object, old: object, cause: str, ts_ns: int) -> None:
        self.deferred.append(cause)

    def flush(self) -> None:
        self.written += self.deferred
        self.deferred = []


def test_executions_rows_wait_for_idle_not_for_a_loop_callback(loop):
    journal = RowJournal()
    sent = SentAfterSend(journal, loop, lambda topic, event: None, EventSequencer())  # type: ignore[arg-type]
    job = JournalFlush(sent, late_ns=5_000_000, idle_ns=1_000_000)
    assert job.wanted(0) == NO

    sent.defer_row(object(), object(), "cancel requested", 1)  # type: ignore[arg-type]
    sent.defer_row(object(), object(), "cancel requested 2", 2)  # type: ignore[arg-type]
    loop.run_until_complete(asyncio.sleep(0))  # a turn of the loop: no callback wrote them
    assert journal.written == []
    t = sent.since_ns  # the oldest row's
    assert job.wanted(t) == NO  # younger than idle_ns: more rows may join them
    assert job.wanted(t + 1_000_000) == IDLE
    assert job.wanted(t + 5_000_000 - 1) == IDLE
    assert job.wanted(t + 5_000_000) == NOW  # past its bound: after the pass, idle or not

    job.run(t)
    assert journal.written == ["cancel requested", "cancel requested 2"]  # one write, in order
    assert job.wanted(t + 10_000_000) == NO


def test_without_the_host_a_loop_callback_writes_them(loop):
    journal = RowJournal()
    sent = SentAfterSend(journal, loop, lambda topic, event: None, EventSequencer())  # type: ignore[arg-type]
    sent.defer_row(object(), object(), "cancel requested", 1)  # type: ignore[arg-type]
    loop.run_until_complete(asyncio.sleep(0))
    assert journal.written == ["cancel requested"]


def test_the_journal_is_an_idle_job_beside_gc_housekeeping_and_services(loop):
    sent = SentAfterSend(RowJournal(), loop, lambda topic, event: None, EventSequencer())  # type: ignore[arg-type]
    journal = JournalFlush(sent)
    jobs = idle_jobs(IdleGC(), lambda: None, 50_000_000, [("ingest", lambda: None)], 0, journal)
    assert [j.name for j in jobs] == ["gc", "journal", "housekeeping", "service ingest"]


def test_a_busy_loop_writes_executions_rows_once_per_bound_not_per_pass(loop):
    journal = RowJournal()
    sent = SentAfterSend(journal, loop, lambda topic, event: None, EventSequencer())  # type: ignore[arg-type]
    busy = [True]
    job = JournalFlush(sent, late_ns=5_000_000, busy=lambda: busy[0], idle_ns=1_000_000)
    sent.defer_row(object(), object(), "cancel requested", 1)  # type: ignore[arg-type]
    t = sent.since_ns
    assert job.wanted(t + 1_000_000) == NO  # busy: the runner would run it after every pass
    assert job.wanted(t + 5_000_000) == NOW
    busy[0] = False
    assert job.wanted(t + 1_000_000) == IDLE
