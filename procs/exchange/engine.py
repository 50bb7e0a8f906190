"""The exchange core: validates and books orders; keeps accounts and positions.

Matching is ``procs.matching``'s: every order runs through ``procs.matching.rules.enter``
against the symbol's full ``OrderBook`` (price-time priority; post-only, self-trade prevention,
FOK, IOC, what rests), the generator's orders through ``rules.take``; reduce-only checks and
clamps, statuses and fees are the rules' too. What stays here is the venue around them:
validation and wire error codes (``procs.exchange.checks``), margin locks, positions (net and
hedge), PnL, accounts, TP/SL hooks and the pushes every change makes.

Pure: no I/O and no clock (every call takes ``ts_ms``). Business errors raise ExchangeError;
every change appends private events (order, position, balance, tpsl) and public trades, which
the caller drains. Market-generator liquidity shares the books with user orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Final

from procs.exchange.checks import direction, signed_position, validate_order
from procs.exchange.model import (
    ZERO,
    Account,
    ExchangeError,
    Order,
    Position,
    PrivateEvent,
    SymbolSpec,
    TradeEvent,
    balance_view,
    fill_view,
)
from procs.matching.book import Fill, OrderBook, Resting
from procs.matching.fees import MONEY
from procs.matching.rules import (
    FeeSchedule,
    cancel_status,
    clamp,
    closable,
    enter,
    take,
)

__all__ = ["Exchange"]

HISTORY_MAX: Final = 10_000


class Exchange:
    """Owns every book, account, order and position; the only writer of all of them."""

    def __init__(
        self,
        specs: Sequence[SymbolSpec],
        balances: Mapping[str, Decimal],
        *,
        id_start: int = 1_000_001,
        funding_interval_ms: int = 8 * 3_600_000,
    ) -> None:
        self.specs = {s.symbol: s for s in specs}
        self.books = {s.symbol: OrderBook(s.symbol) for s in specs}
        self.fees = {s.symbol: FeeSchedule(s.maker_fee, s.taker_fee) for s in specs}
        self.accounts = {n: Account(name=n, wallet=b, initial=b) for n, b in balances.items()}
        self.next_id = id_start
        self.last_price: dict[str, Decimal] = {}
        self.mm_position = {s.symbol: ZERO for s in specs}  # generator inventory, signed
        self.events: list[PrivateEvent] = []
        self.trades: list[TradeEvent] = []
        self._dirty: set[str] = set()
        self.tpsl_live: dict[str, int] = {}
        self.tpsl_attach_failed_total = 0
        # funding (settled by procs.simex.funding): rate per symbol, period, past settlements
        self.funding_rate = {s.symbol: s.funding_rate for s in specs}
        self.funding_interval_ms = funding_interval_ms
        self.funding_history: dict[str, list[dict[str, str]]] = {}

    # ---- public helpers -------------------------------------------------------------------

    def drain(self) -> tuple[list[PrivateEvent], list[TradeEvent]]:
        """Return and clear the private events and trades produced since the last drain."""
        ev, tr = self.events, self.trades
        self.events, self.trades = [], []
        return ev, tr

    def account(self, name: str) -> Account:
        return self.accounts[name]

    def spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise ExchangeError(20001, "Market not exists")
        return spec

    def mark(self, symbol: str) -> Decimal | None:
        return self.books[symbol].mid() or self.last_price.get(symbol)

    def notify_balance(self, account: str) -> None:
        """Queue a balance push for ``account`` (after an outside margin adjustment)."""
        self._dirty.add(account)
        self._flush()

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id - 1)

    def leverage(self, acct: Account, symbol: str) -> int:
        return acct.leverage.get(symbol, self.specs[symbol].default_leverage)

    def margin_mode(self, acct: Account, symbol: str) -> str:
        return acct.margin_mode.get(symbol, "CROSS")

    # ---- orders ---------------------------------------------------------------------------

    def place_order(
        self,
        account: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        qty: Decimal,
        ts_ms: int,
        price: Decimal | None = None,
        effect: str = "GTC",
        trade_side: str = "",
        position_id: str = "",
        reduce_only: bool = False,
        client_id: str = "",
        tpsl: Mapping[str, str] | None = None,
    ) -> Order:
        """Validate, book and execute one order; return it in its state after matching."""
        acct = self.accounts[account]
        spec = self.spec(symbol)
        order_type, side, effect = order_type.upper(), side.upper(), (effect or "GTC").upper()
        validate_order(spec, side, order_type, effect, qty, price)
        qty = qty.quantize(spec.step)  # canonical exponents: str() of book values is wire-ready
        if order_type == "MARKET":
            price, effect = None, "IOC"
        elif price is not None:
            price = price.quantize(spec.tick)
        if client_id and client_id in acct.client_ids:
            raise ExchangeError(30042, "Duplicate clientId")
        is_buy, trade_side, pos_side, closing = direction(
            acct, symbol, side, (trade_side or "OPEN").upper(), position_id, reduce_only
        )
        order = Order(
            order_id=self.new_id(),
            client_id=client_id,
            account=account,
            symbol=symbol,
            side=side,
            is_buy=is_buy,
            order_type=order_type,
            effect=effect,
            price=price,
            qty=qty,
            trade_side=trade_side,
            position_side=pos_side,
            position_mode=acct.position_mode,
            margin_mode=self.margin_mode(acct, symbol),
            leverage=self.leverage(acct, symbol),
            # hedge mode closes with tradeSide=CLOSE only; reduceOnly there would skip margin
            reduce_only=closing or (reduce_only and acct.position_mode != "HEDGE"),
            ctime=ts_ms,
            mtime=ts_ms,
            tpsl=dict(tpsl or {}),
        )
        self._lock(acct, order, spec)
        self._register(acct, order)
        self._execute(acct, order, ts_ms)
        self._flush()
        return order

    def cancel_order(
        self, account: str, *, ts_ms: int, order_id: str = "", client_id: str = ""
    ) -> Order:
        """Cancel one open order; 20007 when unknown, 10013 when already final."""
        acct = self.accounts[account]
        order = self.find_order(acct, order_id, client_id)
        if not order.open:
            raise ExchangeError(10013, "Order status error")
        self._cancel(acct, order, ts_ms)
        self._flush()
        return order

    def cancel_all(self, account: str, *, ts_ms: int, symbol: str = "") -> list[Order]:
        acct = self.accounts[account]
        victims = [o for o in acct.open_orders.values() if not symbol or o.symbol == symbol]
        for o in victims:
            self._cancel(acct, o, ts_ms)
        self._flush()
        return victims

    def modify_order(
        self,
        account: str,
        *,
        ts_ms: int,
        qty: Decimal,
        price: Decimal,
        order_id: str = "",
        client_id: str = "",
    ) -> Order:
        """Change an open LIMIT order's total qty and price; it loses its queue position."""
        acct = self.accounts[account]
        order = self.find_order(acct, order_id, client_id)
        if not order.open or order.order_type != "LIMIT":
            raise ExchangeError(10013, "Order status error")
        spec = self.specs[order.symbol]
        validate_order(spec, order.side, "LIMIT", order.effect, qty, price)
        if qty <= order.filled:
            raise ExchangeError(10002, "qty must exceed the filled quantity")
        qty, price = qty.quantize(spec.step), price.quantize(spec.tick)
        book = self.books[order.symbol]
        old = (order.qty, order.price, order.lock_per_unit, order.lock)
        order.lock = ZERO
        order.qty, order.price = qty, price
        try:
            self._lock(acct, order, spec)
        except ExchangeError:
            order.qty, order.price, order.lock_per_unit, order.lock = old
            raise
        book.cancel(order.order_id)
        order.mtime = ts_ms
        self.events.append(PrivateEvent(account, "order", order.push("UPDATE")))
        self._execute(acct, order, ts_ms)
        self._flush()
        return order

    def find_order(self, acct: Account, order_id: str = "", client_id: str = "") -> Order:
        oid = order_id or acct.client_ids.get(client_id, "")
        order = acct.orders.get(oid)
        if order is None:
            raise ExchangeError(20007, "Order not found")
        return order

    # ---- market generator -------------------------------------------------------------------

    def mm_add(
        self, symbol: str, oid: str, is_buy: bool, price: Decimal, qty: Decimal, ts_ms: int
    ) -> None:
        """Generator limit order: takes what it crosses, rests the rest (GTC)."""
        book = self.books[symbol]
        left = qty
        if book.would_cross(is_buy, price):  # the common case (it rests) skips the take
            left -= self._take(symbol, is_buy, qty, price, ts_ms)
        if left > 0:
            book.add(Resting(oid, None, is_buy, price, left))
        self._flush()

    def mm_cancel(self, symbol: str, oid: str) -> bool:
        book = self.books[symbol]
        resting = book.orders.get(oid)
        if resting is None or resting.owner is not None:
            return False
        book.cancel(oid)
        return True

    def mm_take(self, symbol: str, is_buy: bool, qty: Decimal, ts_ms: int) -> Decimal:
        """Generator market order; returns the filled quantity."""
        got = self._take(symbol, is_buy, qty, None, ts_ms)
        self._flush()
        return got

    # ---- internals ------------------------------------------------------------------------

    def _lock(self, acct: Account, order: Order, spec: SymbolSpec) -> None:
        if order.reduce_only:
            order.lock_per_unit = ZERO
            return
        book = self.books[order.symbol]
        if order.price is None:
            ref = book.worst_price(order.is_buy, order.qty) if order.is_buy else book.best_bid()
        elif order.is_buy:
            ref = order.price
        else:
            bid = book.best_bid()
            ref = order.price if bid is None else max(order.price, bid)
        ref = ref or self.last_price.get(order.symbol, ZERO)
        order.lock_per_unit = ref / order.leverage + ref * spec.taker_fee
        need = order.remaining * order.lock_per_unit
        if need > acct.available():
            raise ExchangeError(20003, "Insufficient balance")
        order.lock = need

    def _register(self, acct: Account, order: Order) -> None:
        acct.orders[order.order_id] = order
        acct.open_orders[order.order_id] = order
        if order.client_id:
            acct.client_ids[order.client_id] = order.order_id
        if len(acct.orders) > HISTORY_MAX:
            self._trim_history(acct)
        self.events.append(PrivateEvent(acct.name, "order", order.push("CREATE")))
        self._dirty.add(acct.name)

    def _trim_history(self, acct: Account) -> None:
        closed = [oid for oid, o in acct.orders.items() if not o.open]
        for oid in closed[: len(acct.orders) - HISTORY_MAX]:
            o = acct.orders.pop(oid)
            acct.client_ids.pop(o.client_id, None)

    def _execute(self, acct: Account, order: Order, ts_ms: int) -> None:
        book = self.books[order.symbol]
        if order.reduce_only:
            self._clamp_closing(acct, order, ts_ms)
            if not order.open:
                return
        own = [
            (o, o.is_buy, o.price)
            for o in acct.open_orders.values()
            if o is not order and o.symbol == order.symbol and o.price is not None
            and o.order_id in book
        ]  # fmt: skip
        before = order.filled
        outcome = enter(
            order, book, self._taker_fill(order, ts_ms), own=own,
            cancel_own=lambda o: self._cancel(acct, o, ts_ms),
        )  # fmt: skip
        if order.filled > before and self.tpsl_live.get(order.symbol):
            self._check_tpsl(order.symbol, ts_ms)  # may close the position this order reduces
        if not order.open:
            return
        if outcome == "rest":
            assert order.price is not None
            book.add(Resting(order.order_id, acct.name, order.is_buy, order.price, order.remaining))
        else:
            self._cancel(acct, order, ts_ms)

    def _take(
        self, symbol: str, is_buy: bool, qty: Decimal, limit: Decimal | None, ts_ms: int
    ) -> Decimal:
        """The generator's order takes liquidity (``rules.take``); TP/SL triggers follow."""
        done = take(
            self.books[symbol], is_buy, qty, limit, self._generator_fill(symbol, is_buy, ts_ms)
        )
        if done and self.tpsl_live.get(symbol):
            self._check_tpsl(symbol, ts_ms)
        return done

    def _taker_fill(self, taker: Order, ts_ms: int) -> Callable[[Fill], None]:
        """Books one fill of a user's taker order (and its maker) as the book matches it."""
        symbol, side, acct = (
            taker.symbol,
            "buy" if taker.is_buy else "sell",
            self.accounts[taker.account],
        )

        def on_fill(f: Fill) -> None:
            self.trades.append(TradeEvent(symbol, ts_ms, f.price, f.qty, side))
            self.last_price[symbol] = f.price
            self._fill(acct, taker, f.qty, f.price, False, ts_ms)
            self._maker_fill(symbol, f, ts_ms)

        return on_fill

    def _generator_fill(self, symbol: str, is_buy: bool, ts_ms: int) -> Callable[[Fill], None]:
        side = "buy" if is_buy else "sell"

        def on_fill(f: Fill) -> None:
            self.trades.append(TradeEvent(symbol, ts_ms, f.price, f.qty, side))
            self.last_price[symbol] = f.price
            self.mm_position[symbol] += f.qty if is_buy else -f.qty
            self._maker_fill(symbol, f, ts_ms)

        return on_fill

    def _maker_fill(self, symbol: str, f: Fill, ts_ms: int) -> None:
        if f.maker.owner is None:
            self.mm_position[symbol] += f.qty if f.maker.is_buy else -f.qty
            return
        acct = self.accounts[f.maker.owner]
        order = acct.open_orders[f.maker.oid]
        self._fill(acct, order, f.qty, f.price, True, ts_ms)

    def _fill(
        self, acct: Account, order: Order, q: Decimal, p: Decimal, maker: bool, ts_ms: int
    ) -> None:
        fee_paid = self.fees[order.symbol].of(q, p, maker)
        order.lock -= min(order.lock, q * order.lock_per_unit)
        order.filled += q
        order.filled_value += q * p
        order.fee += fee_paid
        order.mtime = ts_ms
        acct.wallet -= fee_paid
        acct.fees_total += fee_paid
        pnl, touched = self._book_position(acct, order, q, p, ts_ms)
        touched.fee += fee_paid
        order.realized_pnl += pnl
        self._record_fill(acct, order, q, p, fee_paid, pnl, maker, ts_ms)
        if order.tpsl and not order.tpsl_placed and not order.reduce_only:
            self._attach_tpsl(acct, order, touched, ts_ms)
        if order.filled >= order.qty:
            order.status = "FILLED"
            self._close_order(acct, order, "CLOSE")
        else:
            order.status = "PART_FILLED"
            self.events.append(PrivateEvent(acct.name, "order", order.push("UPDATE")))
        self._dirty.add(acct.name)

    def _book_position(
        self, acct: Account, order: Order, q: Decimal, p: Decimal, ts_ms: int
    ) -> tuple[Decimal, Position]:
        if acct.position_mode == "HEDGE" or order.position_side:
            key = (order.symbol, order.position_side)
            if order.trade_side == "CLOSE":
                hpos = acct.positions[key]
                return self._reduce(acct, key, hpos, q, p, ts_ms), hpos
            return ZERO, self._increase(acct, key, order, q, p, ts_ms)
        key = (order.symbol, "NET")
        pos = acct.positions.get(key)
        pnl = ZERO
        if pos is not None and (pos.side == "LONG") != order.is_buy:
            c = min(q, pos.qty)
            pnl = self._reduce(acct, key, pos, c, p, ts_ms)
            q -= c
            if q <= 0:
                return pnl, pos
        return pnl, self._increase(acct, key, order, q, p, ts_ms)

    def _increase(
        self, acct: Account, key: tuple[str, str], order: Order, q: Decimal, p: Decimal, ts_ms: int
    ) -> Position:
        pos = acct.positions.get(key)
        event = "UPDATE"
        if pos is None:
            event = "OPEN"
            pos = Position(
                position_id=self.new_id(),
                account=acct.name,
                symbol=order.symbol,
                side="LONG" if order.is_buy else "SHORT",
                position_mode=acct.position_mode,
                margin_mode=self.margin_mode(acct, order.symbol),
                leverage=self.leverage(acct, order.symbol),
                ctime=ts_ms,
                mtime=ts_ms,
            )
            acct.positions[key] = pos
        pos.qty += q
        pos.entry_value += q * p
        pos.margin += (q * p / pos.leverage).quantize(MONEY)
        pos.mtime = ts_ms
        self.events.append(
            PrivateEvent(acct.name, "position", pos.push(event, self.mark(pos.symbol)))
        )
        return pos

    def _reduce(
        self, acct: Account, key: tuple[str, str], pos: Position, c: Decimal, p: Decimal, ts_ms: int
    ) -> Decimal:
        if c >= pos.qty:
            c, value, margin = pos.qty, pos.entry_value, pos.margin
        else:
            value = (pos.entry_value * c / pos.qty).quantize(MONEY)
            margin = (pos.margin * c / pos.qty).quantize(MONEY)
        pnl = c * p - value if pos.side == "LONG" else value - c * p
        pos.qty -= c
        pos.entry_value -= value
        pos.margin -= margin
        pos.realized_pnl += pnl
        pos.mtime = ts_ms
        acct.wallet += pnl
        acct.pnl_total += pnl
        if pos.qty <= 0:
            del acct.positions[key]
            acct.position_history.append(pos)
            del acct.position_history[:-HISTORY_MAX]
            self.events.append(
                PrivateEvent(acct.name, "position", pos.push("CLOSE", self.mark(pos.symbol)))
            )
            self._cancel_tpsl_of(acct, pos.position_id, ts_ms)
        else:
            self.events.append(
                PrivateEvent(acct.name, "position", pos.push("UPDATE", self.mark(pos.symbol)))
            )
        for o in [o for o in acct.open_orders.values() if o.reduce_only and o.symbol == pos.symbol]:
            self._clamp_closing(acct, o, ts_ms)
        return pnl

    def _clamp_closing(self, acct: Account, order: Order, ts_ms: int) -> None:
        """Keep a closing order no larger than what its position still holds."""
        if order.position_side:
            hpos = acct.positions.get((order.symbol, order.position_side))
            can_close = hpos.qty if hpos else ZERO
        else:
            can_close = closable(
                signed_position(acct.positions.get((order.symbol, "NET"))), order.is_buy
            )
        left = clamp(order.remaining, can_close)
        if left is None:
            return
        book = self.books[order.symbol]
        if left == 0:
            self._cancel(acct, order, ts_ms)
            return
        order.qty = order.filled + left
        order.mtime = ts_ms
        if order.order_id in book:
            book.reduce(order.order_id, left)
        self.events.append(PrivateEvent(acct.name, "order", order.push("UPDATE")))

    def _cancel(self, acct: Account, order: Order, ts_ms: int) -> None:
        self.books[order.symbol].cancel(order.order_id)
        order.status = cancel_status(order.filled)
        order.mtime = ts_ms
        self._close_order(acct, order, "CLOSE")
        self._dirty.add(acct.name)

    def _close_order(self, acct: Account, order: Order, event: str) -> None:
        order.lock = ZERO
        acct.open_orders.pop(order.order_id, None)
        self.events.append(PrivateEvent(acct.name, "order", order.push(event)))

    def _record_fill(
        self,
        acct: Account,
        o: Order,
        q: Decimal,
        p: Decimal,
        fee: Decimal,
        pnl: Decimal,
        maker: bool,
        ts_ms: int,
    ) -> None:
        acct.fills.append(fill_view(self.new_id(), o, q, p, fee, pnl, maker, ts_ms))
        if len(acct.fills) > 2 * HISTORY_MAX:
            del acct.fills[:-HISTORY_MAX]

    def _flush(self) -> None:
        for name in sorted(self._dirty):
            self.events.append(
                PrivateEvent(name, "balance", self.balance_view(self.accounts[name]))
            )
        self._dirty.clear()

    def balance_view(self, acct: Account) -> dict[str, object]:
        return balance_view(acct)

    # TP/SL hooks; the TP/SL book lives in procs.exchange.tpsl and sets these
    def _attach_tpsl(self, acct: Account, order: Order, pos: Position, ts_ms: int) -> None:
        from procs.exchange.tpsl import place_tpsl

        order.tpsl_placed = True
        if pos.qty <= 0 or not any(k in order.tpsl for k in ("tpPrice", "slPrice")):
            return
        try:
            place_tpsl(
                self, acct.name, symbol=order.symbol, position_id=pos.position_id,
                fields=order.tpsl, ts_ms=ts_ms,
            )  # fmt: skip
        except ExchangeError:
            # the order stands; its invalid attached TP/SL is dropped and counted
            self.tpsl_attach_failed_total += 1

    def _check_tpsl(self, symbol: str, ts_ms: int) -> None:
        from procs.exchange.tpsl import check_triggers

        check_triggers(self, symbol, ts_ms)

    def _cancel_tpsl_of(self, acct: Account, position_id: str, ts_ms: int) -> None:
        if acct.tpsl:
            from procs.exchange.tpsl import cancel_for_position

            cancel_for_position(self, acct, position_id, ts_ms)
