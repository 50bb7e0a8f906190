"""``Dashboard`` with hand-written fakes for its seams: events wake the journal read, the kill
switch is written and audited, a silent execution shows as not answering."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec

from ipc.orders import PositionEvent
from procs.dashboard.app import Access
from procs.dashboard.auth import Allowlist, LoginLimiter, Password, Sessions
from procs.dashboard.config import DashboardConfig
from procs.dashboard.service import Dashboard
from procs.dashboard.view import JournalRows, Limits, View

SLOW_S = 30.0  # poll periods far beyond the test: only wake-ups can make it read


class FakeJournal:
    def __init__(self) -> None:
        self.errors_total = 0
        self.pending = JournalRows()
        self.reads = 0

    def read(self) -> JournalRows:
        self.reads += 1
        out, self.pending = self.pending, JournalRows()
        return out

    def close(self) -> None:
        pass


class FakeHealth:
    def __init__(self, reply: dict[str, Any] | None) -> None:
        self.reply = reply

    def execution(self) -> dict[str, Any]:
        if self.reply is None:
            raise TimeoutError("no answer from execution")
        return self.reply

    def group(self) -> list[dict[str, Any]]:
        return [{"name": "execution", "state": "RUNNING", "healthy": True, "problems": []}]


class FakeFeed:
    def __init__(self, deliver) -> None:
        self.deliver = deliver
        self.received_total = 0

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeSwitch:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, str, str]] = []

    def set(self, on: bool, reason: str, who: str) -> dict[str, Any]:
        self.calls.append((on, reason, who))
        return {
            "on": on, "reason": reason, "source": who, "ts_ns": 1, "written": True,
            "write_error": "", "acknowledged": True, "persisted": True, "error": "",
            "execution_state": "killed", "open_orders": 0,
        }  # fmt: skip


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.records.append({"kind": kind, **fields})
        return self.records[-1]


class FakeForward:
    def __init__(self) -> None:
        self.counters = {"audit_forwarded_total": 0, "audit_undelivered_total": 3}
        self.submitted: list[dict[str, Any]] = []
        self.running = False

    @property
    def undelivered(self) -> int:
        return len(self.submitted)

    def start(self) -> None:
        self.running = True

    def submit(self, record: dict[str, Any]) -> None:
        self.submitted.append(record)

    def close(self) -> None:
        self.running = False


def _dashboard(health_reply: dict[str, Any] | None):
    cfg = msgspec.convert(
        {"journal_poll_s": SLOW_S, "execution_poll_s": SLOW_S, "health_poll_s": SLOW_S},
        DashboardConfig,
    )
    view = View(
        Limits({"BTCUSDT": 1000.0}, {"BTCUSDT": None}, 3000.0), chart_points=5, recent_rows=5
    )
    access = Access(Password("pw"), Sessions(60), LoginLimiter(5, 60), Allowlist([]))
    feeds: list[FakeFeed] = []
    parts = {
        "journal": FakeJournal(),
        "switch": FakeSwitch(),
        "audit": FakeAudit(),
        "forward": FakeForward(),
    }

    def make_feed(deliver):
        feeds.append(FakeFeed(deliver))
        return feeds[-1]

    dash = Dashboard(
        cfg,
        view=view,
        access=access,
        journal=parts["journal"],
        health=FakeHealth(health_reply),
        make_feed=make_feed,
        switch=parts["switch"],
        read_switch=lambda: {"on": False, "reason": "", "ts_ns": 0, "source": ""},
        audit=parts["audit"],
        forward=parts["forward"],
    )
    return dash, feeds, parts


async def _until(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_an_event_wakes_the_journal_read_and_marks_positions():
    async def scenario():
        dash, feeds, parts = _dashboard({"state": "running", "counters": {"state": "active"}})
        dash.start()
        await _until(lambda: parts["journal"].reads >= 1)
        reads = parts["journal"].reads
        parts["journal"].pending = JournalRows(fills=[{"fill_id": "f1", "ts_ns": 1}])
        ev = PositionEvent(
            seq=1, ts_ns=1, symbol="BTCUSDT", position_side="BOTH", qty=Decimal("0.01"),
            avg_price=Decimal(1), realised=Decimal(0), unrealised=Decimal(0), fees=Decimal(0),
            funding=Decimal(0), mark=Decimal(60000),
        )  # fmt: skip
        changed = dash.changed
        feeds[0].deliver(ev)
        await _until(lambda: dash.view.snapshot(0)["fills_seen"] == 1)
        snap = dash.view.snapshot(0)
        await dash.close()
        return reads, parts["journal"].reads, changed.is_set(), snap

    before, after, notified, snap = asyncio.run(scenario())

    assert after > before
    assert notified
    assert snap["positions"][0]["mark"] == 60000.0
    assert snap["execution"]["state"] == "active"


def test_kill_switch_is_written_audited_and_reported():
    async def scenario():
        dash, _, parts = _dashboard({"state": "running", "counters": {}})
        dash.start()
        result = await dash.set_killswitch(True, "drawdown", "operator@127.0.0.1")
        await dash.close()
        return result, parts

    result, parts = asyncio.run(scenario())

    assert parts["switch"].calls == [(True, "drawdown", "dashboard:operator@127.0.0.1")]
    assert parts["audit"].records == [
        {
            "kind": "killswitch",
            "on": True,
            "reason": "drawdown",
            "user": "operator@127.0.0.1",
            "acknowledged": True,
            "error": "",
        }
    ]
    assert result["on"] is True
    assert result["source"] == "dashboard:operator@127.0.0.1"


def test_silent_execution_shows_as_not_answering():
    async def scenario():
        dash, _, _ = _dashboard(None)
        dash.start()
        await _until(lambda: dash.counters["poll_errors_total"] >= 1)
        snap = dash.view.snapshot(0)
        await dash.close()
        return snap

    snap = asyncio.run(scenario())

    assert snap["execution"]["ok"] is False
    assert "no answer" in snap["execution"]["error"]


def test_each_audit_record_is_handed_on_and_what_waits_shows_in_health():
    async def scenario():
        dash, _, parts = _dashboard({"state": "running", "counters": {}})
        dash.start()
        running = parts["forward"].running
        await dash.audit("login_ok", address="127.0.0.1", user="operator")
        health = dash.health()
        await dash.close()
        return running, health, parts

    running, health, parts = asyncio.run(scenario())

    assert running
    assert not parts["forward"].running  # closed with the dashboard
    assert parts["forward"].submitted == parts["audit"].records
    assert parts["audit"].records[0]["kind"] == "login_ok"
    assert (health["audit_undelivered"], health["audit_undelivered_total"]) == (1, 3)
