"""tick_to_order's CPU layout: configs/demo.toml's two cores, or a core per stage (issue 12
item 5) on a host that has them; the config it writes pins each program where it says."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from procs._config import check_file
from tests.bench._tick_group import (
    LAYOUT_ENV,
    PER_STAGE,
    PER_STAGE_MIN_CORES,
    Ports,
    bench_config,
    layout,
    per_stage_cpus,
)

SIXTEEN = list(range(16))


def _runtime_cpus(text: str) -> dict[str, list[int]]:
    doc = tomllib.loads(text)
    return {
        name: section["runtime"]["cpus"]
        for name, section in doc.items()
        if isinstance(section, dict) and "cpus" in section.get("runtime", {})
    }


@pytest.mark.parametrize(
    ("env", "cores", "want"),
    [
        ({}, [0, 1], "demo"),
        ({}, list(range(PER_STAGE_MIN_CORES - 1)), "demo"),
        ({}, list(range(PER_STAGE_MIN_CORES)), "per_stage"),
        ({}, SIXTEEN, "per_stage"),
        ({LAYOUT_ENV: "demo"}, SIXTEEN, "demo"),
        ({LAYOUT_ENV: "per_stage"}, SIXTEEN, "per_stage"),
    ],
)
def test_the_layout_follows_the_cores_unless_the_variable_says(env, cores, want):
    assert layout(env, cores) == want


def test_a_layout_it_cannot_run_is_refused():
    with pytest.raises(ValueError, match="needs 8 cores, this process may use 2"):
        layout({LAYOUT_ENV: "per_stage"}, [0, 1])
    with pytest.raises(ValueError, match="expected one of demo, per_stage"):
        layout({LAYOUT_ENV: "wide"}, SIXTEEN)


def test_per_stage_gives_every_program_its_own_core_above_the_two_lowest():
    got = per_stage_cpus([15, 3, 9, 4, 12, 5, 7, 8, 10])  # allowed cores need not start at 0
    assert list(got) == list(PER_STAGE)
    assert len(set(got.values())) == len(PER_STAGE)
    assert min(got.values()) == 5  # 3 and 4 stay for supervisord, the bench and the OS
    with pytest.raises(ValueError, match="needs 8 cores"):
        per_stage_cpus(range(PER_STAGE_MIN_CORES - 1))


def test_the_config_pins_each_program_to_its_core_and_nothing_else(tmp_path: Path):
    demo = _runtime_cpus(bench_config(1000.0, Ports.free(), tmp_path))
    assert demo == {"ingest": [0], "features": [1], "inference": [0], "capture": [1],
                    "execution": [1]}  # fmt: skip
    cpus = per_stage_cpus(SIXTEEN)
    text = bench_config(1000.0, Ports.free(), tmp_path, cpus=cpus)
    assert _runtime_cpus(text) == {name: [core] for name, core in cpus.items()}
    path = tmp_path / "tto.toml"
    path.write_text(text)
    assert check_file(path) == []  # every program's section decodes: a valid group file
    unpinned = bench_config(1000.0, Ports.free(), tmp_path, pin=False)
    assert _runtime_cpus(unpinned) == {}
