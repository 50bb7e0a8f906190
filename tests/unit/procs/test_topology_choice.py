"""``[group] topology``: split, colocated, auto by the host's cores (procs/_topology.py)."""

from __future__ import annotations

import msgspec
import pytest

from procs._config import GROUPS
from procs._topology import HOSTED, HOT_STAGES, choose, resolve_group


@pytest.mark.parametrize(
    ("topology", "cores", "want"),
    [
        ("split", 2, "split"),
        ("colocated", 64, "colocated"),
        ("auto", 1, "colocated"),
        ("auto", 2, "colocated"),
        ("auto", 4, "colocated"),
        ("auto", 5, "split"),
        ("auto", 16, "split"),
    ],
)
def test_choose(topology, cores, want):
    assert choose(topology, cores) == want


def test_auto_is_colocated_below_a_core_per_hot_stage_plus_one():
    assert choose("auto", len(HOT_STAGES)) == "colocated"
    assert choose("auto", len(HOT_STAGES) + 1) == "split"


@pytest.mark.parametrize(
    ("group", "doc", "cores", "want"),
    [
        ("pipeline", {}, 2, "pipeline-colocated"),  # default: auto
        ("pipeline", {}, 8, "pipeline"),
        ("live", {"group": {"topology": "colocated"}}, 8, "live-colocated"),
        ("live", {"group": {"topology": "split"}}, 2, "live"),
        ("transport", {"group": {"topology": "colocated"}}, 2, "transport"),
    ],
)
def test_resolve_group(group, doc, cores, want):
    assert resolve_group(group, doc, cores) == want
    assert want in GROUPS


def test_a_bad_topology_is_refused():
    with pytest.raises(msgspec.ValidationError):
        resolve_group("pipeline", {"group": {"topology": "spread"}}, 2)
    with pytest.raises(msgspec.ValidationError):
        resolve_group("pipeline", {"group": {"topolgy": "split"}}, 2)


def test_the_colocated_groups_host_the_hot_stages_instead_of_running_them():
    for base in ("pipeline", "live"):
        colo = GROUPS[f"{base}-colocated"]
        hosted = {s for p in colo for s in HOSTED.get(p, ())}
        assert hosted == set(HOT_STAGES)
        assert set(colo) - {"hotpath"} == set(GROUPS[base]) - set(HOT_STAGES)
