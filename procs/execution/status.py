"""Health and gauge pieces of the execution process that need no trading state: the input rings'
lag and loss, and PnL totals as health fields.
"""

from __future__ import annotations

from procs.execution.positions import PnlTotals
from shm.ring import RecordSource


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
