"""Chaos: the whole group trading on simex while a seeded random schedule of faults hits it.

Faults: SIGKILL of each stage, a restart of simex (SIGTERM: its state file is saved; a SIGKILLed
simex loses state by design, see test_execution_venue_loss.py), private/public WS drops and
stalls, REST 5xx errors, held REST answers, rate-limit answers (10005), and malformed messages
on every process's control socket. Then it quiesces (kill switch) and checks: no order lost or
duplicated, fills counted once per order, journal positions and cash == simex, no process
crashed on its own or gave up (FATAL), health true at every sample.

``BITRADER_CHAOS_S`` sets the length of the fault phase (``make chaos``: 300 s; the default
run: 30 s), ``BITRADER_CHAOS_SEED`` the schedule. It prints a summary line (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from ipc.endpoints import expand
from procs.group import health
from procs.group.supervise import rpc
from tests.helpers.group_config import START_BALANCE
from tests.helpers.group_run import REST_POLL_S, Group, bitrader
from tests.helpers.group_venue import duplicates
from tests.helpers.simex_proc import http
from tests.integration.test_control_plane import MALFORMED, _raw

CHAOS_S = float(os.environ.get("BITRADER_CHAOS_S", "30"))
SEED = int(os.environ.get("BITRADER_CHAOS_SEED", "0")) or random.SystemRandom().randrange(1 << 30)
STAGES = ("ingest", "features", "inference", "execution", "capture")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("group"),
    pytest.mark.timeout(int(CHAOS_S) + 400),
]


def _simex_post(g: Group, path: str, body: dict[str, Any]) -> None:
    status, out = http("POST", g.cfg.control_url + path, json.dumps(body).encode())
    assert status == 200, (path, body, out)


class Chaos:
    def __init__(self, g: Group, rng: random.Random) -> None:
        self.g = g
        self.rng = rng
        self.done: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()
        self.health_samples: Counter[int] = Counter()
        self.seen_orders: dict[str, dict[str, Any]] = {}

    def kill(self, name: str) -> None:
        pid = int(self.g.info(name)["pid"])
        if pid:
            os.kill(pid, signal.SIGKILL)
            self.kills[name] += 1

    def restart_simex(self) -> None:
        # simex's state file keeps open orders and positions, not its order history: remember
        # the orders it knows now, to check their fills at the end
        for o in self.g.simex.all_orders():
            self.seen_orders[o["clientId"]] = o
        with rpc(self.g.run_dir) as proxy:
            proxy.supervisor.stopProcess("pipeline:simex", True)  # SIGTERM: it saves its state
            proxy.supervisor.startProcess("pipeline:simex", True)

    def timed_fault(self, changes: dict[str, Any], seconds: float) -> None:
        _simex_post(self.g, "/_simex/faults", changes)
        time.sleep(seconds)  # the fault's duration on the venue: what the group lives through
        _simex_post(self.g, "/_simex/faults/reset", {})

    def fuzz_control(self) -> None:
        for proc in self.g.cfg.metrics_ports:
            ctl = expand(
                self.g.cfg.data[proc]["runtime"]["control_endpoint"],
                run_dir=self.g.run_dir,
                ns=self.g.ns,
            )
            for _, frames in MALFORMED:
                _raw(ctl, frames, timeout_s=2.0)  # None when the process is restarting

    def one(self) -> str:
        r = self.rng
        kind = r.choice(
            ["kill", "kill", "simex", "drop", "stall", "rest5xx", "held", "ratelimit", "fuzz"]
        )
        if kind == "kill":
            name = r.choice(STAGES)
            self.kill(name)
            kind = f"kill:{name}"
        elif kind == "simex":
            self.restart_simex()
        elif kind == "drop":
            scope = r.choice(["all", "public", "private"])
            _simex_post(self.g, "/_simex/ws/drop", {"scope": scope})
            kind = f"drop:{scope}"
        elif kind == "stall":
            scope = r.choice(["public", "private"])
            _simex_post(self.g, "/_simex/faults", {"ws_stall_s": 3.0, "ws_stall_scope": scope})
            kind = f"stall:{scope}"
        elif kind == "rest5xx":
            self.timed_fault({"rest_error_rate": 0.3}, 3.0)
        elif kind == "held":
            self.timed_fault({"ack_delay_s": 1.5}, 3.0)
        elif kind == "ratelimit":
            self.timed_fault({"rate_limit_rate": 0.5}, 3.0)
        else:
            self.fuzz_control()
        self.done[kind] += 1
        return kind

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


def _no_crash_of_its_own(g: Group, kills: Counter[str]) -> None:
    log = (g.run_dir / "supervisord.log").read_text()
    assert "gave up" not in log, log[-3000:]  # FATAL: a crash loop
    for name in STAGES:
        sigkills = log.count(f"exited: {name} (terminated by SIGKILL; not expected)")
        assert sigkills == kills[name], (name, sigkills, kills[name])
        assert f"exited: {name} (exit status 1" not in log, log[-3000:]
    assert "exited: simex (exit status 1" not in log, log[-3000:]


def _fills_once(g: Group, seen: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Per order, the journal's fills add up to what simex filled: nothing counted twice.

    Orders simex knows at the end must match exactly. Orders it forgot across a restart (its
    history is not in its state file) were seen before it: what was filled then is a floor,
    the order's qty a ceiling. Positions and cash are compared exactly by the caller.
    """
    booked: Counter[str] = Counter()
    for cid, qty in g.journal.rows("SELECT client_id, qty FROM fills"):
        booked[cid] += Decimal(qty)  # type: ignore[assignment]
    final = {o["clientId"]: o for o in g.simex.all_orders()}
    for cid, o in final.items():
        assert booked.get(cid, Decimal(0)) == Decimal(o["tradeQty"]), (cid, o, booked.get(cid))
    for cid, o in seen.items():
        if cid not in final:
            got = booked.get(cid, Decimal(0))
            assert Decimal(o["tradeQty"]) <= got <= Decimal(o["qty"]), (cid, o, got)
    unknown = set(booked) - set(final) - set(seen)
    assert not unknown, f"fills of orders simex never showed: {unknown}"
    return sum(1 for q in booked.values() if q), int(g.journal.fills_count())


def test_chaos_trading_survives_random_faults_with_the_books_intact(make_group):
    rng = random.Random(SEED)
    print(f"chaos seed={SEED} duration_s={CHAOS_S}")
    g = make_group(
        {
            "simex": {"state_path": "{run_dir}/simex-state.json", "restore": True},
            # REST errors and held answers on purpose: the breaker must not halt the run
            "execution": {"breaker": {"rest_error_rate_max": 0.9}},
        }
    )
    g.wait_until(lambda: g.journal.fills_count() >= 1, 90, "a first fill")
    chaos = Chaos(g, rng)
    t_end = time.monotonic() + CHAOS_S
    while time.monotonic() < t_end:
        chaos.one()
        time.sleep(rng.uniform(0.5, 2.5))  # faults arrive at random moments, not on a beat
        chaos.sample_health()

    _simex_post(g, "/_simex/faults/reset", {})
    g.wait_until(g.all_running, 90, "every program RUNNING after the chaos")
    g.wait_until(
        lambda: g.exec_state() in ("active", "reducing", "halted"), 90, "execution reconciled"
    )
    sent_after_chaos = int(g.health("execution")["orders_sent_total"])
    res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "chaos end")
    assert res.returncode == 0, res.stdout + res.stderr
    g.wait_until(lambda: g.exec_state() == "killed", 30, "execution killed")
    g.wait_until(lambda: g.simex.open_orders() == [], 30, "no open order at simex", REST_POLL_S)
    g.wait_until(lambda: g.health("execution").get("open_orders") == 0, 30, "none open here")
    g.wait_until(
        lambda: g.journal.positions() == g.simex.positions(), 30, "journal == simex", REST_POLL_S
    )
    killed = g.wait_until(
        lambda: (
            (r := bitrader("health", "--run-dir", str(g.run_dir))).returncode == health.EXIT_KILLED
            and r
        ),
        30,
        "health exits 13 (killed)",
    )

    ids = g.journal.client_ids()
    venue_ids = [o["clientId"] for o in g.simex.all_orders()]
    assert duplicates(ids) == {}
    assert duplicates(venue_ids) == {}
    assert set(venue_ids) <= set(ids), "simex has orders the journal lacks"
    wallet, cash = g.simex.wallet(), g.journal.cash()
    assert abs(wallet - (Decimal(START_BALANCE) + cash)) <= Decimal("0.01"), (wallet, cash)
    orders_filled, fills = _fills_once(g, chaos.seen_orders)
    _no_crash_of_its_own(g, chaos.kills)
    _, status = http("GET", g.cfg.control_url + "/_simex/status")
    assert status["rate_disconnects_total"] == 0  # no WS send-rate breach by our clients
    print(
        f"chaos summary seed={SEED} duration_s={CHAOS_S:.0f} faults={sum(chaos.done.values())} "
        f"{dict(sorted(chaos.done.items()))} sigkills={sum(chaos.kills.values())} "
        f"orders={len(ids)} venue_orders={len(venue_ids)} orders_filled={orders_filled} "
        f"fills={fills} health_samples={dict(sorted(chaos.health_samples.items()))} "
        f"sent_after_chaos={sent_after_chaos} lost=0 duplicated=0 "
        f"health_killed_exit={killed.returncode} injected={status['faults_injected_total']}"
    )
