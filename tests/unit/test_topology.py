"""Every shipped config wires one coherent group: one writer per ring, unique endpoints and ports.

Rings: ingest writes md.book and md.trade, features writes feat, inference writes sig; every
reader names a ring that exactly one section writes, and every wake-up source it listens to is
that writer's PUB endpoint.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from procs._config import Env, decode_section, read_toml
from procs.capture.proc import CaptureConfig
from procs.dashboard.config import DashboardConfig
from procs.featurecalc.config import FeaturesConfig
from procs.marketdata.config import IngestConfig
from procs.models.config import InferenceConfig
from procs.simex.config import SimexConfig
from procs.trading.config import ExecutionConfig

ROOT = Path(__file__).resolve().parents[2]
GROUP_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.toml") if "ingest" in read_toml(p))
TYPES: dict[str, type[Any]] = {
    "simex": SimexConfig,
    "ingest": IngestConfig,
    "features": FeaturesConfig,
    "inference": InferenceConfig,
    "execution": ExecutionConfig,
    "capture": CaptureConfig,
    "dashboard": DashboardConfig,
}


def _load(path: Path) -> dict[str, Any]:
    doc = read_toml(path)
    env = Env(run_dir="/tmp/topology", ns="topo")
    return {s: decode_section(doc, s, t, path=path, env=env) for s, t in TYPES.items() if s in doc}


def test_there_are_group_configs_to_check():
    assert {p.name for p in GROUP_CONFIGS} >= {"demo.toml"}


@pytest.fixture(params=GROUP_CONFIGS, ids=lambda p: p.name)
def group(request) -> dict[str, Any]:
    return _load(request.param)


def test_each_ring_has_exactly_one_writer_and_readers_name_it(group):
    ing, feat, inf, ex = group["ingest"], group["features"], group["inference"], group["execution"]
    writers = Counter([ing.book_ring, ing.trade_ring, feat.feat_ring, inf.sig_ring])

    assert all(n == 1 for n in writers.values()), writers
    assert (feat.book_ring, feat.trade_ring) == (ing.book_ring, ing.trade_ring)
    assert inf.feat_ring == feat.feat_ring
    assert (ex.sig_ring, ex.book_ring) == (inf.sig_ring, ing.book_ring)


def test_capture_reads_every_ring_and_the_order_events(group):
    ing, feat, inf, ex, cap = (
        group[s] for s in ("ingest", "features", "inference", "execution", "capture")
    )

    assert (cap.book_ring, cap.trade_ring) == (ing.book_ring, ing.trade_ring)
    assert (cap.feat_ring, cap.sig_ring) == (feat.feat_ring, inf.sig_ring)
    assert cap.order_endpoints == [ex.runtime.pub_endpoint]
    assert cap.symbols == ing.symbols


def test_wake_sources_are_the_writers_pub_endpoints(group):
    ing, feat, inf, ex = group["ingest"], group["features"], group["inference"], group["execution"]

    assert feat.ingest_pub == ing.runtime.pub_endpoint
    assert inf.features_pub == feat.runtime.pub_endpoint
    assert ex.inference_pub == inf.runtime.pub_endpoint


def test_every_endpoint_is_bound_once_and_every_port_is_unique(group):
    runtimes = [c.runtime for c in group.values() if c.runtime is not None]
    endpoints = [e for r in runtimes for e in (r.pub_endpoint, r.control_endpoint)]
    ports = [r.metrics_port for r in runtimes if r.metrics_port]
    if "simex" in group:
        sx = group["simex"]
        ports += [sx.rest_port, sx.ws_port, sx.control_port]
    if "dashboard" in group:
        ports.append(group["dashboard"].port)

    assert len(endpoints) == len(set(endpoints))
    assert len(ports) == len(set(ports))


def test_dashboard_reads_what_execution_writes(group):
    if "dashboard" not in group:
        pytest.skip("no dashboard in this config")
    dash, ex = group["dashboard"], group["execution"]

    assert dash.execution_pub == ex.runtime.pub_endpoint
    assert dash.execution_control == ex.runtime.control_endpoint
    assert (dash.journal_path, dash.killswitch_path) == (ex.journal_path, ex.killswitch_path)


def test_symbol_ids_agree_between_ingest_features_and_execution(group):
    ing, feat, ex = group["ingest"], group["features"], group["execution"]

    assert feat.n_symbols == len(ing.symbols)
    assert {s.symbol: s.symbol_id for s in ex.symbols} == {
        s: i for i, s in enumerate(ing.symbols) if s in {x.symbol for x in ex.symbols}
    }


def test_simex_serves_the_urls_ingest_and_execution_use(group):
    if "simex" not in group:
        pytest.skip("this config trades a real venue")
    sx, ing, ex = group["simex"], group["ingest"], group["execution"]

    assert ing.ws_url == f"ws://{sx.host}:{sx.ws_port}/public/"
    assert ing.rest_url == ex.venue.rest_url == f"http://{sx.host}:{sx.rest_port}"
    assert ex.venue.ws_private_url == f"ws://{sx.host}:{sx.ws_port}/private/"
    assert set(ing.symbols) <= {s.symbol for s in sx.symbols}
