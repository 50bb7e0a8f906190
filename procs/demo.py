"""``make demo``: start a group under supervisord, show a live summary, stop cleanly.

The transport group (producer → ring → consumer) is the demo until the trading pipeline is
complete; ``--group pipeline`` runs the whole system against simex.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Final

from procs.health import ProcHealth, collect
from procs.supervise import ROOT, GroupEnv, is_up, start, stop

RUN_DIR: Final = ROOT / "run" / "demo"
CONFIGS: Final = {
    "transport": ROOT / "configs" / "transport.toml",
    "pipeline": ROOT / "configs" / "demo.toml",
}
PRINT_EVERY_S: Final = 1.0
FAILED_STATES: Final = frozenset({"FATAL", "BACKOFF", "EXITED"})


class _Stop:
    def __init__(self) -> None:
        self.reason = ""

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.reason = signal.Signals(signum).name


def _transport_line(
    elapsed_s: float, rows: dict[str, ProcHealth], last: dict[str, float], dt_s: float
) -> str:
    prod, cons = rows.get("producer"), rows.get("consumer")
    if prod is None or cons is None or "received_total" not in cons.counters:
        states = " ".join(f"{n}={r.state}" for n, r in rows.items())
        return f"{elapsed_s:5.0f}s  starting: {states}"
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


def _problem(rows: dict[str, ProcHealth]) -> str | None:
    for name, r in rows.items():
        if r.state in FAILED_STATES:
            return f"{name} is {r.state}"
    return None


def run(group: str, config: Path, duration_s: float, run_dir: Path) -> int:
    if is_up(run_dir):
        print(f"stopping the group left running in {run_dir}")
        stop(run_dir)
    env = GroupEnv(run_dir, config.resolve(), "demo", group)
    stopper = _Stop()
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    print(f"starting group {group!r} under supervisord (run dir {run_dir}); Ctrl-C stops")
    start(env)
    t0 = time.monotonic()
    last: dict[str, float] = {}
    prev = t0
    rc = 0
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
            print(_transport_line(now - t0, rows, last, max(now - prev, 1e-3)), flush=True)
            prev = now
            time.sleep(max(0.0, PRINT_EVERY_S - (time.monotonic() - now)))  # display pacing
    finally:
        print(f"stopping ({stopper.reason or 'error'})", flush=True)
        stop(run_dir)
    print(f"stopped cleanly; logs in {run_dir / 'logs'}")
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bitrader demo")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    ap.add_argument("--group", choices=sorted(CONFIGS), default="transport")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--run-dir", type=Path, default=RUN_DIR)
    args = ap.parse_args(argv)
    config = args.config or CONFIGS[args.group]
    return run(args.group, config, args.duration, args.run_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
