"""The sweep: one backtest per grid point and capture period, run on Dask ``distributed``.

The client checks everything before it submits anything: the grid's keys, every point's config
decoded by the live types, the model. Then one task on a worker lists the captures and their
time spans (the client never opens a capture), the periods are cut from those spans, and each
(point, period) becomes one ``procs.backtest.tasks.RunTask`` unless the cache already holds its
result. Walk-forward (``procs.backtest.walkforward``) adds a training task per period whose
model the next period's runs use. Results are collected as they complete (a progress bar),
cached, and turned into one table (``procs.backtest.sweep_report``).

The cache key of a run is a hash of the code version (``tasks.code_version``), the point's
resolved config, the capture files' identity (URL, size, modification stamp), the period, the
symbols and the model (its bytes' hash, or the rule scorer); a failed run is not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from procs._config import ConfigError, Env, load_env, read_toml
from procs.backtest.cli import BadInput, decode_configs, load_model_bytes
from procs.backtest.grid import Grid, GridError, apply, read_grid
from procs.backtest.sources import (
    CaptureInfo,
    Period,
    parse_period,
    scan_sources,
    split_periods,
)
from procs.backtest.tasks import RunTask, code_version, run_backtest

__all__ = ["Point", "Prepared", "SweepError", "SweepSpec", "prepare", "run_sweep"]

log = logging.getLogger(__name__)

MAX_PERIODS: Final = 10_000
RULE: Final = "rule"


class SweepError(Exception):
    """Input the sweep refuses before it submits anything (exit 78)."""


@dataclass(frozen=True)
class SweepSpec:
    config: str
    grid: str
    captures: tuple[str, ...]
    out: Path
    period: str = "day"
    symbols: tuple[str, ...] | None = None
    model: str | None = None  # None: each point's [inference] model_path
    metric: str = "pnl_net"
    walk_forward: bool = False
    train: Any = None  # procs.ml.train.TrainConfig (walk-forward)
    gate_fail: Literal["fallback", "fail"] = "fallback"
    in_sample: bool = False  # walk-forward: also run each model on its own training period
    progress: Literal["auto", "on", "off"] = "auto"
    top: int = 10


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]
    doc: dict[str, Any]
    resolved: str  # the decoded config, canonical JSON: part of the cache key
    model: bytes | None
    model_source: str
    model_id: str  # sha256 of the model bytes, or "rule"


@dataclass(frozen=True)
class Prepared:
    grid: Grid
    env: Env
    points: list[Point]


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(kind: str, **parts: object) -> str:
    return hashlib.sha256(_canonical({"kind": kind, **parts}).encode()).hexdigest()


def _model(path: str, batch_max: int, seen: dict[str, tuple[bytes | None, str, str]]) -> Any:
    """(bytes, source, id) for the model at ``path``, checked as the backtest loads it."""
    if path in seen:
        return seen[path]
    p = Path(path)
    if not p.is_file():
        got: tuple[bytes | None, str, str] = (
            None,
            f"no model at {path}: the rule scorer (procs.models.scoring.fallback_score)",
            RULE,
        )
    else:
        data = p.read_bytes()
        load_model_bytes(data, path, batch_max)  # BadInput when the backtest would refuse it
        got = (data, path, hashlib.sha256(data).hexdigest())
    seen[path] = got
    return got


def prepare(spec: SweepSpec) -> Prepared:
    """Read the grid and decode every point's config as the backtest would; refuse the sweep,
    naming each refused point, when any is refused."""
    try:
        grid = read_grid(spec.grid)
        doc = read_toml(spec.config)
    except (GridError, ConfigError) as exc:
        raise SweepError(str(exc)) from None
    if spec.walk_forward and spec.model is not None:
        raise SweepError("--model: walk-forward trains each period's model itself")
    env = load_env(spec.config)
    points: list[Point] = []
    refused: list[str] = []
    models: dict[str, tuple[bytes | None, str, str]] = {}
    for i, values in enumerate(grid.points()):
        try:
            pdoc = apply(doc, values)
            configs = decode_configs(pdoc, spec.config, env)
            known = {s.symbol for s in configs[2].symbols}
            if spec.symbols and not set(spec.symbols) <= known:
                raise BadInput(f"--symbols {list(spec.symbols)}: configured are {sorted(known)}")
            model: tuple[bytes | None, str, str] = (None, "", RULE)
            if not spec.walk_forward:
                model = _model(spec.model or configs[1].model_path, configs[1].batch_max, models)
        except (BadInput, GridError) as exc:
            refused.append(f"point {i} {_canonical(values)}: {exc}")
            continue
        resolved = _canonical(msgspec.to_builtins(configs))
        points.append(Point(i, values, pdoc, resolved, *model))
    if refused:
        shown = "\n  ".join(refused[:10])
        more = f"\n  ... and {len(refused) - 10} more" if len(refused) > 10 else ""
        raise SweepError(
            f"{len(refused)} of {grid.size()} grid point(s) refused (nothing was run):\n  "
            f"{shown}{more}"
        )
    return Prepared(grid, env, points)


def _sources(captures: Sequence[str]) -> list[str]:
    """Plain paths made absolute (the workers' working directory is not the client's)."""
    return list(dict.fromkeys(c if "://" in c else os.path.abspath(c) for c in captures))


def scan(client: Any, captures: Sequence[str]) -> list[CaptureInfo]:
    """List the captures and their spans on a worker: the client opens none of them."""
    from procs.tickstore.store import CaptureError

    fut = client.submit(scan_sources, _sources(captures), pure=False)
    try:
        infos: list[CaptureInfo] = fut.result()
    except (FileNotFoundError, CaptureError, OSError, ValueError) as exc:
        raise SweepError(f"captures: {exc}") from None
    seen: dict[str, CaptureInfo] = {}
    for f in infos:
        seen.setdefault(f.url, f)
    return list(seen.values())


def periods_of(files: list[CaptureInfo], period: str) -> list[Period]:
    try:
        length = parse_period(period)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    if length is not None and files:
        span = max(f.last_ns for f in files) - min(f.first_ns for f in files)
        if span // length + 1 > MAX_PERIODS:
            raise SweepError(f"--period {period}: more than {MAX_PERIODS} periods")
    return split_periods(files, length)


def _iso(ns: int) -> str:
    import datetime as dt

    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Cache:
    """Results on disk under ``OUT/cache``: one JSON file per run, an ONNX file and its card
    per walk-forward model; written aside, then renamed, so a killed sweep leaves none half."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.root / f"run-{key}.json"
        try:
            got: dict[str, Any] = json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # a damaged entry is computed again
            log.warning("cache entry %s unreadable (%s): computing it again", p, exc)
            return None
        return got if got.get("key") == key else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._write(self.root / f"run-{key}.json", (_canonical(value) + "\n").encode())

    def get_model(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        try:
            card = json.loads((self.root / f"model-{key}.card.json").read_text())
            return (self.root / f"model-{key}.onnx").read_bytes(), card
        except (OSError, ValueError):
            return None

    def put_model(self, key: str, onnx: bytes, card: dict[str, Any]) -> None:
        self._write(self.root / f"model-{key}.onnx", onnx)  # the card last: it marks it whole
        self._write(self.root / f"model-{key}.card.json", (_canonical(card) + "\n").encode())


def _progress(mode: str, total: int) -> Any:
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="run", file=sys.stderr)


@dataclass
class Runner:
    """Submits tasks (or takes them from the cache) and hands each result to its callbacks as
    it completes; results arrive in any order, rows keep theirs."""

    client: Any
    cache: Cache
    bar: Any = None
    stats: dict[str, int] = field(
        default_factory=lambda: {"submitted": 0, "cached": 0, "ok": 0, "failed": 0, "trained": 0}
    )
    payload_bytes: list[int] = field(default_factory=list)
    _waiting: dict[str, list[Callable[[dict[str, Any]], None]]] = field(default_factory=dict)
    _futures: Any = None

    def __post_init__(self) -> None:
        from distributed import as_completed

        self._futures = as_completed()  # type: ignore[no-untyped-call]

    def submit(self, fn: Any, task: Any, key: str, then: Callable[[dict[str, Any]], None]) -> None:
        import pickle

        self.payload_bytes.append(len(pickle.dumps(task)))
        if key in self._waiting:  # the same inputs twice: one task, both rows get its result
            self._waiting[key].append(then)
            return
        self._waiting[key] = [then]
        self._futures.add(self.client.submit(fn, task, key=key, pure=False))
        self.stats["submitted"] += 1

    def run(self, task: RunTask, row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Fill ``row`` from the cache or from the task's result; append it to ``rows``."""
        rows.append(row)
        hit = self.cache.get(task.key)
        if hit is not None:
            row.update(hit, cached=True)
            self.stats["cached"] += 1
            self._tick()
            return

        def done(res: dict[str, Any]) -> None:
            fields: tuple[str, ...] = ("key", "status", "error", "summary", "seconds")
            entry: dict[str, Any] = {k: res[k] for k in fields if k in res}
            row.update(entry, cached=False, worker=res.get("worker"))
            if res["status"] == "ok":
                self.cache.put(task.key, entry)
            self._tick(res["status"])

        self.submit(run_backtest, task, f"backtest-{task.key}", done)

    def fail(self, row: dict[str, Any], rows: list[dict[str, Any]], error: str) -> None:
        rows.append(row)
        row.update(status="failed", error=error, cached=False)
        self._tick("failed")

    def _tick(self, status: str = "ok") -> None:
        self.stats[status if status in ("ok", "failed") else "failed"] += 1
        if self.bar is not None:
            self.bar.update(1)

    def wait(self) -> None:
        """Hand every result to its callbacks (which may submit more) until none is left."""
        for fut in self._futures:
            try:
                res = fut.result()
            except Exception as exc:  # a worker died, the task was lost: that run failed
                res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            for then in self._waiting.pop(fut.key, []):
                then(res)
            fut.release()


def plain_runs(
    prep: Prepared, periods: list[Period], spec: SweepSpec, runner: Runner, code: str
) -> list[dict[str, Any]]:
    """Every point on every period with the point's model."""
    rows: list[dict[str, Any]] = []
    for p in periods:
        for pt in prep.points:
            task = make_task(prep, pt, p, spec, code, (pt.model, pt.model_source, pt.model_id))
            runner.run(task, base_row(pt, p, "all", None), rows)
    return rows


def bounds(p: Period) -> tuple[int | None, int | None]:
    return (None, None) if p.label == "all" else (p.start_ns, p.end_ns)


def make_task(
    prep: Prepared,
    pt: Point,
    p: Period,
    spec: SweepSpec,
    code: str,
    model: tuple[bytes | None, str, str],
) -> RunTask:
    files = tuple(f.url for f in p.files)
    lo, hi = bounds(p)
    key = cache_key(
        "backtest",
        code=code,
        config=pt.resolved,
        captures=[f.identity() for f in p.files],
        period=[lo, hi],
        symbols=spec.symbols,
        model=[model[2], model[1]],
    )
    return RunTask(
        key=key,
        code=code,
        config_path=spec.config,
        env=prep.env,
        doc=pt.doc,
        files=files,
        from_ns=lo,
        to_ns=hi,
        symbols=spec.symbols,
        model=model[0],
        model_source=model[1],
    )


def base_row(pt: Point, p: Period, sample: str, train: Period | None) -> dict[str, Any]:
    return {
        "point": pt.index,
        "params": _canonical(pt.values),
        **{f"param:{k}": v for k, v in pt.values.items()},
        "period": p.label,
        "period_start": _iso(p.start_ns),
        "period_end": _iso(p.end_ns),
        "sample": sample,
        "train_period": None if train is None else train.label,
    }


def run_sweep(spec: SweepSpec, client: Any, prep: Prepared | None = None) -> dict[str, Any]:
    """Run the sweep on ``client``; write ``results.parquet`` and ``results.html`` to
    ``spec.out``; return the table, the ranking and the counts. ``prep``: ``prepare(spec)``,
    done already (the CLI checks the grid before it starts a cluster)."""
    from procs.backtest.sweep_report import FIGURES, write_results

    if spec.metric not in FIGURES:
        raise SweepError(f"--metric {spec.metric!r}: one of {', '.join(FIGURES)}")
    t0 = time.perf_counter()
    code = code_version()
    prep = prep or prepare(spec)
    files = scan(client, spec.captures)
    periods = periods_of(files, spec.period)
    if not periods:
        raise SweepError("captures: no books in any period")
    spec.out.mkdir(parents=True, exist_ok=True)
    n_runs = len(prep.points) * len(periods)
    if spec.walk_forward:
        from procs.backtest.walkforward import check_periods, walk_forward_runs

        check_periods(periods)
        n_runs = len(prep.points) * (len(periods) - 1) * (2 if spec.in_sample else 1)
    bar = _progress(spec.progress, n_runs)
    runner = Runner(client, Cache(spec.out / "cache"), bar)
    try:
        if spec.walk_forward:
            rows = walk_forward_runs(prep, periods, spec, runner, code)
        else:
            rows = plain_runs(prep, periods, spec, runner, code)
        runner.wait()
    finally:
        if bar is not None:
            bar.close()
    rows.sort(key=lambda r: (r["period_start"], r["sample"], r["point"]))
    info = {
        "code": code,
        "grid": spec.grid,
        "config": spec.config,
        "captures": [f.url for f in files],
        "periods": [p.label for p in periods],
        "metric": spec.metric,
        "walk_forward": spec.walk_forward,
        "runs": len(rows),
        "seconds": round(time.perf_counter() - t0, 3),
        "payload_bytes_max": max(runner.payload_bytes, default=0),
        **runner.stats,
    }
    return write_results(spec.out, rows, prep.grid.keys, spec.metric, spec.top, info)
