"""Sweep throughput: backtests per second through ``bitrader backtest sweep`` on a process
``LocalCluster`` of 2 workers, beside 1 worker in the same run (the scaling ratio).

The same grid (2 × 2 points) over the same seeded captures (one a UTC day) on each cluster;
workers are started and have imported the backtest before the clock starts, every sweep writes
to a fresh directory (no cache), and the rate counts completed runs over the sweep's wall time
(the captures' scan, every backtest, the table). One single-threaded worker per process: on 2
free cores the ratio can reach 2; on a shared machine it says how much of a second core the
sweep got.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.bench._common import Result

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400 * 1_000_000_000
GRID = "strategy.enter_score = [0.2, 0.4]\nbacktest.latency.entry_s = [0.001, 0.005]\n"


def _warm() -> bool:
    import procs.backtest.tasks

    procs.backtest.tasks.code_version()
    return True


def _rate(workers: int, captures: Path, cfg: Path, grid: Path, tmp: Path) -> tuple[float, int]:
    from distributed import Client, LocalCluster

    from procs.backtest.sweep import SweepSpec, run_sweep
    from procs.backtest.sweep_cli import LOOPBACK

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", **LOOPBACK
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm)
        spec = SweepSpec(
            config=str(cfg),
            grid=str(grid),
            captures=(str(captures),),
            out=tmp / f"out-{workers}",
            model=str(ROOT / "configs" / "models" / "default.onnx"),
            progress="off",
        )
        t0 = time.perf_counter()
        res = run_sweep(spec, client)
        dt = time.perf_counter() - t0
    info = res["info"]
    if info["failed"] or info["cached"]:
        raise RuntimeError(f"bench sweep: {info}")
    return info["ok"] / dt, int(info["ok"])


def run(quick: bool) -> list[Result]:
    from procs.ml.simcapture import write_sim_capture
    from procs.ml.synth import START_NS

    days, seconds = (2, 5.0) if quick else (3, 15.0)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as t:
        tmp = Path(t)
        caps = tmp / "caps"
        for i in range(days):
            write_sim_capture(caps, 60 + i, seconds, start_ns=START_NS + i * DAY)
        cfg = tmp / "bt.toml"
        cfg.write_text(
            (ROOT / "configs" / "demo.toml").read_text() + '[backtest]\nprogress="off"\n'
        )
        grid = tmp / "grid.toml"
        grid.write_text(GRID)
        one, n = _rate(1, caps, cfg, grid, tmp)
        two, _ = _rate(2, caps, cfg, grid, tmp)
    return [
        Result(
            name="sweep_throughput",
            metric=f"runs/s {n} runs",
            value=two,
            unit="runs/s",
            baseline_name="the same sweep, 1 worker",
            baseline_value=one,
            goal="2 workers / 1 worker → 2 on 2 free cores",
        )
    ]
