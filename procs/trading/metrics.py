"""``ExecutionMetrics``: the execution process's Prometheus collectors (``bitrader_*``).

Latency histograms have buckets from 5 µs to 1 s (``procs.observe.LATENCY_BUCKETS_S``): one per
pipeline stage of the tick that caused an order (recv → ingest publish → features → signal →
order) and tick-to-order end to end. The four stages are observed for the same orders: those
whose tick has every stamp; the others count in ``order_stamps_incomplete``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from procs.observe import LATENCY_BUCKETS_S, NAMESPACE, SLOW_BUCKETS_S, StateGauge
from procs.trading.model import TickStamps

NS: Final = 1_000_000_000
STAGES: Final = ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order")
STATES: Final = ("reconciling", "active", "reducing", "halted", "killed")
BREAKER_STATES: Final = ("active", "reducing", "halted")
PNL_KINDS: Final = ("realised", "unrealised", "fees", "funding", "net")


@dataclass(frozen=True)
class ExecutionMetrics:
    """Collectors; ``stage_seconds`` is labelled by ``stage`` (one of ``STAGES``)."""

    orders_sent: Counter
    cancels_sent: Counter
    refusals: Counter
    rejects: Counter
    fills: Counter
    venue_errors: Counter
    breaker_transitions: Counter
    tick_to_order_seconds: Histogram
    stage_seconds: Histogram
    stamps_incomplete: Counter
    order_ack_seconds: Histogram
    intent_write_seconds: Histogram
    intent_sync_seconds: Histogram
    signals: Counter
    open_orders: Gauge
    position_qty: Gauge
    pnl: Gauge
    day_pnl: Gauge
    loss_limit: Gauge
    kill_switch: Gauge
    reconcile_differences: Gauge
    breaker_state: StateGauge
    state: StateGauge


def make_metrics(registry: CollectorRegistry) -> ExecutionMetrics:
    """Register every execution collector in ``registry`` (tests pass a fresh one)."""
    p, r = NAMESPACE, registry
    m = ExecutionMetrics(
        orders_sent=Counter(f"{p}_orders_sent", "orders handed to the venue", registry=r),
        cancels_sent=Counter(f"{p}_cancels_sent", "cancels handed to the venue", registry=r),
        refusals=Counter(
            f"{p}_order_refusals", "orders refused before sending", ["reason"], registry=r
        ),
        rejects=Counter(f"{p}_order_rejects", "orders that ended REJECTED", registry=r),
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
            "per-stage latency of the tick that caused each order (orders with every stamp)",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        stamps_incomplete=Counter(
            f"{p}_order_stamps_incomplete",
            "orders whose tick lacked a stage stamp (in tick-to-order, not in stage_seconds)",
            registry=r,
        ),
        order_ack_seconds=Histogram(
            f"{p}_order_ack_seconds",
            "order leaving execution to the venue's acknowledgement",
            buckets=SLOW_BUCKETS_S,
            registry=r,
        ),
        intent_write_seconds=Histogram(
            f"{p}_intent_write_seconds",
            "writing one intent's line before sending (its fsync too, intent_sync before_send)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        intent_sync_seconds=Histogram(
            f"{p}_intent_sync_seconds",
            "intent_sync after_send: an intent's line written to synced (a host crash's window)",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        ),
        signals=Counter(f"{p}_signals_read", "SIG_V1 records read", registry=r),
        open_orders=Gauge(f"{p}_open_orders", "orders open (any non-terminal state)", registry=r),
        position_qty=Gauge(
            f"{p}_position_quantity", "signed net position (contracts)", ["symbol"], registry=r
        ),
        pnl=Gauge(f"{p}_pnl_usdt", "PnL by kind", ["kind"], registry=r),
        day_pnl=Gauge(f"{p}_day_pnl_usdt", "PnL of the trading day so far", registry=r),
        loss_limit=Gauge(
            f"{p}_daily_loss_limit_usdt",
            "day loss at which only reducing orders pass (risk.daily_loss_limit_usdt)",
            registry=r,
        ),
        kill_switch=Gauge(f"{p}_kill_switch_engaged", "1 while the kill switch is on", registry=r),
        reconcile_differences=Gauge(
            f"{p}_reconcile_differences",
            "differences found by the last reconciliation with the venue (0 before the first)",
            registry=r,
        ),
        breaker_state=StateGauge(
            f"{p}_breaker_state", "circuit breaker: 1 for the current state", BREAKER_STATES, r
        ),
        state=StateGauge(f"{p}_execution_state", "1 for execution's current state", STATES, r),
    )
    for stage in STAGES:  # every series exists from the start, at 0
        m.stage_seconds.labels(stage)
    for kind in PNL_KINDS:
        m.pnl.labels(kind)
    return m


def observe_order_latency(
    m: ExecutionMetrics, s: TickStamps, leave_ns: int, ts_pub_ns: int = 0
) -> int:
    """Record the latencies of one order's tick (``ts_pub_ns`` 0: unknown); return tick-to-order.

    Tick-to-order is observed for every order; the four stages only when every stamp is known,
    so each stage histogram counts the same orders and their quantiles compare.
    """
    tick_to_order = leave_ns - s.ts_recv_ns
    m.tick_to_order_seconds.observe(tick_to_order / NS)
    if not (ts_pub_ns and s.ts_feat_ns and s.ts_sig_ns):
        m.stamps_incomplete.inc()
        return tick_to_order
    stage = m.stage_seconds.labels
    stage("recv_to_ingest").observe((ts_pub_ns - s.ts_recv_ns) / NS)
    stage("ingest_to_features").observe((s.ts_feat_ns - ts_pub_ns) / NS)
    stage("features_to_signal").observe((s.ts_sig_ns - s.ts_feat_ns) / NS)
    stage("signal_to_order").observe((leave_ns - s.ts_sig_ns) / NS)
    return tick_to_order


class PendingMetrics:
    """What the hot path counted and timed, kept in plain Python (a Prometheus call costs
    ~1-5 µs) until ``flush`` hands it to the collectors, every housekeeping pass."""

    __slots__ = ("intent_writes_ns", "latencies", "refusals", "sent", "signals")

    def __init__(self) -> None:
        self.signals = 0
        self.sent = 0
        self.refusals: dict[str, int] = {}  # reason -> count
        self.intent_writes_ns: list[int] = []
        self.latencies: list[tuple[TickStamps, int, int]] = []  # (stamps, leave, ts_pub)

    def refused(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def flush(self, m: ExecutionMetrics, synced: Sequence[int] = ()) -> None:
        """Hand everything to ``m``; ``synced``: the intent log's sync windows (ns), drained."""
        for ns in synced:
            m.intent_sync_seconds.observe(ns / NS)
        if self.signals:
            m.signals.inc(self.signals)
            self.signals = 0
        if self.sent:
            m.orders_sent.inc(self.sent)
            self.sent = 0
        if self.refusals:
            for reason, n in self.refusals.items():
                m.refusals.labels(str(reason)).inc(n)
            self.refusals = {}
        if self.intent_writes_ns:
            for ns in self.intent_writes_ns:
                m.intent_write_seconds.observe(ns / NS)
            self.intent_writes_ns = []
        if self.latencies:
            pending, self.latencies = self.latencies, []
            for stamps, leave, pub in pending:
                observe_order_latency(m, stamps, leave, pub)
