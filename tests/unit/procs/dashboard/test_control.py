"""The dashboard's writes: the kill switch (the CLI's store) and the hash-chained audit log."""

from __future__ import annotations

import json

from procs.control_cli import main_kill_switch as killswitch_cli
from procs.dashboard.control import AuditLog, KillSwitchControl, verify_audit
from procs.execution.killswitch import FileStore


def test_kill_switch_is_written_where_and_as_the_cli_reads_it(tmp_path, capsys):
    path = tmp_path / "ks.json"

    state = KillSwitchControl(path).set(True, "too much loss", "dashboard:op")
    killswitch_cli(["status", "--file", str(path), "--run-dir", str(tmp_path / "no-group")])

    assert state.on
    assert FileStore(path).read() == state
    assert capsys.readouterr().out.startswith(f"file {path}: on ")


def test_kill_switch_off_after_on(tmp_path):
    ctl = KillSwitchControl(tmp_path / "ks.json")
    ctl.set(True, "x", "dashboard:op")

    state = ctl.set(False, "cleared", "dashboard:op")

    assert not state.on
    assert state.reason == "cleared"


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
