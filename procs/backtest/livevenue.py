"""The venue of a live run, replayed: execution's ``Venue`` seam answering each order as the
live venue answered the live order it matches, at the moment live execution applied the answer.

An order the backtest places is matched to the live intent from the same signal (symbol, the
tick's event and receive stamps, then their order: ``livejournal.intent_key``). Its answers are
the live order's own, from the journal: the REST acknowledgement or refusal, every update the
venue pushed or a query returned (status, cumulative fill, average price, fee), each delivered
at its journaled time (never before the order left). The fills the backtest books are therefore
the live fills, and its positions, open orders and PnL follow the live run's: the comparison is
about the decisions, not about a matching model.

An order the live run did not send has no live answers: it is acknowledged after the live run's
median order round trip and rests, unfilled, until cancelled (a cancel is confirmed after the
same delay). Marks are the mid of the venue's newest book (the capture's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from procs.backtest.latency import LatencyConfig, LatencyModel, make_latency
from procs.backtest.livejournal import Answer, LiveRun, intent_key
from procs.backtest.venue import BacktestVenue, SimClock, settle_fail, settle_ok
from procs.matching import QueueConfig
from procs.trading.config import PaperConfig
from procs.trading.model import OrderRequest, VenueOrderUpdate
from procs.trading.positions import PositionSnapshot
from procs.trading.reconcile import VenuePosition, VenueSnapshot
from procs.trading.venue import VenueRejected, VenueUnknown

__all__ = ["LiveVenue"]

NS: Final = 1_000_000_000


class LiveVenue(BacktestVenue):
    """``Venue`` for ``ExecutionProc`` replaying a live run (``procs.backtest.follow``)."""

    kind = "live-replay"
    eager_sends = True  # as the live venue whose run it replays (trading.venue.Venue)

    def __init__(
        self,
        live: LiveRun,
        clock: SimClock,
        *,
        positions: Callable[[], Iterable[PositionSnapshot]],
        balance: Callable[[], Decimal],
        open_orders: Callable[[], list[VenueOrderUpdate]],
        unknown_after_s: float,
    ) -> None:
        trips = sorted(live.round_trips_ns()) or [1_000_000]
        self.round_trip_ns = trips[len(trips) // 2]
        rt_s = self.round_trip_ns / NS
        lat: LatencyModel = make_latency(LatencyConfig(entry_s=rt_s, response_s=0, cancel_s=rt_s))
        super().__init__(PaperConfig(), QueueConfig(), lat, clock, positions=positions,
                         balance=balance)  # fmt: skip
        self._live = live
        self._open = open_orders
        self._unknown_ns = int(unknown_after_s * NS)
        self._by_key: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        for it in live.intents:
            self._by_key.setdefault(intent_key(it), []).append(it)
        self.matched: dict[str, str] = {}  # our client id → the live one
        self._symbol: dict[str, str] = {}
        self._view: dict[str, VenueOrderUpdate] = {}  # the venue's newest word on each order
        self.unmatched: list[str] = []  # our orders the live run did not send

    # -- Venue ---------------------------------------------------------------------------------

    async def place(self, req: OrderRequest) -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cid = req.client_id
        self._symbol[cid] = req.symbol
        todo = self._by_key.get(intent_key(_as_intent(req)))
        if not todo:
            self.unmatched.append(cid)
            oid = f"replay-{len(self.unmatched)}"
            new = VenueOrderUpdate(client_id=cid, order_id=oid, symbol=req.symbol, status="NEW",
                                   qty=req.qty, price=req.price, side=req.side)  # fmt: skip
            self._at(self._clock.now + self.round_trip_ns, lambda: self._rest(fut, new))
            return await fut
        live = todo.pop(0)
        self.matched[cid] = live["client_id"]
        answers = self._live.answers.get(live["client_id"], [])
        first = next((a for a in answers if a.kind in ("ack", "reject") or a.order_id), None)
        if first is None:  # never answered live: no verdict, as a REST timeout gives
            self._at(
                self._clock.now + self._unknown_ns,
                lambda: settle_fail(
                    fut,
                    VenueUnknown(
                        f"replay: the live order {live['client_id']} was never answered", "Unknown"
                    ),
                ),
            )
        for a in answers:
            self._at(max(a.ts_ns, self._clock.now), self._deliver(cid, req, a, fut, a is first))
        return await fut

    async def cancel(self, symbol: str, client_id: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def confirm() -> None:
            if client_id in self.unmatched:
                u = self._view.get(client_id)
                if u is not None and u.status in ("NEW", "PART_FILLED"):
                    self._push([replace(u, status="CANCELED")])
            settle_ok(fut)

        # a live order's cancel outcome is among its own answers (its CANCELED push, or fills)
        self._at(self._clock.now + self.round_trip_ns, confirm)
        await fut

    async def query(self, client_id: str) -> VenueOrderUpdate | None:
        return self._view.get(client_id)

    async def snapshot(self) -> VenueSnapshot:
        """The process's own view: the live run was in sync whenever it traded (every step it
        read while trading is recorded), so the replay does not second-guess it."""
        positions = [
            VenuePosition(
                symbol=p.symbol, qty=p.qty, avg_price=p.avg_price, position_side=p.position_side
            )
            for p in self._positions()
        ]
        return VenueSnapshot(open_orders=self._open(), positions=positions,
                             balance=self._balance())  # fmt: skip

    def on_exchange_book(self, symbol: str, row: tuple[Any, ...]) -> None:
        self._rows[symbol] = row  # marks only: fills come from the live run
        self._levels.pop(symbol, None)

    def on_exchange_trade(self, symbol: str, px: float, qty: float, side: int, ts: int) -> None:
        """Trades fill nothing here."""

    # -- internals -----------------------------------------------------------------------------

    def _deliver(
        self, cid: str, req: OrderRequest, a: Answer, fut: asyncio.Future[str], first: bool
    ) -> Callable[[], None]:
        def run() -> None:
            if a.kind == "reject":
                kind, _, text = a.reason.partition(": ")
                if first:
                    settle_fail(fut, VenueRejected(text or a.reason, kind or "rejected"))
                return
            if a.kind == "update" and a.update is not None:
                u = replace(a.update, client_id=cid, symbol=req.symbol, qty=req.qty,
                            price=req.price, side=req.side)  # fmt: skip
                self._view[cid] = u
                self._push([u])  # a push that came before the REST answer, as live
            elif a.kind == "ack" and cid not in self._view:
                self._view[cid] = VenueOrderUpdate(
                    client_id=cid, order_id=a.order_id, symbol=req.symbol, status="NEW",
                    qty=req.qty, price=req.price, side=req.side,
                )  # fmt: skip
            if first and not fut.done():
                fut.set_result(a.order_id)

        return run

    def _rest(self, fut: asyncio.Future[str], u: VenueOrderUpdate) -> None:
        self._view[u.client_id] = u
        if not fut.done():
            fut.set_result(u.order_id)


def _as_intent(req: OrderRequest) -> dict[str, Any]:
    return {
        "symbol": req.symbol,
        "ts_event_ns": req.stamps.ts_event_ns,
        "ts_recv_ns": req.stamps.ts_recv_ns,
    }
