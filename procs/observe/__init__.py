"""Shared Prometheus pieces: names and buckets, the process label, build info, ring counters.

Every process registers its own collectors in a plain ``CollectorRegistry``; the runtime serves
that registry through ``ProcLabelled`` (adds ``proc="<name>"`` to every sample) next to the
collectors every process has (``standard_collectors``: process, platform, GC, build info) and one
``RingCollector`` that reads each input ring's counters at scrape time.
"""

from __future__ import annotations

from procs.observe.metrics import (
    LATENCY_BUCKETS_S,
    NAMESPACE,
    SLOW_BUCKETS_S,
    STEP_BUCKETS_S,
    DeferredObservations,
    StateGauge,
    build_version,
    config_hash,
    disable_created_series,
    observe_many,
    register_standard,
)
from procs.observe.rings import ProcLabelled, RingCollector

__all__ = [
    "LATENCY_BUCKETS_S",
    "NAMESPACE",
    "SLOW_BUCKETS_S",
    "STEP_BUCKETS_S",
    "DeferredObservations",
    "ProcLabelled",
    "RingCollector",
    "StateGauge",
    "build_version",
    "config_hash",
    "disable_created_series",
    "observe_many",
    "register_standard",
]
