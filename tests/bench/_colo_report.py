"""Bench-only: where each order's tick went inside the colocated pass (tests.bench._colo_probe).

``report(events, sent, t0, t1)``: per SENT order in the window, its receipt → order split into
segments from the probe's stamps; the p50 of each segment over all orders and its mean over the
slowest 1 % (what the p99 is made of).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SEGMENTS = (
    "recv>flush",  # WS frame receipt to ingest's flush callback (the loop's queue)
    "flush",  # ingest's flush: ring publishes + wake-ups
    "flush>pass",  # flush end to the pass start (the loop's queue again)
    "pass>feat",  # pass start to features' step (IngestFlush step)
    "feat",  # features' step (all books of the pass)
    "inf",  # inference's step
    "exec>sigs",  # execution's step start to its signals (ring polls, books)
    "sigs>place",  # strategy up to place() of this order (maybe earlier orders' place)
    "place>intent",  # risk
    "intent",  # the journal's intent write (fsync)
    "intent>order",  # tracker, the order leaves
)


def _col(ev: np.ndarray, kind: int) -> np.ndarray:
    return ev[ev[:, 0] == kind]


def _before(ts: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the last ``ts`` <= t (-1 when none)."""
    return np.searchsorted(ts, t, side="right") - 1


def report(ev: np.ndarray, sent: list[Any], t0: int, t1: int) -> dict[str, object]:
    ev = ev[np.argsort(ev[:, 1], kind="stable")]
    recv = np.array([o.ts_recv_ns for o in sent], np.int64)
    order = np.array([o.ts_order_ns for o in sent], np.int64)
    ps, pe = _col(ev, 4)[:, 1], _col(ev, 5)[:, 1]
    fs, fe = _col(ev, 1)[:, 1], _col(ev, 2)[:, 1]
    st = {i: _col(ev, 10 + i)[:, 1] for i in range(4)}
    en = {i: _col(ev, 20 + i) for i in range(4)}
    sig_s = _col(ev, 52)[:, 1]
    pl_s = _col(ev, 58)[:, 1]
    in_s, in_e = _col(ev, 56)[:, 1], _col(ev, 57)[:, 1]
    gcs = _col(ev, 30)[:, 1]
    gce = _col(ev, 31)[:, 1]
    svc = _col(ev, 40)[:, 1]
    # the pass that sent each order
    k = _before(ps, order)
    ok = (k >= 0) & (recv > 0)
    k = k[ok]
    recv, order = recv[ok], order[ok]
    pass_start = ps[k]
    # the first flush callback after the receipt (its book's publish), if before the pass
    f = np.searchsorted(fs, recv)
    f = np.clip(f, 0, len(fs) - 1)
    flush_s, flush_e = fs[f], fe[np.clip(f, 0, len(fe) - 1)]
    in_pass = flush_s > pass_start  # published by the pass's own IngestFlush
    flush_s = np.where(in_pass, pass_start, flush_s)
    flush_e = np.where(in_pass, pass_start, flush_e)
    feat_s = st[1][_before(st[1], order)]
    inf_s = st[2][_before(st[2], order)]
    ex_s = st[3][_before(st[3], order)]
    sg = sig_s[_before(sig_s, order)]
    pl = pl_s[_before(pl_s, order)]
    i_s = in_s[_before(in_s, order)]
    i_e = in_e[_before(in_e, order)]
    seg = np.stack(
        [
            flush_s - recv,
            flush_e - flush_s,
            pass_start - flush_e,
            feat_s - pass_start,
            inf_s - feat_s,
            ex_s - inf_s,
            sg - ex_s,
            pl - sg,
            i_s - pl,
            i_e - i_s,
            order - i_e,
        ],
        axis=1,
    )
    total = order - recv
    slow = total >= np.quantile(total, 0.99)
    # books per pass (features' items), and what the windows' passes cost
    win = (ps >= t0) & (ps <= t1)
    pdur = (pe[: len(ps)] - ps[: len(pe)])[win[: len(pe)]] if len(pe) else np.zeros(0)
    feat_n = en[1][:, 2]
    gc_in = 0
    for a, b in zip(recv[slow], order[slow], strict=True):
        gc_in += int(((gcs >= a) & (gcs <= b)).sum())
    out: dict[str, object] = {
        "orders": len(total),
        "tto_p50": round(float(np.median(total)) / 1e3),
        "tto_p99": round(float(np.quantile(total, 0.99)) / 1e3),
        "p50": {s: round(float(np.median(seg[:, i])) / 1e3, 1) for i, s in enumerate(SEGMENTS)},
        "slow1%_mean": {s: round(float(seg[slow, i].mean()) / 1e3) for i, s in enumerate(SEGMENTS)},
        "in_pass_flush_share": round(float(in_pass.mean()), 2),
        "passes": int(win.sum()),
        "pass_us_p50_p99": [
            round(float(np.median(pdur)) / 1e3),
            round(float(np.quantile(pdur, 0.99)) / 1e3),
        ]
        if len(pdur)
        else [],
        "books_per_feat_step": {
            str(n): int((feat_n == n).sum()) for n in sorted(set(feat_n.tolist()))[:6]
        },
        "gc": {
            "n": len(gcs),
            "us_p50_max": [
                round(float(np.median(gce[: len(gcs)] - gcs[: len(gce)])) / 1e3),
                round(float(np.max(gce[: len(gcs)] - gcs[: len(gce)])) / 1e3),
            ]
            if len(gcs) and len(gce)
            else [],
            "in_slow1%": gc_in,
            "by_gen_n_p50_max_us_in_window": _gc_by_gen(ev[(ev[:, 1] >= t0) & (ev[:, 1] <= t1)]),
        },
        "service_calls": len(svc),
    }
    # the order's pass: how many books its features step took; p50 tick-to-order by that
    fn = en[1][_before(en[1][:, 1], order)][:, 2]
    sends = _col(ev, 67)[:, 1]
    if len(sends):
        # the k-th order of a pass goes with the k-th send task after it (a pass's orders are
        # all placed before the first send task runs)
        by = np.argsort(order, kind="stable")
        j = np.searchsorted(sends, order[by])
        rank = np.zeros(len(j), np.int64)
        for i in range(1, len(j)):
            rank[i] = rank[i - 1] + 1 if j[i] == j[i - 1] else 0
        j = np.clip(j + rank, 0, len(sends) - 1)
        wire = sends[j] - recv[by]
        lag = sends[j] - order[by]
        out["tick_to_send_task_p50_p99"] = [
            round(float(np.median(wire)) / 1e3),
            round(float(np.quantile(wire, 0.99)) / 1e3),
        ]
        # the work no tick waits for, between an order and its send task (all orders)
        so, ss = order[by], sends[j]
        for name, (k0, k1) in {"gc": (30, 31), "hk": (54, 55), "service": (40, 41)}.items():
            o = _overlap(so, ss, *_pairs(ev, k0, k1))
            out[f"order_to_send_{name}_orders_us"] = [int((o > 0).sum()), round(o.sum() / 1e3)]
        out["order_to_send_task_p50_p99"] = [
            round(float(np.median(lag)) / 1e3),
            round(float(np.quantile(lag, 0.99)) / 1e3),
        ]
    g = _overlap(recv, order, *_pairs(ev, 30, 31))  # collections inside a tick (all orders)
    out["tick_gc_orders_us"] = [int((g > 0).sum()), round(g.sum() / 1e3)]
    out["slow1%_wait_us"] = _wait_parts(ev, recv[slow], pass_start[slow])
    out["slow1%_own_pass_us"] = _wait_parts(ev, pass_start[slow], order[slow])
    out["tto_p50_by_books"] = {
        str(n): [int((fn == n).sum()), round(float(np.median(total[fn == n])) / 1e3)]
        for n in (1, 2, 3, 4, 5, 6)
        if (fn == n).any()
    }
    ws, we = _col(ev, 61)[:, 1], _col(ev, 62)[:, 1]
    if len(ws) and len(we):
        d = we[: len(ws)] - ws[: len(we)]
        out["wake_send_us_p50_n"] = [round(float(np.median(d)) / 1e3, 1), len(d)]
    rs, re_ = _col(ev, 68), _col(ev, 69)
    if len(rs) and len(re_):  # the step's venue calls started eagerly as it ended (i12-send)
        d = re_[: len(rs), 1] - rs[: len(re_), 1]
        out["release_us_p50_p99_n_calls"] = [
            round(float(np.median(d)) / 1e3, 1),
            round(float(np.quantile(d, 0.99)) / 1e3),
            len(d),
            int(rs[:, 2].sum()),
        ]
    for name, (a0, a1) in {"on_books": (50, 51), "hk": (54, 55), "service": (40, 41)}.items():
        xs, xe = _col(ev, a0)[:, 1], _col(ev, a1)[:, 1]
        if len(xs) and len(xe):
            d = xe[: len(xs)] - xs[: len(xe)]
            out[f"{name}_us_p50_p99_n"] = [
                round(float(np.median(d)) / 1e3, 1),
                round(float(np.quantile(d, 0.99)) / 1e3),
                len(d),
            ]
    xs, xe = _col(ev, 65), _col(ev, 66)
    if len(xs) and len(xe):
        d = xe[: len(xs), 1] - xs[: len(xe), 1]
        out["idle_turns_us_p50_p99_n_runs_deferred"] = [
            round(float(np.median(d)) / 1e3, 1),
            round(float(np.quantile(d, 0.99)) / 1e3),
            len(d),
            int(xe[-1, 2]),
            int(xs[-1, 2]),
        ]
    win_on = _col(ev, 70)[:, 2]
    if len(win_on):
        out["inline_windows_on_off"] = [int(win_on.sum()), int((win_on == 0).sum())]
    for i, name in ((1, "feat"), (2, "inf"), (3, "exec")):
        d = en[i][:, 1] - st[i][: len(en[i])]
        busy = en[i][:, 2] > 0
        out[f"{name}_step_us_p50_busy_idle"] = [
            round(float(np.median(d[busy])) / 1e3, 1) if busy.any() else 0,
            round(float(np.median(d[~busy])) / 1e3, 1) if (~busy).any() else 0,
        ]
    return out


def _gc_by_gen(ev: np.ndarray) -> dict[str, list[int]]:
    rows = ev[(ev[:, 0] == 30) | (ev[:, 0] == 31)]
    out: dict[str, list[int]] = {}
    durs: dict[int, list[int]] = {}
    start: tuple[int, int] | None = None
    for kind, t, gen in rows.tolist():
        if kind == 30:
            start = (t, gen)
        elif start is not None:
            durs.setdefault(start[1], []).append(t - start[0])
            start = None
    for gen, d in sorted(durs.items()):
        a = np.array(d)
        out[str(gen)] = [len(a), round(float(np.median(a)) / 1e3), round(float(a.max()) / 1e3)]
    return out


def _overlap(a: np.ndarray, b: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Per interval [a_i, b_i]: the ns it shares with the union-free intervals [s_j, e_j]."""
    out = np.zeros(len(a), np.int64)
    for i in range(len(a)):
        lo = np.maximum(s, a[i])
        hi = np.minimum(e, b[i])
        out[i] = np.clip(hi - lo, 0, None).sum()
    return out


def _pairs(ev: np.ndarray, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
    s, e = _col(ev, k0)[:, 1], _col(ev, k1)[:, 1]
    n = min(len(s), len(e))
    return s[:n], e[:n]


def _wait_parts(ev: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """Mean µs of [a, b] spent in: passes' stages (less the parts below), execution's
    housekeeping, the runtimes' service, collections, ingest flush callbacks, the rest (the
    loop, frames' decode and normalise)."""
    if not len(a):
        return {}
    total = b - a
    parts = {
        "passes": _overlap(a, b, *_pairs(ev, 4, 5)),
        "hk": _overlap(a, b, *_pairs(ev, 54, 55)),
        "service": _overlap(a, b, *_pairs(ev, 40, 41)),
        "gc": _overlap(a, b, *_pairs(ev, 30, 31)),
        "flush_cb": _overlap(a, b, *_pairs(ev, 1, 2)),
        "ingest_tick": _overlap(a, b, *_pairs(ev, 63, 64)),
        "feat": _overlap(a, b, *_pairs(ev, 11, 21)),
        "inf": _overlap(a, b, *_pairs(ev, 12, 22)),
        "exec": _overlap(a, b, *_pairs(ev, 13, 23)),
    }
    out = {"total": round(float(total.mean()) / 1e3)}
    for k, v in parts.items():
        out[k] = round(float(v.mean()) / 1e3)
    out["outside_passes"] = out["total"] - out["passes"] - out["flush_cb"] - out["ingest_tick"]
    return out
