"""``bitrader backtest sweep``: a grid of configs over capture periods on Dask ``distributed``
(an in-process ``LocalCluster``, or a running cluster with ``--scheduler``); optionally
walk-forward (train on period k, test on k+1). Writes ``results.parquet``, ``ranking.parquet``,
``results.html`` and ``sweep.json`` to ``--out``; ``--out``/cache makes a rerun skip what is done.

Exit codes: 0 every run ok, 1 the sweep finished but some runs failed (they are in the table
with their errors) or the cluster could not be reached, 78 refused before anything ran (an
unknown grid key, a value or model the live code refuses, unreadable captures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Final

from procs._config import EXIT_CONFIG
from procs.backtest.sweep import SweepError, SweepSpec, prepare, run_sweep
from procs.backtest.sweep_report import FIGURES

__all__ = ["main", "open_client"]

log = logging.getLogger("procs.backtest.sweep")

EXIT_FAULT: Final = 1
SCHEDULER: Final = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://\S+$")
# a LocalCluster's HTTP endpoints (health, metrics; the dashboard where bokeh is installed) on
# loopback and a free port: by default the scheduler's takes 8787 on every interface
LOOPBACK: Final = {"dashboard_address": "127.0.0.1:0", "worker_dashboard_address": "127.0.0.1:0"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitrader backtest sweep", description=__doc__)
    p.add_argument("--grid", required=True, metavar="GRID.toml", help="dotted config keys = lists")
    p.add_argument("--captures", nargs="+", required=True, metavar="PATH|URL")
    p.add_argument("--config", required=True, metavar="FILE", help="the group's TOML")
    p.add_argument("--period", default="day", help="day (default), all, or a length: 6h, 30m")
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL")
    p.add_argument("--model", metavar="FILE", help="default: each point's [inference] model_path")
    p.add_argument("--out", default="sweep-out", metavar="DIR")
    p.add_argument("--metric", default="pnl_net", choices=list(FIGURES), help="ranks the sets")
    p.add_argument("--top", type=int, default=10, help="best sets shown")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786", help="a running Dask scheduler")
    p.add_argument("--workers", type=int, help="LocalCluster workers (default: the CPU count)")
    p.add_argument("--threads", action="store_true", help="LocalCluster: threads, not processes")
    p.add_argument("--connect-timeout-s", type=float, default=30.0)
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    wf = p.add_argument_group("walk-forward")
    wf.add_argument("--walk-forward", action="store_true", help="train on k, test on k+1")
    wf.add_argument("--seed", type=int, default=0, help="training seed")
    wf.add_argument("--horizon-s", type=float, help="label horizon (bitrader train's default)")
    wf.add_argument("--deadband-bps", type=float)
    wf.add_argument("--gate-blocks", type=int)
    wf.add_argument("--gate-z", type=float)
    wf.add_argument(
        "--gate-fail",
        choices=("fallback", "fail"),
        default="fallback",
        help="a model that fails the promotion gate: the rule scorer trades, or the runs fail",
    )
    wf.add_argument(
        "--in-sample", action="store_true", help="also run each model on its own period"
    )
    return p


def _train_config(args: argparse.Namespace) -> Any:
    from procs.ml.train import TrainConfig

    given = {
        k: getattr(args, k)
        for k in ("horizon_s", "deadband_bps", "gate_blocks", "gate_z")
        if getattr(args, k) is not None
    }
    try:
        return TrainConfig(seed=args.seed, **given)
    except ValueError as exc:
        raise SweepError(f"walk-forward training: {exc}") from None


def open_client(
    scheduler: str | None, workers: int | None, threads: bool, timeout_s: float
) -> tuple[Any, Any]:
    """A client of ``scheduler``, or of a new loopback ``LocalCluster``; (client, cluster)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not SCHEDULER.match(scheduler):
            raise SweepError(f"--scheduler {scheduler!r}: expected tcp://HOST:PORT")
        return Client(scheduler, timeout=f"{timeout_s}s"), None  # type: ignore[no-untyped-call]
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise SweepError(f"--workers {n}: at least 1")
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n,
        threads_per_worker=1,
        processes=not threads,
        silence_logs=logging.WARNING,
        **LOOPBACK,
        **({} if threads else {"host": "127.0.0.1"}),  # worker processes: TCP on loopback
    )
    return Client(cluster), cluster  # type: ignore[no-untyped-call]


def _spec(args: argparse.Namespace) -> SweepSpec:
    return SweepSpec(
        config=args.config,
        grid=args.grid,
        captures=tuple(args.captures),
        out=Path(args.out),
        period=args.period,
        symbols=tuple(args.symbols) if args.symbols else None,
        model=args.model,
        metric=args.metric,
        walk_forward=args.walk_forward,
        train=_train_config(args) if args.walk_forward else None,
        gate_fail=args.gate_fail,
        in_sample=args.in_sample,
        progress=args.progress,
        top=args.top,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO is a line per event
    try:
        spec = _spec(args)
        prep = prepare(spec)  # every point checked before a cluster starts
        client, cluster = open_client(
            args.scheduler, args.workers, args.threads, args.connect_timeout_s
        )
    except SweepError as exc:
        print(f"bitrader backtest sweep: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:  # the scheduler did not answer
        print(f"bitrader backtest sweep: cluster: {exc}", file=sys.stderr)
        return EXIT_FAULT
    try:
        result = run_sweep(spec, client, prep)
    except SweepError as exc:
        print(f"bitrader backtest sweep: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    info = result["info"]
    best = result["ranking"].head(3).to_dict(orient="records")
    print(json.dumps({"info": info, "best": best}, indent=1, default=str))
    if info["failed"]:
        df = result["table"]
        for _, r in df[df["status"] != "ok"].iterrows():
            print(f"failed: point {r['point']} period {r['period']}: {r['error']}", file=sys.stderr)
        return EXIT_FAULT
    return 0
