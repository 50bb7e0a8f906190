"""The generated Prometheus config and rules: promtool accepts them, and every alert has a
``promtool test rules`` case that makes it fire (and most a case where it must stay quiet)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from procs.monitor import yamlout
from procs.monitor.rules import ALERTS
from procs.monitor.targets import RULE_FILES, read_targets
from procs.monitor.writer import write_config
from tests.helpers.systools import require_tool

ROOT = Path(__file__).resolve().parents[4]
DEMO = ROOT / "configs" / "demo.toml"
EXEC = 'proc="execution",instance="127.0.0.1:9105",job="bitrader"'
ING = 'proc="ingest",instance="127.0.0.1:9101",job="bitrader"'
INF = 'proc="inference",instance="127.0.0.1:9104",job="bitrader"'
CAP = 'proc="capture",instance="127.0.0.1:9103",job="bitrader"'


def _labels(series: str) -> dict[str, str]:
    inner = series[series.index("{") + 1 : series.rindex("}")]
    return {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in inner.split(","))}


@dataclass
class Case:
    """Series that make ``alert`` fire at ``fire_at`` with ``summary``; quiet at ``quiet_at``."""

    alert: str
    series: dict[str, str]
    fire_at: str
    summary: str
    severity: str
    quiet_at: str | None = None
    drop: tuple[str, ...] = ()  # labels the alert's expression aggregates away
    extra: dict[str, str] = field(default_factory=dict)

    def tests(self) -> list[dict[str, Any]]:
        first = next(iter(self.series))
        labels = {k: v for k, v in _labels(first).items() if k not in self.drop}
        labels |= {"severity": self.severity, **self.extra}
        out = [
            {
                "eval_time": self.fire_at,
                "alertname": self.alert,
                "exp_alerts": [
                    {"exp_labels": labels, "exp_annotations": {"summary": self.summary}}
                ],
            }
        ]
        if self.quiet_at is not None:
            out.append({"eval_time": self.quiet_at, "alertname": self.alert, "exp_alerts": []})
        return out


CASES = [
    Case(
        "BitraderBreakerNotActive",
        {f'bitrader_breaker_state{{state="active",{EXEC}}}': "1 1 1 0x30"},
        "2m",
        "execution: circuit breaker is not ACTIVE (reducing or halted)",
        "warning",
        quiet_at="20s",  # went inactive at 15 s: not yet 30 s
    ),
    Case(
        "BitraderKillSwitchOn",
        {f"bitrader_kill_switch_engaged{{{EXEC}}}": "0 0 1x30"},
        "1m",
        "execution: kill switch is on: no new orders, open ones cancelled",
        "critical",
        quiet_at="5s",
    ),
    Case(
        "BitraderHalted",
        {f'bitrader_execution_state{{state="halted",{EXEC}}}': "0 1x30"},
        "1m",
        "execution: execution is HALTED by its breaker",
        "critical",
        quiet_at="0s",
    ),
    Case(
        "BitraderStaleSymbols",
        {f"bitrader_md_stale_symbols{{{ING}}}": "0 2x30"},
        "1m",
        "ingest: 2 symbols have stale market data",
        "critical",
        quiet_at="10s",  # stale since 5 s, for: 10 s
    ),
    Case(
        "BitraderRingDrops",
        {f'bitrader_ring_dropped_records_total{{ring="md.book",{EXEC}}}': "0x12 40x30"},
        "1m30s",
        "execution lost records on ring md.book (lapped) in the last minute",
        "warning",
        quiet_at="55s",
    ),
    Case(
        "BitraderRingLag",
        {f'bitrader_ring_lag_records{{ring="feat",{INF}}}': "0 20000x30"},
        "1m",
        "inference is 20000 records behind on ring feat",
        "warning",
        quiet_at="20s",
    ),
    Case(
        "BitraderHeartbeatMissed",
        # heartbeats stamp the time until 20 s, then stop; time() is the evaluation time
        {f"bitrader_heartbeat_last_timestamp_seconds{{{ING}}}": "0+5x4 20x30"},
        "1m",
        "ingest: no heartbeat for 40 s (its loop is stuck)",
        "critical",
        quiet_at="30s",
    ),
    Case(
        "BitraderTargetDown",
        {'up{proc="capture",instance="127.0.0.1:9103",job="bitrader"}': "1 0x30"},
        "1m",
        "capture (127.0.0.1:9103) does not answer /metrics",
        "critical",
        quiet_at="20s",
    ),
    Case(
        "BitraderModelFallbackInUse",
        {f'bitrader_inference_fallback_batches_total{{reason="no_model",{INF}}}': "0+1x30"},
        "1m",
        "inference: signals come from the fallback scorer, not the model",
        "warning",
        quiet_at="20s",
        drop=("reason",),
    ),
    Case(
        "BitraderModelNotOk",
        {f"bitrader_model_ok{{{INF}}}": "1 0x30"},
        "1m",
        "inference: no champion model loaded",
        "critical",
        quiet_at="20s",
    ),
    Case(
        "BitraderReconcileDifferences",
        {f"bitrader_reconcile_differences{{{EXEC}}}": "0 3x30"},
        "30s",
        "execution: 3 differences between journal and venue",
        "critical",
        quiet_at="0s",
    ),
    Case(
        "BitraderLossLimitApproaching",
        {
            f"bitrader_day_pnl_usdt{{{EXEC}}}": "-100 -180x30",
            f"bitrader_daily_loss_limit_usdt{{{EXEC}}}": "200x30",
        },
        "30s",
        "execution: the day's loss is 180.00 USDT, near the daily loss limit",
        "warning",
        quiet_at="0s",  # 100 lost of 200: not yet 80 %
    ),
    Case(
        "BitraderOrderRejects",
        {f"bitrader_order_rejects_total{{{EXEC}}}": "0x12 2x30"},
        "1m30s",
        "execution: the venue rejected orders in the last minute",
        "warning",
        quiet_at="55s",
    ),
    Case(
        "BitraderVenueErrors",
        {f'bitrader_venue_errors_total{{kind="timeout",{EXEC}}}': "0+1x70"},
        "5m",
        "execution: 60 venue call failures in 5 minutes",
        "warning",
        quiet_at="20s",  # 4 so far: under the threshold of 5
        drop=("kind",),
    ),
    Case(
        "BitraderCaptureWritePaused",
        {f"bitrader_capture_write_paused{{{CAP}}}": "0 1x30"},
        "1m",
        "capture: capture is not writing (disk full or a failed write): records are lost",
        "warning",
        quiet_at="20s",  # paused since 5 s, for: 30 s
    ),
    Case(
        "BitraderClockSkew",
        {f"bitrader_md_clock_offset_seconds{{{ING}}}": "0.001 -1.25x30"},
        "2m",
        "ingest: local clock and venue stamps differ by 1.250 s",
        "warning",
        quiet_at="30s",  # for: 60 s
    ),
]


def _unit_test_doc() -> dict[str, Any]:
    return {
        "rule_files": list(RULE_FILES),
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": [{"series": s, "values": v} for s, v in c.series.items()],
                "alert_rule_test": c.tests(),
            }
            for c in CASES
        ],
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prometheus")
    write_config(DEMO, out)
    return out


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_every_alert_has_a_unit_test_case():
    assert sorted(c.alert for c in CASES) == sorted(ALERTS)


def test_promtool_check_config_and_rules(generated: Path):
    res = _promtool("check", "config", "prometheus.yml", cwd=generated)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _promtool("check", "rules", *RULE_FILES, cwd=generated)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in res.stdout


def test_promtool_test_rules_fires_every_alert(generated: Path):
    (generated / "alerts_test.yml").write_text(yamlout.dump(_unit_test_doc()))
    res = _promtool("test", "rules", "alerts_test.yml", cwd=generated)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_a_wrong_expectation_fails_promtool(generated: Path):
    # the harness can fail: a case expecting a quiet alert to fire must not pass
    doc = _unit_test_doc()
    doc["tests"] = doc["tests"][:1]
    doc["tests"][0]["alert_rule_test"][0]["eval_time"] = "10s"
    (generated / "wrong_test.yml").write_text(yamlout.dump(doc))
    res = _promtool("test", "rules", "wrong_test.yml", cwd=generated)
    assert res.returncode != 0, res.stdout


def test_targets_come_from_the_group_config(tmp_path: Path):
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        "[ingest.runtime]\nmetrics_port = 19101\n"
        '[execution.runtime]\nmetrics_port = 19105\nmetrics_host = "127.0.0.2"\n'
        "[features.runtime]\nmetrics_port = 0\n[simex]\nseed = 1\n"
    )
    assert [(t.proc, t.address) for t in read_targets(cfg)] == [
        ("ingest", "127.0.0.1:19101"),
        ("execution", "127.0.0.2:19105"),
    ]
    out = tmp_path / "out"
    write_config(cfg, out)
    text = (out / "prometheus.yml").read_text()
    assert '"127.0.0.1:19101"' in text
    assert '"127.0.0.2:19105"' in text


def test_committed_prometheus_files_are_generated_from_demo(generated: Path):
    committed = ROOT / "configs" / "prometheus"
    for name in ("prometheus.yml", *RULE_FILES):
        assert (committed / name).read_text() == (generated / name).read_text(), (
            f"configs/prometheus/{name} is stale: run `bitrader monitor config configs/demo.toml`"
        )


def test_monitor_config_without_metrics_ports_exits_78(tmp_path: Path):
    from procs.monitor.__main__ import main

    cfg = tmp_path / "g.toml"
    cfg.write_text("[ingest.runtime]\nmetrics_port = 0\n")
    assert main(["config", str(cfg), "--out", str(tmp_path / "out")]) == 78
    assert not (tmp_path / "out" / "prometheus.yml").exists()
