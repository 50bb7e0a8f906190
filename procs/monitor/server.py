"""``monitor up|down``: run Debian's ``prometheus`` against the running group, in the background.

``up`` writes the config and rules for the group config into ``<run_dir>/prometheus/`` (or
``--dir``), starts ``prometheus`` there in its own session (its pid in ``prometheus.pid``, its
output in ``prometheus.log``), waits until it answers ``/-/ready`` and prints what to point Grafana
at. ``down`` stops it (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from procs._config import load_env
from procs.monitor.rules import RuleParams
from procs.monitor.targets import PromSettings, read_targets
from procs.monitor.writer import write_config

__all__ = ["down", "is_alive", "state_dir", "up"]

READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
ROOT: Final = Path(__file__).resolve().parents[2]


def state_dir(config: str, given: str) -> Path:
    """``given``, or ``<run_dir>/prometheus`` of the group config (BITRADER_RUN_DIR or ./run)."""
    return Path(given) if given else Path(load_env(config).run_dir) / "prometheus"


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(directory: Path) -> int | None:
    try:
        pid = int((directory / "prometheus.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) else None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1.0) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} missing)"


def up(args: argparse.Namespace) -> int:
    """Start Prometheus for ``args.config``; 0 when it is ready, 1 when it did not start."""
    binary = shutil.which("prometheus")
    if binary is None:
        print(
            "bitrader monitor up: no `prometheus` binary: install Debian's package "
            "(`sudo apt-get install prometheus`, or `make sysdeps` as root)"
        )
        return 1
    directory = state_dir(args.config, args.dir)
    url = f"http://127.0.0.1:{args.port}"
    if (pid := _pid(directory)) is not None:
        print(f"prometheus already running pid={pid} dir={directory}")
        _print_grafana(url)
        return 0
    targets = read_targets(args.config)  # ConfigError (exit 78) before anything starts
    settings = PromSettings(args.scrape_interval_s, args.scrape_interval_s)
    params = RuleParams.for_scrapes(args.scrape_interval_s, args.for_scale)
    write_config(args.config, directory, settings, params)
    log_path = directory / "prometheus.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # a fixed binary and our own arguments
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{args.port}",
                "--storage.tsdb.retention.time=2d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command; `monitor down` stops it
        )
    (directory / "prometheus.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _ready(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            print(f"prometheus did not become ready; {log_path}:\n{_tail(log_path)}")
            return 1
        time.sleep(0.2)  # pacing between readiness probes
    print(f"prometheus running pid={proc.pid} dir={directory}")
    print("targets: " + ", ".join(f"{t.proc}={t.address}" for t in targets))
    _print_grafana(url)
    return 0


def _print_grafana(url: str) -> None:
    grafana = ROOT / "configs" / "grafana"
    print(f"Prometheus: {url}  (alerts: {url}/alerts, targets: {url}/targets)")
    print("Grafana: add a Prometheus data source at that URL, or provision ours:")
    print(f"  export BITRADER_PROMETHEUS_URL={url}")
    print(f"  export BITRADER_GRAFANA_DASHBOARDS={grafana / 'dashboards'}")
    print(f"  grafana-server ... cfg:default.paths.provisioning={grafana / 'provisioning'}")


def down(args: argparse.Namespace) -> int:
    """Stop the Prometheus that ``up`` started for ``args.config``; 0 when none runs after."""
    directory = state_dir(args.config, args.dir)
    pid = _pid(directory)
    if pid is None:
        print(f"prometheus not running (dir={directory})")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # pacing while it flushes its head block
    if is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (directory / "prometheus.pid").unlink(missing_ok=True)
    print(f"prometheus stopped pid={pid}")
    return 0
