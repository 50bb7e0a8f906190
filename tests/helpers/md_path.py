"""Start the market-data path as real processes: ingest -> features -> inference -> capture.

``run_md_path(sx, tmp_path, run_dir, ns)`` writes one config per process (rings in ``ns``,
endpoints under ``run_dir``), starts each with ``python -m procs.<name> CONFIG`` and yields an
``MdPath``; on exit it sends SIGTERM to each (downstream first) and records the exit codes.
``start_proc`` and ``Proc`` are the generic pieces, also used for a capture process alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs.group.health import query_health
from tests.conftest import ROOT
from tests.helpers.ingest_proc import SYMBOLS, ingest_toml
from tests.helpers.simex_proc import SimexProc

MODEL = ROOT / "configs" / "models" / "default.onnx"


@dataclass
class Proc:
    """One running ``python -m procs.<name>`` with its log file and control endpoint."""

    name: str
    proc: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    ctl: str
    rc: int | None = None

    def health(self, timeout_s: float = 1.0) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited rc={self.proc.returncode}:\n{self.log()}")
        try:
            return query_health(self.ctl, timeout_s)
        except TimeoutError:
            return None  # not answering yet: callers poll

    def counters(self) -> dict[str, Any]:
        h = self.health()
        return {} if h is None else dict(h["counters"])

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.rc = self.proc.wait(timeout=timeout_s)
        return self.rc

    def kill(self) -> None:
        self.proc.kill()
        self.rc = self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_proc(name: str, config_text: str, tmp_path: Path, run_dir: Path, ns: str) -> Proc:
    """Write ``<name>.toml`` and start ``python -m procs.<name>`` with this run's env."""
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(config_text)
    log_path = tmp_path / f"{name}.log"
    env = {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", f"procs.{name}", str(cfg)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, popen, cfg, log_path, f"ipc://{run_dir}/{name}.ctl")


def runtime_toml(name: str, waiter: str = "block", extra: str = "") -> str:
    return f"""
[{name}.runtime]
pub_endpoint = "ipc://{{run_dir}}/{name}.pub"
control_endpoint = "ipc://{{run_dir}}/{name}.ctl"
waiter = "{waiter}"
max_sleep_s = 0.001
heartbeat_s = 0.2
{extra}
"""


def capture_toml(
    directory: Path,
    extra: str = "",
    symbols: tuple[str, ...] = SYMBOLS,
    flush_s: float = 0.2,
    runtime_extra: str = "",
) -> str:
    syms = ", ".join(f'"{s}"' for s in symbols)
    return f"""
[capture]
directory = "{directory}"
symbols = [{syms}]
venue = "simex"
flush_s = {flush_s}
attach_retry_s = 0.05
{extra}
""" + runtime_toml("capture", extra=runtime_extra)


def features_toml(n_symbols: int = len(SYMBOLS), waiter: str = "hybrid") -> str:
    return f"""
[features]
n_symbols = {n_symbols}
capacity_records = 16384
attach_timeout_s = 15.0
""" + runtime_toml("features", waiter)


def inference_toml(waiter: str = "hybrid", model: Path = MODEL) -> str:
    return f"""
[inference]
feat_ring = "{{ns}}.features.feat"
sig_ring = "{{ns}}.inference.sig"
features_pub = "ipc://{{run_dir}}/features.pub"
model_path = "{model}"
sig_capacity_records = 16384
latency_budget_s = 0.5
attach_timeout_s = 15.0
require_model = true
""" + runtime_toml("inference", waiter)


@dataclass
class MdPath:
    procs: dict[str, Proc]
    capture_dir: Path
    rcs: dict[str, int] = field(default_factory=dict)

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every process (downstream first, without waiting between them), then wait
        for each; return name -> exit code."""
        names = [n for n in ("capture", "inference", "features", "ingest") if n in self.procs]
        for name in names:
            if self.procs[name].proc.poll() is None:
                self.procs[name].proc.send_signal(signal.SIGTERM)
        for name in names:  # one SIGTERM each, as supervisord sends: never a second one
            if name not in self.rcs:
                self.rcs[name] = self.procs[name].proc.wait(timeout=15)
        return self.rcs

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log()[-3000:]}" for n, p in self.procs.items())


@contextmanager
def run_md_path(
    sx: SimexProc,
    tmp_path: Path,
    run_dir: Path,
    ns: str,
    *,
    waiter: str = "hybrid",
    capture: bool = True,
) -> Iterator[MdPath]:
    """Start ingest, features, inference (and capture) against ``sx``; stop them all on exit."""
    cap_dir = tmp_path / "capture"
    texts = {
        "ingest": ingest_toml(sx, run_dir),
        "features": features_toml(waiter=waiter),
        "inference": inference_toml(waiter=waiter),
    }
    if capture:
        texts["capture"] = capture_toml(cap_dir)
    path = MdPath({}, cap_dir)
    with ExitStack() as stack:
        stack.callback(path.stop_all)
        for name, text in texts.items():
            path.procs[name] = start_proc(name, text, tmp_path, run_dir, ns)
        yield path
