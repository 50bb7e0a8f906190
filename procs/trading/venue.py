"""Venue adapters for the execution process: ``LiveVenue`` (Bitunix REST + private WS) and
``PaperVenueAdapter`` (fills simulated by ``paper.PaperVenue`` on the live ``md.book`` ring).

Both speak execution's own value types and report venue events to a ``VenueSink``. Errors::

    ExecutionError (model.py)
    └── VenueCallError
        ├── VenueRejected      the venue definitively refused (nothing was placed / cancelled)
        └── VenueUnknown       no verdict (timeout, 5xx, dropped): query by clientId, never assume
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from ipc.bitunix.errors import (
    BitunixError,
    DecodeError,
    DuplicateClientId,
    OrderNotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnknownOutcome,
)
from procs.trading.config import PaperConfig, SymbolConfig
from procs.trading.instruments import Instrument, SymbolStatus
from procs.trading.model import (
    ZERO,
    ExecutionError,
    FundingEvent,
    OrderRequest,
    OrderType,
    PositionSide,
    Side,
    VenueOrderUpdate,
)
from procs.trading.orders import Order
from procs.trading.paper import AnyBook, BookLevels, PaperVenue, RecordBook
from procs.trading.paper_funding import FundingQuote, PaperFunding
from procs.trading.positions import PositionSnapshot
from procs.trading.reconcile import VenuePosition, VenueSnapshot

if TYPE_CHECKING:
    from ipc.bitunix.rest_api import BitunixRest
    from ipc.bitunix.schemas_rest import Order as RestOrder
    from ipc.bitunix.schemas_rest import Position as RestPosition
    from ipc.bitunix.schemas_rest import TradingPair
    from ipc.bitunix.schemas_ws import (
        BalancePush,
        OrderEvent,
        OrderPush,
        PositionEvent,
        PositionPush,
    )
    from ipc.bitunix.ws import BitunixWs

log = logging.getLogger(__name__)

PAGE: Final = 100  # pending orders per REST page (the venue's maximum)
# The venue's cumulative ``funding`` per position, in our sign (received > 0) is this times the
# figure. The reference gives no sign convention; we read it as a cash flow like ``realizedPNL``
# (paid < 0), which is what simex does. Should the live venue report paid funding as positive,
# this is the one place to flip (and the reconciliation's balance check would show it).
VENUE_FUNDING_SIGN: Final = 1
T = TypeVar("T")


class VenueCallError(ExecutionError):
    """A venue call failed; ``kind`` names the venue error class for metrics."""

    def __init__(self, msg: str, kind: str) -> None:
        super().__init__(msg)
        self.kind = kind


class VenueRejected(VenueCallError):
    """The venue refused: the order was not placed (or the cancel did nothing)."""


class VenueUnknown(VenueCallError):
    """No verdict: the order may or may not exist. Resolve by querying its clientId."""


class VenueSink(Protocol):
    """What a venue reports to the process (called on the event loop's thread)."""

    def on_order_update(self, update: VenueOrderUpdate) -> None: ...

    def on_balance(self, balance: Decimal) -> None: ...

    def on_position(self, position: VenuePosition) -> None: ...

    def on_funding(self, event: FundingEvent) -> None: ...

    def on_resync(self) -> None: ...


class Venue(Protocol):
    """The seam between the process and an exchange; every call is async and typed.

    ``eager_sends``: whether execution starts the calls of a step as the step ends, before the
    process's next pass (``TaskRunner.hold``/``release``): a remote venue's request is then on
    the wire before the next book is computed. The paper venue's calls run from the loop as
    tasks, after the pass: its matching and its answer stand for work a remote venue does
    elsewhere, and run inside the pass they would delay every later book of the read.
    """

    kind: str
    eager_sends: bool

    @property
    def ws_connected(self) -> bool: ...

    @property
    def ws_frames_skipped_total(self) -> int:
        """Private WS frames counted and skipped as malformed (0 without a private WS)."""
        ...

    async def start(self, sink: VenueSink) -> None: ...

    async def instruments(self, symbols: Sequence[SymbolConfig]) -> list[Instrument]: ...

    async def place(self, req: OrderRequest) -> str: ...

    async def cancel(self, symbol: str, client_id: str) -> None: ...

    async def query(self, client_id: str) -> VenueOrderUpdate | None: ...

    async def snapshot(self) -> VenueSnapshot: ...

    async def marks(self, symbols: Sequence[str]) -> dict[str, Decimal]: ...

    def on_book(self, book: BookLevels) -> None: ...

    def check(self) -> None:
        """Raise the error that ended a background connection (crash, don't limp)."""

    async def close(self) -> None: ...


def configured_instrument(s: SymbolConfig) -> Instrument | None:
    """An instrument from the symbol's own rules in the config, when all are given."""
    if s.tick is None or s.step is None or s.min_qty is None:
        return None
    big = Decimal(10) ** 9
    return Instrument(
        symbol=s.symbol,
        tick=s.tick,
        step=s.step,
        min_qty=s.min_qty,
        max_limit_qty=big,
        max_market_qty=big,
        price_protect_scope=Decimal("0.05"),
        symbol_id=s.symbol_id,
    )


def instrument_from_wire(p: TradingPair, symbol_id: int) -> Instrument:
    status = SymbolStatus(str(p.symbolStatus)) if p.isApiSupported else SymbolStatus.STOP
    big = Decimal(10) ** 9
    return Instrument(
        symbol=p.symbol,
        tick=p.tick_size,
        step=p.qty_step,
        min_qty=_dec(p.minTradeVolume) if p.minTradeVolume > 0 else p.qty_step,
        max_limit_qty=_dec(p.maxLimitOrderVolume, big),
        max_market_qty=_dec(p.maxMarketOrderVolume, big),
        price_protect_scope=_dec(p.priceProtectScope, Decimal("0.05")),
        status=status,
        symbol_id=symbol_id,
    )


def _dec(value: Decimal | None, default: Decimal = ZERO) -> Decimal:
    # the wire's Decimal subclasses (LooseDecimal) become plain Decimals for our own messages
    return default if value is None else Decimal(value)


def update_from_push(e: OrderEvent, ts_ms: int = 0) -> VenueOrderUpdate:
    """A private WS ``order`` push as a venue update (``dealAmount`` is the cumulative fill)."""
    return VenueOrderUpdate(
        client_id=str(e.clientId or ""),
        order_id=str(e.orderId),
        symbol=e.symbol,
        status=str(e.orderStatus),
        filled_qty=_dec(e.dealAmount),
        avg_price=_dec(e.averagePrice),
        fee=_dec(e.fee),
        mtime_ms=int(e.mtime or ts_ms),
        qty=_dec(e.qty),
        price=None if e.price is None else _dec(e.price),
        side=Side(str(e.side)),
    )


def update_from_rest(o: RestOrder) -> VenueOrderUpdate:
    return VenueOrderUpdate(
        client_id=str(o.clientId or ""),
        order_id=str(o.orderId),
        symbol=o.symbol,
        status=str(o.status or "NEW"),
        filled_qty=_dec(o.tradeQty),
        avg_price=_dec(o.avgPrice),
        fee=_dec(o.fee),
        mtime_ms=int(o.mtime or 0),
        qty=_dec(o.qty),
        price=None if o.price is None else _dec(o.price),
        side=Side(str(o.side)),
    )


def position_from_wire(p: RestPosition | PositionEvent, *, hedge: bool) -> VenuePosition:
    """A REST position or a WS ``position`` push as our view of one venue leg."""
    qty = _dec(p.qty)
    avg: Decimal | None = getattr(p, "avgOpenPrice", None)  # REST only; a push has entryValue
    if avg is None and qty:
        avg = _dec(p.entryValue) / qty
    return VenuePosition(
        symbol=p.symbol,
        qty=qty if str(p.side) == "LONG" else -qty,
        avg_price=_dec(avg),
        position_side=PositionSide(str(p.side)) if hedge else PositionSide.BOTH,
        position_id=str(p.positionId),
        funding=None if p.funding is None else VENUE_FUNDING_SIGN * _dec(p.funding),
        mtime_ms=int(p.mtime or 0),
        closed=str(getattr(p, "event", "")) == "CLOSE",
    )


class LiveVenue:
    """Orders over ``BitunixRest``; order and balance pushes over a private ``BitunixWs``.

    Built in ``main`` with both clients unopened; ``start`` opens them on the running loop.
    """

    kind = "live"
    eager_sends = True  # the request written as the step ends (Venue)

    def __init__(
        self,
        rest: BitunixRest,
        ws: BitunixWs,
        *,
        margin_coin: str = "USDT",
        hedge: bool = False,
        ready_timeout_s: float = 10.0,
    ) -> None:
        self._ready_timeout_s = ready_timeout_s
        self._rest = rest
        self._ws = ws
        self._coin = margin_coin
        self._hedge = hedge
        self._sink: VenueSink | None = None
        self._ws_task: asyncio.Task[None] | None = None

    @property
    def ws_connected(self) -> bool:
        return self._ws.ready.is_set()

    @property
    def ws_frames_skipped_total(self) -> int:
        return sum(self._ws.dispatcher.decode_errors_total.values())

    def check(self) -> None:
        t = self._ws_task
        if t is not None and t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]  # checked not None just above

    async def start(self, sink: VenueSink) -> None:
        self._sink = sink
        await self._rest.open()
        self._ws.on("order", self._on_order)
        self._ws.on("balance", self._on_balance)
        self._ws.on("position", self._on_position)  # ids and funding; qty comes from fills
        self._ws.subscribe_many([("order", None), ("balance", None), ("position", None)])
        self._ws_task = self._ws.start()
        try:
            await self._ws.wait_ready(self._ready_timeout_s)
        except TimeoutError:
            self.check()  # a login refusal ends the task with its own error
            raise VenueUnknown("private WS not ready in time", "ws_not_ready") from None

    def _on_order(self, push: OrderPush) -> None:
        assert self._sink is not None
        for e in push.items:
            self._sink.on_order_update(update_from_push(e, push.ts))

    def _on_position(self, push: PositionPush) -> None:
        assert self._sink is not None
        for e in push.items:
            self._sink.on_position(position_from_wire(e, hedge=self._hedge))

    def _on_balance(self, push: BalancePush) -> None:
        assert self._sink is not None
        for b in push.items:
            if b.coin == self._coin:
                total = _dec(b.available) + _dec(b.frozen) + _dec(b.margin)
                self._sink.on_balance(total)

    async def instruments(self, symbols: Sequence[SymbolConfig]) -> list[Instrument]:
        pairs = {p.symbol: p for p in await _call(self._rest.trading_pairs())}
        out = []
        for s in symbols:
            if s.symbol not in pairs:
                raise VenueRejected(f"symbol {s.symbol} not listed by the venue", "config")
            out.append(instrument_from_wire(pairs[s.symbol], s.symbol_id))
        return out

    async def place(self, req: OrderRequest) -> str:
        from ipc.bitunix.requests import PlaceOrder

        limit = req.order_type is OrderType.LIMIT
        side, position_id = str(req.side), None
        if self._hedge and req.reduce_only:
            # a hedge close names the position: its id, and (per the reference's place_order
            # page) its direction as ``side``: BUY closes the long, SELL the short
            side = "BUY" if req.position_side is PositionSide.LONG else "SELL"
            position_id = req.position_id or await self._position_id(req)
        body = PlaceOrder(
            symbol=req.symbol,
            side=side,
            orderType=str(req.order_type),
            qty=req.qty,
            price=req.price if limit else None,
            effect=str(req.tif) if limit else None,
            clientId=req.client_id,
            reduceOnly=req.reduce_only or None,
            tradeSide=("CLOSE" if req.reduce_only else "OPEN") if self._hedge else None,
            positionId=position_id,
        )
        ack = await _call(self._rest.place_order(body))
        return str(ack.orderId or "")

    async def _position_id(self, req: OrderRequest) -> str:
        """The open leg's id from REST, for a close whose position no push has named yet."""
        for p in await _call(self._rest.pending_positions(req.symbol)):
            if str(p.side) == str(req.position_side) and p.qty:
                return str(p.positionId)
        raise VenueRejected(f"no open {req.position_side} position on {req.symbol}", "no_position")

    async def cancel(self, symbol: str, client_id: str) -> None:
        res = await _call(self._rest.cancel_orders(symbol, client_ids=[client_id]))
        if res.failureList:
            f = res.failureList[0]
            raise VenueRejected(f"cancel {client_id}: {f.errorCode} {f.errorMsg}", "cancel_failed")

    async def query(self, client_id: str) -> VenueOrderUpdate | None:
        try:
            o = await self._rest.order_detail(client_id=client_id)
        except OrderNotFound:
            return None
        except BitunixError as exc:
            raise _mapped(exc) from exc
        return None if o is None else update_from_rest(o)

    async def snapshot(self) -> VenueSnapshot:
        orders: list[VenueOrderUpdate] = []
        skip = 0
        while True:
            page = await _call(self._rest.pending_orders(None, skip=skip, limit=PAGE))
            orders += [update_from_rest(o) for o in page.orderList]
            skip += len(page.orderList)
            if len(page.orderList) < PAGE or skip >= page.total:
                break
        positions = [
            position_from_wire(p, hedge=self._hedge)
            for p in await _call(self._rest.pending_positions())
        ]
        acct = await _call(self._rest.account(self._coin))
        balance = None if acct is None else _dec(acct.available + acct.frozen + acct.margin)
        return VenueSnapshot(open_orders=orders, positions=positions, balance=balance)

    async def marks(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        tickers = await _call(self._rest.tickers(list(symbols)))
        return {t.symbol: _dec(t.markPrice) for t in tickers if t.markPrice}

    def on_book(self, book: BookLevels) -> None:
        return None  # the real venue matches for itself

    async def close(self) -> None:
        await self._ws.close()
        await self._rest.close()


async def _call(aw: Awaitable[T]) -> T:
    try:
        return await aw
    except BitunixError as exc:
        raise _mapped(exc) from exc


def _mapped(exc: BitunixError) -> VenueCallError:
    kind = type(exc).__name__
    # a duplicate clientId means an order with it exists: only a query knows its state
    if isinstance(exc, UnknownOutcome | ServerError | DecodeError | DuplicateClientId):
        return VenueUnknown(str(exc), kind)
    if isinstance(exc, TransportError | RateLimited):
        return VenueRejected(f"not sent: {exc}", kind)
    return VenueRejected(str(exc), kind)


class PaperVenueAdapter:
    """Paper mode: ``paper.PaperVenue`` matched against the live book; no order leaves the host.

    ``local`` looks up the process's own view of an order: after a restart the simulated venue
    has forgotten its resting orders, so a query for one answers that it was cancelled.
    ``positions`` gives the local legs, which the paper venue mirrors for reconciliation.
    """

    kind = "paper"
    eager_sends = False  # the simulated venue's work runs after the pass (Venue)

    def __init__(
        self,
        config: PaperConfig,
        *,
        local: Callable[[str], Order | None],
        positions: Callable[[], Iterable[PositionSnapshot]],
        balance: Callable[[], Decimal],
        public_rest: BitunixRest | None = None,
        clock: Callable[[], int] = time.time_ns,
        order_ids: str = "",
    ) -> None:
        # order ids (``order_ids`` then a number) unique across restarts by default: a fill's id
        # is its order id and filled qty, and the journal takes a known fill id for a repeat
        # (numbered from P1 again in each process, the first fills after a restart were lost)
        self._paper = PaperVenue(config, id_prefix=order_ids or f"P{time.time_ns():x}-")
        self._clock = clock
        self._local = local
        self._positions = positions
        self._balance = balance
        self._rest = public_rest
        self._books: dict[str, BookLevels | RecordBook] = {}
        self._sink: VenueSink | None = None
        self._funding = PaperFunding() if config.settle_funding else None
        self._funding_poll_s = config.funding_poll_s
        self._funding_due_ms = 0

    @property
    def ws_connected(self) -> bool:
        return True  # no private connection to lose

    @property
    def ws_frames_skipped_total(self) -> int:
        return 0

    async def start(self, sink: VenueSink) -> None:
        self._sink = sink
        if self._rest is not None:
            await self._rest.open()

    async def instruments(self, symbols: Sequence[SymbolConfig]) -> list[Instrument]:
        out = [i for s in symbols if (i := configured_instrument(s)) is not None]
        if len(out) == len(symbols):
            return out
        if self._rest is None:
            raise VenueRejected("paper mode without symbol rules needs a public REST", "config")
        pairs = {p.symbol: p for p in await _call(self._rest.trading_pairs())}
        return [instrument_from_wire(pairs[s.symbol], s.symbol_id) for s in symbols]

    def _emit(self, updates: Iterable[VenueOrderUpdate]) -> None:
        sink = self._sink
        assert sink is not None
        for u in updates:
            sink.on_order_update(u)

    async def place(self, req: OrderRequest) -> str:
        book = self._books.get(req.symbol)
        if book is None:
            raise VenueRejected(f"paper: no book for {req.symbol} yet", "no_book")
        updates = self._paper.submit(req, book, book.ts_ns)
        # the answer first, then the pushes, as the real venue does
        asyncio.get_running_loop().call_soon(self._emit, updates)
        return updates[0].order_id

    async def cancel(self, symbol: str, client_id: str) -> None:
        updates = self._paper.cancel(client_id, 0)
        if not updates:
            raise VenueRejected(f"paper: {client_id} not open", "cancel_failed")
        asyncio.get_running_loop().call_soon(self._emit, updates)

    async def query(self, client_id: str) -> VenueOrderUpdate | None:
        found = self._paper.query(client_id)
        if found is not None:
            return found
        o = self._local(client_id)
        if o is None or (not o.order_id and o.filled_qty == 0):
            return None  # it never reached the simulated venue
        return VenueOrderUpdate(
            client_id=client_id,
            order_id=o.order_id,
            symbol=o.symbol,
            status="CANCELED",
            filled_qty=o.filled_qty,
            avg_price=o.avg_price,
            fee=o.fee,
        )

    async def snapshot(self) -> VenueSnapshot:
        positions = [
            VenuePosition(
                symbol=p.symbol, qty=p.qty, avg_price=p.avg_price, position_side=p.position_side
            )
            for p in self._positions()
        ]
        return VenueSnapshot(
            open_orders=self._paper.open_orders(), positions=positions, balance=self._balance()
        )

    async def marks(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        out = {}
        for s in symbols:
            b = self._books.get(s)
            if b is not None and b.bids and b.asks:
                out[s] = (b.bids[0][0] + b.asks[0][0]) / 2
        if self._funding is not None:
            await self._settle_funding(out, set(symbols))
        return out

    async def _settle_funding(self, marks: dict[str, Decimal], symbols: set[str]) -> None:
        """Settle what is due, then poll the venue's rates when the poll is due."""
        assert self._funding is not None
        assert self._sink is not None
        now_ms = self._clock() // 1_000_000
        for ev in self._funding.settle(now_ms, self._positions(), marks):
            self._sink.on_funding(ev)
        if self._rest is None or now_ms < self._funding_due_ms:
            return
        self._funding_due_ms = now_ms + int(self._funding_poll_s * 1000)
        rates = await _call(self._rest.funding_rates())
        self._funding.update(
            FundingQuote(r.symbol, _dec(r.fundingRate), int(r.nextFundingTime))
            for r in rates
            if r.symbol in symbols and r.nextFundingTime
        )

    def check(self) -> None:
        return None

    def may_fill(self, symbol: str, best_bid: Decimal, best_ask: Decimal) -> bool:
        """Whether a book with this best bid and ask could fill a resting order of ours."""
        return self._paper.may_fill(symbol, best_bid, best_ask)

    def on_book(self, book: AnyBook) -> None:
        self._books[book.symbol] = book
        if self._sink is not None:
            self._emit(self._paper.on_book(book))

    def on_record(self, book: RecordBook, best: tuple[Decimal, Decimal] | None) -> None:
        """A new book as its ring record: matched at once (Decimal levels) when its best bid
        and ask (``best``; None for a one-sided book) may fill a resting order, else kept as
        it came and converted only if an order is placed on it; queues shrink either way."""
        if best is None or self._paper.may_fill(book.symbol, *best):
            self.on_book(book)  # the matcher reads three levels' worth, not the whole book
            return
        self._books[book.symbol] = book
        self._paper.shrink_queues(book)

    async def close(self) -> None:
        if self._rest is not None:
            await self._rest.close()
