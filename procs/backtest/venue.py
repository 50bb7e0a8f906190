"""The backtest's venue: execution's ``Venue`` seam over ``procs.matching.QueueMatcher``, with
latency. Orders reach the matcher ``entry`` after they leave, answers and pushes come back
``response`` later, cancels arrive ``cancel`` after they leave (``procs.backtest.latency``).

The matcher sees the market in the venue's time (``ts_event_ns``) as the replay hands it in
(``on_exchange_book``/``on_exchange_trade``); execution sees it at ``ts_recv_ns``. Book records
become Decimal levels only when something needs them: an order arriving, or a book that can
fill a resting order; otherwise only the displayed size at each resting price is read.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

import numpy as np

from procs.backtest.latency import LatencyModel
from procs.matching import BookLevels, QueueConfig
from procs.matching.engine import MatchReject
from procs.trading.config import PaperConfig, SymbolConfig
from procs.trading.instruments import DecimalGrid, Instrument
from procs.trading.model import FundingEvent, OrderRequest, PositionSide, Side, VenueOrderUpdate
from procs.trading.paper import PaperVenue, TradePrint, book_from_record, level_qty
from procs.trading.positions import PositionSnapshot
from procs.trading.reconcile import VenuePosition, VenueSnapshot
from procs.trading.venue import VenueRejected, VenueSink, configured_instrument
from shm.records import BOOK_V1

__all__ = ["BacktestVenue", "SimClock"]

_B: Final = {name: i for i, name in enumerate(BOOK_V1.names or ())}


class SimClock:
    """Event time, set by the replay; execution's ``clock``."""

    __slots__ = ("now",)

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class BacktestVenue:
    """``Venue`` for ``ExecutionProc`` in a backtest; the replay drives ``run_due``."""

    kind = "backtest"
    eager_sends = False  # as the paper venue it stands for (trading.venue.Venue)

    def __init__(
        self,
        paper: PaperConfig,
        queue: QueueConfig,
        latency: LatencyModel,
        clock: SimClock,
        *,
        positions: Callable[[], Iterable[PositionSnapshot]],
        balance: Callable[[], Decimal],
    ) -> None:
        self.paper = PaperVenue(paper, "B", queue=queue, check_reduce_only=True, keep_fills=True)
        self.matcher = self.paper.matcher
        self._lat = latency
        self._clock = clock
        self._positions = positions
        self._balance = balance
        self._sink: VenueSink | None = None
        self._due: list[tuple[int, int, Callable[[], None]]] = []  # (t, seq, action)
        self._n = 0
        self._rows: dict[str, tuple[Any, ...]] = {}  # newest book row per symbol (venue time)
        self._levels: dict[str, BookLevels] = {}  # its levels, once converted
        self._inst: dict[str, Instrument] = {}
        self._grids: dict[str, tuple[DecimalGrid, DecimalGrid]] = {}
        self.orders_arrived = 0
        self.cancels_arrived = 0

    # -- Venue ---------------------------------------------------------------------------------

    @property
    def ws_connected(self) -> bool:
        return True

    @property
    def ws_frames_skipped_total(self) -> int:
        return 0

    async def start(self, sink: VenueSink) -> None:
        self._sink = sink

    async def instruments(self, symbols: Sequence[SymbolConfig]) -> list[Instrument]:
        out = []
        for s in symbols:
            inst = configured_instrument(s)
            if inst is None:
                raise VenueRejected(
                    f"backtest: symbol {s.symbol} needs tick, step and min_qty in the config",
                    "config",
                )
            out.append(inst)
            self._inst[s.symbol] = inst
            self._grids[s.symbol] = (DecimalGrid(inst.tick), DecimalGrid(inst.step))
        return out

    async def place(self, req: OrderRequest) -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._at(self._clock.now + self._lat.entry_ns(), lambda: self._arrive(req, fut))
        return await fut

    async def cancel(self, symbol: str, client_id: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._at(self._clock.now + self._lat.cancel_ns(), lambda: self._cancel(client_id, fut))
        await fut

    async def query(self, client_id: str) -> VenueOrderUpdate | None:
        return self.paper.query(client_id)

    async def snapshot(self) -> VenueSnapshot:
        """The venue's view, taken when the request arrives, back a response later."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._at(self._clock.now + self._lat.entry_ns(), lambda: self._later(fut))
        await fut
        positions = [
            VenuePosition(
                symbol=p.symbol, qty=p.qty, avg_price=p.avg_price, position_side=p.position_side
            )
            for p in self._positions()
        ]
        return VenueSnapshot(
            open_orders=self.paper.open_orders(), positions=positions, balance=self._balance()
        )

    async def marks(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        return {s: m for s in symbols if (m := self.mark(s)) is not None}

    def on_book(self, book: BookLevels) -> None:
        """Execution's own book feed: unused (the replay feeds the venue in venue time)."""

    def check(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        return None

    # -- the replay's side -------------------------------------------------------------------

    def next_due(self) -> int | None:
        return self._due[0][0] if self._due else None

    def run_due(self, until_ns: int) -> int:
        """Run every venue action due at or before ``until_ns``, each at its own time."""
        n = 0
        while self._due and self._due[0][0] <= until_ns:
            t, _, action = heapq.heappop(self._due)
            self._clock.now = max(self._clock.now, t)
            action()
            n += 1
        return n

    def mark(self, symbol: str) -> Decimal | None:
        row = self._rows.get(symbol)
        if row is None or not row[_B["n_bids"]] or not row[_B["n_asks"]]:
            return None
        to_px = self._grids[symbol][0]
        return (to_px(float(row[_B["bid_px"]][0])) + to_px(float(row[_B["ask_px"]][0]))) / 2

    def on_exchange_book(self, symbol: str, row: tuple[Any, ...]) -> None:
        """The venue's book changed (a BOOK_V1 row as a tuple)."""
        self._rows[symbol] = row
        self._levels.pop(symbol, None)
        resting = self.matcher.resting(symbol)
        if not resting:
            return
        if not row[_B["n_bids"]] or not row[_B["n_asks"]]:
            return
        to_px = self._grids[symbol][0]
        bid, ask = to_px(float(row[_B["bid_px"]][0])), to_px(float(row[_B["ask_px"]][0]))
        if self.matcher.may_fill(symbol, bid, ask):
            self._emit(self.paper.on_book(self._book(symbol)), self._lat.response_ns())
            return
        self.matcher.shrink_queues(symbol, lambda buy, px: self._qty_at(symbol, row, buy, px))

    def on_exchange_trade(self, symbol: str, px: float, qty: float, side: int, ts: int) -> None:
        if not self.matcher.resting(symbol):
            return
        to_px, to_qty = self._grids[symbol]
        taker = Side.BUY if side > 0 else Side.SELL
        updates = self.paper.on_trade(TradePrint(symbol, to_px(px), to_qty(qty), taker, ts))
        self._emit(updates, self._lat.response_ns())

    def funding(self, symbol: str, rate: Decimal, ts_ns: int) -> FundingEvent | None:
        """Settle ``symbol``'s funding on the venue's position at its mark (None: flat)."""
        mark = self.mark(symbol)
        if mark is None or not self.matcher.position(symbol):
            return None
        return FundingEvent(
            event_id=f"backtest:{symbol}:{ts_ns}",
            symbol=symbol,
            amount=self.matcher.settle_funding(symbol, mark, rate),
            position_side=PositionSide.BOTH,
            ts_ns=ts_ns,
        )

    # -- internals -----------------------------------------------------------------------------

    def _at(self, t: int, action: Callable[[], None]) -> None:
        self._n += 1
        heapq.heappush(self._due, (t, self._n, action))

    def _book(self, symbol: str) -> BookLevels:
        lv = self._levels.get(symbol)
        if lv is None:
            row = self._rows[symbol]
            rec = np.array([row], dtype=BOOK_V1)[0]
            lv = self._levels[symbol] = book_from_record(
                rec, self._inst[symbol], self._grids[symbol]
            )
        return lv

    def _qty_at(self, symbol: str, row: tuple[Any, ...], is_buy: bool, price: Decimal) -> Decimal:
        to_px, to_qty = self._grids[symbol]
        side = ("bid_px", "bid_qty", "n_bids") if is_buy else ("ask_px", "ask_qty", "n_asks")
        px, qty, n = row[_B[side[0]]], row[_B[side[1]]], row[_B[side[2]]]
        return level_qty(px[:n].tolist(), qty, price, to_px, to_qty)

    def _later(self, fut: asyncio.Future[None]) -> None:
        self._at(self._clock.now + self._lat.response_ns(), lambda: settle_ok(fut))

    def _arrive(self, req: OrderRequest, fut: asyncio.Future[str]) -> None:
        self.orders_arrived += 1
        back = self._clock.now + self._lat.response_ns()
        if req.symbol not in self._rows:
            no_book = VenueRejected("backtest: no book yet", "no_book")
            self._at(back, lambda: settle_fail(fut, no_book))
            return
        try:
            updates = self.paper.submit(req, self._book(req.symbol), self._clock.now)
        except MatchReject as exc:
            err = VenueRejected(f"backtest: {exc}", "rejected")
            self._at(back, lambda: settle_fail(fut, err))
            return
        order_id = updates[0].order_id
        self._at(back, lambda: self._answer(fut, order_id, updates))

    def _answer(self, fut: asyncio.Future[str], order_id: str, ups: list[VenueOrderUpdate]) -> None:
        if not fut.done():
            fut.set_result(order_id)
        fut.get_loop().call_soon(self._push, ups)  # the answer first, then the pushes

    def _cancel(self, client_id: str, fut: asyncio.Future[None]) -> None:
        self.cancels_arrived += 1
        updates = self.paper.cancel(client_id, self._clock.now)
        back = self._clock.now + self._lat.response_ns()
        if not updates:
            err = VenueRejected(f"backtest: {client_id} not open", "cancel_failed")
            self._at(back, lambda: settle_fail(fut, err))
            return

        def answer() -> None:
            if not fut.done():
                fut.set_result(None)
            fut.get_loop().call_soon(self._push, updates)

        self._at(back, answer)

    def _emit(self, updates: list[VenueOrderUpdate], delay_ns: int) -> None:
        if updates:
            self._at(self._clock.now + delay_ns, lambda: self._push(updates))

    def _push(self, updates: Iterable[VenueOrderUpdate]) -> None:
        sink = self._sink
        assert sink is not None
        for u in updates:
            sink.on_order_update(u)


def settle_ok(fut: asyncio.Future[None]) -> None:
    """Resolve a simulated venue call's future unless it is settled already."""
    if not fut.done():
        fut.set_result(None)


def settle_fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail a simulated venue call's future with ``exc`` unless it is settled already."""
    if not fut.done():
        fut.set_exception(exc)
