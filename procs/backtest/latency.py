"""Latency models for the backtest: how long an order takes to reach the venue (``entry``), its
answer and pushes to come back (``response``), and a cancel to arrive (``cancel``).

- ``constant``: fixed figures from config.
- ``lognormal``: each draw is ``median × exp(sigma × N(0, 1))`` from a seeded generator, so a
  run is reproducible and the median stays the configured figure.
- ``journal``: the live run's own round trips, read from its execution journal (sent → acked for
  orders, cancel requested → cancelled for cancels), replayed in the order they happened and
  cycled; each round trip is split ``entry_share`` : ``1 - entry_share`` between the two legs
  (the journal stamps only our side of the wire).

Market data needs no model: the strategy sees each record at the ``ts_recv_ns`` the capture
recorded, which carries the live feed latency.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Annotated, Final, Literal, Protocol

import msgspec
import numpy as np

__all__ = ["LatencyConfig", "LatencyError", "LatencyModel", "make_latency"]

NS: Final = 1_000_000_000
PosFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class LatencyError(Exception):
    """A latency source cannot be used (a journal without round trips, say)."""


class LatencyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[backtest.latency]``: seconds; ``journal`` names a live execution journal (sqlite)."""

    model: Literal["constant", "lognormal", "journal"] = "constant"
    entry_s: NonNegFloat = 0.001  # our order leaves -> the venue has it
    response_s: NonNegFloat = 0.001  # the venue answers -> we have the answer / push
    cancel_s: NonNegFloat = 0.001  # our cancel leaves -> the venue has it
    sigma: NonNegFloat = 0.5  # lognormal: shape
    seed: int = 0  # lognormal: generator seed
    journal: str = ""  # journal: the live run's journal file
    entry_share: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5  # journal: entry's part


class LatencyModel(Protocol):
    name: str

    def entry_ns(self) -> int: ...

    def response_ns(self) -> int: ...

    def cancel_ns(self) -> int: ...

    def describe(self) -> dict[str, object]: ...


class ConstantLatency:
    name = "constant"

    def __init__(self, c: LatencyConfig) -> None:
        self._e, self._r, self._c = (round(x * NS) for x in (c.entry_s, c.response_s, c.cancel_s))

    def entry_ns(self) -> int:
        return self._e

    def response_ns(self) -> int:
        return self._r

    def cancel_ns(self) -> int:
        return self._c

    def describe(self) -> dict[str, object]:
        return {
            "model": self.name,
            "entry_ns": self._e,
            "response_ns": self._r,
            "cancel_ns": self._c,
        }


class LognormalLatency:
    name = "lognormal"

    def __init__(self, c: LatencyConfig) -> None:
        self._c = c
        self._rng = np.random.Generator(np.random.PCG64(c.seed))

    def _draw(self, median_s: float) -> int:
        return round(median_s * math.exp(self._c.sigma * float(self._rng.standard_normal())) * NS)

    def entry_ns(self) -> int:
        return self._draw(self._c.entry_s)

    def response_ns(self) -> int:
        return self._draw(self._c.response_s)

    def cancel_ns(self) -> int:
        return self._draw(self._c.cancel_s)

    def describe(self) -> dict[str, object]:
        c = self._c
        return {
            "model": self.name,
            "median_entry_s": c.entry_s,
            "median_response_s": c.response_s,
            "median_cancel_s": c.cancel_s,
            "sigma": c.sigma,
            "seed": c.seed,
        }


def journal_round_trips(path: str | Path) -> tuple[list[int], list[int]]:
    """(order round trips, cancel round trips) in ns, in journal order, from a live journal."""
    p = Path(path)
    if not p.is_file():
        raise LatencyError(f"{p}: no such journal")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            orders = conn.execute(
                "SELECT ts_ns - ts_sent_ns FROM order_events WHERE old = 'SENT' AND ts_sent_ns > 0"
                " AND new IN ('ACKED', 'PART_FILLED', 'FILLED', 'CANCELED') ORDER BY id"
            ).fetchall()
            cancels = conn.execute(
                "SELECT ts_ns - ts_cancel_ns FROM order_events WHERE ts_cancel_ns > 0 AND new IN"
                " ('CANCELED', 'PART_FILLED_CANCELED') ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise LatencyError(f"{p}: not a readable execution journal ({exc})") from None
    rt = [int(r[0]) for r in orders if r[0] is not None and int(r[0]) >= 0]
    ct = [int(r[0]) for r in cancels if r[0] is not None and int(r[0]) >= 0]
    if not rt:
        raise LatencyError(f"{p}: no acknowledged orders to take latencies from")
    return rt, ct or rt


class JournalLatency:
    name = "journal"

    def __init__(self, c: LatencyConfig) -> None:
        self._path = c.journal
        self._share = c.entry_share
        self._orders, self._cancels = journal_round_trips(c.journal)
        self._i = self._j = self._k = 0

    def entry_ns(self) -> int:
        rt = self._orders[self._i % len(self._orders)]
        return int(rt * self._share)

    def response_ns(self) -> int:
        rt = self._orders[self._i % len(self._orders)]
        self._i += 1  # one round trip per order: entry, then its response
        return rt - int(rt * self._share)

    def cancel_ns(self) -> int:
        rt = self._cancels[self._k % len(self._cancels)]
        self._k += 1
        return int(rt * self._share)

    def describe(self) -> dict[str, object]:
        o = np.asarray(self._orders, dtype=np.float64)
        return {
            "model": self.name,
            "journal": self._path,
            "entry_share": self._share,
            "order_round_trips": len(self._orders),
            "cancel_round_trips": len(self._cancels),
            "median_round_trip_ns": int(np.median(o)),
            "p99_round_trip_ns": int(np.percentile(o, 99)),
        }


def make_latency(c: LatencyConfig) -> LatencyModel:
    if c.model == "journal":
        if not c.journal:
            raise LatencyError("latency model 'journal' needs latency.journal = PATH")
        return JournalLatency(c)
    if c.model == "lognormal":
        return LognormalLatency(c)
    return ConstantLatency(c)
