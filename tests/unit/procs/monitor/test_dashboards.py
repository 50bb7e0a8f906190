"""Dashboards as code: the committed provisioning JSON is exactly what the generator writes."""

from __future__ import annotations

import json
from pathlib import Path

from procs.monitor.dashboards import DASHBOARDS, write_grafana
from procs.monitor.grafana import DATASOURCE

ROOT = Path(__file__).resolve().parents[4]
COMMITTED = ROOT / "configs" / "grafana"


def test_committed_grafana_files_are_regenerated_identically(tmp_path: Path):
    written = write_grafana(tmp_path)
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    on_disk = sorted(str(p.relative_to(COMMITTED)) for p in COMMITTED.rglob("*") if p.is_file())
    assert rel == on_disk, "run `bitrader monitor dashboards` and commit configs/grafana"
    for name in rel:
        assert (COMMITTED / name).read_text() == (tmp_path / name).read_text(), (
            f"configs/grafana/{name} is stale: run `bitrader monitor dashboards`"
        )


def test_five_dashboards_each_with_unique_ids_and_the_provisioned_datasource():
    titles = [d.title for d in DASHBOARDS]
    assert [t.split(": ")[1] for t in titles] == [
        "overview",
        "latency",
        "market data",
        "model",
        "capture",
    ]
    assert len({d.uid for d in DASHBOARDS}) == len(DASHBOARDS)
    for d in DASHBOARDS:
        doc = json.loads(d.render())
        panels = doc["panels"]
        assert panels, d.uid
        assert len({p["id"] for p in panels}) == len(panels)
        for p in panels:
            assert p["datasource"] == DATASOURCE
            assert p["targets"], p["title"]
            assert p["gridPos"]["x"] >= 0
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def test_latency_dashboard_has_heatmaps_for_tick_to_order_and_every_stage():
    latency = next(d for d in DASHBOARDS if d.uid == "bitrader-latency")
    heat = [p for p in latency.to_json()["panels"] if p["type"] == "heatmap"]
    exprs = " ".join(t["expr"] for p in heat for t in p["targets"])
    assert "bitrader_tick_to_order_seconds_bucket" in exprs
    for stage in ("recv_to_ingest", "ingest_to_features", "features_to_signal", "signal_to_order"):
        assert f'stage="{stage}"' in exprs
    assert all(t["format"] == "heatmap" for p in heat for t in p["targets"])
