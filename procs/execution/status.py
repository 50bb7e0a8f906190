"""Health and gauge pieces of the execution process that need no trading state: the input rings'
lag and loss, and PnL totals as health fields.
"""

from __future__ import annotations

from procs.execution.metrics import ExecutionMetrics
from procs.execution.positions import PnlTotals
from shm.ring import RecordSource


class RingWatch:
    """Reports the process's input rings (``sig``, ``book``) to health and Prometheus."""

    def __init__(self, metrics: ExecutionMetrics, rings: dict[str, RecordSource]) -> None:
        self._m = metrics
        self._rings = rings
        self._dropped_seen = dict.fromkeys(rings, 0)

    def gauges(self) -> None:
        m = self._m
        for name, ring in self._rings.items():
            m.ring_lag.labels(name).set(ring.lag_records)
            m.ring_dropped.labels(name).inc(ring.dropped_total - self._dropped_seen[name])
            self._dropped_seen[name] = ring.dropped_total

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
