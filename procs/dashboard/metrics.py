"""The dashboard's Prometheus series, read from its counters when scraped:
``bitrader_dashboard_logins_total{outcome}``, ``bitrader_dashboard_refused_requests_total``,
``bitrader_dashboard_killswitch_actions_total``, ``bitrader_dashboard_sessions``,
``bitrader_dashboard_events_total``, ``bitrader_dashboard_audit_pending`` (records
execution's audit chain has not taken yet) and ``bitrader_dashboard_audit_undelivered_total``
(the runtime adds the ``proc`` label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from procs.observe.metrics import NAMESPACE

__all__ = ["DashboardCollector"]

P: Final = f"{NAMESPACE}_dashboard"
OUTCOMES: Final = {"ok": "logins_ok_total", "failed": "logins_failed_total"}
OUTCOMES_MORE: Final = {"rate_limited": "logins_limited_total"}


class DashboardCollector(Collector):
    """Reads ``health()`` (plain ints, read under the GIL on the scrape thread)."""

    def __init__(self, health: Callable[[], Mapping[str, int | float | str]]) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        h = self._health()

        def n(key: str) -> float:
            v = h.get(key, 0)
            return float(v) if isinstance(v, int | float) else 0.0

        logins = CounterMetricFamily(f"{P}_logins", "login attempts by outcome", labels=["outcome"])
        for outcome, key in {**OUTCOMES, **OUTCOMES_MORE}.items():
            logins.add_metric([outcome], n(key))
        yield logins
        yield CounterMetricFamily(
            f"{P}_refused_requests", "requests from outside the allowlist", value=n("refused_total")
        )
        yield CounterMetricFamily(
            f"{P}_killswitch_actions",
            "kill-switch requests carried out",
            value=n("killswitch_actions_total"),
        )
        yield CounterMetricFamily(
            f"{P}_events", "execution events received", value=n("events_total")
        )
        yield GaugeMetricFamily(f"{P}_sessions", "live login sessions", value=n("sessions"))
        yield GaugeMetricFamily(
            f"{P}_audit_pending",
            "audit records not yet in execution's audit chain",
            value=n("audit_undelivered"),
        )
        yield CounterMetricFamily(
            f"{P}_audit_undelivered",
            "audit records execution did not take at the first try",
            value=n("audit_undelivered_total"),
        )
