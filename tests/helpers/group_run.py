"""Run the ``pipeline`` group under a real supervisord for e2e tests, and explain failures.

``running_group(run_dir, ns, cfg)`` starts the group with ``procs.group.supervise.start``, waits
until every program is RUNNING, market data flows and execution has started (see
``_reset_startup_breaker``), yields a ``Group`` and always stops it. ``Group.why()`` is the text
every assertion message carries: supervisord's table, each process's health and log tails.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs._config import GROUPS
from procs.group.health import query_health
from procs.group.supervise import ROOT, GroupEnv, process_info, rpc, start, stop
from tests.helpers.group_config import GroupConfig
from tests.helpers.group_venue import JournalView, SimexView
from tests.helpers.poll import eventually

log = logging.getLogger(__name__)

PROGRAMS = ("simex", "ingest", "capture", "features", "inference", "execution", "dashboard")
REST_POLL_S = 0.1
LOCK_PATH = "/tmp/bitrader-e2e-group.lock"
_lock_depth = 0
_lock_fd: list[int] = []


def bitrader(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "procs.cli", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, check=False
    )


@dataclass
class Group:
    run_dir: Path
    ns: str
    cfg: GroupConfig
    startup_resets: int = 0  # execution restarts to clear a start-up stale-data breaker trip
    group: str = "pipeline"  # or "pipeline-colocated" ([group] topology, procs/_topology.py)

    @property
    def programs(self) -> tuple[str, ...]:
        """The group's supervisord programs (colocated: hotpath instead of the four stages)."""
        return GROUPS[self.group]

    @property
    def simex(self) -> SimexView:
        return SimexView(self.cfg.rest_url)

    @property
    def journal(self) -> JournalView:
        return JournalView(self.cfg.journal_path)

    def infos(self) -> dict[str, dict[str, Any]]:
        # a program is listed in several groups (pipeline, pipeline-colocated, live): ours only
        infos = process_info(self.run_dir)
        return {
            p["name"]: p for p in infos if p["group"] == self.group and p["name"] in self.programs
        }

    def info(self, name: str) -> dict[str, Any]:
        return self.infos()[name]

    def health(self, proc: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """One process's health counters (its control socket); {} when it does not answer."""
        try:
            data = query_health(self.cfg.control_endpoint(proc), timeout_s)
        except (TimeoutError, RuntimeError):
            return {}
        counters: dict[str, Any] = data.get("counters", {})
        return {"state": data.get("state"), **counters}

    def counter(self, proc: str, key: str) -> Any:
        return self.health(proc).get(key)

    def metrics(self, proc: str) -> str:
        url = f"http://127.0.0.1:{self.cfg.metrics_ports[proc]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text: str = r.read().decode()
        return text

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        if not path.exists():
            return f"({path} missing)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def why(self, *names: str) -> str:
        """Everything that explains a failure: states, health counters, log tails."""
        out = []
        try:
            for n, p in self.infos().items():
                out.append(f"{n}: {p['statename']} pid={p['pid']} {p['description']}")
        except OSError as exc:
            out.append(f"supervisord: {exc}")
        out += [
            f"--- {n} health: {json.dumps(self.health(n, 1.0), default=str)[:1500]}"
            for n in names or list(self.cfg.metrics_ports)
        ]
        out += [f"--- {n} log tail:\n{self.log_tail(n)}" for n in names or self.programs]
        return "\n".join(out)

    def all_running(self) -> bool:
        infos = self.infos()
        return set(infos) == set(self.programs) and all(
            p["statename"] == "RUNNING" for p in infos.values()
        )

    def exec_state(self) -> str:
        return str(self.health("execution").get("state", ""))

    def wait_until(self, cond: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
        """``eventually`` whose failure says what was awaited and shows the group's state."""
        try:
            return eventually(cond, timeout_s=timeout_s, interval_s=interval_s)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}\n{self.why()}") from None


def _market_data_flows(g: Group) -> bool:
    """ingest's WS delivers (a REST snapshot alone does not clear ingest's stale watchdog)."""
    ing = g.health("ingest")
    ages = [v for k, v in ing.items() if k.startswith("book_age_s.")]
    return (
        bool(ing.get("msgs_total"))
        and ing.get("stale_symbols") == 0
        and bool(ages)
        and max(ages) < 1.0
    )


# breaker trips that a start on two busy cores can cause before anything traded
STARTUP_TRIGGERS = frozenset({"stale_data", "latency_spike"})


def _reset_startup_breaker(g: Group, ready_s: float) -> None:
    """Restart execution once when a start-up market-data gap latched its breaker.

    ingest flags a symbol STALE when simex is slower to listen than ingest is to start (both
    start at once under supervisord); execution's breaker then goes REDUCING on that first
    STALE book and, by design, never steps back. Restarting execution is the documented operator
    reset. Only done before the first fill and for STARTUP_TRIGGERS; anything else is left for
    the test to judge. (Product issue reported with these tests: the breaker should not latch on
    data that was never fresh since start.)
    """
    h = g.health("execution")
    triggers = {t for _, _, t, _ in g.journal.breaker_events()}
    if h.get("breaker") == "ACTIVE" or g.journal.fills_count() or not triggers <= STARTUP_TRIGGERS:
        return
    g.startup_resets += 1
    log.warning("execution breaker latched at start (%s): restarting execution once", triggers)
    name = f"{g.group}:{'hotpath' if 'hotpath' in g.programs else 'execution'}"
    with rpc(g.run_dir) as proxy:
        proxy.supervisor.stopProcess(name, True)
        proxy.supervisor.startProcess(name, False)
    g.wait_until(g.all_running, ready_s, "every program RUNNING after the reset")
    g.wait_until(lambda: g.exec_state() == "active", ready_s, "execution active after reset")


@contextmanager
def group_lock() -> Iterator[None]:
    """Hold the one-group-at-a-time lock, across xdist workers (re-entrant in a process).

    ``xdist_group`` alone does not keep these tests apart: with pytest 9.2 and xdist 3.8 the
    loadgroup mark is silently ignored (pytest-dev/pytest-xdist#1386). A file lock does.
    """
    global _lock_depth
    if _lock_depth == 0:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other worker's group has stopped
        _lock_fd.append(fd)
    _lock_depth += 1
    try:
        yield
    finally:
        _lock_depth -= 1
        if _lock_depth == 0:
            fd = _lock_fd.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextmanager
def running_group(
    run_dir: Path, ns: str, cfg: GroupConfig, ready_s: float = 60, group_name: str = "pipeline"
) -> Iterator[Group]:
    """Start the group, wait until it can trade (execution ``active``), always stop it."""
    env = GroupEnv(run_dir, cfg.path, ns, group_name)
    group = Group(run_dir, ns, cfg, group=group_name)
    start(env)
    try:
        group.wait_until(group.all_running, ready_s, "every program RUNNING")
        group.wait_until(lambda: _market_data_flows(group), ready_s, "fresh market data")
        group.wait_until(
            lambda: group.exec_state() not in ("", "reconciling"), ready_s, "execution started"
        )
        # every book ingest had published (a start-up STALE one too) has reached execution
        group.wait_until(
            lambda: group.health("execution").get("book_ring_lag_records") == 0, 10, "no lag"
        )
        _reset_startup_breaker(group, ready_s)
        yield group
    finally:
        stop(run_dir)
