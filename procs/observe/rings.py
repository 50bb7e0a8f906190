"""Scrape-time collectors: ring counters of every reader, and the ``proc`` label on everything.

``RingCollector`` replaces per-process "seen delta" bookkeeping: the reader's own counters
(``dropped_total``, ``reattach_total``, ``lag_records``) are read when Prometheus scrapes, on the
HTTP server's thread. Reading them there is safe: they are plain ints (or one atomic load) read
under the GIL, and a closed reader raises ``ValueError`` for its lag, which is then left out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from procs.observe.metrics import NAMESPACE


class RingCounters(Protocol):
    """What a ring reader exposes (``shm.ring.RingReader``, or a fake)."""

    dropped_total: int

    @property
    def lag_records(self) -> int: ...


class RingCollector(Collector):
    """``bitrader_ring_{lag_records,dropped_records_total,reattach_total}{ring=...}``."""

    def __init__(self) -> None:
        self._rings: dict[str, RingCounters] = {}

    def watch(self, name: str, ring: RingCounters) -> None:
        """Report ``ring`` as ``ring=name`` (a later call for the same name replaces it)."""
        self._rings = {**self._rings, name: ring}  # copy: a scrape iterates the old dict

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            f"{NAMESPACE}_ring_lag_records",
            "records published to the ring but not yet read by this process",
            labels=["ring"],
        )
        dropped = CounterMetricFamily(
            f"{NAMESPACE}_ring_dropped_records",
            "records this reader lost because the writer lapped it",
            labels=["ring"],
        )
        reattach = CounterMetricFamily(
            f"{NAMESPACE}_ring_reattach",
            "times this reader followed a restarted writer to its new segment",
            labels=["ring"],
        )
        for name, ring in self._rings.items():
            dropped.add_metric([name], float(ring.dropped_total))
            reattach.add_metric([name], float(getattr(ring, "reattach_total", 0)))
            with contextlib.suppress(ValueError):  # closed while stopping: no lag to report
                lag.add_metric([name], float(ring.lag_records))
        yield from (lag, dropped, reattach)


class ProcLabelled(CollectorRegistry):
    """A read-only view of ``inner`` whose every sample also carries ``proc="<proc>"``.

    Served on /metrics so that one metric name covers every process (``sum by (proc)``), while
    unit tests read the inner registry without the label.
    """

    def __init__(self, inner: CollectorRegistry, proc: str) -> None:
        super().__init__(auto_describe=False)
        self._inner = inner
        self._proc = proc

    def collect(self) -> Iterable[Metric]:
        proc = self._proc
        for mf in self._inner.collect():
            out = Metric(mf.name, mf.documentation, mf.type, mf.unit)
            out.samples = [s._replace(labels={"proc": proc, **s.labels}) for s in mf.samples]
            yield out

    def restricted_registry(self, names: Iterable[str]) -> _Only:  # type: ignore[override]
        """``/metrics?name[]=...``: only those sample names (the base class would serve none)."""
        return _Only(self, frozenset(names))


class _Only(CollectorRegistry):
    def __init__(self, source: ProcLabelled, names: frozenset[str]) -> None:
        super().__init__(auto_describe=False)
        self._source = source
        self._names = names

    def collect(self) -> Iterable[Metric]:
        for mf in self._source.collect():
            samples = [s for s in mf.samples if s.name in self._names]
            if samples:
                out = Metric(mf.name, mf.documentation, mf.type, mf.unit)
                out.samples = samples
                yield out
