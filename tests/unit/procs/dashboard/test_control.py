"""The dashboard's writes: the kill switch (the CLI's store) and the hash-chained audit log."""

from __future__ import annotations

import json

from procs.dashboard.control import AuditLog, KillSwitchControl, verify_audit
from procs.trading.killswitch import FileStore


def test_kill_switch_without_execution_is_written_but_not_acknowledged(tmp_path):
    path = tmp_path / "ks.json"
    ctl = KillSwitchControl(path, f"ipc://{tmp_path}/nobody.ctl", timeout_s=0.2)

    result = ctl.set(True, "too much loss", "dashboard:op")

    state = FileStore(path).read()
    assert (state.on, state.reason, state.source) == (True, "too much loss", "dashboard:op")
    assert result["written"]
    assert not result["acknowledged"]
    assert "did not answer" in result["error"]


def test_kill_switch_source_is_cut_to_what_execution_keeps(tmp_path):
    ctl = KillSwitchControl(tmp_path / "ks.json", f"ipc://{tmp_path}/nobody.ctl", timeout_s=0.1)

    result = ctl.set(False, "cleared", "dashboard:operator@2001:db8:1234:5678::abcd")

    assert len(result["source"]) == 32
    assert not FileStore(tmp_path / "ks.json").read().on


def test_audit_log_chains_across_reopen_and_verifies(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append("login_ok", address="127.0.0.1")

    AuditLog(path).append("killswitch", on=True, user="op")

    assert verify_audit(path) == (True, 2)
    assert (path.stat().st_mode & 0o777) == 0o600


def test_audit_log_edit_is_detected(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for kind in ("login_failed", "login_ok", "killswitch"):
        log.append(kind, address="127.0.0.1")
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["kind"] = "login_failed"
    lines[1] = json.dumps(record, sort_keys=True)

    path.write_text("\n".join(lines) + "\n")

    assert verify_audit(path) == (False, 1)
