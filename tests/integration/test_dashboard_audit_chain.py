"""The dashboard's logins, kill-switch clicks and logout land in execution's keyed audit chain.

A real dashboard process and a real execution process (paper, against simex) share one run
directory and its control token. Records made while execution is down wait in the dashboard's
log marked ``undelivered`` (counted in its health) and arrive, in order, once it is up;
``bitrader audit verify`` then checks the chain they are in. An unsigned ``audit`` request is
refused and writes nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from ipc.messages import ENCODER, RESPONSE_DECODER, ControlRequest, decode
from ipc.sockets import request
from procs.dashboard.control import verify_audit
from procs.group.health import query_health
from tests.conftest import unique_ns
from tests.helpers.dashboard_run import DashRun, running_dashboard
from tests.helpers.execution_proc import ExecRig
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import run_simex, write_config
from tests.integration.test_audit_cli import bitrader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def records(rig: ExecRig) -> list[dict[str, Any]]:
    if not rig.journal_path.exists():
        return []
    with closing(sqlite3.connect(f"file:{rig.journal_path}?mode=ro", uri=True)) as c:
        rows = c.execute("SELECT body FROM audit WHERE kind='audit_record' ORDER BY id")
        return [json.loads(b) for (b,) in rows]


def dash_counters(d: DashRun) -> dict[str, Any]:
    reply: dict[str, Any] = query_health(f"ipc://{d.run_dir}/dashboard.ctl", 2.0)["counters"]
    return reply


def test_dashboard_actions_are_in_executions_verified_audit_chain(tmp_path_factory, run_dir):
    paths = {"journal_path": "{run_dir}/journal.sqlite", "killswitch_path": "{run_dir}/ks.json"}
    overrides = {"dashboard": paths}
    with (
        run_simex(write_config(tmp_path_factory.mktemp("sx"))) as sx,
        running_dashboard(run_dir, overrides=overrides) as d,
    ):
        rig = ExecRig(run_dir, unique_ns("r"), sx, 1)
        rig.mode = "paper"
        try:
            # execution is down: the failed login waits, marked, counted
            assert d.login("wrong password")[0] == 401
            eventually(lambda: dash_counters(d)["audit_undelivered_total"] == 1, timeout_s=10)
            assert dash_counters(d)["audit_undelivered"] == 1
            rig.start()
            eventually(lambda: rig.health()["state"] == "active", timeout_s=20)

            status, set_cookie = d.login()
            cookie = set_cookie.split(";", 1)[0]
            _, _, page = d.request("GET", "/", headers={"Cookie": cookie})
            m = re.search(rb'name="csrf-token" content="([^"]+)"', page)
            assert m, page[:300]
            on = json.dumps({"on": True, "reason": "audit test"}).encode()
            headers = {"Cookie": cookie, "Content-Type": "application/json"}
            ks, _, _ = d.request(
                "POST", "/api/kill-switch", body=on,
                headers={**headers, "X-CSRF-Token": m.group(1).decode()},
            )  # fmt: skip
            d.request("POST", "/logout", headers={**headers, "X-CSRF-Token": m.group(1).decode()})
            got = eventually(lambda: len(records(rig)) >= 4 and records(rig), timeout_s=15)
            # the forwarder counts a record once execution's answer is back, after the row
            # ``records`` read was journaled (read once, it was 3 of 4 in a full-suite run)
            counters = eventually(
                lambda: (
                    (c := dash_counters(d))["audit_undelivered"] == 0
                    and c["audit_forwarded_total"] >= 4
                    and c
                ),
                timeout_s=10,
            )

            unsigned = request(
                rig.ctl,
                ENCODER.encode(
                    ControlRequest(cmd="audit", args={"kind": "login_ok", "source": "dashboard"})
                ),
                5.0,
            )
            assert unsigned is not None
            refused = decode(RESPONSE_DECODER, unsigned)
            after = records(rig)
            assert rig.stop() == 0
        finally:
            rig.close()
        local = d.audit(marks=True)

    assert (status, ks) == (303, 200)
    kinds = [r["kind"] for r in got]
    assert kinds == ["login_failed", "login_ok", "killswitch", "logout"], got
    assert all(r["source"] == "dashboard" for r in got)
    assert got[1]["fields"]["user"] == got[2]["fields"]["user"]
    assert (got[2]["fields"]["on"], got[2]["fields"]["acknowledged"]) == (True, True)
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs)
    # the local log says which record waited and that it arrived later
    first = next(r for r in local if r["kind"] == "login_failed")
    marks = [(r["kind"], r["ref"]) for r in local if r["kind"].startswith("audit_")]
    assert marks == [("audit_undelivered", first["seq"]), ("audit_delivered", first["seq"])]
    assert verify_audit(d.audit_path)[0]
    assert counters["audit_forwarded_total"] == 4
    # an unsigned request is refused before it can write anything
    assert (refused.ok, refused.error.split(":")[0]) == (False, "unauthorized")
    assert len(after) == 4
    key = ["--key-file", str(rig.journal_path.parent / "audit.key")]
    verified = bitrader("audit", "verify", str(rig.journal_path), *key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
