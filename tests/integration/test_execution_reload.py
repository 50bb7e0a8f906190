"""SIGHUP to a running execution process: risk limits reload, a bad file is refused, both
journaled (audited rows), and the process keeps running and its journal keeps verifying."""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from tests.conftest import unique_ns
from tests.helpers.execution_proc import ExecRig
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import run_simex, write_config
from tests.integration.test_audit_cli import bitrader

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(tmp_path_factory, run_dir):
    with run_simex(write_config(tmp_path_factory.mktemp("sx"))) as sx:
        r = ExecRig(run_dir, unique_ns("r"), sx, 1, "[execution.risk]\nmax_open_orders = 20\n")
        r.mode = "paper"
        try:
            yield r
        finally:
            r.close()


def events(rig: ExecRig, kind: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{rig.journal_path}?mode=ro", uri=True)) as c:
        rows = c.execute("SELECT body FROM audit WHERE kind=? ORDER BY id", (kind,)).fetchall()
    return [json.loads(b) for (b,) in rows]


def test_execution_sighup_reloads_limits_and_refuses_a_bad_file(rig):
    rig.start()
    eventually(lambda: rig.health()["state"] == "active", timeout_s=15)
    assert rig.proc is not None

    rig.extra_toml = "[execution.risk]\nmax_open_orders = 5\n"
    rig.write_config()
    rig.proc.send_signal(signal.SIGHUP)
    applied = eventually(lambda: events(rig, "reload"), timeout_s=5)
    rig.extra_toml = "[execution.risk]\nmax_open_orders = -1\n"
    rig.write_config()
    rig.proc.send_signal(signal.SIGHUP)
    refused = eventually(lambda: events(rig, "reload_refused"), timeout_s=5)

    assert applied[0]["changes"] == {"risk": {"max_open_orders": [20, 5]}}
    assert "max_open_orders" in refused[0]["error"]
    assert len(events(rig, "reload")) == 1  # the bad file changed nothing
    assert rig.health()["state"] == "active"
    assert rig.stop() == 0
    key = ["--key-file", str(rig.journal_path.parent / "audit.key")]
    verified = bitrader("audit", "verify", str(rig.journal_path), *key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
