"""tick_to_order per hop: where a tick's time goes between the stages, from the records' stamps.

Every stage stamps its output with ``time.time_ns()`` (one host, one clock):

- ``ingest``:    ``ts_recv_ns`` (WS frame receipt) → BOOK_V1 ``ts_pub_ns`` (ring publish);
- ``features``:  book ``ts_pub_ns`` → FEAT_V1/SIG_V1 ``ts_feat_ns`` (wake-up + features step);
- ``inference``: ``ts_feat_ns`` → SIG_V1 ``ts_sig_ns`` (wake-up + model);
- ``execution``: ``ts_sig_ns`` → the order's ``ts_order_ns`` (wake-up + strategy, risk, journal).

The sig ring carries ``ts_recv_ns``, ``ts_feat_ns`` and ``ts_sig_ns``; ``ts_pub_ns`` is only on
the book, so the bench reads the book ring too and joins on ``(symbol_id, ts_recv_ns)`` (one book
per WS depth frame). The first three hops are reported over every signal, the execution hop over
the orders (SENT events carry the tick's stamps).

Standalone, for iterating on one hop (no baselines, ~30 s)::

    .venv/bin/python -m tests.bench._tick_hops [--rate 1000] [--seconds 10] [--runs 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.bench._common import Result, percentiles_us
from tests.bench._tick_group import PipelineRun, Window, events_for_rate

NAME = "tick_to_order_hops"
HOPS = ("ingest", "features", "inference", "execution")


def _join_pub(win: Window, sid: np.ndarray, recv: np.ndarray) -> np.ndarray:
    """Book ``ts_pub_ns`` for each ``(sid, ts_recv)``; 0 where the book ring had no such book."""
    if not len(win.book_recv):
        return np.zeros(len(recv), np.int64)
    # one sortable key per (symbol, receipt): symbol ids are small, stamps fit in 60 bits
    bkey = (win.book_sid.astype(np.int64) << 60) | (win.book_recv & ((1 << 60) - 1))
    key = (sid.astype(np.int64) << 60) | (recv & ((1 << 60) - 1))
    order = np.argsort(bkey, kind="stable")
    bkey, bpub = bkey[order], win.book_pub[order]
    i = np.clip(np.searchsorted(bkey, key), 0, len(bkey) - 1)
    return np.where(bkey[i] == key, bpub[i], 0)


def hops_ns(win: Window) -> dict[str, np.ndarray]:
    """Per-hop durations (ns): ``<hop>`` over every signal (execution: over the orders),
    ``<hop>_orders`` over the signals that became orders."""
    out: dict[str, np.ndarray] = {}
    pub = _join_pub(win, win.sig_sid, win.sig_recv)
    ok = pub > 0
    out["ingest"] = (pub - win.sig_recv)[ok]
    out["features"] = (win.sig_feat - pub)[ok]
    out["inference"] = win.sig_sig - win.sig_feat
    sent = [o for o in win.orders if o.status == "SENT" and o.ts_recv_ns and o.ts_sig_ns]
    if sent:
        recv = np.array([o.ts_recv_ns for o in sent], np.int64)
        feat = np.array([o.ts_feat_ns for o in sent], np.int64)
        sig = np.array([o.ts_sig_ns for o in sent], np.int64)
        order = np.array([o.ts_order_ns for o in sent], np.int64)
        sid = np.array([_sid(o.symbol) for o in sent], np.int64)
        opub = _join_pub(win, sid, recv)
        ook = opub > 0
        out["ingest_orders"] = (opub - recv)[ook]
        out["features_orders"] = (feat - opub)[ook]
        out["inference_orders"] = sig - feat
        out["execution"] = order - sig
    else:
        for k in ("ingest_orders", "features_orders", "inference_orders", "execution"):
            out[k] = np.zeros(0, np.int64)
    out["execution_orders"] = out["execution"]
    return out


_SYMBOL_IDS = {"BTCUSDT": 0, "ETHUSDT": 1}  # configs/demo.toml [ingest].symbols order


def _sid(symbol: str) -> int:
    return _SYMBOL_IDS.get(symbol, -1)


def _pct(ns: np.ndarray) -> list[float]:
    return percentiles_us(ns, (50, 99)) if len(ns) else [float("nan")] * 2


def hop_rows(label: str, win: Window, wake_p50_us: float) -> list[Result]:
    """p50 and p99 per hop (baseline: one bare cross-core wake-up's p50), every signal and the
    orders' own; plus the share of signals whose book was found (``joined``)."""
    h = hops_ns(win)
    rows: list[Result] = []
    for hop in HOPS:
        p50, p99 = _pct(h[hop])
        o50, _ = _pct(h[f"{hop}_orders"])
        rows += [
            Result(NAME, f"{hop}_p50_us_{label}", p50, "us", "one_wakeup_p50", wake_p50_us),
            Result(NAME, f"{hop}_p99_us_{label}", p99, "us", "one_wakeup_p50", wake_p50_us),
            Result(NAME, f"{hop}_orders_p50_us_{label}", o50, "us", "one_wakeup_p50", wake_p50_us),
        ]
    rows.append(
        Result(
            NAME,
            f"joined_{label}",
            float(len(h["ingest"])),
            "signals",
            "signals",
            float(len(win.sig_recv)),
        )
    )
    return rows


def summary(win: Window) -> str:
    """One line: p50/p99 µs per hop (every signal; execution over orders) and counts."""
    h = hops_ns(win)
    parts = []
    for hop in HOPS:
        p50, p99 = _pct(h[hop])
        o50, _ = _pct(h[f"{hop}_orders"])
        parts.append(f"{hop} {p50:.0f}/{p99:.0f} (orders p50 {o50:.0f})")
    tto = win.tick_to_order_ns()
    t = _pct(tto)
    return (
        f"hops p50/p99 us: {'; '.join(parts)} | tick_to_order {t[0]:.0f}/{t[1]:.0f} "
        f"n_orders {len(tto)} n_sig {len(win.sig_recv)} joined {len(h['ingest'])} "
        f"rate {win.ws_rate:.0f}/s load {win.loadavg[0]} CPU% {win.cpu_percent}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--rate", type=float, default=1000.0, help="target WS messages/s")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--capture", action="store_true")
    ap.add_argument(
        "--sched",
        choices=("config", "off", "both"),
        default="config",
        help="the scheduling classes of demo.toml, none (every program 'other'), or both "
        "alternately (off first)",
    )
    ap.add_argument(
        "--topology",
        choices=("split", "colocated", "both"),
        default="split",
        help="features, inference, execution as three processes, one (procs.hotpath), or both "
        "alternately (split first)",
    )
    ap.add_argument("--unpin", action="store_true", help="drop every program's CPU set")
    args = ap.parse_args(argv)
    events = events_for_rate(args.rate * 1.02)
    tops = ("split", "colocated") if args.topology == "both" else (args.topology,)
    for k in range(args.runs * (2 if args.sched == "both" else 1) * len(tops)):
        sched = args.sched if args.sched != "both" else ("off", "config")[k // len(tops) % 2]
        topology = tops[k % len(tops)]
        with (
            tempfile.TemporaryDirectory(prefix="ttoh", dir="/tmp") as tmp,
            tempfile.TemporaryDirectory(prefix="ttoh", dir="/dev/shm") as jtmp,
        ):
            ns = f"ttoh{int(time.time()) % 100000}{k}"
            with PipelineRun(
                Path(tmp),
                ns,
                events,
                journal_dir=Path(jtmp),
                capture=args.capture,
                sched=sched == "config",
                topology=topology,
                pin=not args.unpin,
            ) as p:
                win = p.measure(args.seconds)
        print(f"run {k} {topology} sched={sched} {win.sched}: {summary(win)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
