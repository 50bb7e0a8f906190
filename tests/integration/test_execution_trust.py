"""A running execution process: SIGHUP reloads risk limits (a bad file is refused), a stop
needs credentials; everything accepted or refused is journaled in the audited chain."""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from ipc.messages import ENCODER, RESPONSE_DECODER, ControlRequest, ControlResponse, decode
from ipc.sockets import request
from procs._auth import sign, signed_args
from procs.group.control import ask as control_ask
from procs.group.health import query_health
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


def await_events(rig: ExecRig, kind: str) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = eventually(lambda: events(rig, kind), timeout_s=10)
    except AssertionError as exc:
        raise AssertionError(f"no {kind} row: {exc}\n{rig.log()[-3000:]}") from None
    return found


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
    applied = await_events(rig, "reload")
    rig.extra_toml = "[execution.risk]\nmax_open_orders = -1\n"
    rig.write_config()
    rig.proc.send_signal(signal.SIGHUP)
    refused = await_events(rig, "reload_refused")

    assert applied[0]["changes"] == {"risk": {"max_open_orders": [20, 5]}}
    assert "max_open_orders" in refused[0]["error"]
    assert len(events(rig, "reload")) == 1  # the bad file changed nothing
    assert rig.health()["state"] == "active"
    assert rig.stop() == 0
    key = ["--key-file", str(rig.journal_path.parent / "audit.key")]
    verified = bitrader("audit", "verify", str(rig.journal_path), *key)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def ask(rig: ExecRig, cmd: str, args: dict[str, str]) -> ControlResponse:
    reply = request(rig.ctl, ENCODER.encode(ControlRequest(cmd=cmd, args=args)), 5.0)
    assert reply is not None, rig.log()
    return decode(RESPONSE_DECODER, reply)


def test_execution_stop_needs_credentials_and_is_journaled(rig):
    rig.start()
    eventually(lambda: rig.health()["state"] == "active", timeout_s=15)
    token = rig.directory / "control.token"

    refused = ask(rig, "stop", {"reason": "no credentials"})
    forged = ask(rig, "stop", sign(bytes(32), "stop", {}))
    health = query_health(rig.ctl, 2.0)
    accepted = ask(rig, "stop", signed_args(token, "stop", {"reason": "operator"}))

    assert (refused.ok, forged.ok) == (False, False)
    assert health["control_unauthorized_total"] == 2
    assert accepted.ok
    assert rig.stop() == 0  # it was already stopping: exit 0, asked to stop
    [row] = events(rig, "control")
    assert row == {"cmd": "stop", "args": {"reason": "operator"}, "ok": True, "error": ""}


def test_execution_periodic_backups_verify_on_their_own(rig):
    rig.extra_toml += "[execution.journal]\nbackup_interval_s = 0.3\nbackup_keep = 2\n"
    rig.start()
    eventually(lambda: rig.health()["state"] == "active", timeout_s=15)
    backups = rig.directory / "backups"

    found = eventually(lambda: len(list(backups.glob("journal-*.sqlite"))) >= 2, timeout_s=10)
    assert rig.stop() == 0

    kept = sorted(backups.glob("journal-*.sqlite"))
    assert found
    assert len(kept) == 2  # backup_keep
    key = ["--key-file", str(rig.journal_path.parent / "audit.key")]
    verified = bitrader("audit", "verify", str(kept[-1]), *key)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept)


def test_execution_reload_command_is_signed_and_journaled(rig):
    rig.start()
    eventually(lambda: rig.health()["state"] == "active", timeout_s=15)
    rig.extra_toml = "[execution.risk]\nmax_open_orders = 7\n"
    rig.write_config()

    unsigned = ask(rig, "reload", {})
    signed = control_ask(rig.ctl, "reload", {}, 5.0)  # signs with control.token beside the socket

    assert not unsigned.ok
    assert signed is not None
    assert (signed.ok, signed.data["changed"]) == (True, "risk.max_open_orders")
    assert [r["changes"] for r in events(rig, "reload")] == [{"risk": {"max_open_orders": [20, 7]}}]
    assert [r["cmd"] for r in events(rig, "control")] == ["reload"]
    assert rig.stop() == 0
