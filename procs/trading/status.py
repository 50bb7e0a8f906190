"""Health and gauge pieces of the execution process that need no trading state: the input rings'
lag and loss, and PnL totals as health fields.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from procs.trading.positions import PnlTotals
from shm.ring import RecordSource

if TYPE_CHECKING:
    from procs.trading.engine import ExecutionProc
    from procs.trading.metrics import ExecutionMetrics


class RingWatch:
    """Reports the process's input rings (``sig``, ``book``) to health (Prometheus reads them
    through the runtime's ``RingCollector``)."""

    def __init__(self, rings: dict[str, RecordSource]) -> None:
        self._rings = rings

    def health(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, ring in self._rings.items():
            out[f"{name}_ring_lag_records"] = ring.lag_records
            out[f"{name}_ring_dropped_total"] = ring.dropped_total
        out["ring_lag_records"] = sum(r.lag_records for r in self._rings.values())
        out["ring_dropped_total"] = sum(r.dropped_total for r in self._rings.values())
        return out


def pnl_health(totals: PnlTotals | None) -> dict[str, float]:
    """PnL fields of health (zero while an open leg has no price yet)."""
    kinds = ("realised", "unrealised", "fees", "funding")
    names = ("realised_pnl", "unrealised_pnl", "fees", "funding")
    return {
        n: float(getattr(totals, k)) if totals else 0.0 for n, k in zip(names, kinds, strict=True)
    }


def set_gauges(p: ExecutionProc, m: ExecutionMetrics) -> None:
    """Set the process's state gauges (every housekeeping pass)."""
    m.open_orders.set(len(p.tracker.open_orders()))
    m.breaker_state.set(p.breaker.state.name.lower())
    m.state.set(p.state)
    m.kill_switch.set(int(p.killswitch.on))
    rec = p.last_reconcile
    m.reconcile_differences.set(len(rec.differences) if rec else 0)
    m.day_pnl.set(float(p.daily.day_pnl))
    m.loss_limit.set(float(p.risk.config.daily_loss_limit_usdt))  # reloadable
    for sym in p.instruments:
        m.position_qty.labels(sym).set(float(p.positions.net_qty(sym)))


def execution_health(
    p: ExecutionProc, now: int, totals: PnlTotals | None
) -> dict[str, float | int | str]:
    """The execution process's ``health`` counters: trading state and why, orders, PnL, rings.

    ``state`` is the trading state (reconciling, active, reducing, halted, killed);
    ``reconciling_s`` how long reconciliation has not agreed with the venue; a non-empty
    ``reconcile_stuck_reason`` says what differs and what an operator can do.
    """
    rec, r = p.last_reconcile, p.reconciler
    return {
        "state": p.state,
        "breaker": p.breaker.state.name,
        "breaker_backoff_s": p.breaker.backoff_left_s(now),
        "kill_switch": int(p.killswitch.on),
        "kill_switch_persisted": int(p.killswitch.persisted),
        "open_orders": len(p.tracker.open_orders()),
        "positions": json.dumps({s: str(p.positions.net_qty(s)) for s in p.instruments}),
        **pnl_health(totals),
        **{k: p.counters[k] for k in COUNTERS},
        "reconcile_differences": len(rec.differences) if rec else -1,
        "reconciling_s": round(r.out_of_sync_s(now), 3),
        "reconcile_passes_total": r.total,
        "reconcile_stuck": int(r.stuck),
        "reconcile_stuck_reason": r.stuck_reason,
        "reconcile_rows_skipped_total": r.rows_skipped_total,
        "funding_figures_older_total": p.legs.older_funding_total,
        "ws_connected": int(p.venue.ws_connected),
        "ws_frames_skipped_total": p.venue.ws_frames_skipped_total,
        "journal_write_error": p.journal.write_error,  # "" while the journal takes writes
        "journal_write_errors_total": p.journal.write_errors_total,
        "journal_repeated_intents_total": p.journal.repeated_intents_total,
        "intent_sync": log.sync if (log := p.journal.intent_log) else "none",
        "stale_symbols": len(p.stale),
        "last_tick_to_order_us": p.last_tick_to_order_ns / 1e3,
    }


COUNTERS = (
    "orders_sent_total",
    "cancels_sent_total",
    "fills_total",
    "funding_events_total",
    "refusals_total",
    "venue_errors_total",
    "rate_limited_total",
    "queries_total",
    "query_throttled_total",
    "orders_lost_at_venue_total",
    "ws_down_deferred_total",
    "rate_limited_deferred_total",
)
