"""``bitrader health``: one row per process of the running group; non-zero exit when unhealthy,
with a distinct code per cause (``EXIT_*``, docs/operations.md).

Reads supervisord's process table, each process's control socket (``health`` request) and the
heartbeats on each process's PUB socket. Writes nothing. Owns nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from ipc.endpoints import expand
from ipc.messages import (
    ENCODER,
    PUB_DECODER,
    RESPONSE_DECODER,
    ControlRequest,
    DecodeError,
    Heartbeat,
    decode,
)
from ipc.sockets import connect_sub, request
from procs._config import read_toml
from procs.group.supervise import GroupEnv, is_up, process_info

EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1  # any other problem (not RUNNING, no heartbeat, stale data, ...)
EXIT_NOT_UP: Final = 3  # no group runs in the run dir
EXIT_CONTROL_DEAD: Final = 10  # a RUNNING process does not answer on its control socket
EXIT_HALTED: Final = 11  # execution: breaker HALTED (cancels only)
EXIT_RECONCILING: Final = 12  # execution: not reconciled past the deadline (or stuck)
EXIT_KILLED: Final = 13  # execution: kill switch on
EXIT_REDUCING: Final = 14  # execution: breaker REDUCING (reduce-only orders)
# when several apply, the most urgent (the lowest of 10-14) is the exit code
_TRADING_EXIT: Final = {"halted": EXIT_HALTED, "killed": EXIT_KILLED, "reducing": EXIT_REDUCING}
RECONCILE_DEADLINE_S: Final = 30.0

HEALTH_TIMEOUT_S: Final = 1.0
HEARTBEAT_WAIT_S: Final = 1.5  # a 1 s heartbeat always shows up within this
STALE_HEARTBEAT_S: Final = 3.0


@dataclass
class ProcHealth:
    """What ``bitrader health`` knows about one program."""

    name: str
    state: str  # supervisord's state name
    proc_state: str = "-"  # the process's own: running/stopping, execution's trading state
    pid: int | None = None
    cores: list[int] = field(default_factory=list)
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    heartbeat_age_s: float | None = None
    ring_lag_records: int = 0
    ring_dropped_total: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    last_error: str = ""
    items_total: int = 0  # records the stage loop handled (0 for event-driven processes)
    sched: str = ""  # the stage thread's scheduling class ("fifo:47", "batch nice 10")
    sched_wanted: str = ""  # what its runtime config asks for
    counters: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    causes: list[int] = field(default_factory=list)  # EXIT_* codes of the problems

    @property
    def healthy(self) -> bool:
        return not self.problems

    def problem(self, text: str, code: int = EXIT_UNHEALTHY) -> None:
        self.problems.append(text)
        self.causes.append(code)


def _endpoints(env: GroupEnv, proc: str) -> tuple[str, str] | None:
    table = read_toml(env.config).get(proc, {}).get("runtime", {})
    if "control_endpoint" not in table:
        return None
    ctl = expand(table["control_endpoint"], run_dir=env.run_dir, ns=env.ns)
    pub = expand(table["pub_endpoint"], run_dir=env.run_dir, ns=env.ns)
    return ctl, pub


def query_health(control_endpoint: str, timeout_s: float = HEALTH_TIMEOUT_S) -> dict[str, Any]:
    """Ask one process for its health; raise TimeoutError when it does not answer in time."""
    body = request(control_endpoint, ENCODER.encode(ControlRequest(cmd="health")), timeout_s)
    if body is None:
        raise TimeoutError(f"no answer from {control_endpoint} within {timeout_s}s")
    resp = decode(RESPONSE_DECODER, body, b"ctl")
    if not resp.ok:
        raise RuntimeError(resp.error)
    return dict(resp.data)


def heartbeats(pub_endpoints: list[str], want: set[str], wait_s: float) -> dict[str, int]:
    """Collect the latest heartbeat stamp (ns) per process, waiting at most ``wait_s``."""
    seen: dict[str, int] = {}
    if not pub_endpoints:
        return seen
    sub = connect_sub(pub_endpoints, [b"hb."])
    try:
        deadline = time.monotonic() + wait_s
        while want - seen.keys() and (left := deadline - time.monotonic()) > 0:
            msg = sub.recv(left)
            if msg is None:
                break
            try:
                hb = decode(PUB_DECODER, msg[1], msg[0])
            except DecodeError:
                continue
            if isinstance(hb, Heartbeat):
                seen[hb.proc] = hb.ts_ns
    finally:
        sub.close()
    return seen


def _fill(row: ProcHealth, data: dict[str, Any], reconcile_deadline_s: float) -> None:
    row.cores = list(data.get("affinity", []))
    row.cpu_percent = data.get("cpu_percent")
    row.rss_bytes = data.get("rss_bytes")
    row.last_error = str(data.get("last_error", ""))
    row.items_total = int(data.get("items_total", 0))
    row.sched = str(data.get("sched", ""))
    row.sched_wanted = str(data.get("sched_wanted", ""))
    if data.get("sched_error"):  # running, but not in the class configured: say so, not fatal
        row.last_error = (
            row.last_error or f"sched {row.sched_wanted} refused: {data['sched_error']}"
        )
    counters = data.get("counters", {})
    row.counters = dict(counters)
    # a process with several rings may report per-ring figures and their total: prefer the total
    has_lag, has_drop = "ring_lag_records" in counters, "ring_dropped_total" in counters
    for key, value in counters.items():
        if not isinstance(value, int | float):
            continue
        if key.endswith("lag_records") and (key == "ring_lag_records" or not has_lag):
            row.ring_lag_records += int(value)
        elif "dropped" in key and (key == "ring_dropped_total" or not has_drop):
            row.ring_dropped_total += int(value)
        elif key.endswith(("per_s", "_rate")):
            row.rates[key] = float(value)
        if key in ("stale", "stale_symbols") and value:
            row.problem(f"stale market data ({key}={value})")
    row.proc_state = str(data.get("state", "-"))
    if row.proc_state != "running":
        row.problem(f"process state {row.proc_state}")
    trading = counters.get("state")
    if isinstance(trading, str):  # execution: its trading state is the process's state
        row.proc_state = trading
        _judge_trading(row, trading, counters, reconcile_deadline_s)


def _judge_trading(
    row: ProcHealth, state: str, counters: dict[str, Any], deadline_s: float
) -> None:
    if state in _TRADING_EXIT:
        why = {"halted": f"breaker {counters.get('breaker')}", "killed": "kill switch on",
               "reducing": f"breaker {counters.get('breaker')}"}[state]  # fmt: skip
        row.problem(f"not trading: {state} ({why})", _TRADING_EXIT[state])
    elif state == "reconciling":
        since = float(counters.get("reconciling_s", 0.0))
        reason = str(counters.get("reconcile_stuck_reason", ""))
        if reason or since > deadline_s:
            row.problem(
                f"not trading: reconciling for {since:.0f}s (deadline {deadline_s:.0f}s)"
                + (f": {reason}" if reason else ""),
                EXIT_RECONCILING,
            )


def collect(run_dir: Path, reconcile_deadline_s: float = RECONCILE_DEADLINE_S) -> list[ProcHealth]:
    """Return the health of every program in the group running in ``run_dir``."""
    env = GroupEnv.load(run_dir)
    rows: list[ProcHealth] = []
    pubs: dict[str, str] = {}
    from procs._topology import HOSTED

    # a program hosting other programs' stages (hotpath) is shown as those stages, each with
    # its own control socket and heartbeat; they share its supervisord state and pid
    programs = [
        (name, info)
        for info in process_info(run_dir)
        if info["group"] == env.group
        for name in HOSTED.get(info["name"], (info["name"],))
    ]
    for name, info in programs:
        row = ProcHealth(name=name, state=info["statename"], pid=info["pid"] or None)
        rows.append(row)
        if row.state != "RUNNING":
            row.problem(f"supervisord state {row.state}")
            continue
        eps = _endpoints(env, row.name)
        if eps is None:
            # a program outside the runtime (simex): supervisord's state is all there is
            row.last_error = "no control socket: supervisord state only"
            continue
        pubs[row.name] = eps[1]
        try:
            _fill(row, query_health(eps[0]), reconcile_deadline_s)
        except TimeoutError as exc:
            row.proc_state = "no answer"
            row.problem(f"control plane dead: {exc}", EXIT_CONTROL_DEAD)
        except (RuntimeError, DecodeError) as exc:
            row.problem(f"health request failed: {exc}", EXIT_CONTROL_DEAD)
    stamps = heartbeats(list(pubs.values()), set(pubs), HEARTBEAT_WAIT_S)
    now = time.time_ns()
    for row in rows:
        if row.name not in pubs:
            continue
        if row.name in stamps:
            row.heartbeat_age_s = (now - stamps[row.name]) / 1e9
        if row.heartbeat_age_s is None or row.heartbeat_age_s > STALE_HEARTBEAT_S:
            row.problem("no recent heartbeat")
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _sched_cell(r: ProcHealth) -> str:
    """The class the stage runs in; ``!`` marks one that differs from its config's."""
    if not r.sched:
        return "-"
    return r.sched if r.sched == r.sched_wanted or not r.sched_wanted else f"{r.sched}!"


def table(rows: list[ProcHealth]) -> str:
    head = (
        f"{'process':<11} {'super':<9} {'state':<11} {'pid':>7} {'core':>5} {'sched':<14} "
        f"{'cpu%':>6} {'rss MB':>7} {'hb age':>7} {'lag':>6} {'drops':>7}  rates / last error / "
        "problems"
    )
    out = [head]
    for r in rows:
        rss = None if r.rss_bytes is None else r.rss_bytes / 1e6
        rates = " ".join(f"{k}={v:.0f}" for k, v in sorted(r.rates.items())[:3])
        tail = "; ".join(x for x in (rates, r.last_error, *r.problems) if x)
        out.append(
            f"{r.name:<11} {r.state:<9} {r.proc_state:<11} {r.pid or '-':>7} "
            f"{','.join(map(str, r.cores)) or '-':>5} {_sched_cell(r):<14} "
            f"{_fmt(r.cpu_percent, '.1f'):>6} "
            f"{_fmt(rss, '.1f'):>7} {_fmt(r.heartbeat_age_s, '.2f'):>7} "
            f"{r.ring_lag_records:>6} {r.ring_dropped_total:>7}  {tail}"
        )
    return "\n".join(out)


def exit_code(rows: list[ProcHealth]) -> int:
    """0 when every row is healthy; else the most urgent cause (10-14), else 1."""
    if rows and all(r.healthy for r in rows):
        return EXIT_HEALTHY
    specific = [c for r in rows for c in r.causes if c != EXIT_UNHEALTHY]
    return min(specific) if specific else EXIT_UNHEALTHY


def main(argv: list[str] | None = None) -> int:
    """``bitrader health [--run-dir DIR] [--json] [--reconcile-deadline-s S]``.

    Exit 0 healthy; 10 a control plane dead; 11 execution halted; 12 execution reconciling past
    the deadline (or stuck); 13 kill switch on; 14 execution reducing; 1 any other problem; 3
    no group running. When several apply, the lowest of 10-14 wins.
    """
    ap = argparse.ArgumentParser(prog="bitrader health")
    ap.add_argument("--run-dir", type=Path, default=Path("run/demo"))
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument(
        "--reconcile-deadline-s",
        type=float,
        default=RECONCILE_DEADLINE_S,
        help="execution reconciling longer than this is a problem (exit 12)",
    )
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if not is_up(run_dir):
        print(f"bitrader health: no group is running in {run_dir}", file=sys.stderr)
        return EXIT_NOT_UP
    rows = collect(run_dir, args.reconcile_deadline_s)
    if args.json:
        print(json.dumps([{**asdict(r), "healthy": r.healthy} for r in rows], indent=2))
    else:
        print(table(rows))
    return exit_code(rows)
