"""``ExecutionMetrics``: the execution process's Prometheus collectors (``pipe_execution_*``).

Latency histograms have microsecond-scale buckets: one per pipeline stage of the tick that caused
an order (recv → ingest publish → features → signal → order) and tick-to-order end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from procs.execution.model import TickStamps

NS: Final = 1_000_000_000
LATENCY_BUCKETS_S: Final = (
    *(5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6),
    *(1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1, 0.5, 1.0),
)
STAGES: Final = ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order")


@dataclass(frozen=True)
class ExecutionMetrics:
    """Collectors; ``stage_seconds`` is labelled by ``stage`` (one of ``STAGES``)."""

    orders_sent: Counter
    cancels_sent: Counter
    refusals: Counter
    fills: Counter
    venue_errors: Counter
    breaker_transitions: Counter
    tick_to_order_seconds: Histogram
    stage_seconds: Histogram
    order_ack_seconds: Histogram
    intent_write_seconds: Histogram
    signals: Counter
    ring_lag: Gauge
    ring_dropped: Counter
    open_orders: Gauge
    position_qty: Gauge
    pnl: Gauge
    breaker_state: Gauge
    state: Gauge


def make_metrics(registry: CollectorRegistry) -> ExecutionMetrics:
    """Register every execution collector in ``registry`` (tests pass a fresh one)."""
    p, r = "pipe_execution", registry
    return ExecutionMetrics(
        orders_sent=Counter(f"{p}_orders_sent", "orders handed to the venue", registry=r),
        cancels_sent=Counter(f"{p}_cancels_sent", "cancels handed to the venue", registry=r),
        refusals=Counter(f"{p}_refusals", "orders refused before sending", ["reason"], registry=r),
        fills=Counter(f"{p}_fills", "fills booked (once each)", registry=r),
        venue_errors=Counter(f"{p}_venue_errors", "venue call failures", ["kind"], registry=r),
        breaker_transitions=Counter(
            f"{p}_breaker_transitions", "breaker transitions", ["trigger"], registry=r
        ),
        tick_to_order_seconds=Histogram(
            f"{p}_tick_to_order_seconds",
            "ts_recv of the causing tick to the order leaving execution",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        stage_seconds=Histogram(
            f"{p}_stage_seconds",
            "per-stage latency of the tick that caused each order",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        order_ack_seconds=Histogram(
            f"{p}_order_ack_seconds",
            "order leaving execution to the venue's acknowledgement",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        intent_write_seconds=Histogram(
            f"{p}_intent_write_seconds",
            "journaling one intent (fsync) before sending",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        signals=Counter(f"{p}_signals", "SIG_V1 records read", registry=r),
        ring_lag=Gauge(f"{p}_ring_lag_records", "published minus read", ["ring"], registry=r),
        ring_dropped=Counter(
            f"{p}_ring_dropped_records", "records lost to lapping", ["ring"], registry=r
        ),
        open_orders=Gauge(f"{p}_open_orders", "orders open (any non-terminal state)", registry=r),
        position_qty=Gauge(f"{p}_position_qty", "signed net position", ["symbol"], registry=r),
        pnl=Gauge(f"{p}_pnl_usdt", "PnL by kind", ["kind"], registry=r),
        breaker_state=Gauge(f"{p}_breaker_state", "0 active, 1 reducing, 2 halted", registry=r),
        state=Gauge(
            f"{p}_state",
            "0 reconciling, 1 active, 2 reducing, 3 halted, 4 killed",
            registry=r,
        ),
    )


def observe_order_latency(
    m: ExecutionMetrics, s: TickStamps, leave_ns: int, ts_pub_ns: int = 0
) -> int:
    """Record the latencies of one order's tick (``ts_pub_ns`` 0: unknown); return tick-to-order."""
    tick_to_order = leave_ns - s.ts_recv_ns
    m.tick_to_order_seconds.observe(tick_to_order / NS)
    stage = m.stage_seconds.labels
    if ts_pub_ns:
        stage("recv_to_ingest").observe((ts_pub_ns - s.ts_recv_ns) / NS)
        if s.ts_feat_ns:
            stage("ingest_to_features").observe((s.ts_feat_ns - ts_pub_ns) / NS)
    if s.ts_feat_ns and s.ts_sig_ns:
        stage("features_to_signal").observe((s.ts_sig_ns - s.ts_feat_ns) / NS)
    if s.ts_sig_ns:
        stage("signal_to_order").observe((leave_ns - s.ts_sig_ns) / NS)
    return tick_to_order
