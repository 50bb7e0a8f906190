"""Which processes run the hot path: ``[group] topology`` (docs/architecture.md, "Topologies").

``split``: ingest, features, inference and execution are four OS processes (the target design:
a core per stage, no GIL shared on the hot path). ``colocated``: the four run as one OS process,
``procs.hotpath``, on one thread and one asyncio loop, calling the same stage code in sequence
per WS frame. ``auto`` (the default):
``colocated`` when this host gives the group fewer cores than hot stages + 1 (ingest, features,
inference, execution, and one for everything else), ``split`` otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "COLOCATED_SUFFIX",
    "HOSTED",
    "HOT_STAGES",
    "GroupConfig",
    "Topology",
    "choose",
    "resolve_group",
]

Topology = Literal["split", "colocated", "auto"]
HOT_STAGES: Final = ("ingest", "features", "inference", "execution")
# a program that hosts other programs' stages: health, config checks and the bench see those
HOSTED: Final[dict[str, tuple[str, ...]]] = {"hotpath": HOT_STAGES}
COLOCATED_SUFFIX: Final = "-colocated"  # supervisord group "pipeline-colocated", "live-colocated"


class GroupConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[group]``: settings of the whole supervisord group, read by ``bitrader up``/``demo``."""

    topology: Topology = "auto"


def choose(topology: Topology, cores: int | None = None) -> Literal["split", "colocated"]:
    """``auto`` → ``colocated`` below ``len(HOT_STAGES) + 1`` usable cores, else ``split``."""
    if topology != "auto":
        return topology
    n = len(os.sched_getaffinity(0)) if cores is None else cores
    return "colocated" if n < len(HOT_STAGES) + 1 else "split"


def resolve_group(group: str, doc: Mapping[str, Any], cores: int | None = None) -> str:
    """The supervisord group to start for ``group`` under ``doc``'s ``[group] topology``:
    ``pipeline``/``live`` or their ``-colocated`` twins; other groups are returned as given.
    An invalid ``[group]`` table raises ``msgspec.ValidationError``."""
    if group not in ("pipeline", "live"):
        return group
    cfg = msgspec.convert(doc.get("group", {}), GroupConfig)
    return group + COLOCATED_SUFFIX if choose(cfg.topology, cores) == "colocated" else group
