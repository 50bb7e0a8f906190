"""The tick_to_order benchmark's pipeline: configs/demo.toml adapted, run under supervisord.

``bench_config`` rewrites the demo config (free ports, the simex generator rate, a strategy that
requotes on every tick move, risk limits that let hundreds of orders through); ``PipelineRun``
starts the group, collects execution's order events (SUB ``ord.``) and scrapes ingest's
``/metrics`` for the WS messages it received, then stops the group.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from ipc.orders import ORDER_EVENT_DECODER, OrderEvent
from ipc.sockets import connect_sub
from procs.group.supervise import ROOT, GroupEnv, process_info, rpc, start, stop
from shm.records import BOOK_V1, SIG_V1
from shm.ring import attach_reader
from tests.conftest import free_port

DEMO = ROOT / "configs" / "demo.toml"
PROCS = ("simex", "ingest", "features", "inference", "execution")
# a strategy that trades often whatever the market does: any score sign change flips the
# target; vol-scaled sizing on a fast (1 s half-life) vol estimate moves the target by a qty step
# on most ticks, so a resting quote is resized (cancel, then place) or a new one placed; a quote
# is also replaced as soon as the best moves one tick. Risk lets every such order through.
STRATEGY = """enter_score = 0.0
exit_score = 0.0
take_score = 1.0
requote_ticks = 1
sizing = "vol_scaled"
vol_target_per_sqrt_s = 3e-4
vol_halflife_s = 1.0
max_position_notional_usdt = "5000"
"""
RISK = """
[execution.risk]
max_orders_per_window = 100000
max_order_notional_usdt = "100000"
order_rate_window_s = 1.0
duplicate_window_s = 0.0
max_open_orders = 50
max_open_orders_per_symbol = 10
daily_loss_limit_usdt = "1000000"
max_drawdown_usdt = "1000000"
max_position_notional_usdt = "100000"
max_total_notional_usdt = "100000"

[execution.breaker]
reducing_loss_usdt = "1000000"
halt_loss_usdt = "1000000"
latency_spike_s = 5.0
"""
# the groups this bench starts (supervisor.d include): simex first, alone, and the rest once its
# WS port accepts connections (an ingest that starts first flags its books stale, which trips
# execution's breaker to REDUCING for good); capture joins the rest in the loaded variant
SIMEX_GROUP, GROUP = "ttosx", "tto"
FAILED_LOGS = ROOT / ".bench" / "tick_to_order-failed-logs"

# where the group's programs run (issue 12 item 5): "demo" keeps configs/demo.toml's CPU sets
# (two cores: ingest and inference on 0, features, execution and capture on 1, simex unpinned);
# "per_stage" gives simex, each hot stage and capture a core of its own, and leaves the two
# lowest cores to supervisord, this bench, its baselines and the OS. Unset: per_stage where this
# process may use PER_STAGE_MIN_CORES cores or more, else demo
LAYOUT_ENV = "BITRADER_BENCH_LAYOUT"
LAYOUTS = ("demo", "per_stage")
PER_STAGE = ("simex", "ingest", "features", "inference", "execution", "capture")
PER_STAGE_MIN_CORES = 2 + len(PER_STAGE)


@dataclass(frozen=True)
class Ports:
    rest: int
    ws: int
    control: int
    metrics: dict[str, int]

    @classmethod
    def free(cls) -> Ports:
        names = (*PROCS, "capture")
        return cls(free_port(), free_port(), free_port(), {n: free_port() for n in names})


def layout(env: dict[str, str] | None = None, cores: Sequence[int] | None = None) -> str:
    """The CPU layout of the group (``LAYOUT_ENV``; see ``LAYOUTS``): the variable's value, else
    per_stage where ``cores`` (this process's allowed cores) are PER_STAGE_MIN_CORES or more.

    Raises ``ValueError`` for a value not in ``LAYOUTS``, or per_stage on too few cores."""
    env = os.environ if env is None else env
    cores = sorted(os.sched_getaffinity(0)) if cores is None else sorted(cores)
    chosen = env.get(LAYOUT_ENV, "")
    if not chosen:
        return "per_stage" if len(cores) >= PER_STAGE_MIN_CORES else "demo"
    if chosen not in LAYOUTS:
        raise ValueError(f"{LAYOUT_ENV}={chosen!r}: expected one of {', '.join(LAYOUTS)}")
    if chosen == "per_stage" and len(cores) < PER_STAGE_MIN_CORES:
        raise ValueError(
            f"{LAYOUT_ENV}=per_stage needs {PER_STAGE_MIN_CORES} cores, this process may use"
            f" {len(cores)}: {cores}"
        )
    return chosen


def per_stage_cpus(cores: Sequence[int]) -> dict[str, int]:
    """Each of ``PER_STAGE`` its own core of ``cores``, above the two lowest (kept for
    supervisord, the bench and its baselines, the OS). Raises ``ValueError`` on too few."""
    cores = sorted(cores)
    if len(cores) < PER_STAGE_MIN_CORES:
        raise ValueError(f"a core per stage needs {PER_STAGE_MIN_CORES} cores, got {cores}")
    return dict(zip(PER_STAGE, cores[2:], strict=False))


def bench_config(
    events_per_s: float,
    ports: Ports,
    journal_dir: Path,
    *,
    sched: bool = True,
    pin: bool = True,
    cpus: dict[str, int] | None = None,
) -> str:
    """The demo config with free ports, the given generator rate, a busy strategy and the
    execution journal in ``journal_dir``; ``sched=False`` drops its scheduling classes,
    ``pin=False`` its CPU sets, ``cpus`` (``per_stage_cpus``) replaces them: a program's one
    core (procs.hotpath takes execution's)."""
    text = DEMO.read_text()
    if not sched:
        text = re.sub(r"(?m)^(sched_policy|sched_priority|nice) = .*\n", "", text)
    if not pin or cpus:
        text = re.sub(r"(?m)^cpus = .*\n", "", text)
    for name, core in (cpus or {}).items():
        head = f"[{name}.runtime]\n"
        if head not in text:
            raise ValueError(f"{DEMO}: no [{name}.runtime] to pin to core {core}")
        text = text.replace(head, f"{head}cpus = [{core}]\n")
    text = text.replace('"{run_dir}/execution.sqlite"', f'"{journal_dir}/execution.sqlite"')
    text = text.replace("18080", str(ports.rest)).replace("18081", str(ports.ws))
    text = text.replace("18082", str(ports.control))
    lines, section = [], ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]").split(".")[0]
        if line.startswith("metrics_port = "):
            # a section the bench does not start (the dashboard) still needs a port of its own
            line = f"metrics_port = {ports.metrics.setdefault(section, free_port())}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    text = re.sub(r"events_per_s = [0-9.]+", f"events_per_s = {events_per_s}\ntick_s = 0.001", text)
    text = text.replace("restore = false", 'restore = false\nlog_level = "WARNING"')
    text = text.replace(
        'target_notional_usdt = "100"', f'target_notional_usdt = "1000"\n{STRATEGY}'
    )
    return text + RISK


def events_for_rate(msgs_per_s: float, sim_s: float = 5.0) -> float:
    """simex ``events_per_s`` (generator actions per symbol) that offers ``msgs_per_s`` WS
    messages to ingest: found on the offline generator (``bench_simex.expected_rate``: one
    depth push per action that changes the top 15 levels, one trade push per print), whose
    pushes per action fall as the rate rises (a fixed 0.41 actions per message gave 9.0 k
    messages/s for a 10 k target). Secant steps until within 1 %."""
    from tests.bench.bench_simex import expected_rate

    lo, f_lo = 0.0, 0.0
    hi = msgs_per_s * 0.42
    f_hi = expected_rate(hi, sim_s)
    for _ in range(6):
        if abs(f_hi - msgs_per_s) <= 0.01 * msgs_per_s or f_hi == f_lo:
            break
        nxt = hi + (msgs_per_s - f_hi) * (hi - lo) / (f_hi - f_lo)
        lo, f_lo = hi, f_hi
        hi, f_hi = nxt, expected_rate(nxt, sim_s)
    return round(hi, 1)


def scrape(port: int, timeout_s: float = 10.0) -> str:
    """One GET of a process's /metrics (at 10 k msg/s on the 2-core VM, procs.hotpath's
    metrics thread, waiting for the GIL beside a thread ~90 % busy, took more than 2 s twice
    in a row at 23:33 on 2026-12-06: the window failed, not the pipeline)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
        body: bytes = r.read()
    return body.decode()


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Window:
    """What one measurement window of the running pipeline saw."""

    seconds: float
    ws_messages: float  # ingest's bitrader_md_messages_total over the window
    orders: list[OrderEvent] = field(default_factory=list)
    signals: float = 0.0  # SIG_V1 records execution read over the window
    sig_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # recv → sig
    sig_dropped: int = 0  # sig records the bench's own ring reader lost (it polls)
    # every signal's stamps and every book's (tests.bench._tick_hops joins them per hop)
    sig_sid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sig_recv: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sig_feat: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sig_sig: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    book_sid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    book_recv: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    book_pub: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    book_dropped: int = 0
    cpu_percent: dict[str, float] = field(default_factory=dict)  # per program, over the window
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # inference over the window: batches scored, and those scored by the fallback for latency
    batches: float = 0.0
    fallback_latency: float = 0.0
    fallback_all: float = 0.0
    sched: dict[str, str] = field(default_factory=dict)  # each program's main-thread class

    @property
    def ws_rate(self) -> float:
        return self.ws_messages / self.seconds

    def tick_to_order_ns(self) -> np.ndarray:
        sent = [o for o in self.orders if o.status == "SENT" and o.ts_recv_ns]
        return np.array([o.ts_order_ns - o.ts_recv_ns for o in sent], dtype=np.int64)

    def stages_ns(self) -> dict[str, np.ndarray]:
        sent = [o for o in self.orders if o.status == "SENT" and o.ts_recv_ns]

        def arr(f: Callable[[OrderEvent], int]) -> np.ndarray:
            return np.array([f(o) for o in sent], dtype=np.int64)

        return {
            "recv_to_sig": arr(lambda o: o.ts_sig_ns - o.ts_recv_ns),
            "sig_to_order": arr(lambda o: o.ts_order_ns - o.ts_sig_ns),
        }

    @classmethod
    def pooled(cls, wins: list[Window]) -> Window:
        """Several windows as one: their samples together, counts summed, CPU % and load
        averaged over the windows (the stamps of different windows never meet in a join)."""
        if len(wins) == 1:
            return wins[0]

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(w, name) for w in wins])

        arrays = (
            *("sig_ns", "sig_sid", "sig_recv", "sig_feat", "sig_sig"),
            *("book_sid", "book_recv", "book_pub"),
        )
        names = set().union(*(w.cpu_percent for w in wins))
        load = np.mean([w.loadavg for w in wins], axis=0).round(2).tolist()
        return cls(
            seconds=sum(w.seconds for w in wins),
            ws_messages=sum(w.ws_messages for w in wins),
            orders=[o for w in wins for o in w.orders],
            signals=sum(w.signals for w in wins),
            sig_dropped=sum(w.sig_dropped for w in wins),
            book_dropped=sum(w.book_dropped for w in wins),
            cpu_percent={
                n: round(float(np.mean([w.cpu_percent.get(n, 0) for w in wins]))) for n in names
            },
            loadavg=(load[0], load[1], load[2]),
            batches=sum(w.batches for w in wins),
            fallback_latency=sum(w.fallback_latency for w in wins),
            fallback_all=sum(w.fallback_all for w in wins),
            sched=wins[0].sched,
            **{a: cat(a) for a in arrays},
        )


class PipelineRun:
    """The group under supervisord in ``run_dir``; ``with`` stops it whatever happens."""

    def __init__(
        self,
        run_dir: Path,
        ns: str,
        events_per_s: float,
        *,
        journal_dir: Path,
        capture: bool = False,
        sched: bool = True,
        topology: str = "split",
        pin: bool = True,
        cpus: dict[str, int] | None = None,
    ) -> None:
        self.run_dir = run_dir
        if cpus is None and pin and layout() == "per_stage":
            cpus = per_stage_cpus(sorted(os.sched_getaffinity(0)))
        self.cpus = cpus or {}
        self.ports = Ports.free()
        self.capture = capture
        self.topology = topology
        cfg = run_dir / "tick_to_order.toml"
        run_dir.mkdir(parents=True, exist_ok=True)
        text = bench_config(events_per_s, self.ports, journal_dir, sched=sched, pin=pin, cpus=cpus)
        # [group] topology: what bitrader up would start (this bench names the programs itself)
        cfg.write_text(re.sub(r'(?m)^topology = ".*"$', f'topology = "{topology}"', text))
        # colocated: procs.hotpath runs ingest, features, inference, execution (procs/_topology.py)
        rest = ("hotpath",) if topology == "colocated" else PROCS[1:]
        programs = ",".join((*rest, "capture") if capture else rest)
        (run_dir / "supervisor.d").mkdir(exist_ok=True)
        (run_dir / "supervisor.d" / "tto.conf").write_text(
            f"[group:{SIMEX_GROUP}]\nprograms=simex\n[group:{GROUP}]\nprograms={programs}\n"
        )
        self.env = GroupEnv(run_dir, cfg, ns, SIMEX_GROUP)

    def __enter__(self) -> PipelineRun:
        start(self.env)
        try:
            self._wait_port(self.ports.ws, 30.0)
            with rpc(self.run_dir) as proxy:
                proxy.supervisor.startProcessGroup(GROUP, False)
            self._wait_ready(60.0)
        except BaseException:
            stop(self.run_dir)
            shutil.rmtree(FAILED_LOGS, ignore_errors=True)
            shutil.copytree(self.run_dir / "logs", FAILED_LOGS)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.run_dir)

    def metrics_ports(self) -> list[int]:
        names = (*PROCS, "capture") if self.capture else PROCS
        return [self.ports.metrics[n] for n in names]

    def _ingest_messages(self) -> float:
        return metric_sum(scrape(self.ports.metrics["ingest"]), "bitrader_md_messages_total")

    def _exec_metric(self, name: str) -> float:
        return metric_sum(scrape(self.ports.metrics["execution"]), name)

    def _inference(self) -> tuple[float, float, float]:
        """Inference's batches, latency fallbacks and all fallbacks so far."""
        text = scrape(self.ports.metrics["inference"])
        late = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("bitrader_inference_fallback_batches_total{")
            and 'reason="latency"' in line
        )
        return (
            metric_sum(text, "bitrader_inference_batches_total"),
            late,
            metric_sum(text, "bitrader_inference_fallback_batches_total"),
        )

    def _sched(self) -> dict[str, str]:
        names = {os.SCHED_OTHER: "other", os.SCHED_BATCH: "batch", os.SCHED_IDLE: "idle",
                 os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}  # fmt: skip
        out = {}
        for info in process_info(self.run_dir):
            pid = info["pid"]
            if not pid:
                continue
            try:
                pol = names.get(os.sched_getscheduler(pid), "?")
                prio, nice = os.sched_getparam(pid).sched_priority, os.getpriority(0, pid)
            except OSError:
                continue
            out[info["name"]] = f"{pol}:{prio}" if prio else f"{pol}/{nice}"
        return out

    @staticmethod
    def _wait_port(port: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simex WS port {port} closed after {timeout_s}s") from None
                time.sleep(0.1)  # pacing between connection attempts

    def _wait_ready(self, timeout_s: float) -> None:
        """Until every program is RUNNING and execution has sent an order (it reconciled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {p["name"]: p["statename"] for p in process_info(self.run_dir)}
            bad = [n for n, s in states.items() if s in ("FATAL", "BACKOFF", "EXITED")]
            if bad:
                raise RuntimeError(f"pipeline programs failed: {bad}; logs kept in {FAILED_LOGS}")
            try:
                if self._exec_metric("bitrader_orders_sent_total") > 0:
                    return
            except OSError:
                pass  # /metrics not up yet
            time.sleep(0.2)  # pacing between polls
        raise TimeoutError(
            f"pipeline sent no order within {timeout_s}s; logs kept in {FAILED_LOGS}"
        )

    def measure(self, seconds: float, *, max_orders: int = 0) -> Window:
        """Collect order events for ``seconds`` (or until ``max_orders`` SENT events)."""
        sub = connect_sub(f"ipc://{self.run_dir}/execution.pub", [b"ord."])
        ring = attach_reader(f"{self.env.ns}.inference.sig", SIG_V1, 5.0)
        books = attach_reader(f"{self.env.ns}.ingest.md.book", BOOK_V1, 5.0)
        sig_parts: list[np.ndarray] = []
        book_parts: list[np.ndarray] = []
        try:
            time.sleep(0.3)  # let the subscription reach the publisher (PUB/SUB join)
            ring.poll(1 << 20)  # skip what came before the window
            books.poll(1 << 20)
            bd0 = books.dropped_total
            cpu0 = self._cpu_s()
            d0 = ring.dropped_total
            m0 = self._ingest_messages()
            s0 = self._exec_metric("bitrader_signals_read_total")
            i0 = self._inference()
            t0 = time.monotonic()
            orders: list[OrderEvent] = []
            n_sent = 0
            while time.monotonic() - t0 < seconds and not (max_orders and n_sent >= max_orders):
                sigs = ring.poll(1 << 16)
                if len(sigs):
                    sig_parts.append(sigs[["symbol_id", "ts_recv_ns", "ts_feat_ns", "ts_sig_ns"]])
                bks = books.poll(1 << 16)
                if len(bks):
                    book_parts.append(bks[["symbol_id", "ts_recv_ns", "ts_pub_ns"]])
                got = sub.recv(0.02)
                if got is None:
                    continue
                ev = ORDER_EVENT_DECODER.decode(got[1])
                if isinstance(ev, OrderEvent):
                    orders.append(ev)
                    n_sent += ev.status == "SENT"
            m1 = self._ingest_messages()
            s1 = self._exec_metric("bitrader_signals_read_total")
            i1 = self._inference()
            t1 = time.monotonic()
            dropped = ring.dropped_total - d0
            book_dropped = books.dropped_total - bd0
            cpu1 = self._cpu_s()
        finally:
            sub.close()
            ring.close()
            books.close()
        sg = _cat(sig_parts)
        bk = _cat(book_parts)
        sig_ns = sg["ts_sig_ns"] - sg["ts_recv_ns"] if sg is not None else np.zeros(0, np.int64)
        return Window(
            seconds=t1 - t0,
            ws_messages=m1 - m0,
            orders=orders,
            signals=s1 - s0,
            loadavg=_loadavg(),
            sig_ns=sig_ns,
            sig_dropped=dropped,
            **_stamp_arrays(sg, bk),
            book_dropped=book_dropped,
            batches=i1[0] - i0[0],
            fallback_latency=i1[1] - i0[1],
            fallback_all=i1[2] - i0[2],
            sched=self._sched(),
            cpu_percent={
                n: round(100 * (cpu1[n] - cpu0[n]) / (t1 - t0)) for n in cpu1 if n in cpu0
            },
        )

    def _cpu_s(self) -> dict[str, float]:
        """User + system CPU seconds of each program (its process tree) so far."""
        out = {}
        for info in process_info(self.run_dir):
            if not info["pid"]:
                continue
            try:
                proc = psutil.Process(info["pid"])
                procs = [proc, *proc.children(recursive=True)]
                out[info["name"]] = sum(sum(p.cpu_times()[:2]) for p in procs)
            except psutil.Error:
                continue
        return out


def _cat(parts: list[np.ndarray]) -> np.ndarray | None:
    return np.concatenate([p.copy() for p in parts]) if parts else None


def _stamp_arrays(sg: np.ndarray | None, bk: np.ndarray | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if sg is not None:
        out["sig_sid"] = sg["symbol_id"].astype(np.int64)
        out["sig_recv"] = sg["ts_recv_ns"].astype(np.int64)
        out["sig_feat"] = sg["ts_feat_ns"].astype(np.int64)
        out["sig_sig"] = sg["ts_sig_ns"].astype(np.int64)
    if bk is not None:
        out["book_sid"] = bk["symbol_id"].astype(np.int64)
        out["book_recv"] = bk["ts_recv_ns"].astype(np.int64)
        out["book_pub"] = bk["ts_pub_ns"].astype(np.int64)
    return out


def _loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return float(a), float(b), float(c)


__all__ = [
    "PipelineRun",
    "Ports",
    "Window",
    "bench_config",
    "events_for_rate",
    "metric_sum",
    "scrape",
]
