"""The group under a real Prometheus (Debian's), started by ``bitrader monitor up``.

One group, one test, in order: ``promtool check metrics`` passes on every process's /metrics;
every recording rule and every Grafana panel query returns data; the stage histograms count the
same orders; an induced kill switch and an induced stale feed (simex stops market data) each
fire their alert. Scrapes and evaluations run every second and every ``for:`` is scaled to 0.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procs.monitor.dashboards import DASHBOARDS
from procs.monitor.rules import recording_rules
from tests.conftest import free_port
from tests.e2e.conftest import MakeGroup
from tests.helpers.group_run import Group, bitrader
from tests.helpers.systools import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(300)]

STAGES = ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order")


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        q = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{q}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def firing(self) -> set[str]:
        alerts = self.get("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


@pytest.fixture
def prom_group(make_group: MakeGroup, run_dir: Path) -> Iterator[tuple[Group, Prom]]:
    require_tool("prometheus")
    # ingest's stale_after_s: 5 s (FAST), as the other group tests; intents synced by the log's
    # thread, so that its histogram (bitrader_intent_sync_seconds) is observed too
    g = make_group({"execution": {"journal": {"intent_sync": "after_send"}}})
    port, state = free_port(), run_dir / "prom"
    common = ("--dir", str(state))
    res = bitrader(
        "monitor", "up", str(g.cfg.path), "--port", str(port), *common,
        "--scrape-interval-s", "1", "--for-scale", "0", timeout_s=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"BITRADER_PROMETHEUS_URL=http://127.0.0.1:{port}" in res.stdout
    try:
        yield g, Prom(f"http://127.0.0.1:{port}")
    finally:
        res = bitrader("monitor", "down", str(g.cfg.path), *common, timeout_s=30)
        assert res.returncode == 0, res.stdout + res.stderr


def _check_metrics_lint(g: Group) -> None:
    promtool = require_tool("promtool")
    for proc in g.cfg.metrics_ports:
        text = g.metrics(proc)
        res = subprocess.run(
            [promtool, "check", "metrics"],
            input=text, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert res.returncode == 0, f"{proc}: {res.stdout}{res.stderr}"
        assert 'bitrader_build_info{config_hash="' in text, proc
        assert f'process_cpu_seconds_total{{proc="{proc}"}}' in text, proc


def _all_return_data(g: Group, prom: Prom, exprs: list[str], what: str) -> None:
    def missing() -> list[str]:
        return [e for e in exprs if not prom.query(e)]

    left: list[str] = []

    def none_missing() -> bool:
        left[:] = missing()
        return not left

    try:
        g.wait_until(none_missing, 90, what, interval_s=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{what}: no data for {left}\n{exc}") from None


def _check_stage_counts(g: Group, prom: Prom) -> None:
    def counts() -> dict[str, float]:
        rows = prom.query("sum by (stage) (bitrader_stage_seconds_count)")
        return {r["metric"]["stage"]: float(r["value"][1]) for r in rows}

    def same_orders() -> dict[str, float] | None:
        # a scrape can fall between two of one order's four observations: the next one agrees
        c = counts()
        ok = set(c) == set(STAGES) and len(set(c.values())) == 1 and min(c.values()) > 0
        return c if ok else None

    try:
        g.wait_until(same_orders, 30, "stages observed for the same orders", interval_s=1.0)
    except AssertionError as exc:
        raise AssertionError(f"stage counts {counts()}\n{exc}") from None

    def p50_s() -> float | None:
        # NaN while the last minute holds no order with a tick: poll for a number
        rows = prom.query("bitrader:tick_to_order_seconds:p50 > 0")
        return float(rows[0]["value"][1]) if rows else None

    p50 = g.wait_until(p50_s, 60, "a tick-to-order p50", interval_s=1.0)
    assert p50 < 10, p50


def _check_every_histogram_observed(prom: Prom) -> None:
    # every histogram series of every process has observations (step_seconds of simex and
    # ingest too); the market-data generator trades, so both rings' publish histograms count
    counts = prom.query('{__name__=~"bitrader_.+_seconds_count"}')
    names = {(r["metric"]["__name__"], r["metric"]["proc"]) for r in counts}
    for proc in ("simex", "ingest", "features", "inference", "capture", "execution"):
        assert ("bitrader_step_seconds_count", proc) in names, names
    empty = [r["metric"] for r in counts if float(r["value"][1]) == 0]
    assert not empty, f"histograms never observed: {empty}"


def test_prometheus_scrapes_group_rules_panels_and_alerts(
    prom_group: tuple[Group, Prom],
) -> None:
    g, prom = prom_group
    _check_metrics_lint(g)
    g.wait_until(
        lambda: len(prom.query('up{job="bitrader"} == 1')) == len(g.cfg.metrics_ports),
        60, "every target up", interval_s=0.5,
    )  # fmt: skip
    records = [r["record"] for grp in recording_rules()["groups"] for r in grp["rules"]]
    _all_return_data(g, prom, records, "every recording rule returns data")
    panels = sorted({q for d in DASHBOARDS for q in d.queries()})
    _all_return_data(g, prom, panels, "every panel query returns data")
    g.wait_until(lambda: prom.query("bitrader:orders_sent:rate1m > 0"), 60, "orders flow")
    _check_stage_counts(g, prom)
    _check_every_histogram_observed(prom)

    g.wait_until(lambda: "BitraderKillSwitchOn" not in prom.firing(), 30, "kill switch quiet")
    res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "e2e")
    assert res.returncode == 0, res.stderr
    g.wait_until(lambda: "BitraderKillSwitchOn" in prom.firing(), 30, "kill-switch alert")

    # a market-data gap on two busy cores can flag a symbol now and then: start from quiet
    g.wait_until(lambda: "BitraderStaleSymbols" not in prom.firing(), 30, "stale alert quiet")
    res = bitrader("simctl", "--url", g.cfg.control_url, "set", "pause_md=true")
    assert res.returncode == 0, res.stdout + res.stderr
    g.wait_until(lambda: "BitraderStaleSymbols" in prom.firing(), 30, "stale-feed alert")
