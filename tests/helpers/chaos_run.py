"""The chaos suite's fault schedule on a running group, and the evidence its checks read.

``Chaos.one()`` draws one fault at random (SIGKILL of a stage, a simex restart, WS drops and
stalls, REST 5xx, held answers, rate-limit answers, fuzzed control messages, fuzzed WS frames);
``Chaos.storage(kind)`` runs one storage fault (``tests/helpers/chaos_storage.py``). It keeps
what it caused (kills, stops, expected exits) for the crash-loop verdict. ``sent_orders`` and
``book_marks`` read the journal and the capture files for the stale-data verdicts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ipc.endpoints import expand
from procs.group import health
from procs.tickstore.store import CaptureError, CaptureReader
from shm.records import FLAG_STALE
from tests.helpers.chaos_checks import BookMark, SentOrder
from tests.helpers.chaos_storage import Storage
from tests.helpers.group_run import Group, bitrader
from tests.helpers.simex_proc import http
from tests.integration.test_control_plane import MALFORMED, _raw

STAGES = ("ingest", "features", "inference", "execution", "capture")
# WS fuzz: the process and the health counter that must count the skipped frames
FUZZ_COUNTERS = {"public": ("ingest", "decode_errors_total"),
                 "private": ("execution", "ws_frames_skipped_total")}  # fmt: skip


def simex_post(g: Group, path: str, body: dict[str, Any]) -> Any:
    status, out = http("POST", g.cfg.control_url + path, json.dumps(body).encode())
    assert status == 200, (path, body, out)
    return out


class Chaos:
    def __init__(self, g: Group, rng: random.Random, disk: Path | None) -> None:
        self.g = g
        self.rng = rng
        self.done: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()
        self.health_samples: Counter[int] = Counter()
        self.seen_orders: dict[str, dict[str, Any]] = {}
        self.storage_faults = Storage(g, rng, disk)
        self.fuzz_counted: Counter[str] = Counter()
        self.requests_before: list[list[Any]] = []  # logged by simex processes since stopped

    def kill(self, name: str) -> None:
        pid = int(self.g.info(name)["pid"])
        if pid:
            os.kill(pid, signal.SIGKILL)
            self.kills[name] += 1

    def restart_simex(self) -> None:
        # remember the orders simex knows now, to check their fills at the end, and the
        # requests it logged (its request log lives as long as the process)
        for o in self.g.simex.all_orders():
            self.seen_orders[o["clientId"]] = o
        self.requests_before += simex_requests(self.g)
        self.storage_faults.stop("simex")  # SIGTERM: it saves its state
        self.storage_faults.start("simex")

    def timed_fault(self, changes: dict[str, Any], seconds: float) -> None:
        simex_post(self.g, "/_simex/faults", changes)
        time.sleep(seconds)  # the fault's duration on the venue: what the group lives through
        simex_post(self.g, "/_simex/faults/reset", {})

    def fuzz_control(self) -> None:
        for proc in self.g.cfg.metrics_ports:
            ctl = expand(
                self.g.cfg.data[proc]["runtime"]["control_endpoint"],
                run_dir=self.g.run_dir,
                ns=self.g.ns,
            )
            for _, frames in MALFORMED:
                _raw(ctl, frames, timeout_s=2.0)  # None when the process is restarting

    def fuzz_ws(self, scope: str) -> None:
        """Hostile frames from the venue side; the receiving process must count them (or have
        been restarted meanwhile by another fault), never crash."""
        sides = ("public", "private") if scope == "all" else (scope,)
        before = {s: self._fuzz_mark(s) for s in sides}
        for _ in range(3):  # a connection that is reconnecting just now misses one round
            simex_post(self.g, "/_simex/ws/fuzz", {"scope": scope})
            try:
                self.g.wait_until(
                    lambda: all(self._fuzz_seen(s, before[s]) for s in sides), 5, "fuzz counted"
                )
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"fuzzed {scope} frames never counted\n{self.g.why()}")
        for s in sides:
            self.fuzz_counted[s] += 1

    def _fuzz_mark(self, side: str) -> tuple[int, int]:
        proc, key = FUZZ_COUNTERS[side]
        return int(self.g.info(proc)["pid"]), int(self.g.health(proc).get(key) or 0)

    def _fuzz_seen(self, side: str, before: tuple[int, int]) -> bool:
        pid, n = self._fuzz_mark(side)
        return pid != before[0] or n > before[1]

    def one(self, only: frozenset[str] = frozenset()) -> str:
        r = self.rng
        kinds = ["kill", "kill", "simex", "drop", "stall", "rest5xx", "held", "ratelimit"]
        kinds += ["fuzz", "fuzzws"]
        chosen = [k for k in kinds if k in only] if only else kinds
        if not chosen:
            return ""  # only storage faults asked for: none at random
        kind = r.choice(chosen)
        if kind == "kill":
            name = r.choice(STAGES)
            self.kill(name)
            kind = f"kill:{name}"
        elif kind == "simex":
            self.restart_simex()
        elif kind == "drop":
            scope = r.choice(["all", "public", "private"])
            simex_post(self.g, "/_simex/ws/drop", {"scope": scope})
            kind = f"drop:{scope}"
        elif kind == "stall":
            scope = r.choice(["public", "private"])
            simex_post(self.g, "/_simex/faults", {"ws_stall_s": 3.0, "ws_stall_scope": scope})
            kind = f"stall:{scope}"
        elif kind == "rest5xx":
            self.timed_fault({"rest_error_rate": 0.3}, 3.0)
        elif kind == "held":
            self.timed_fault({"ack_delay_s": 1.5}, 3.0)
        elif kind == "ratelimit":
            self.timed_fault({"rate_limit_rate": 0.5}, 3.0)
        elif kind == "fuzzws":
            scope = r.choice(["all", "public", "private"])
            self.fuzz_ws(scope)
            kind = f"fuzzws:{scope}"
        else:
            self.fuzz_control()
        self.done[kind] += 1
        return kind

    def storage(self, kind: str) -> str:
        s = self.storage_faults
        done = {"journal": s.corrupt_journal, "capture": s.corrupt_capture, "disk": s.fill_disk}
        name = done[kind]()
        self.done[name] += 1
        return name

    def sample_health(self) -> None:
        """`bitrader health` must agree with the processes: 0 only when every row is healthy
        and execution trades; otherwise a cause that its rows show."""
        res = bitrader("health", "--run-dir", str(self.g.run_dir), "--json", timeout_s=60)
        self.health_samples[res.returncode] += 1
        if res.returncode == health.EXIT_NOT_UP:
            raise AssertionError(f"group not up during chaos: {res.stderr}")
        rows = {r["name"]: r for r in json.loads(res.stdout)}
        all_healthy = all(r["healthy"] for r in rows.values())
        assert (res.returncode == 0) == all_healthy, res.stdout
        if res.returncode == 0:  # trading, or reconciling within the deadline (documented)
            ex = rows["execution"]
            assert ex["proc_state"] in ("active", "reconciling"), res.stdout
            if ex["proc_state"] == "reconciling":
                assert ex["counters"]["reconciling_s"] <= health.RECONCILE_DEADLINE_S
        else:
            causes = {c for r in rows.values() for c in r["causes"]}
            assert res.returncode in causes, (res.returncode, causes)

    def expected_exits(self) -> dict[str, Counter[str]]:
        out = {k: Counter(v) for k, v in self.storage_faults.expected_exits.items()}
        for name, n in self.kills.items():
            out.setdefault(name, Counter())["terminated by SIGKILL"] += n
        return out

    def stops(self) -> Counter[str]:
        out = Counter(self.storage_faults.stops)
        out["execution"] += self.g.startup_resets
        return out


def storage_plan(chaos_s: float, kinds: list[str]) -> list[tuple[float, str]]:
    """When each storage fault comes: spread over the run, every kind at least once, one more
    round per 150 s of chaos."""
    rounds = max(1, int(chaos_s // 150))
    todo = kinds * rounds
    return [(chaos_s * (i + 0.5) / len(todo), k) for i, k in enumerate(todo)]


def sent_orders(g: Group) -> list[SentOrder]:
    """Every journaled order with the stamp of the book its decision started from."""
    sql = (
        "SELECT i.client_id, i.symbol, max(i.ts_ns, coalesce(max(e.ts_sent_ns), 0)), i.ts_recv_ns"
        " FROM intents i LEFT JOIN order_events e ON e.client_id = i.client_id"
        " GROUP BY i.client_id"
    )
    return [SentOrder(str(c), str(s), int(t), int(r or 0)) for c, s, t, r in g.journal.rows(sql)]


def book_marks(directory: Path, copies: dict[Path, Path]) -> tuple[list[BookMark], list[str]]:
    """Every captured book record (capture order, file after file) and the files that could not
    be read. A file the test corrupted is read from the copy it kept (``copies``)."""
    marks: list[BookMark] = []
    unreadable = []
    for name in sorted(directory.glob("*.h5")):
        path = copies.get(name, name)
        try:
            with CaptureReader(path) as r:
                names = r.symbols
                recs = r.read("md.book") if "md.book" in r.streams else None
        except (CaptureError, OSError) as exc:
            unreadable.append(f"{path.name}: {exc}")
            continue
        if recs is None:
            continue
        for sid, seq, recv, flags in zip(
            recs["symbol_id"].tolist(),
            recs["seq"].tolist(),
            recs["ts_recv_ns"].tolist(),
            recs["flags"].tolist(),
            strict=True,
        ):
            marks.append(BookMark(names[sid], seq, recv, bool(flags & FLAG_STALE)))
    return marks, unreadable


def simex_requests(g: Group) -> list[list[Any]]:
    _, out = http("GET", g.cfg.control_url + "/_simex/requests")
    assert out["dropped_total"] == 0, "simex's request log overflowed: the rate check is partial"
    entries: list[list[Any]] = out["entries"]
    return entries
