"""A live execution journal, read for a replay of its run: what each trading step read
(``reads``), the intents, and every answer the venue gave (acks, refusals, order updates with
their fills, funding), each at the moment live execution applied it.

Read-only (``mode=ro``); a journal without a ``reads`` table (schema 2 or older) or without rows
in it cannot be followed (``FollowError``): the comparison then falls back to the backtest's
own timing (docs/backtest.md "Parity with live").
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from procs.trading.model import FundingEvent, OrderStatus, PositionSide, VenueOrderUpdate

__all__ = ["Answer", "FollowError", "LiveRead", "LiveRun", "intent_key", "live_intents"]

# our status after a venue update → the venue's own word for it (procs.trading.orders)
VENUE_STATUS: Final = {
    OrderStatus.ACKED: "NEW",
    OrderStatus.PART_FILLED: "PART_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.PART_FILLED_CANCELED: "PART_FILLED_CANCELED",
    OrderStatus.REJECTED: "REJECTED",
}
VENUE_CAUSES: Final = frozenset({"venue", "late fill"})  # tracker.on_venue_update's causes
INTENT_COLUMNS: Final = (
    "client_id", "symbol", "side", "order_type", "tif", "qty", "price", "reduce_only",
    "position_side", "tag", "ts_event_ns", "ts_recv_ns", "ts_order_ns", "ts_ns",
)  # fmt: skip


class FollowError(Exception):
    """The journal cannot be followed (no reads recorded, or not a journal)."""


@dataclass(frozen=True, slots=True)
class LiveRead:
    """One trading step of the live run (from a ``reads`` row)."""

    run_ms: int
    book_seq: int
    sig_first: int
    sig_last: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Answer:
    """What the venue told live execution about one order, and when execution applied it.

    ``kind``: "ack" (the REST answer to the place: ``order_id``), "reject" (the place was
    refused: ``reason``), "update" (a push or query answer: ``update``)."""

    kind: str
    ts_ns: int
    order_id: str = ""
    reason: str = ""
    update: VenueOrderUpdate | None = None


@dataclass
class LiveRun:
    path: Path
    reads: list[LiveRead]
    intents: list[dict[str, Any]]
    answers: dict[str, list[Answer]] = field(default_factory=dict)  # per live client id
    funding: list[FundingEvent] = field(default_factory=list)
    breaker: list[tuple[int, str, str, str]] = field(default_factory=list)  # (ts, old, new, why)

    @property
    def runs(self) -> list[int]:
        """The live process's runs (client id epochs, ms) in the order they read."""
        out: list[int] = []
        for r in self.reads:
            if not out or out[-1] != r.run_ms:
                out.append(r.run_ms)
        return out

    def round_trips_ns(self) -> list[int]:
        """Order sent → answered, per answered live intent (for orders it did not send)."""
        sent = {it["client_id"]: int(it["ts_order_ns"]) for it in self.intents}
        out = []
        for cid, answers in self.answers.items():
            first = next((a for a in answers if a.kind == "reject" or a.order_id), None)
            if first is not None and cid in sent and first.ts_ns >= sent[cid]:
                out.append(first.ts_ns - sent[cid])
        return out

    @classmethod
    def load(cls, path: str | Path) -> LiveRun:
        p = Path(path)
        if not p.is_file():
            raise FollowError(f"{p}: no such journal")
        try:
            conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            try:
                return cls._read(p, conn)
            finally:
                conn.close()
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise FollowError(f"{p}: not a readable execution journal ({exc})") from None

    @classmethod
    def _read(cls, p: Path, conn: sqlite3.Connection) -> LiveRun:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "reads" not in tables:
            raise FollowError(
                f"{p}: the journal records no reads (schema 2 or older): its steps cannot be "
                f"replayed"
            )
        reads = [
            LiveRead(int(run_ms), *map(int, step))
            for run_ms, steps in conn.execute("SELECT run_ms, steps FROM reads ORDER BY id")
            for step in json.loads(steps)
        ]
        if not reads:
            raise FollowError(f"{p}: no reads recorded (execution never traded, or ran with "
                              f"journal.reads_flush_s = 0)")  # fmt: skip
        run = cls(p, reads, _intents(conn))
        answers: dict[str, list[Answer]] = defaultdict(list)
        for row in conn.execute(
            "SELECT client_id, new, order_id, filled_qty, avg_price, fee, mtime_ms, cause, "
            "reason, ts_ns FROM order_events ORDER BY id"
        ):
            a = _answer(row)
            if a is not None:
                answers[str(row[0])].append(a)
        run.answers = dict(answers)
        run.funding = [
            FundingEvent(
                event_id=str(r[0]),
                symbol=str(r[1]),
                position_side=PositionSide(str(r[2])),
                amount=Decimal(str(r[3])),
                ts_ns=int(r[4]),
            )
            for r in conn.execute(
                "SELECT event_id, symbol, position_side, amount, ts_ns FROM funding ORDER BY id"
            )
        ]
        run.breaker = [
            (int(r[0]), str(r[1]), str(r[2]), str(r[3]))
            for r in conn.execute("SELECT ts_ns, old, new, trigger FROM breaker_events ORDER BY id")
        ]
        return run


def _answer(row: tuple[Any, ...]) -> Answer | None:
    cid, new, order_id, filled, avg, fee, mtime, cause, reason, ts = row
    if cause == "accepted":
        return Answer("ack", int(ts), order_id=str(order_id or ""))
    if cause == "rejected":
        return Answer("reject", int(ts), reason=str(reason or ""))
    if cause in VENUE_CAUSES:
        status = VENUE_STATUS.get(OrderStatus(str(new)))
        if status is None:
            return None
        update = VenueOrderUpdate(
            client_id=str(cid),
            order_id=str(order_id or ""),
            symbol="",  # filled in by the venue that replays it (the order's own symbol)
            status=status,
            filled_qty=Decimal(str(filled)),
            avg_price=Decimal(str(avg)),
            fee=Decimal(str(fee)),
            mtime_ms=int(mtime or 0),
        )
        return Answer("update", int(ts), order_id=str(order_id or ""), update=update)
    return None  # our own steps: sent, cancel requested, ack timeout, a query's not-found ...


def _intents(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(INTENT_COLUMNS)} FROM intents ORDER BY id")
    out = []
    for r in rows.fetchall():
        d = dict(zip(INTENT_COLUMNS, r, strict=True))
        d["reduce_only"] = bool(d["reduce_only"])
        out.append(d)
    return out


def live_intents(path: str | Path) -> list[dict[str, Any]]:
    """Every intent of a live journal, in the order it was written."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such journal")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        return _intents(conn)
    finally:
        conn.close()


def intent_key(it: dict[str, Any]) -> tuple[str, int, int]:
    """The signal an intent came from: its symbol and its tick's event and receive stamps."""
    return str(it["symbol"]), int(it["ts_event_ns"]), int(it["ts_recv_ns"])
