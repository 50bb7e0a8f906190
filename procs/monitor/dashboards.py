"""The five Grafana dashboards (overview, latency, market data, model, capture) and the Grafana
provisioning files, written by ``bitrader monitor dashboards`` into configs/grafana/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from procs.monitor import yamlout
from procs.monitor.grafana import DATASOURCE, Dashboard, Panel, Query, heatmap, stat, timeseries
from procs.monitor.rules import QUANTILES

__all__ = ["DASHBOARDS", "provisioning", "write_grafana"]

Q = Query
R: Final = "[1m]"
ON_OFF: Final = (
    {"type": "value", "options": {"0": {"text": "off", "color": "green"}}},
    {"type": "value", "options": {"1": {"text": "ON", "color": "red"}}},
)
UP_DOWN: Final = (
    {"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}}},
    {"type": "value", "options": {"1": {"text": "up", "color": "green"}}},
)
RED_AT_1: Final = ((None, "green"), (1.0, "red"))


def _pq(record: str, legend_prefix: str = "", by: str = "") -> tuple[Query, ...]:
    # quantile recording rules: p50, p90, p99, p99.9
    out = []
    for q in QUANTILES:
        name = "p" + f"{q * 100:g}".replace(".", "")
        label = f"{{{{{by}}}}} " if by else ""
        out.append(Q(f"{record}:{name}", f"{label}{legend_prefix}{name}"))
    return tuple(out)


def _hm(metric: str, extra: str = "") -> str:
    return f"sum by (le) (rate({metric}_bucket{extra}{R}))"


OVERVIEW = Dashboard(
    "bitrader-overview",
    "bitrader: overview",
    "Health per process, rates, positions, PnL, breaker and kill switch",
    (
        stat("Target up", Q('up{job="bitrader"}', "{{proc}}"), mappings=UP_DOWN, width=8),
        stat(
            "Kill switch",
            Q("bitrader_kill_switch_engaged", "{{proc}}"),
            mappings=ON_OFF,
            thresholds=RED_AT_1,
            width=4,
        ),
        stat(
            "Breaker state",
            Q("bitrader_breaker_state == 1", "{{state}}"),
            options={"textMode": "name"},
            width=4,
        ),
        stat(
            "Execution state",
            Q("bitrader_execution_state == 1", "{{state}}"),
            options={"textMode": "name"},
            width=4,
        ),
        stat("Open orders", Q("bitrader_open_orders", "open"), width=4),
        timeseries(
            "Heartbeat age per process",
            Q("time() - bitrader_heartbeat_last_timestamp_seconds", "{{proc}}"),
            unit="s",
            width=8,
        ),
        timeseries(
            "CPU per process (cores)",
            Q("proc:process_cpu_seconds:rate1m", "{{proc}}"),
            unit="short",
            width=8,
        ),
        timeseries(
            "Resident memory per process",
            Q("process_resident_memory_bytes", "{{proc}}"),
            unit="bytes",
            width=8,
        ),
        timeseries(
            "Items handled per second, per process",
            Q("proc:bitrader_step_items:rate1m", "{{proc}}"),
            unit="ops",
            width=12,
        ),
        timeseries(
            "Orders, fills, rejects, refusals per second",
            Q("bitrader:orders_sent:rate1m", "orders"),
            Q("bitrader:fills:rate1m", "fills"),
            Q("bitrader:order_rejects:rate1m", "rejects"),
            Q("bitrader:order_refusals:rate1m", "refusals"),
            Q("bitrader:venue_errors:rate1m", "venue errors"),
            unit="ops",
            width=12,
        ),
        timeseries(
            "Refusals by reason",
            Q(
                f"sum by (reason) (rate(bitrader_order_refusals_total{R})) or vector(0)",
                "{{reason}}",
            ),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Positions (contracts)",
            Q("bitrader_position_quantity", "{{symbol}}"),
            width=8,
        ),
        timeseries(
            "PnL (USDT)",
            Q("bitrader_pnl_usdt", "{{kind}}"),
            Q("bitrader_day_pnl_usdt", "day"),
            Q("-bitrader_daily_loss_limit_usdt", "daily loss limit"),
            unit="currencyUSD",
            width=8,
        ),
        timeseries(
            "Ring lag (records)",
            Q("bitrader_ring_lag_records", "{{proc}} {{ring}}"),
            width=12,
        ),
        timeseries(
            "Ring drops per second",
            Q("proc_ring:bitrader_ring_dropped_records:rate1m", "{{proc}} {{ring}}"),
            unit="ops",
            width=12,
        ),
    ),
)

_STAGES = ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order")
_stage_heatmaps: tuple[Panel, ...] = tuple(
    heatmap(
        f"Stage {s}",
        _hm("bitrader_stage_seconds", f'{{stage="{s}"}}'),
        width=6,
    )
    for s in _STAGES
)

LATENCY = Dashboard(
    "bitrader-latency",
    "bitrader: latency",
    "Tick-to-order and each pipeline stage as heatmaps and quantiles; order ack; intent write",
    (
        heatmap("Tick-to-order", _hm("bitrader_tick_to_order_seconds"), width=12),
        timeseries(
            "Tick-to-order quantiles", *_pq("bitrader:tick_to_order_seconds"), unit="s", width=12
        ),
        *_stage_heatmaps,
        timeseries(
            "Stage p50",
            Q("stage:bitrader_stage_seconds:p50", "{{stage}}"),
            unit="s",
            width=12,
        ),
        timeseries(
            "Stage p99",
            Q("stage:bitrader_stage_seconds:p99", "{{stage}}"),
            unit="s",
            width=12,
        ),
        heatmap("Order ack (venue round trip)", _hm("bitrader_order_ack_seconds"), width=12),
        timeseries("Order ack quantiles", *_pq("bitrader:order_ack_seconds"), unit="s", width=12),
        heatmap(
            "Intent write (its fsync too: intent_sync before_send)",
            _hm("bitrader_intent_write_seconds"),
            width=12,
        ),
        timeseries(
            "Intent write quantiles", *_pq("bitrader:intent_write_seconds"), unit="s", width=12
        ),
        timeseries(
            "Intent sync window (after_send: written to on the disk)",
            *_pq("bitrader:intent_sync_seconds"),
            unit="s",
            width=12,
        ),
        timeseries(
            "Step duration p99 per process",
            Q("proc:bitrader_step_seconds:p99", "{{proc}}"),
            unit="s",
            width=12,
        ),
    ),
)

MARKET_DATA = Dashboard(
    "bitrader-market-data",
    "bitrader: market data",
    "ingest: feed latency, messages, gaps (stale symbols), reconnects, resyncs, clock offset",
    (
        heatmap("Feed latency (ts_recv - venue stamp)", _hm("bitrader_md_feed_latency_seconds")),
        timeseries("Feed latency quantiles", *_pq("bitrader:md_feed_latency_seconds"), unit="s"),
        timeseries(
            "WS messages per second",
            Q("channel:bitrader_md_messages:rate1m", "{{channel}}"),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Records published per second",
            Q("ring:bitrader_md_records:rate1m", "{{ring}}"),
            unit="ops",
            width=8,
        ),
        stat(
            "Stale symbols (gaps)",
            Q("bitrader_md_stale_symbols", "stale"),
            thresholds=RED_AT_1,
            width=8,
        ),
        timeseries(
            "Reconnects and resyncs per second",
            Q("bitrader:md_reconnects:rate1m", "reconnects"),
            Q("bitrader:md_resyncs:rate1m", "resyncs"),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Decode errors and crossed books per second",
            Q(f"sum(rate(bitrader_md_decode_errors_total{R})) or vector(0)", "decode errors"),
            Q(f"sum(rate(bitrader_md_crossed_books_total{R}))", "crossed books"),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Clock offset (local - venue, fastest frame)",
            Q("bitrader_md_clock_offset_seconds", "offset"),
            unit="s",
            width=8,
        ),
        timeseries(
            "Ring publish p99",
            Q(
                f"histogram_quantile(0.99, sum by (le, ring) "
                f"(rate(bitrader_md_publish_seconds_bucket{R})))",
                "{{ring}}",
            ),
            unit="s",
            width=12,
        ),
        timeseries(
            "Features records per second",
            Q("bitrader:features_records:rate1m", "feat"),
            unit="ops",
            width=12,
        ),
    ),
)

MODEL = Dashboard(
    "bitrader-model",
    "bitrader: model",
    "inference: model versions, fallback, hit rate, challenger",
    (
        stat("Model version", Q("bitrader_model_version", "{{model}}"), width=8),
        stat(
            "Champion loaded",
            Q("bitrader_model_ok", "ok"),
            mappings=UP_DOWN,
            thresholds=((None, "red"), (1.0, "green")),
            width=8,
        ),
        timeseries(
            "Fallback batches per second by reason",
            Q(
                f"sum by (reason) (rate(bitrader_inference_fallback_batches_total{R}))",
                "{{reason}}",
            ),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Hit rate (sign matched the mid move)",
            Q("bitrader_model_hit_rate_ratio", "{{model}}"),
            unit="percentunit",
        ),
        timeseries(
            "Challenger sign agreement",
            Q("bitrader_model_challenger_agreement_ratio", "agreement"),
            unit="percentunit",
        ),
        timeseries(
            "Challenger batches rejected per second",
            Q(
                f"sum by (reason) (rate(bitrader_inference_challenger_rejected_batches_total{R}))",
                "{{reason}}",
            ),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Model reloads",
            Q("sum by (model, result) (bitrader_model_reloads_total)", "{{model}} {{result}}"),
            width=8,
        ),
        timeseries(
            "Signals per second (all, fallback)",
            Q("bitrader:inference_records:rate1m", "signals"),
            Q("bitrader:inference_fallback_records:rate1m", "fallback"),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Batch scoring quantiles", *_pq("bitrader:inference_batch_seconds"), unit="s", width=24
        ),
    ),
)

CAPTURE = Dashboard(
    "bitrader-capture",
    "bitrader: capture",
    "capture: records and bytes written, ring drops and lag, disk",
    (
        timeseries(
            "Records written per second",
            Q("stream:bitrader_capture_records:rate1m", "{{stream}}"),
            unit="ops",
        ),
        timeseries(
            "Bytes written per second",
            Q("stream:bitrader_capture_bytes:rate1m", "{{stream}}"),
            unit="Bps",
        ),
        timeseries(
            "Ring drops per second",
            Q('proc_ring:bitrader_ring_dropped_records:rate1m{proc="capture"}', "{{ring}}"),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Ring lag (records)",
            Q('bitrader_ring_lag_records{proc="capture"}', "{{ring}}"),
            width=8,
        ),
        stat(
            "Disk free",
            Q("bitrader_capture_disk_free_bytes", "free"),
            unit="bytes",
            thresholds=((None, "red"), (1e9, "green")),
            width=8,
        ),
        timeseries(
            "Flushes and rotations",
            Q("bitrader_capture_flushes_total", "flushes"),
            Q("bitrader_capture_rotations_total", "rotations"),
            width=12,
        ),
        timeseries(
            "Write errors and malformed order events",
            Q("bitrader_capture_write_errors_total", "write errors"),
            Q("bitrader_capture_orders_malformed_total", "malformed orders"),
            width=12,
        ),
        stat(
            "Writing paused (disk)",
            Q("bitrader_capture_write_paused", "paused"),
            mappings=ON_OFF,
            thresholds=RED_AT_1,
            width=8,
        ),
        timeseries(
            "Records not written per second (disk full, failed write)",
            Q(
                f"sum by (stream) (rate(bitrader_capture_write_dropped_records_total{R}))"
                " or vector(0)",
                "{{stream}}",
            ),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Records missing from a stream per second, by cause",
            Q(
                f"sum by (stream, reason) (rate(bitrader_capture_gap_records_total{R}))"
                " or vector(0)",
                "{{stream}} {{reason}}",
            ),
            unit="ops",
            width=8,
        ),
    ),
)

DASHBOARDS: Final = (OVERVIEW, LATENCY, MARKET_DATA, MODEL, CAPTURE)


def provisioning() -> dict[str, dict[str, object]]:
    """Grafana provisioning documents: the Prometheus data source and the dashboards folder."""
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "bitrader-prometheus",
                "uid": DATASOURCE["uid"],
                "type": "prometheus",
                "access": "proxy",
                "url": "${BITRADER_PROMETHEUS_URL}",
                "isDefault": True,
                "jsonData": {"timeInterval": "5s"},
            }
        ],
    }
    dashboards = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "bitrader",
                "folder": "bitrader",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "options": {"path": "${BITRADER_GRAFANA_DASHBOARDS}"},
            }
        ],
    }
    return {"datasources/bitrader.yml": datasource, "dashboards/bitrader.yml": dashboards}


def write_grafana(out_dir: str | Path) -> list[Path]:
    """Write ``dashboards/<uid>.json`` and ``provisioning/...`` under ``out_dir``."""
    out = Path(out_dir)
    paths = []
    header = "generated by `bitrader monitor dashboards`: edit procs/monitor, not this file"
    for name, doc in provisioning().items():
        path = out / "provisioning" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yamlout.dump(doc, header))
        paths.append(path)
    for d in DASHBOARDS:
        path = out / "dashboards" / f"{d.uid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(d.render())
        paths.append(path)
    return paths
