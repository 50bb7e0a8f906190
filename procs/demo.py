"""``make demo``: start a group under supervisord, show a live summary, stop cleanly.

By default the whole trading group runs against simex in paper mode (configs/demo.toml);
``--group transport`` runs the transport demo (producer → ring → consumer). The shared-memory
namespace is ``--ns`` or else the config file's stem, as for ``bitrader up``, and the run
directory is ``run/<ns>`` unless ``--run-dir`` says otherwise: two demos with different configs
keep apart. Until every process answers ``health`` (at most ``STARTUP_GRACE_S``) the summary
says only "starting…".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Final

import numpy as np

from ipc.endpoints import expand
from ipc.orders import ORDER_EVENT_DECODER, OrderEvent
from ipc.sockets import Subscriber, connect_sub
from procs._config import EXIT_CONFIG, read_toml
from procs.group.health import ProcHealth, collect
from procs.group.supervise import ROOT, GroupEnv, is_up, start, stop

RUN_ROOT: Final = ROOT / "run"  # the default run directory is RUN_ROOT / ns
CONFIGS: Final = {
    "transport": ROOT / "configs" / "transport.toml",
    "pipeline": ROOT / "configs" / "demo.toml",
}
PRINT_EVERY_S: Final = 1.0
FAILED_STATES: Final = frozenset({"FATAL", "BACKOFF", "EXITED"})
STARTUP_GRACE_S: Final = 30.0  # still not up after this: show the full summary, problems too
DASHBOARD_PASSWORD_ENV: Final = "BITRADER_DASHBOARD_PASSWORD"


class _Stop:
    def __init__(self) -> None:
        self.reason = ""

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.reason = signal.Signals(signum).name


def group_up(rows: dict[str, ProcHealth]) -> bool:
    """True once every program is RUNNING and each one with a control socket answered health."""
    return bool(rows) and all(r.state == "RUNNING" and r.healthy for r in rows.values())


def starting_line(elapsed_s: float, rows: dict[str, ProcHealth]) -> str:
    """The summary while the group comes up: which programs are up, nothing else."""
    up = sorted(n for n, r in rows.items() if r.state == "RUNNING" and r.healthy)
    waiting = sorted(n for n in rows if n not in up)
    return f"{elapsed_s:5.0f}s  starting… {len(up)}/{len(rows)} up; waiting for " + (
        ", ".join(waiting) or "supervisord"
    )


def _transport_line(
    elapsed_s: float, rows: dict[str, ProcHealth], last: dict[str, float], dt_s: float
) -> str:
    prod, cons = rows.get("producer"), rows.get("consumer")
    if prod is None or cons is None or "received_total" not in cons.counters:
        return starting_line(elapsed_s, rows)
    pub = float(prod.counters.get("published_total", 0))
    got = float(cons.counters["received_total"])
    pub_rate = (pub - last.get("pub", pub)) / dt_s
    got_rate = (got - last.get("got", got)) / dt_s
    last.update(pub=pub, got=got)
    c = cons.counters
    return (
        f"{elapsed_s:5.0f}s  producer {pub_rate:8.0f} rec/s | consumer {got_rate:8.0f} rec/s"
        f"  latency p50 {c['latency_p50_us']:7.1f} µs  p99 {c['latency_p99_us']:7.1f} µs"
        f"  p99.9 {c['latency_p999_us']:7.1f} µs | dropped {c['ring_dropped_total']}"
        f"  gaps {c['seq_gaps_total']}  lag {c['ring_lag_records']}"
    )


class _PipelineView:
    """Live summary of the trading group: rates, positions, PnL, tick-to-order, health."""

    def __init__(self, env: GroupEnv) -> None:
        self._doc = read_toml(env.config)
        self._env = env
        pub = self._expand(self._doc["execution"]["runtime"]["pub_endpoint"])
        self._orders: Subscriber = connect_sub(pub, [b"ord."])
        self._t2o_ns: list[int] = []
        self._seen: set[str] = set()
        self._last: dict[str, float] = {}

    def _expand(self, text: str) -> str:
        return expand(text, run_dir=self._env.run_dir, ns=self._env.ns)

    def _drain_orders(self) -> None:
        while (msg := self._orders.recv(0)) is not None:
            ev = ORDER_EVENT_DECODER.decode(msg[1])
            if isinstance(ev, OrderEvent) and ev.ts_order_ns and ev.client_id not in self._seen:
                self._seen.add(ev.client_id)  # first event of an order: when it left
                self._t2o_ns.append(ev.ts_order_ns - ev.ts_recv_ns)

    def _rate(self, key: str, total: float, dt_s: float) -> float:
        prev = self._last.get(key, total)
        self._last[key] = total
        return (total - prev) / dt_s

    def lines(self, elapsed_s: float, rows: dict[str, ProcHealth], dt_s: float) -> list[str]:
        self._drain_orders()
        ing, feat, inf, ex = (rows.get(n) for n in ("ingest", "features", "inference", "execution"))
        md = float(ing.counters.get("msgs_per_s", 0.0)) if ing else 0.0
        f_rate = self._rate("feat", feat.items_total, dt_s) if feat else 0.0
        s_rate = self._rate("sig", inf.items_total, dt_s) if inf else 0.0
        c = ex.counters if ex else {}
        t2o = np.asarray(self._t2o_ns[-5000:], dtype=np.float64) / 1e3
        # order events can arrive before execution's counters say so: no figure beside orders 0
        pct = (
            f"p50 {np.percentile(t2o, 50):,.0f} µs  p99 {np.percentile(t2o, 99):,.0f} µs"
            f" (n={t2o.size})"
            if t2o.size and int(c.get("orders_sent_total", 0))
            else "no orders yet"
        )
        bad = [f"{r.name}: {'; '.join(r.problems)}" for r in rows.values() if r.problems]
        return [
            f"{elapsed_s:5.0f}s  md {md:6.0f} msg/s  features in {f_rate:6.0f} rec/s  signals "
            f"{s_rate:6.0f}/s | {c.get('state', '?')} breaker {c.get('breaker', '?')} | orders "
            f"{c.get('orders_sent_total', 0)} fills {c.get('fills_total', 0)} refused "
            f"{c.get('refusals_total', 0)} open {c.get('open_orders', 0)}",
            f"       positions {c.get('positions', '{}')}  PnL realised "
            f"{float(c.get('realised_pnl', 0.0)):+.2f} unrealised "
            f"{float(c.get('unrealised_pnl', 0.0)):+.2f} fees {float(c.get('fees', 0.0)):.2f} USDT"
            f" | tick-to-order {pct}",
            f"       health {'OK' if not bad else 'PROBLEMS: ' + ' | '.join(bad)}"
            f" ({sum(r.healthy for r in rows.values())}/{len(rows)} healthy)",
        ]

    def where(self) -> list[str]:
        out = []
        if "capture" in self._doc:
            out.append(f"HDF5 capture: {self._expand(self._doc['capture'].get('directory', '?'))}")
        out.append(f"journal: {self._expand(self._doc['execution']['journal_path'])}")
        return out

    def close(self) -> None:
        self._orders.close()


def _problem(rows: dict[str, ProcHealth]) -> str | None:
    for name, r in rows.items():
        if r.state in FAILED_STATES:
            return f"{name} is {r.state}"
    return None


def _dashboard_login(config: Path) -> str | None:
    """Give the group's dashboard a fresh password (unless one is set); say how to log in."""
    dash = read_toml(config).get("dashboard")
    if not isinstance(dash, dict):
        return None
    given = bool(os.environ.get(DASHBOARD_PASSWORD_ENV))
    if not given:  # unset or empty: the dashboard would refuse an empty one
        os.environ[DASHBOARD_PASSWORD_ENV] = secrets.token_urlsafe(12)
    password = os.environ[DASHBOARD_PASSWORD_ENV]
    how = f"the password in ${DASHBOARD_PASSWORD_ENV}" if given else f"password {password}"
    url = f"http://{dash.get('host', '127.0.0.1')}:{dash.get('port', 18090)}/"
    return f"risk dashboard: {url}  (log in with {how})"


def run(group: str, config: Path, duration_s: float, run_dir: Path, ns: str) -> int:
    from procs._config import Env, check_file

    errors = check_file(config, group=group, env=Env(str(run_dir), ns))  # as `bitrader up` does
    for error in errors:
        print(f"demo: {error}", file=sys.stderr)
    if errors:
        return 78
    if is_up(run_dir):
        print(f"stopping the group left running in {run_dir}")
        stop(run_dir)
    env = GroupEnv(run_dir, config.resolve(), ns, group)
    stopper = _Stop()
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    print(
        f"starting group {group!r} under supervisord (config {config}, namespace {ns!r}, "
        f"run dir {run_dir}); Ctrl-C stops"
    )
    login = _dashboard_login(config)  # before start: the group inherits this environment
    start(env)
    if login:
        print(login, flush=True)
    view = _PipelineView(env) if group.startswith("pipeline") else None
    t0 = time.monotonic()
    last: dict[str, float] = {}
    prev = t0
    rc = 0
    was_up = False  # once the group has been up, problems are shown as they are
    try:
        while not stopper.reason:
            now = time.monotonic()
            if duration_s and now - t0 >= duration_s:
                stopper.reason = f"DURATION={duration_s:g}s"
                break
            rows = {r.name: r for r in collect(run_dir)}
            if (bad := _problem(rows)) is not None and now - t0 > 10:
                print(f"demo: {bad}; see {run_dir / 'logs'}", file=sys.stderr)
                rc = 1
                break
            dt_s = max(now - prev, 1e-3)
            was_up = was_up or group_up(rows) or now - t0 > STARTUP_GRACE_S
            if not was_up:
                print(starting_line(now - t0, rows), flush=True)
            elif view is None:
                print(_transport_line(now - t0, rows, last, dt_s), flush=True)
            else:
                print("\n".join(view.lines(now - t0, rows, dt_s)), flush=True)
            prev = now
            time.sleep(max(0.0, PRINT_EVERY_S - (time.monotonic() - now)))  # display pacing
    finally:
        with contextlib.suppress(OSError):  # a closed stdout (| head) must not leave it running
            print(f"stopping ({stopper.reason or 'error'})", flush=True)
        if view is not None:
            view.close()
        stop(run_dir)
    print(f"stopped cleanly; logs in {run_dir / 'logs'}")
    for line in view.where() if view is not None else []:
        print(line)
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bitrader demo")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    ap.add_argument("--group", choices=sorted(CONFIGS), default="pipeline")
    ap.add_argument("--config", type=Path, default=None, help="default: the group's own config")
    ap.add_argument("--ns", default=None, help="shared-memory namespace (default: config stem)")
    ap.add_argument("--run-dir", type=Path, default=None, help="default: run/<namespace>")
    args = ap.parse_args(argv)
    config, ns, run_dir = resolve(args.group, args.config, args.ns, args.run_dir)
    if not config.is_file():
        print(f"bitrader demo: config not found: {config}", file=sys.stderr)
        return EXIT_CONFIG
    from procs.group.supervise import topology_group

    try:  # [group] topology: "pipeline" may run as "pipeline-colocated" (procs/_topology.py)
        group = topology_group(args.group, config)
    except ValueError as exc:
        print(f"bitrader demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run(group, config, args.duration, run_dir, ns)


def resolve(
    group: str, config: Path | None, ns: str | None, run_dir: Path | None
) -> tuple[Path, str, Path]:
    """(config, namespace, run dir) from the arguments: ns defaults to the config's stem."""
    cfg = config or CONFIGS[group]
    name = ns or cfg.stem
    return cfg, name, (run_dir or RUN_ROOT / name).resolve()


if __name__ == "__main__":
    sys.exit(main())
