"""What the page shows, built from journal rows, execution's events and health replies.

Pure logic: the sources hand rows and replies in, ``snapshot()`` hands one JSON-able dict out.
Every change bumps ``version`` so the server pushes only when something changed.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final

from ipc.orders import PositionEvent

__all__ = ["JournalRows", "Limits", "View", "percentiles"]

TERMINAL: Final = frozenset({"FILLED", "CANCELED", "PART_FILLED_CANCELED", "REJECTED"})
T2O_SAMPLES: Final = 5000
RECENT_REFUSALS: Final = 20
OPERATOR: Final = "operator."
UNPRICED: Final = frozenset(
    {None, "", "reconciling"}
)  # execution's PnL is not known yet  # risk_events reasons of operator commands, not refusals
NS: Final = 1_000_000_000

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Execution's position limits, per symbol and in total (USDT notional, base-coin qty)."""

    position_notional: dict[str, float]
    position_qty: dict[str, float | None]
    total_notional: float


@dataclass(slots=True)
class JournalRows:
    """New rows of execution's journal since the last read, oldest first, as column dicts."""

    intents: list[Row] = field(default_factory=list)
    order_events: list[Row] = field(default_factory=list)
    fills: list[Row] = field(default_factory=list)
    risk_events: list[Row] = field(default_factory=list)
    breaker_events: list[Row] = field(default_factory=list)
    more: bool = False  # a table had more new rows than one read returns

    def __bool__(self) -> bool:
        return any(
            (self.intents, self.order_events, self.fills, self.risk_events, self.breaker_events)
        )


def percentiles(samples: list[float], qs: tuple[float, ...]) -> list[float | None]:
    """Nearest-rank percentiles of ``samples`` (None when there are none)."""
    if not samples:
        return [None] * len(qs)
    ordered = sorted(samples)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, math.ceil(q / 100 * n) - 1))] for q in qs]


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


class View:
    """The dashboard's state; one instance, fed on the event loop's thread only."""

    def __init__(self, limits: Limits, *, chart_points: int, recent_rows: int) -> None:
        self.limits = limits
        self.version = 0
        self.started_ns = 0
        self._recent = recent_rows
        self._exec: Row = {}
        self._exec_ok = False
        self._exec_error = "not asked yet"
        self._health: list[Row] = []
        self._health_ts_ns = 0
        self._killswitch: Row = {"on": False, "reason": "", "ts_ns": 0, "source": ""}
        self._open: dict[str, Row] = {}  # client_id -> order (intent + latest status)
        self._recv_ns: dict[str, int] = {}  # client_id -> tick receive stamp, until SENT
        self._t2o_us: deque[float] = deque(maxlen=T2O_SAMPLES)
        self._fills: deque[Row] = deque(maxlen=recent_rows)
        self._fills_total = 0
        self._refusals: Counter[str] = Counter()
        self._refusal_rows: deque[Row] = deque(maxlen=RECENT_REFUSALS)
        self._breaker: deque[Row] = deque(maxlen=recent_rows)
        self._operator: deque[Row] = deque(maxlen=recent_rows)  # kill switch, breaker reset...
        self._legs: dict[tuple[str, str], Row] = {}  # (symbol, side) -> last position event
        self._chart: deque[list[float]] = deque(maxlen=chart_points)
        self._last_event_ns = 0

    def _changed(self) -> None:
        self.version += 1

    # -- inputs ---------------------------------------------------------------------------

    def on_journal(self, rows: JournalRows) -> None:
        if not rows:
            return
        for r in rows.intents:
            cid = str(r["client_id"])
            self._open[cid] = {**r, "status": "NEW_INTENT", "filled_qty": "0"}
            if r.get("ts_recv_ns"):
                self._recv_ns[cid] = int(r["ts_recv_ns"])
        for r in rows.order_events:
            self._on_order_event(r)
        for r in rows.fills:
            self._fills.appendleft(r)
            self._fills_total += 1
        for r in rows.risk_events:
            if str(r["reason"]).startswith(OPERATOR):  # execution journals commands there too
                self._operator.appendleft(r)
                continue
            self._refusals[str(r["reason"])] += 1
            self._refusal_rows.appendleft(r)
        for r in rows.breaker_events:
            self._breaker.appendleft(r)
        self._changed()

    def _on_order_event(self, r: Row) -> None:
        cid, new = str(r["client_id"]), str(r["new"])
        recv = self._recv_ns.pop(cid, 0) if new != "NEW_INTENT" else 0
        if new == "SENT" and recv and r.get("ts_sent_ns"):
            self._t2o_us.append((int(r["ts_sent_ns"]) - recv) / 1e3)
        order = self._open.get(cid)
        if order is None:
            return  # intent read before this dashboard's window (pruned or older session)
        if new in TERMINAL:
            del self._open[cid]
            return
        order.update(status=new, filled_qty=r.get("filled_qty", "0"), order_id=r.get("order_id"))

    def on_position(self, ev: PositionEvent) -> None:
        self._legs[(ev.symbol, ev.position_side)] = {
            "symbol": ev.symbol,
            "position_side": ev.position_side,
            "qty": str(ev.qty),
            "avg_price": str(ev.avg_price),
            "mark": str(ev.mark),
            "realised": str(ev.realised),
            "unrealised": str(ev.unrealised),
            "fees": str(ev.fees),
            "funding": str(ev.funding),
            "ts_ns": ev.ts_ns,
        }
        self._changed()

    def on_event_seen(self, ts_ns: int) -> None:
        self._last_event_ns = ts_ns

    def on_execution(self, data: Row | None, now_ns: int, error: str = "") -> None:
        """Execution's health reply (None: it did not answer)."""
        if data is None:
            if self._exec_ok or self._exec_error != error:
                self._exec_ok, self._exec_error = False, error
                self._changed()
            return
        counters = dict(data.get("counters", {}))
        new = {"state": data.get("state"), **counters}
        if new != self._exec or not self._exec_ok:
            self._exec, self._exec_ok, self._exec_error = new, True, ""
            self._changed()
        self._sample(now_ns)

    def _sample(self, now_ns: int) -> None:
        if self._chart and now_ns - self._chart[-1][0] * 1e6 < NS:  # points are in ms
            return  # at most one point a second
        pnl = self.pnl()
        if self._exec.get("state") in UNPRICED or (
            self._fills_total and not (pnl["fees"] or pnl["realised"])
        ):
            # execution reports zeros until its book is rebuilt and every open leg has a
            # price: a journal with fills has paid fees, so zeros now are "not known yet"
            return
        point = [now_ns / 1e6, pnl["net"], pnl["realised"], pnl["unrealised"]]
        self._chart.append(point)
        self._changed()

    def on_health(self, rows: list[Row], now_ns: int) -> None:
        self._health, self._health_ts_ns = rows, now_ns
        self._changed()

    def on_killswitch(self, state: Row) -> None:
        if state != self._killswitch:
            self._killswitch = dict(state)
            self._changed()

    # -- outputs --------------------------------------------------------------------------

    def pnl(self) -> dict[str, float]:
        e = self._exec
        realised, unrealised = _f(e.get("realised_pnl")), _f(e.get("unrealised_pnl"))
        fees, funding = _f(e.get("fees")), _f(e.get("funding"))
        net = realised + unrealised - fees + funding
        return {
            "realised": realised,
            "unrealised": unrealised,
            "fees": fees,
            "funding": funding,
            "net": net,
        }

    def positions(self) -> tuple[list[Row], float]:
        try:
            qtys: dict[str, str] = json.loads(str(self._exec.get("positions", "{}")))
        except ValueError:
            qtys = {}
        rows, total = [], 0.0
        for sym in sorted(set(qtys) | set(self.limits.position_notional)):
            qty = _f(qtys.get(sym, 0))
            legs = [leg for (s, _), leg in self._legs.items() if s == sym]
            mark = next((_f(leg["mark"]) for leg in legs if _f(leg["mark"])), 0.0)
            avg = next((_f(leg["avg_price"]) for leg in legs if _f(leg["qty"])), 0.0)
            price = mark or avg
            notional = abs(qty) * price if price else (0.0 if not qty else None)
            limit = self.limits.position_notional.get(sym)
            total += notional or 0.0
            rows.append(
                {
                    "symbol": sym,
                    "qty": qty,
                    "avg_price": avg or None,
                    "mark": mark or None,
                    "notional": notional,
                    "limit_notional": limit,
                    "used": (notional / limit) if notional is not None and limit else None,
                    "limit_qty": self.limits.position_qty.get(sym),
                    "realised": sum(_f(leg["realised"]) for leg in legs),
                    "unrealised": sum(_f(leg["unrealised"]) for leg in legs),
                    "mark_ts_ns": max((int(leg["ts_ns"]) for leg in legs), default=0),
                }
            )
        return rows, total

    def snapshot(self, now_ns: int) -> Row:
        positions, total = self.positions()
        p50, p90, p99, top = percentiles(list(self._t2o_us), (50, 90, 99, 100))
        e = self._exec
        return {
            "version": self.version,
            "now_ms": now_ns / 1e6,
            "started_ms": self.started_ns / 1e6,
            "execution": {
                "ok": self._exec_ok,
                "error": self._exec_error,
                "state": e.get("state", "unknown"),
                "mode": e.get("mode", ""),
                "breaker": e.get("breaker", "unknown"),
                "kill_switch": bool(e.get("kill_switch", 0)),
                "open_orders": e.get("open_orders"),
                "orders_sent_total": e.get("orders_sent_total", 0),
                "fills_total": e.get("fills_total", 0),
                "refusals_total": e.get("refusals_total", 0),
                "ws_connected": bool(e.get("ws_connected", 0)),
            },
            "killswitch_file": self._killswitch,
            "positions": positions,
            "exposure": {"total": total, "limit": self.limits.total_notional},
            "pnl": self.pnl(),
            "chart": list(self._chart),
            "open_orders": sorted(self._open.values(), key=lambda o: -int(o.get("ts_ns", 0))),
            "fills": list(self._fills),
            "fills_seen": self._fills_total,
            "refusals": dict(self._refusals.most_common()),
            "refusal_rows": list(self._refusal_rows),
            "breaker_history": list(self._breaker),
            "operator_actions": list(self._operator),
            "health": self._health,
            "health_ms": self._health_ts_ns / 1e6,
            "tick_to_order_us": {"p50": p50, "p90": p90, "p99": p99, "max": top},
            "tick_to_order_n": len(self._t2o_us),
            "last_event_ms": self._last_event_ns / 1e6,
        }
