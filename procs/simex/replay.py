"""Replay an HDF5 capture (md.book + md.trade) as market-source actions for simex's books.

Each captured book snapshot becomes the cancels and adds that make the replay's own liquidity
equal that snapshot (one order per price level); each captured trade becomes a take, so user
orders resting at the traded price fill as they would have. Pure once the records are loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np

from procs.exchange.marketgen import Action, AddAction, BookView, CancelAction, TakeAction
from procs.exchange.model import SymbolSpec
from shm.records import Records

__all__ = ["ReplayError", "ReplaySource", "load_replay"]

_GAP_NS = 1_000_000  # between the end of the capture and its next loop


class ReplayError(Exception):
    """A capture that cannot be replayed with this configuration (names file and reason)."""


class ReplaySource:
    """Capture records turned into actions at ``speed`` times real time, looping if asked."""

    def __init__(
        self,
        books: Records,
        trades: Records,
        symbols: Sequence[str],
        specs: Mapping[str, SymbolSpec],
        *,
        start_ns: int,
        speed: float = 1.0,
        loop: bool = True,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, was {speed}")
        if books.size + trades.size == 0:
            raise ReplayError("capture holds no md.book or md.trade records")
        self._books, self._trades = books, trades
        self._symbols = list(symbols)
        self._specs = specs
        ts = np.concatenate([trades["ts_event_ns"], books["ts_event_ns"]]).astype(np.int64)
        kind = np.concatenate([np.zeros(trades.size, np.int8), np.ones(books.size, np.int8)])
        idx = np.concatenate([np.arange(trades.size), np.arange(books.size)])
        order = np.lexsort((kind, ts))  # trades before the snapshot that follows them
        self._ts, self._kind, self._idx = ts[order], kind[order], idx[order]
        self._c0 = int(self._ts[0])
        self._span = int(self._ts[-1]) - self._c0 + _GAP_NS
        self._start_ns, self._speed, self._loop = start_ns, speed, loop
        self._cursor, self._cycle = 0, 0
        self._levels: dict[str, dict[tuple[bool, Decimal], tuple[str, Decimal]]] = {}
        self._seq = 0

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def finished(self) -> bool:
        return not self._loop and self._cursor >= self._ts.size

    @property
    def time_ns(self) -> int:
        """Wall time of the next action not yet produced."""
        if self.finished:
            return 2**62
        return self._wall(self._cursor, self._cycle)

    def skip_to(self, t_ns: int) -> None:
        while not self.finished and self.time_ns < t_ns:
            self._advance()

    def actions_until(self, t_ns: int, books: Mapping[str, BookView]) -> Iterator[Action]:
        """Yield the actions due before ``t_ns``; lazy, like MarketGenerator.actions_until."""
        while not self.finished and self.time_ns < t_ns:
            ts = self.time_ns
            i, kind = int(self._idx[self._cursor]), int(self._kind[self._cursor])
            rec_actions = (
                self._trade(ts, self._trades[i])
                if kind == 0
                else self._book(ts, self._books[i], books)
            )
            self._advance()
            yield from rec_actions

    def _advance(self) -> None:
        self._cursor += 1
        if self._cursor >= self._ts.size and self._loop:
            self._cursor, self._cycle = 0, self._cycle + 1

    def _wall(self, cursor: int, cycle: int) -> int:
        cap = int(self._ts[cursor]) - self._c0 + cycle * self._span
        return self._start_ns + int(cap / self._speed)

    def _symbol(self, rec: np.void) -> tuple[str, SymbolSpec] | None:
        sid = int(rec["symbol_id"])
        if not 0 <= sid < len(self._symbols):
            return None
        name = self._symbols[sid]
        spec = self._specs.get(name)
        return None if spec is None else (name, spec)

    def _trade(self, ts: int, rec: np.void) -> list[Action]:
        found = self._symbol(rec)
        if found is None:
            return []
        name, spec = found
        qty = Decimal(repr(float(rec["qty"]))).quantize(spec.step)
        if qty <= 0:
            return []
        return [TakeAction(ts, name, int(rec["side"]) > 0, qty)]

    def _book(self, ts: int, rec: np.void, books: Mapping[str, BookView]) -> list[Action]:
        found = self._symbol(rec)
        if found is None:
            return []
        name, spec = found
        want: dict[tuple[bool, Decimal], Decimal] = {}
        for is_buy, px_f, qty_f, n_f in (
            (True, "bid_px", "bid_qty", "n_bids"),
            (False, "ask_px", "ask_qty", "n_asks"),
        ):
            n = int(rec[n_f])
            for px, qty in zip(rec[px_f][:n].tolist(), rec[qty_f][:n].tolist(), strict=True):
                p = Decimal(repr(px)).quantize(spec.tick)
                q = Decimal(repr(qty)).quantize(spec.step)
                if p > 0 and q > 0:
                    want[(is_buy, p)] = q
        have = self._levels.setdefault(name, {})
        book = books.get(name)
        out: list[Action] = []
        for key, (oid, qty) in list(have.items()):
            # compare with what is left in the book: users (and replayed trades) take liquidity
            left = qty if book is None else book.remaining(oid)
            if want.get(key) != left:
                out.append(CancelAction(ts, name, oid))
                del have[key]
        # adds far side first so a level that now crosses a stale one trades least
        for key in sorted(want, key=lambda k: (k[0], k[1] if k[0] else -k[1])):
            if key not in have:
                self._seq += 1
                oid = f"r{name}.{self._seq}"
                have[key] = (oid, want[key])
                out.append(AddAction(ts, name, oid, key[0], key[1], want[key]))
        return out


def load_replay(
    path: str | Path,
    specs: Mapping[str, SymbolSpec],
    *,
    start_ns: int,
    speed: float = 1.0,
    loop: bool = True,
) -> ReplaySource:
    """Read a capture file (or every capture in a directory) into a ReplaySource."""
    from procs.tickstore import STREAM_BOOK, STREAM_TRADE
    from procs.tickstore.store import CaptureError, CaptureReader, list_captures, read_stream
    from shm.records import BOOK_V1, TRADE_V1

    p = Path(path)
    files = list_captures(p) if p.is_dir() else [p]
    if not files:
        raise ReplayError(f"replay path={p}: no capture files")
    try:
        with CaptureReader(files[0]) as r:
            symbols = [str(s) for s in r.attrs.get("symbols", [])]
        books = read_stream(files, STREAM_BOOK, BOOK_V1)
        trades = read_stream(files, STREAM_TRADE, TRADE_V1)
    except (CaptureError, OSError, KeyError) as exc:
        raise ReplayError(f"replay path={p}: {exc}") from None
    missing = [s for s in symbols if s not in specs]
    if not symbols or len(missing) == len(symbols):
        raise ReplayError(f"replay path={p}: capture symbols {symbols} are not configured")
    return ReplaySource(books, trades, symbols, specs, start_ns=start_ns, speed=speed, loop=loop)
