"""What a sweep's workers run: one backtest, or one walk-forward training, per task.

A task carries names and small values only: the config document of its grid point, capture
URLs, a time range, a model's bytes (a few kB) and the client's code version. The worker opens
the captures itself (``procs.backtest.sources.local_path``), runs the functions ``bitrader
backtest`` runs (``procs.backtest.cli.simulate``, then ``procs.backtest.report.summarise``: the
figures of ``summary.json``, without the plots) or the ones ``bitrader train`` runs
(``procs.ml.train.train_from_captures``), and answers a small dict. Nothing it raises leaves the
task: a failed run comes back as ``status = "failed"`` with its error, and the sweep goes on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from procs._config import Env

__all__ = ["RunTask", "TrainTask", "code_version", "run_backtest", "train_model"]

log = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parents[2]
CODE_DIRS: Final = ("procs", "shm", "ipc")


@functools.cache
def code_version() -> str:
    """The package version and a hash of every source file the backtest can run (procs/,
    shm/, ipc/): a result computed by other code is never taken for this code's."""
    try:
        version = importlib.metadata.version("bitrader")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    h = hashlib.sha256()
    for d in CODE_DIRS:
        for f in sorted((ROOT / d).rglob("*")):
            if f.suffix in (".py", ".c") and f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(ROOT)).encode() + b"\0")
                h.update(f.read_bytes())
    return f"{version}+src.{h.hexdigest()[:16]}"


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _answer(key: str, t0: float, status: str, **fields: Any) -> dict[str, Any]:
    """A task's answer: its key and status, what it produced, how long it took and where."""
    return {
        "key": key,
        "status": status,
        **fields,
        "seconds": time.perf_counter() - t0,
        "worker": _where(),
    }


def _error(exc: BaseException) -> str:
    """``Type: message``, and where it was raised unless the backtest refused its input."""
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__name__ in ("BadInput", "GridError", "FileNotFoundError", "CaptureError"):
        return text
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return text


def _check_code(expected: str) -> None:
    mine = code_version()
    if mine != expected:
        raise RuntimeError(
            f"this worker runs code {mine}, the client {expected}: install the same "
            "bitrader on every worker (a result must be the code its cache key names)"
        )


@dataclass(frozen=True, slots=True)
class RunTask:
    """One backtest: a grid point's config over one period's files."""

    key: str  # the cache key (procs.backtest.sweep)
    code: str  # the client's code_version()
    config_path: str  # for messages; the document below is what is decoded
    env: Env
    doc: dict[str, Any]  # the config file's document with the point's values set
    files: tuple[str, ...]  # capture URLs
    from_ns: int | None
    to_ns: int | None
    symbols: tuple[str, ...] | None
    model: bytes | None  # ONNX bytes; None: the rule scorer
    model_source: str  # the model's name in the summary (or why the rule scorer trades)


@dataclass(frozen=True, slots=True)
class TrainTask:
    """One walk-forward training: ``bitrader train`` on one period's files."""

    key: str
    code: str
    files: tuple[str, ...]
    config: Any  # procs.ml.train.TrainConfig


def run_backtest(task: RunTask) -> dict[str, Any]:
    """Run one backtest where this worker is; answer its summary or its error."""
    t0 = time.perf_counter()
    try:
        _check_code(task.code)
        from procs.backtest.cli import decode_configs, load_model_bytes, simulate
        from procs.backtest.compare import parity
        from procs.backtest.report import summarise
        from procs.backtest.sources import local_path

        configs = decode_configs(task.doc, task.config_path, task.env)
        model = (
            load_model_bytes(task.model, task.model_source, configs[1].batch_max)
            if task.model is not None
            else (None, task.model_source)
        )
        sim = simulate(
            configs,
            [local_path(u) for u in task.files],
            symbols=task.symbols,
            from_ns=task.from_ns,
            to_ns=task.to_ns,
            model=model,
            progress="off",
        )
        summary, _ = summarise(**sim.report_args(parity(sim.market, sim.feats, sim.sigs)))
        summary["captures"] = list(task.files)  # as given, not this worker's cache paths
        # what summary.json holds: JSON types only
        summary = json.loads(json.dumps(summary, sort_keys=True, default=str))
    except Exception as exc:  # a failed run is a row of the results, never the end of the sweep
        refused = type(exc).__name__ == "BadInput"  # the backtest's own message says it all
        log.warning("run %s failed: %s", task.key[:12], exc, exc_info=not refused)
        return _answer(task.key, t0, "failed", error=_error(exc))
    return _answer(task.key, t0, "ok", summary=summary)


def train_model(task: TrainTask) -> dict[str, Any]:
    """Train on one period's files with ``bitrader train``'s code; answer the model and card."""
    t0 = time.perf_counter()
    try:
        _check_code(task.code)
        from procs.backtest.sources import local_path
        from procs.ml.train import train_from_captures

        paths = [Path(local_path(u)) for u in task.files]
        with tempfile.TemporaryDirectory(prefix="bitrader-wf-") as tmp:
            out = Path(tmp) / "model.onnx"
            card = train_from_captures(paths, out, task.config)
            onnx = out.read_bytes()
    except Exception as exc:  # reported on the runs that needed this model
        log.warning("training %s failed: %s", task.key[:12], exc, exc_info=True)
        return _answer(task.key, t0, "failed", error=_error(exc))
    return _answer(task.key, t0, "ok", onnx=onnx, card=card)
