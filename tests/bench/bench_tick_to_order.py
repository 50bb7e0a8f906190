"""tick_to_order: ingest's WS frame receipt (``ts_recv_ns``) to the order leaving execution
(``ts_order_ns``), for the whole group under supervisord against simex (paper mode).

Per md rate (~1,000 and ~10,000 WS messages/s into ingest; the achieved rate is measured from
ingest's ``bitrader_md_messages_total`` and reported): start the group (configs/demo.toml with
free ports, a fresh namespace and run dir, a strategy that requotes on every tick), record a few
thousand real simex frames with their arrival offsets, then collect every order's stamps from
execution's ``ord.`` events (status SENT) and every signal's ``ts_sig - ts_recv`` from the sig
ring. Baselines on the recorded frames, in the same run:
  (a) single_process_chain: the stages' pure functions chained in one process (no hops);
  (b) asyncio_websockets_json: one asyncio process (``websockets`` client + ``json`` + the same
      compute) fed by a local ``websockets`` server replaying the frames at their recorded pace;
  3x_crosscore_wakeup: three times the p50 of a bare pipe ping-pong between cores 0 and 1.
The split topology runs one window (it records the frames); the colocated topology and (b) run
in ``Plan.rounds`` rounds of one window each, alternated ABBA, and their rows pool the rounds'
samples, with each round's own ratio as a row too (``alternate``).
Per hop (``tick_to_order_hops``, tests/bench/_tick_hops.py): ingest, features, inference and
execution's share of each tick, from the stamps the records carry.
Full mode adds a loaded variant at ~1,000/s (capture writing, /metrics scrapes every 100 ms, a
GC-heavy task) for the pipeline and for (b). Method and figures: docs/bench-tick-to-order.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.bench._common import Result, percentiles_us
from tests.bench._tick_asyncio import save_frames
from tests.bench._tick_chain import JOURNAL_FS, chain_latencies, execution_config, record_frames
from tests.bench._tick_group import (
    PER_STAGE_MIN_CORES,
    PipelineRun,
    Window,
    events_for_rate,
    layout,
    per_stage_cpus,
)
from tests.bench._tick_hops import hop_rows, summary
from tests.conftest import free_port

NAME = "tick_to_order"
A, B, W = "single_process_chain", "asyncio_websockets_json", "3x_crosscore_wakeup"
BS = "asyncio_websockets_json_from_send"  # (b) timed from the server's send: its backlog too
# simex's generator is asked for this much more than the target (events_for_rate calibrates it
# on the offline generator, within ~1-3 %), so a pipeline that keeps up receives the target
OFFER = 1.02
# the topologies measured (procs/_topology.py); rows of "split" keep their historical names, the
# others carry a suffix
TOPOLOGIES = ("split", "colocated")
GOAL_P50 = "pipeline p50 - (a) p50 <= 1.2 x 3 bare cross-core wake-ups"
GOAL_P99 = "pipeline p99 <= 0.5 x (b) p99 under the same background load"


@dataclass(frozen=True)
class Plan:
    rates: tuple[tuple[str, float], ...]
    pipeline_s: float  # the split topology's window (it records the frames as well)
    # seconds of the feed recorded for the baselines, at every rate: (b) replays them in a
    # loop, and each lap starts the market over (a 4,000-push recording was 0.4 s at 10 k/s)
    frames_s: float
    b_s: float  # one window of (b)
    wake_n: int
    load: bool
    passes: int  # baseline (a) goes over the recorded frames this many times
    # the other topologies and (b) run in this many rounds of one window each, alternated
    # (ABBA: a drift of the host's speed over the rounds falls on both sides alike), their
    # samples pooled: one window each, minutes apart, moved a ratio by ±40 % on the 2-core host
    rounds: int
    round_s: float  # one window of a topology other than split

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls((("1k", 1000.0),), 10.0, 2.0, 5.0, 5000, False, 2, 1, 10.0)
        return cls((("1k", 1000.0), ("10k", 10000.0)), 20.0, 4.0, 8.0, 20000, True, 3, 3, 10.0)


def _py(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], text=True, **kw)  # type: ignore[call-overload]


def wakeups(n: int, tmp: Path) -> np.ndarray:
    out = tmp / "wake.npy"
    subprocess.run([sys.executable, "-m", "tests.bench._tick_wake", str(n), str(out)],
                   check=True, timeout=120)  # fmt: skip
    return np.load(out)


@contextlib.contextmanager
def background(kinds: list[list[str]]) -> Iterator[list[str]]:
    """Run ``python -m tests.bench._tick_load <kind...>`` processes; yield their reports."""
    procs = [_py("-m", "tests.bench._tick_load", *k, stdout=subprocess.PIPE) for k in kinds]
    reports: list[str] = []
    try:
        yield reports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            out, _ = p.communicate(timeout=30)
            reports.append(out.strip())


def baseline_b(
    frames_path: Path, config: Path, seconds: float, tmp: Path, metrics_port: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Run the replay server and the asyncio client; (stamps [n, 5], server send stamps, rate)."""
    port = free_port()
    sent = tmp / "b_sent.npy"
    out = tmp / "b_out.npz"
    server = _py("-m", "tests.bench._tick_asyncio", "serve", str(port), str(frames_path),
                 str(sent), stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("replay server did not start")
        args = ["client", f"ws://127.0.0.1:{port}/", str(config), str(seconds), str(out)]
        if metrics_port:
            args.append(str(metrics_port))
        subprocess.run([sys.executable, "-m", "tests.bench._tick_asyncio", *args],
                       check=True, timeout=seconds + 90)  # fmt: skip
    finally:
        server.communicate(input="", timeout=30)
    d = np.load(out)
    return d["stamps"], np.load(sent), float(d["rate"][0])


def _pct(ns: np.ndarray) -> list[float]:
    return percentiles_us(ns) if len(ns) else [float("nan")] * 3


Arrays = dict[str, np.ndarray]
BRun = tuple[np.ndarray, np.ndarray, float]  # baseline_b: stamps, the server's sends, rate


def _rows_rate(
    label: str, rate: float, win: Window, a: Arrays, b: Arrays, b_rate: float, wake3_us: float
) -> list[Result]:
    tto = win.tick_to_order_ns()
    p, pa, pb = _pct(tto), _pct(a["order"]), _pct(b["order"])
    rows = [
        Result(NAME, f"md_rate_{label}", win.ws_rate, "msg/s", "target_rate", rate),
        Result(NAME, f"orders_{label}", float(len(tto)), "orders", "signals", win.signals),
        Result(NAME, f"p50_us_{label}", p[0], "us", A, pa[0]),
        Result(NAME, f"p99_us_{label}", p[1], "us", A, pa[1]),
        Result(NAME, f"p999_us_{label}", p[2], "us", A, pa[2]),
        # issue 12's goals, as on the colocated rows: the split topology is held to them too
        Result(NAME, f"p50_vs_b_{label}", p[0], "us", B, pb[0], "<= 1.0"),
        Result(NAME, f"p99_vs_b_{label}", p[1], "us", B, pb[1], "<= 1.0"),
        Result(NAME, f"p999_vs_b_{label}", p[2], "us", B, pb[2]),
        Result(NAME, f"p50_vs_bsend_{label}", p[0], "us", BS, _pct(b["from_send"])[0]),
        Result(NAME, f"p99_vs_bsend_{label}", p[1], "us", BS, _pct(b["from_send"])[1]),
        Result(NAME, f"overhead_p50_us_{label}", p[0] - pa[0], "us", W, wake3_us, "<= 1.2"),
    ]
    s, sa, sb = _pct(win.sig_ns), _pct(a["sig"]), _pct(b["sig"])
    rows += [
        Result(f"{NAME}_signal", f"p50_us_{label}", s[0], "us", A, sa[0]),
        Result(f"{NAME}_signal", f"p99_us_{label}", s[1], "us", A, sa[1]),
        Result(f"{NAME}_signal", f"p999_us_{label}", s[2], "us", A, sa[2]),
        Result(
            f"{NAME}_signal",
            f"samples_{label}",
            float(len(win.sig_ns)),
            "signals",
            "dropped",
            float(win.sig_dropped),
        ),
        Result(f"{NAME}_signal", f"p99_vs_b_{label}", s[1], "us", B, sb[1]),
    ]
    stages = win.stages_ns()
    r2s, s2o = _pct(stages["recv_to_sig"]), _pct(stages["sig_to_order"])
    rows += [  # where the pipeline's time goes, for the orders above
        Result(f"{NAME}_stages", f"recv_to_sig_p50_us_{label}", r2s[0], "us", "p99", r2s[1]),
        Result(f"{NAME}_stages", f"sig_to_order_p50_us_{label}", s2o[0], "us", "p99", s2o[1]),
    ]
    nj = _pct(a["risk"])
    rows += [
        Result(A, f"p50_us_{label}", pa[0], "us", "without_journal", nj[0]),
        Result(A, f"p99_us_{label}", pa[1], "us", "without_journal", nj[1]),
        Result(B, f"p50_us_{label}", pb[0], "us", "from_server_send", _pct(b["from_send"])[0]),
        Result(B, f"p99_us_{label}", pb[1], "us", "from_server_send", _pct(b["from_send"])[1]),
        Result(B, f"md_rate_{label}", b_rate, "msg/s", "target_rate", rate),
    ]
    return rows


def _chain(
    frames: list[bytes], cfg_text: str, journal_dir: Path, passes: int
) -> dict[str, np.ndarray]:
    journal_dir.mkdir(parents=True, exist_ok=True)
    st = chain_latencies(frames, execution_config(cfg_text, journal_dir), passes)
    placed = [s for s in st if s.ts_order_ns]
    return {
        "order": np.array([s.ts_order_ns - s.ts_recv_ns for s in placed], np.int64),
        "risk": np.array([s.ts_order_ns - s.ts_recv_ns - s.journal_ns for s in placed], np.int64),
        "sig": np.array([s.ts_sig_ns - s.ts_recv_ns for s in st], np.int64),
    }


def _b_arrays(stamps: np.ndarray, sent: np.ndarray) -> dict[str, np.ndarray]:
    placed = stamps[stamps[:, 2] > 0]
    idx = placed[:, 4]
    ok = idx < len(sent)
    return {
        "order": placed[:, 2] - placed[:, 0],
        "sig": stamps[:, 1] - stamps[:, 0],
        "from_send": placed[ok, 2] - sent[idx[ok]],
        # the two halves of each order's time, as the pipeline's rows split it (stages_ns)
        "order_recv_to_sig": placed[:, 1] - placed[:, 0],
        "order_sig_to_order": placed[:, 2] - placed[:, 1],
    }


def _say(msg: str) -> None:
    print(f"[tick_to_order] {msg}", file=sys.stderr, flush=True)


def _suffix(topology: str) -> str:
    return "" if topology == "split" else f"_{topology}"


def _rows_topology(
    label: str, rate: float, win: Window, a: Arrays, b: Arrays, wake3_us: float
) -> list[Result]:
    """A topology other than split: its tick-to-order against (a) and (b) of the same run."""
    tto = win.tick_to_order_ns()
    p, pa, pb = _pct(tto), _pct(a["order"]), _pct(b["order"])
    return [
        Result(NAME, f"md_rate_{label}", win.ws_rate, "msg/s", "target_rate", rate),
        Result(NAME, f"orders_{label}", float(len(tto)), "orders", "signals", win.signals),
        Result(NAME, f"p50_us_{label}", p[0], "us", A, pa[0]),
        Result(NAME, f"p99_us_{label}", p[1], "us", A, pa[1]),
        Result(NAME, f"p50_vs_b_{label}", p[0], "us", B, pb[0], "<= 1.0"),
        Result(NAME, f"p99_vs_b_{label}", p[1], "us", B, pb[1], "<= 1.0"),
        Result(NAME, f"p999_vs_b_{label}", p[2], "us", B, pb[2]),
        Result(
            f"{NAME}_signal",
            f"samples_{label}",
            float(len(win.sig_ns)),
            "signals",
            "dropped",
            float(win.sig_dropped),
        ),
        Result(f"{NAME}_inference", f"fallback_latency_{label}", win.fallback_latency,
               "batches", "batches", win.batches, "== 0 (the demo runs on the model)"),
        *hop_rows(label, win, wake3_us / 3),
        *_halves_vs_b(label, win, b),
    ]  # fmt: skip


def _halves_vs_b(label: str, win: Window, b: Arrays) -> list[Result]:
    """Which half of an order's time holds the gap to (b): receipt to signal (ingest, features,
    inference; (b): json, features, model) and signal to order (execution's step in both), p50
    and p99 over the orders."""
    stages = win.stages_ns()
    rows = []
    for half in ("recv_to_sig", "sig_to_order"):
        p, pb = _pct(stages[half]), _pct(b[f"order_{half}"])
        rows += [
            Result(f"{NAME}_stages", f"{half}_p50_vs_b_{label}", p[0], "us", B, pb[0]),
            Result(f"{NAME}_stages", f"{half}_p99_vs_b_{label}", p[1], "us", B, pb[1]),
        ]
    return rows


def _window(
    label: str, rate: float, seconds: float, plan: Plan, dirs: tuple[Path, Path], topology: str,
    rnd: int = 0,
) -> tuple[Window, Path, list[tuple[int, bytes]]]:  # fmt: skip
    """One pipeline window of ``topology``; the frames it recorded (split only) and config."""
    root, jroot = dirs
    tag = f"{label}{_suffix(topology)}" + (f"_r{rnd}" if rnd else "")
    run_dir = root / f"p{tag}"
    ns = f"tto{label}{topology[:2]}{rnd}{int(time.time()) % 100000}"
    events = events_for_rate(rate * OFFER)
    frames: list[tuple[int, bytes]] = []
    with PipelineRun(run_dir, ns, events, journal_dir=jroot / f"p{tag}", topology=topology) as p:
        if topology == "split":
            url = f"ws://127.0.0.1:{p.ports.ws}/public/"
            frames = asyncio.run(record_frames(url, int(plan.frames_s * rate), 30.0))
        win = p.measure(seconds)
    _say(f"{tag}: pipeline ({topology}) {win.ws_rate:.0f} msg/s (simex events_per_s "
         f"{events}), {len(win.tick_to_order_ns())} orders, {len(win.sig_ns)} signals, load "
         f"{win.loadavg}, CPU % {win.cpu_percent}, sched {win.sched}; inference: "
         f"{win.batches:.0f} batches, fallback for latency {win.fallback_latency:.0f} "
         f"(any reason {win.fallback_all:.0f})")  # fmt: skip
    _say(f"{tag}: {summary(win)}")
    return win, run_dir / "tick_to_order.toml", frames


@dataclass
class Alternated:
    """Rounds of (b) and the topologies other than split, one window each, alternated."""

    wins: dict[str, list[Window]]  # topology -> its window of each round
    b: list[Arrays]  # (b) of each round
    b_rates: list[float]

    def pooled_b(self) -> Arrays:
        return {k: np.concatenate([b[k] for b in self.b]) for k in self.b[0]}

    def pooled(self, topology: str) -> Window:
        return Window.pooled(self.wins[topology])

    def round_rows(self, label: str) -> list[Result]:
        """Each round's ratio to the (b) of the same round; the spread the pooled rows hide."""
        rows: list[Result] = []
        for topology, wins in self.wins.items():
            tag = f"{label}{_suffix(topology)}"
            for r, (w, b) in enumerate(zip(wins, self.b, strict=True)):
                p, pb = _pct(w.tick_to_order_ns()), _pct(b["order"])
                rows += [
                    Result(NAME, f"p50_vs_b_{tag}_round{r}", p[0], "us", B, pb[0]),
                    Result(NAME, f"p99_vs_b_{tag}_round{r}", p[1], "us", B, pb[1]),
                ]
                _say(f"{tag} round {r}: {p[0]:.0f} / {p[1]:.0f} us against (b) {pb[0]:.0f} / "
                     f"{pb[1]:.0f}: {p[0] / pb[0]:.2f} / {p[1] / pb[1]:.2f}")  # fmt: skip
        return rows


def alternate(
    rounds: int, window: Callable[[str, int], Window], b_run: Callable[[], BRun]
) -> Alternated:
    """``rounds`` rounds of ``window(topology, round)`` for each topology but split, and of
    ``b_run()``; the even rounds run the pipeline first, the odd ones (b) first."""
    out = Alternated({t: [] for t in TOPOLOGIES[1:]}, [], [])

    def pipeline(r: int) -> None:
        for t in TOPOLOGIES[1:]:
            out.wins[t].append(window(t, r))

    def baseline() -> None:
        stamps, sent, rate = b_run()
        out.b.append(_b_arrays(stamps, sent))
        out.b_rates.append(rate)

    for r in range(rounds):
        if r % 2 == 0:
            pipeline(r)
            baseline()
        else:
            baseline()
            pipeline(r)
    return out


def _measure_rate(
    label: str, rate: float, plan: Plan, dirs: tuple[Path, Path], wake3_us: float
) -> tuple[list[Result], Path, Path]:
    root, jroot = dirs
    win, cfg, frames = _window(label, rate, plan.pipeline_s, plan, dirs, "split")
    frames_path = root / f"frames_{label}.msgpack"
    save_frames(frames_path, frames)
    raw = [f for _, f in frames]
    a = _chain(raw, cfg.read_text(), jroot / f"a{label}", plan.passes)
    disk = _pct(_chain(raw, cfg.read_text(), root / f"a{label}", 1)["order"])  # journal on disk
    alt = alternate(
        plan.rounds,
        lambda t, r: _window(label, rate, plan.round_s, plan, dirs, t, r)[0],
        lambda: baseline_b(frames_path, cfg, plan.b_s, root),
    )
    b, b_rate = alt.pooled_b(), float(np.mean(alt.b_rates))
    _say(f"{label}: (a) {len(a['order'])} orders; (b) {len(b['order'])} orders at {b_rate:.0f}/s "
         f"over {plan.rounds} rounds")  # fmt: skip
    if not len(a["order"]) or not len(b["order"]):  # a baseline that never trades is broken
        raise RuntimeError(
            f"{label}: a baseline placed no orders ((a) {len(a['order'])}, "
            f"(b) {len(b['order'])}): its figures would be NaN, not a comparison"
        )
    rows = _rows_rate(label, rate, win, a, b, b_rate, wake3_us)
    rows += hop_rows(label, win, wake3_us / 3)
    for topology in TOPOLOGIES[1:]:
        tag = f"{label}{_suffix(topology)}"
        rows += _rows_topology(tag, rate, alt.pooled(topology), a, b, wake3_us)
    rows += alt.round_rows(label)
    rows.append(
        Result(f"{NAME}_inference", f"fallback_latency_{label}", win.fallback_latency,
               "batches", "batches", win.batches, "== 0 (the demo runs on the model)")
    )  # fmt: skip
    rows += [
        Result(
            A, f"p50_us_{label}_diskjournal", disk[0], "us", "tmpfs_journal", _pct(a["order"])[0]
        ),
        Result(
            A, f"p99_us_{label}_diskjournal", disk[1], "us", "tmpfs_journal", _pct(a["order"])[1]
        ),
    ]
    return rows, cfg, frames_path


def _loaded_window(
    plan: Plan, dirs: tuple[Path, Path], rate: float, topology: str, seconds: float, rnd: int = 0
) -> Window:
    root, jroot = dirs
    tag = f"load{_suffix(topology)}" + (f"_r{rnd}" if rnd else "")
    run_dir = root / f"p{tag}"
    ns = f"ttoload{topology[:2]}{rnd}{int(time.time()) % 100000}"
    events = events_for_rate(rate * OFFER)
    with PipelineRun(
        run_dir, ns, events, journal_dir=jroot / f"p{tag}", capture=True, topology=topology
    ) as p:
        ports = [str(x) for x in p.metrics_ports()]
        with background([["scrape", *ports], ["gc"]]) as reports:
            win = p.measure(seconds)
    _say(
        f"{tag}: pipeline ({topology}) {win.ws_rate:.0f} msg/s, {len(win.tick_to_order_ns())} "
        f"orders, load {win.loadavg}, CPU % {win.cpu_percent}, sched {win.sched}; inference "
        f"fallback for latency {win.fallback_latency:.0f} of {win.batches:.0f} batches; {reports}"
    )
    _say(f"{tag}: {summary(win)}")
    return win


def _loaded(plan: Plan, dirs: tuple[Path, Path], frames_path: Path, rate: float) -> list[Result]:
    root, _ = dirs
    win = _loaded_window(plan, dirs, rate, "split", plan.pipeline_s)
    cfg = root / "pload" / "tick_to_order.toml"

    def b_loaded() -> BRun:
        mport = free_port()
        loads = [
            ["scrape", *[str(mport)] * 6],
            ["gc"],
            ["write", str(root / "bcap"), str(rate)],
        ]
        with background(loads) as b_reports:
            got = baseline_b(frames_path, cfg, plan.b_s, root, mport)
        _say(f"load: (b) at {got[2]:.0f}/s; {b_reports}")
        return got

    alt = alternate(
        plan.rounds, lambda t, r: _loaded_window(plan, dirs, rate, t, plan.round_s, r), b_loaded
    )
    b = alt.pooled_b()
    p_, pb = _pct(win.tick_to_order_ns()), _pct(b["order"])
    rows = [
        Result(NAME, "md_rate_1k_load", win.ws_rate, "msg/s", "target_rate", rate),
        Result(
            f"{NAME}_inference",
            "fallback_latency_1k_load",
            win.fallback_latency,
            "batches",
            "batches",
            win.batches,
            "== 0 (the demo runs on the model)",
        ),
        Result(
            NAME,
            "orders_1k_load",
            float(len(win.tick_to_order_ns())),
            "orders",
            "signals",
            win.signals,
        ),
        Result(NAME, "p50_us_1k_load", p_[0], "us", B, pb[0]),
        Result(NAME, "p99_us_1k_load", p_[1], "us", B, pb[1], "<= 0.5"),
        Result(NAME, "p999_us_1k_load", p_[2], "us", B, pb[2]),
        Result(NAME, "p99_us_1k_load_vs_bsend", p_[1], "us", BS, _pct(b["from_send"])[1], "<= 0.5"),
        Result(f"{NAME}_signal", "p99_us_1k_load", _pct(win.sig_ns)[1], "us", B, _pct(b["sig"])[1]),
        Result(B, "p99_us_1k_load", pb[1], "us", "from_server_send", _pct(b["from_send"])[1]),
    ]
    for topology in TOPOLOGIES[1:]:
        w, sfx = alt.pooled(topology), _suffix(topology)
        q = _pct(w.tick_to_order_ns())
        rows += [
            Result(NAME, f"md_rate_1k_load{sfx}", w.ws_rate, "msg/s", "target_rate", rate),
            Result(
                f"{NAME}_inference",
                f"fallback_latency_1k_load{sfx}",
                w.fallback_latency,
                "batches",
                "batches",
                w.batches,
                "== 0 (the demo runs on the model)",
            ),
            Result(NAME, f"p50_us_1k_load{sfx}", q[0], "us", B, pb[0]),
            Result(NAME, f"p99_us_1k_load{sfx}", q[1], "us", B, pb[1], "<= 0.5"),
            Result(NAME, f"p999_us_1k_load{sfx}", q[2], "us", B, pb[2]),
            *_halves_vs_b(f"1k_load{sfx}", w, b),
        ]
    return rows + alt.round_rows("1k_load")


def load_bound(results: list[Result], topology: str = "colocated") -> list[Result]:
    """What the loaded goal (pipeline p99 <= 0.5 x (b)'s, both loaded) asks, from rows already
    measured: how much the load slowed (b) and the pipeline (loaded p99 against quiet p99, both
    at 1 k/s), and the ratio a pipeline that the load did not slow at all would reach (its quiet
    p99 against (b)'s loaded p99). Where that last ratio is above 0.5, protection alone cannot
    reach the goal: it is met only if the pipeline's loaded window is faster than its quiet one
    (the host's noise), or with a lower p99 without load. Empty when a row is missing."""
    sfx = _suffix(topology)
    rows = {(r.name, r.metric): r for r in results}
    quiet = rows.get((NAME, f"p99_vs_b_1k{sfx}"))
    loaded = rows.get((NAME, f"p99_us_1k_load{sfx}"))
    if quiet is None or loaded is None:
        return []
    b_quiet, b_loaded = quiet.baseline_value, loaded.baseline_value
    bound = "above 0.5: the loaded goal needs the pipeline faster loaded than quiet"
    return [
        Result(B, "p99_1k_load_vs_quiet", b_loaded, "us", "quiet", b_quiet),
        Result(NAME, f"p99_1k_load_vs_quiet{sfx}", loaded.value, "us", "quiet", quiet.value),
        Result(NAME, f"p99_1k_quiet_vs_b_load{sfx}", quiet.value, "us", B, b_loaded, bound),
    ]


def run(quick: bool) -> list[Result]:
    plan = Plan.of(quick)
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="tto", dir="/tmp") as tmp,
        tempfile.TemporaryDirectory(prefix="tto", dir=JOURNAL_FS) as jtmp,
    ):
        root = Path(tmp)
        dirs = (root, Path(jtmp))
        cores = sorted(os.sched_getaffinity(0))
        lay = layout(cores=cores)
        where = per_stage_cpus(cores) if lay == "per_stage" else "configs/demo.toml's CPU sets"
        _say(f"layout {lay} on {len(cores)} cores: {where}")
        need = float(PER_STAGE_MIN_CORES)
        results.append(Result(NAME, f"layout_{lay}", len(cores), "cores", "per_stage_needs", need))
        wake = wakeups(plan.wake_n, root)
        w = _pct(wake)
        wake3 = 3 * w[0]
        _say(f"bare cross-core wake-up p50 {w[0]:.1f} us p99 {w[1]:.1f} us")
        results.append(Result(W, "p50_us", wake3, "us", "one_wakeup_p50", w[0]))
        first: tuple[Path, float] | None = None
        for label, rate in plan.rates:
            rows, _cfg, frames_path = _measure_rate(label, rate, plan, dirs, wake3)
            results += rows
            first = first or (frames_path, rate)
        if plan.load and first is not None:
            results += _loaded(plan, dirs, *first)
            results += load_bound(results)
            wl = _pct(wakeups(plan.wake_n // 4, root))
            results.append(Result(W, "p50_us_after", 3 * wl[0], "us", "one_wakeup_p50", wl[0]))
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.bench_tick_to_order RESULTS.json...``: ``load_bound``'s rows for
    results written before the bench made them (one line per file and row)."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(main.__doc__, file=sys.stderr)
        return 2
    code = 0
    for path in paths:
        try:
            stored = json.loads(Path(path).read_text())
            results = [Result(**{k: v for k, v in r.items() if k != "ratio"}) for r in stored]
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # not a list of rows
            print(f"{path}: not a results file: {exc}", file=sys.stderr)
            code = 1
            continue
        rows = load_bound(results)
        if not rows:
            print(f"{path}: no quiet and loaded colocated p99 rows (a quick run?)")
        for r in rows:
            print(f"{path} {r.name} {r.metric} {r.value:,.0f} / {r.baseline_value:,.0f} {r.unit}"
                  f" = {r.ratio:.2f}")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
