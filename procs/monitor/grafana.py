"""A small generator of Grafana dashboard JSON: panels, targets and a grid layout.

Our own instead of grafana-foundation-sdk or grafanalib: five dashboards use three panel kinds
(time series, stat, heatmap), and the dashboard JSON model for those is small and stable. The SDK
is a large generated API released per Grafana version (its PyPI versions carry an epoch:
``1769699998!10.1.0``); grafanalib is one more dependency too. Here panels are ~150 lines of
frozen dataclasses that mypy --strict checks and a test regenerates byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["DATASOURCE", "Dashboard", "Panel", "Query", "heatmap", "stat", "timeseries"]

DATASOURCE: Final = {"type": "prometheus", "uid": "bitrader-prometheus"}
SCHEMA_VERSION: Final = 39  # Grafana 10/11 dashboard JSON
GRID_W: Final = 24


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""
    fmt: str = "time_series"  # "heatmap" for bucket queries


@dataclass(frozen=True, slots=True)
class Panel:
    kind: str  # "timeseries" | "stat" | "heatmap"
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    mappings: tuple[dict[str, Any], ...] = ()
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)


def timeseries(title: str, *queries: Query, unit: str = "short", **kw: Any) -> Panel:
    return Panel("timeseries", title, queries, unit, **kw)


def stat(title: str, *queries: Query, unit: str = "short", **kw: Any) -> Panel:
    return Panel("stat", title, queries, unit, **kw)


def heatmap(title: str, expr: str, **kw: Any) -> Panel:
    """A latency heatmap from a ``sum by (le) (rate(..._bucket[..]))`` query."""
    return Panel("heatmap", title, (Query(expr, "{{le}}", "heatmap"),), "s", **kw)


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"value": v, "color": c} for v, c in p.thresholds]
    out: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height},
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": chr(ord("A") + i),
                "expr": q.expr,
                "legendFormat": q.legend,
                "format": q.fmt,
                "range": True,
            }
            for i, q in enumerate(p.queries)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": p.unit,
                "mappings": list(p.mappings),
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": dict(p.options),
    }
    if p.kind == "heatmap":
        out["options"] = {
            "calculate": False,
            "yAxis": {"unit": "s"},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "tooltip": {"show": True, "yHistogram": True},
            **p.options,
        }
    return out


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    refresh: str = "5s"
    time_from: str = "now-15m"

    def to_json(self) -> dict[str, Any]:
        """The dashboard JSON model; panels flow left to right, wrapping at 24 columns."""
        panels, x, y, row_h = [], 0, 0, 0
        for i, p in enumerate(self.panels, start=1):
            if x + p.width > GRID_W:
                x, y, row_h = 0, y + row_h, 0
            panels.append(_panel_json(p, i, x, y))
            x, row_h = x + p.width, max(row_h, p.height)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["bitrader"],
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": []},
            "annotations": {"list": []},
            "panels": panels,
        }

    def render(self) -> str:
        """Stable JSON text (sorted keys, two-space indent, trailing newline)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def queries(self) -> list[str]:
        """Every PromQL expression of every panel (the e2e test runs each)."""
        return [q.expr for p in self.panels for q in p.queries]
