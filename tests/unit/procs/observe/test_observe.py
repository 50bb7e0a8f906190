"""procs.observe: buckets, state gauges, the proc label and the scrape-time ring collector."""

from __future__ import annotations

import itertools
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from procs.observe import (
    LATENCY_BUCKETS_S,
    STEP_BUCKETS_S,
    DeferredObservations,
    ProcLabelled,
    RingCollector,
    StateGauge,
    config_hash,
    observe_many,
    register_standard,
)
from shm.records import BENCH_V1
from shm.ring import RingReader, RingSpec, RingWriter


def test_latency_buckets_span_5us_to_1s_at_most_5_3_apart():
    b = LATENCY_BUCKETS_S
    assert (b[0], b[-1]) == (5e-6, 1.0)
    assert list(b) == sorted(set(b))
    assert max(hi / lo for lo, hi in itertools.pairwise(b)) <= 5 / 3 + 1e-9
    # the 20-500 ms range where the demo's p99 sits has more than three buckets
    assert len([x for x in b if 0.02 <= x <= 0.5]) >= 8
    assert STEP_BUCKETS_S[:3] == (1e-6, 2e-6, 3e-6)


def test_state_gauge_has_one_series_per_state_and_exactly_one_at_1():
    registry = CollectorRegistry()
    g = StateGauge("bitrader_x_state", "doc", ("active", "halted"), registry)
    assert registry.get_sample_value("bitrader_x_state", {"state": "active"}) == 1
    g.set("halted")
    assert registry.get_sample_value("bitrader_x_state", {"state": "active"}) == 0
    assert registry.get_sample_value("bitrader_x_state", {"state": "halted"}) == 1
    with pytest.raises(ValueError, match="unknown state"):
        g.set("bogus")


def test_proc_labelled_adds_proc_to_every_sample_and_standard_collectors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[x]\n")
    registry = CollectorRegistry()
    Counter("bitrader_things", "doc", ["kind"], registry=registry).labels("a").inc()
    register_standard(registry, cfg)

    text = generate_latest(ProcLabelled(registry, "ingest")).decode()

    assert 'bitrader_things_total{kind="a",proc="ingest"} 1.0' in text
    assert f'config_hash="{config_hash(cfg)}"' in text
    assert 'process_resident_memory_bytes{proc="ingest"}' in text
    assert "python_info{" in text
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert samples
    assert all('proc="ingest"' in ln for ln in samples)
    assert registry.get_sample_value("bitrader_things_total", {"kind": "a"}) == 1  # inner: bare


def test_proc_labelled_serves_name_filters_over_http():
    from prometheus_client import start_http_server

    from tests.conftest import free_port

    registry = CollectorRegistry()
    Counter("bitrader_a", "doc", registry=registry).inc(2)
    Counter("bitrader_b", "doc", registry=registry).inc()
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", ProcLabelled(registry, "x"))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            full = r.read().decode()
        with urllib.request.urlopen(url + "?name[]=bitrader_a_total", timeout=5) as r:
            only = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert 'bitrader_a_total{proc="x"} 2.0' in full
    assert 'bitrader_b_total{proc="x"} 1.0' in full
    assert 'bitrader_a_total{proc="x"} 2.0' in only
    assert "bitrader_b_total" not in only


def test_config_hash_changes_with_the_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("a = 1\n")
    h1 = config_hash(p)
    p.write_text("a = 2\n")
    assert len(h1) == 12
    assert config_hash(p) != h1
    assert config_hash(None) == "none"
    assert config_hash(tmp_path / "missing") == "unreadable"


def test_ring_collector_reads_lag_and_drops_at_scrape_time(ring_name):
    collector = RingCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    with RingWriter(RingSpec(name=ring_name, dtype=BENCH_V1, capacity=8)) as w:
        reader = RingReader(ring_name, BENCH_V1)
        collector.watch("bench", reader)
        recs = np.zeros(20, BENCH_V1)
        recs["seq"] = np.arange(20)
        w.publish(recs[:5])
        assert registry.get_sample_value("bitrader_ring_lag_records", {"ring": "bench"}) == 5
        w.publish(recs[5:12])
        w.publish(recs[12:])  # 20 published into 8 slots: the reader is lapped
        got = reader.poll(100)
        assert len(got) == 8
        labels = {"ring": "bench"}
        assert registry.get_sample_value("bitrader_ring_dropped_records_total", labels) == 12
        assert registry.get_sample_value("bitrader_ring_lag_records", labels) == 0
        assert registry.get_sample_value("bitrader_ring_reattach_total", labels) == 0
        reader.close()
        # closed: no lag (it cannot be read), drops still reported
        assert registry.get_sample_value("bitrader_ring_lag_records", labels) is None
        assert registry.get_sample_value("bitrader_ring_dropped_records_total", labels) == 12


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")  # when each histogram was made
    }


def _histograms() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    one, many = CollectorRegistry(), CollectorRegistry()
    kw = {"buckets": STEP_BUCKETS_S, "labelnames": ["stream"]}
    return (
        one, Histogram("x_seconds", "x", registry=one, **kw).labels("book"),
        many, Histogram("x_seconds", "x", registry=many, **kw).labels("book"),
    )  # fmt: skip


def test_observe_many_gives_the_buckets_and_count_of_observing_each():
    rng = np.random.default_rng(3)
    # every bucket's edges exactly, values between them, beyond the last bound, 0, negatives,
    # and a NaN (which observe puts in no bucket)
    v = np.concatenate(
        [
            np.array(STEP_BUCKETS_S),
            rng.lognormal(np.log(1e-4), 2.0, 5000),
            [0.0, -1.0, 5.0, np.inf, np.nan],
        ]
    )
    one, h1, many, h2 = _histograms()
    for x in v.tolist():
        h1.observe(x)
    observe_many(h2, v[:100])  # two calls add up
    observe_many(h2, v[100:])
    observe_many(h2, v[:0])

    a, b = _samples(one), _samples(many)
    assert a.keys() == b.keys()
    sums = [k for k in a if k[0] == "x_seconds_sum"]
    assert len(sums) == 1
    for k in a:
        if k not in sums:
            assert a[k] == b[k], k
    assert np.isnan(a[sums[0]])  # a NaN makes both sums NaN
    assert np.isnan(b[sums[0]])
    one, h1, many, h2 = _histograms()
    finite = v[:-1]
    for x in finite.tolist():
        h1.observe(x)
    observe_many(h2, finite)
    assert _samples(many)[sums[0]] == pytest.approx(_samples(one)[sums[0]], rel=1e-12)


def test_observe_many_refuses_a_labelled_parent_and_falls_back_without_the_fields():
    registry = CollectorRegistry()
    parent = Histogram("y_seconds", "y", ["stream"], registry=registry)
    for n in (1, 40):  # observed one by one, and in one search
        with pytest.raises(ValueError, match="missing label values"):
            observe_many(parent, np.ones(n))

    class Bare:  # a histogram without prometheus_client's fields: observe per value
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, v: float) -> None:
            self.seen.append(v)

    bare = Bare()
    values = np.linspace(0.0, 1.0, 40)  # past OBSERVE_MANY_MIN: the fields are looked for
    observe_many(bare, values)  # type: ignore[arg-type]
    assert bare.seen == values.tolist()


def test_deferred_observations_reach_the_histogram_at_flush():
    one, h1, many, h2 = _histograms()
    d = DeferredObservations(h2)
    for ns in (1_500, 40_000, 2_000_000):
        d.add(ns)
        h1.observe(ns / 1e9)
    assert _samples(many)[("x_seconds_count", (("stream", "book"),))] == 0
    d.flush()
    assert _samples(many) == pytest.approx(_samples(one))
