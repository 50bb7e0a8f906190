"""Recording and alert rules for the group, as Python data written out by ``monitor config``.

Recording rules precompute what dashboards and alerts read: tick-to-order and per-stage
quantiles, other latency quantiles, and per-second rates. Alert rules cover the states an
operator must act on. Every ``for:`` is a default scaled by ``RuleParams.for_scale`` (the e2e test
uses 0 so alerts fire on the first evaluation); thresholds are ``RuleParams`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ALERTS", "QUANTILES", "RuleParams", "alert_rules", "recording_rules"]

QUANTILES: Final = (0.5, 0.9, 0.99, 0.999)
W: Final = "1m"  # rate window: four or more scrapes at the default 5 s interval
P: Final = "{{ $labels.proc }}"
V0, V2, V3 = ('{{ $value | printf "%.' + d + 'f" }}' for d in "023")


@dataclass(frozen=True, slots=True)
class RuleParams:
    for_scale: float = 1.0  # multiplies every alert's default ``for:``
    heartbeat_missed_s: float = 20.0  # > 3 scrape intervals + the heartbeat period
    ring_lag_records: int = 10_000
    loss_limit_fraction: float = 0.8  # of risk.daily_loss_limit_usdt
    venue_errors_per_5m: int = 5
    clock_offset_s: float = 0.5

    @classmethod
    def for_scrapes(cls, scrape_interval_s: float, for_scale: float = 1.0) -> RuleParams:
        """Defaults, with the heartbeat threshold above three scrape intervals plus 5 s."""
        return cls(for_scale=for_scale, heartbeat_missed_s=max(20.0, 3 * scrape_interval_s + 5.0))


def _q(q: float) -> str:
    return "p" + f"{q * 100:g}".replace(".", "")


def _quantiles(record: str, metric: str, by: tuple[str, ...] = ()) -> list[dict[str, str]]:
    keys = ", ".join(("le", *by))
    return [
        {
            "record": f"{record}:{_q(q)}",
            "expr": f"histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket[{W}])))",
        }
        for q in QUANTILES
    ]


def _rate(record: str, metric: str, by: tuple[str, ...] = (), zero: bool = False) -> dict[str, str]:
    inner = f"rate({metric}[{W}])"
    expr = f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"
    if zero:  # a labelled counter may have no series yet: 0, not "no data"
        expr += " or vector(0)"
    return {"record": record, "expr": expr}


def recording_rules() -> dict[str, Any]:
    """The ``bitrader-recording.yml`` document."""
    latency = [
        *_quantiles("bitrader:tick_to_order_seconds", "bitrader_tick_to_order_seconds"),
        *_quantiles("stage:bitrader_stage_seconds", "bitrader_stage_seconds", ("stage",)),
        *_quantiles("bitrader:order_ack_seconds", "bitrader_order_ack_seconds"),
        *_quantiles("bitrader:intent_write_seconds", "bitrader_intent_write_seconds"),
        *_quantiles("bitrader:intent_sync_seconds", "bitrader_intent_sync_seconds"),
        *_quantiles("bitrader:md_feed_latency_seconds", "bitrader_md_feed_latency_seconds"),
        *_quantiles("proc:bitrader_step_seconds", "bitrader_step_seconds", ("proc",)),
        *_quantiles("bitrader:inference_batch_seconds", "bitrader_inference_batch_seconds"),
    ]
    rates = [
        _rate("proc:bitrader_step_items:rate1m", "bitrader_step_items_total", ("proc",)),
        _rate("proc:process_cpu_seconds:rate1m", "process_cpu_seconds_total", ("proc",)),
        _rate("bitrader:orders_sent:rate1m", "bitrader_orders_sent_total"),
        _rate("bitrader:fills:rate1m", "bitrader_fills_total"),
        _rate("bitrader:order_rejects:rate1m", "bitrader_order_rejects_total"),
        _rate("bitrader:order_refusals:rate1m", "bitrader_order_refusals_total", zero=True),
        _rate("bitrader:venue_errors:rate1m", "bitrader_venue_errors_total", zero=True),
        _rate("channel:bitrader_md_messages:rate1m", "bitrader_md_messages_total", ("channel",)),
        _rate("ring:bitrader_md_records:rate1m", "bitrader_md_records_total", ("ring",)),
        _rate("bitrader:md_reconnects:rate1m", "bitrader_md_reconnects_total"),
        _rate("bitrader:md_resyncs:rate1m", "bitrader_md_resyncs_total", zero=True),
        _rate("bitrader:features_records:rate1m", "bitrader_features_records_total"),
        _rate("bitrader:inference_records:rate1m", "bitrader_inference_records_total"),
        _rate(
            "bitrader:inference_fallback_records:rate1m",
            "bitrader_inference_fallback_records_total",
        ),
        _rate(
            "stream:bitrader_capture_records:rate1m", "bitrader_capture_records_total", ("stream",)
        ),
        _rate("stream:bitrader_capture_bytes:rate1m", "bitrader_capture_bytes_total", ("stream",)),
        _rate(
            "proc_ring:bitrader_ring_dropped_records:rate1m",
            "bitrader_ring_dropped_records_total",
            ("proc", "ring"),
        ),
    ]
    return {
        "groups": [
            {"name": "bitrader-latency", "rules": latency},
            {"name": "bitrader-rates", "rules": rates},
        ]
    }


@dataclass(frozen=True, slots=True)
class _Alert:
    name: str
    expr: str
    for_s: float
    severity: str
    summary: str


def _alerts(p: RuleParams) -> list[_Alert]:
    return [
        _Alert(
            "BitraderBreakerNotActive",
            'bitrader_breaker_state{state="active"} == 0',
            30,
            "warning",
            "{{ $labels.proc }}: circuit breaker is not ACTIVE (reducing or halted)",
        ),
        _Alert(
            "BitraderKillSwitchOn",
            "bitrader_kill_switch_engaged == 1",
            0,
            "critical",
            "{{ $labels.proc }}: kill switch is on: no new orders, open ones cancelled",
        ),
        _Alert(
            "BitraderHalted",
            'bitrader_execution_state{state="halted"} == 1',
            0,
            "critical",
            "{{ $labels.proc }}: execution is HALTED by its breaker",
        ),
        _Alert(
            "BitraderStaleSymbols",
            "bitrader_md_stale_symbols > 0",
            10,
            "critical",
            "{{ $labels.proc }}: {{ $value }} symbols have stale market data",
        ),
        _Alert(
            "BitraderRingDrops",
            f"increase(bitrader_ring_dropped_records_total[{W}]) > 0",
            0,
            "warning",
            P + " lost records on ring {{ $labels.ring }} (lapped) in the last minute",
        ),
        _Alert(
            "BitraderRingLag",
            f"bitrader_ring_lag_records > {p.ring_lag_records}",
            30,
            "warning",
            "{{ $labels.proc }} is {{ $value }} records behind on ring {{ $labels.ring }}",
        ),
        _Alert(
            "BitraderHeartbeatMissed",
            f"time() - bitrader_heartbeat_last_timestamp_seconds > {p.heartbeat_missed_s:g}",
            0,
            "critical",
            P + ": no heartbeat for " + V0 + " s (its loop is stuck)",
        ),
        _Alert(
            "BitraderTargetDown",
            'up{job="bitrader"} == 0',
            30,
            "critical",
            "{{ $labels.proc }} ({{ $labels.instance }}) does not answer /metrics",
        ),
        _Alert(
            "BitraderModelFallbackInUse",
            "sum by (proc, instance, job)"
            f" (rate(bitrader_inference_fallback_batches_total[{W}])) > 0",
            30,
            "warning",
            "{{ $labels.proc }}: signals come from the fallback scorer, not the model",
        ),
        _Alert(
            "BitraderModelNotOk",
            "bitrader_model_ok == 0",
            30,
            "critical",
            "{{ $labels.proc }}: no champion model loaded",
        ),
        _Alert(
            "BitraderReconcileDifferences",
            "bitrader_reconcile_differences > 0",
            0,
            "critical",
            "{{ $labels.proc }}: {{ $value }} differences between journal and venue",
        ),
        _Alert(
            "BitraderLossLimitApproaching",
            f"-bitrader_day_pnl_usdt > {p.loss_limit_fraction:g} * bitrader_daily_loss_limit_usdt",
            0,
            "warning",
            P + ": the day's loss is " + V2 + " USDT, near the daily loss limit",
        ),
        _Alert(
            "BitraderOrderRejects",
            f"increase(bitrader_order_rejects_total[{W}]) > 0",
            0,
            "warning",
            "{{ $labels.proc }}: the venue rejected orders in the last minute",
        ),
        _Alert(
            "BitraderVenueErrors",
            "sum by (proc, instance, job) (increase(bitrader_venue_errors_total[5m]))"
            f" > {p.venue_errors_per_5m}",
            0,
            "warning",
            P + ": " + V0 + " venue call failures in 5 minutes",
        ),
        _Alert(
            "BitraderCaptureWritePaused",
            "bitrader_capture_write_paused == 1",
            30,
            "warning",
            P + ": capture is not writing (disk full or a failed write): records are lost",
        ),
        _Alert(
            "BitraderClockSkew",
            f"abs(bitrader_md_clock_offset_seconds) > {p.clock_offset_s:g}",
            60,
            "warning",
            P + ": local clock and venue stamps differ by " + V3 + " s",
        ),
    ]


ALERTS: Final = tuple(a.name for a in _alerts(RuleParams()))


def _for(seconds: float) -> str:
    return f"{round(seconds)}s"


def alert_rules(params: RuleParams) -> dict[str, Any]:
    """The ``bitrader-alerts.yml`` document."""
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": _for(a.for_s * params.for_scale),
            "labels": {"severity": a.severity},
            "annotations": {"summary": a.summary},
        }
        for a in _alerts(params)
    ]
    return {"groups": [{"name": "bitrader-alerts", "rules": rules}]}
