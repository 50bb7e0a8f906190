"""Benchmark result records and helpers shared by every tests/bench/bench_*.py module.

Each module exposes ``run(quick: bool) -> list[Result]``; ``tests.bench.run`` collects them into
``.bench/results.json``. Every result carries a baseline measured in the same run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Result:
    name: str
    metric: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def percentiles_us(samples_ns: np.ndarray, qs: tuple[float, ...] = (50, 99, 99.9)) -> list[float]:
    """Return the given percentiles of nanosecond samples, in microseconds."""
    return [float(np.percentile(samples_ns, q)) / 1e3 for q in qs]


def write(results: list[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: list[dict[str, object]] = []
    if path.exists():
        names = {(r.name, r.metric) for r in results}
        existing = [
            r for r in json.loads(path.read_text()) if (r["name"], r["metric"]) not in names
        ]
    path.write_text(json.dumps(existing + [r.as_json() for r in results], indent=2) + "\n")


def table(results: list[Result]) -> str:
    head = (
        f"{'name':<24} {'metric':<14} {'value':>14} {'unit':<8} {'baseline':<26} "
        f"{'base value':>12} {'ratio':>7}  goal"
    )
    rows = [head, "-" * len(head)]
    rows += [
        f"{r.name:<24} {r.metric:<14} {r.value:>14.4g} {r.unit:<8} {r.baseline_name:<26} "
        f"{r.baseline_value:>12.4g} {r.ratio:>7.3f}  {r.goal}"
        for r in results
    ]
    return "\n".join(rows)
