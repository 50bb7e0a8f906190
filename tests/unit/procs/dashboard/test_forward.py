"""``AuditForwarder`` with a scripted execution: records go over in order; a silent execution
leaves them marked ``undelivered`` (counted) and they land later, still in order; an invalid one
is marked ``rejected``; what a stopped dashboard left undelivered goes first next time; a read-
ahead of one record still delivers everything, in order."""

from __future__ import annotations

import json
import threading
from typing import Any

from ipc.messages import ControlResponse
from procs.dashboard.control import AuditLog, verify_audit
from procs.dashboard.forward import AuditForwarder, delivered_path
from tests.helpers.poll import eventually


class Execution:
    """Answers ``audit`` requests: silently (``up`` False), ok, or refusing some kinds."""

    def __init__(self) -> None:
        self.up = False
        self.refuse: set[str] = set()
        self.taken: list[dict[str, str]] = []
        self.asked = 0
        self._lock = threading.Lock()

    def ask(self, cmd: str, args: dict[str, str], timeout_s: float) -> ControlResponse | None:
        with self._lock:
            self.asked += 1
            assert cmd == "audit"
            if not self.up:
                return None
            if args["kind"] in self.refuse:
                return ControlResponse(ok=False, error="audit: unknown kind")
            self.taken.append(args)
            return ControlResponse(ok=True, data={"audit_id": len(self.taken)})


def lines(log: AuditLog) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.path.read_text().splitlines()]


def test_records_wait_while_execution_is_silent_then_land_in_order(tmp_path):
    log, ex = AuditLog(tmp_path / "audit.jsonl"), Execution()
    fwd = AuditForwarder(log, ex.ask, timeout_s=0.1, retry_s=0.05)
    fwd.start()
    try:
        first = log.append("login_failed", address="10.0.0.1")
        fwd.submit(first)
        second = log.append("login_ok", address="10.0.0.1", user="operator")
        fwd.submit(second)
        eventually(lambda: ex.asked >= 3)  # retried while silent
        assert fwd.undelivered == 2
        assert fwd.counters["audit_undelivered_total"] == 1  # the head, marked once
        ex.up = True
        eventually(lambda: fwd.undelivered == 0)
    finally:
        fwd.close()

    assert [a["kind"] for a in ex.taken] == ["login_failed", "login_ok"]
    assert [a["seq"] for a in ex.taken] == [str(first["seq"]), str(second["seq"])]
    assert json.loads(ex.taken[1]["fields"]) == {"address": "10.0.0.1", "user": "operator"}
    kinds = [(r["kind"], r.get("ref")) for r in lines(log)]
    assert ("audit_undelivered", first["seq"]) in kinds
    assert ("audit_delivered", first["seq"]) in kinds
    assert fwd.counters["audit_forwarded_total"] == 2
    assert verify_audit(log.path) == (True, len(kinds))
    assert delivered_path(log.path).read_text() == f"{second['seq']}\n"


def test_an_invalid_record_is_marked_rejected_and_does_not_block_the_rest(tmp_path):
    log, ex = AuditLog(tmp_path / "audit.jsonl"), Execution()
    ex.up, ex.refuse = True, {"bogus"}
    fwd = AuditForwarder(log, ex.ask, timeout_s=0.1, retry_s=0.05)
    fwd.start()
    try:
        bogus = log.append("bogus")
        fwd.submit(bogus)
        fwd.submit(log.append("logout", user="operator"))
        eventually(lambda: fwd.undelivered == 0 and len(ex.taken) == 1)
    finally:
        fwd.close()

    assert fwd.counters["audit_rejected_total"] == 1
    marks = [(r["ref"], r["error"]) for r in lines(log) if r["kind"] == "audit_rejected"]
    assert marks == [(bogus["seq"], "audit: unknown kind")]
    assert ex.taken[0]["kind"] == "logout"


def test_what_a_stopped_dashboard_left_undelivered_is_sent_first_next_time(tmp_path):
    path = tmp_path / "audit.jsonl"
    log, ex = AuditLog(path), Execution()
    ex.up = True
    fwd = AuditForwarder(log, ex.ask, timeout_s=0.05, retry_s=0.05)
    fwd.start()
    fwd.submit(log.append("login_ok", user="operator"))
    eventually(lambda: fwd.undelivered == 0)
    ex.up = False
    fwd.submit(log.append("killswitch", on=True, user="operator", acknowledged=False))
    eventually(lambda: fwd.counters["audit_undelivered_total"] == 1)
    fwd.close()
    log.append("login_failed", address="10.0.0.2")  # written while nothing forwarded

    again, ex.up = AuditLog(path), True
    fwd2 = AuditForwarder(again, ex.ask, timeout_s=0.1, retry_s=0.05)
    left = fwd2.undelivered
    fwd2.submit(again.append("logout", user="operator"))
    fwd2.start()
    try:
        eventually(lambda: fwd2.undelivered == 0)
    finally:
        fwd2.close()

    assert left == 2
    assert [a["kind"] for a in ex.taken] == ["login_ok", "killswitch", "login_failed", "logout"]


def test_a_one_record_read_ahead_still_delivers_all_in_order(tmp_path):
    log, ex = AuditLog(tmp_path / "audit.jsonl"), Execution()
    for i in range(5):
        log.append("login_failed", address=f"10.0.0.{i}")
    ex.up = True
    fwd = AuditForwarder(log, ex.ask, timeout_s=0.1, retry_s=0.05, batch=1)
    fwd.start()
    try:
        fwd.submit(log.append("logout", user="operator"))
        eventually(lambda: fwd.undelivered == 0)
    finally:
        fwd.close()

    assert [json.loads(a["fields"]).get("address") for a in ex.taken] == [
        *(f"10.0.0.{i}" for i in range(5)),
        None,
    ]
    assert [int(a["seq"]) for a in ex.taken] == list(range(1, 7))
