"""The dashboard in the whole group under supervisord against simex, driven in headless Chromium.

One group, one test, in order: log in; a fill execution journals shows up in the page within a
second; the page's kill-switch button stops trading (execution acknowledges over its control
socket and goes ``killed``, nothing more sent while signals flow) and cancels the orders resting
at simex; the page shows the acknowledgement; the action is in execution's journal and in the
dashboard's audit log, whose records reach execution's keyed audit chain.
"""

from __future__ import annotations

import json
import time

import pytest
from selenium.webdriver.common.by import By

from procs.dashboard.control import verify_audit
from procs.trading.killswitch import FileStore
from tests.helpers.browser import chromium, login, text
from tests.helpers.group_run import PROGRAMS, REST_POLL_S, Group
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(300)]

PASSWORD = "e2e dashboard password"
JOURNAL_POLL_S = 0.02  # how often the test itself looks for a new fill in the journal
WINDOW_SIGNALS = 300  # signals over which nothing may be sent once the switch is on
WINDOW_REFUSALS = 3

WATCH_FILLS = """
window.__seen = {};
const note = () => document.querySelectorAll('#fills tr[data-fill-id]').forEach((tr) => {
  if (!(tr.dataset.fillId in window.__seen)) window.__seen[tr.dataset.fillId] = Date.now();
});
new MutationObserver(note).observe(
  document.getElementById('fills'), {childList: true, subtree: true});
note();
"""


def _fill_ids(g: Group) -> set[str]:
    return {r[0] for r in g.journal.rows("SELECT fill_id FROM fills")}


def _next_fill(g: Group, known: set[str]) -> tuple[str, float]:
    """Wait for a fill not in ``known``; return it and when the test first saw it journaled."""

    def new() -> tuple[str, float] | None:
        fresh = _fill_ids(g) - known
        return (sorted(fresh)[0], time.time()) if fresh else None

    found: tuple[str, float] = g.wait_until(new, 120, "a new fill", interval_s=JOURNAL_POLL_S)
    return found


def _page(driver) -> str:
    """What the browser shows and logged: for failure messages."""
    body = driver.find_element(By.TAG_NAME, "body").text
    logs = "\n".join(str(e) for e in driver.get_log("browser"))
    return f"--- page:\n{body[:3000]}\n--- browser console:\n{logs[:3000]}"


def _signals(g: Group) -> int:
    return int(g.counter("inference", "records_total") or 0)


def test_dashboard_page_shows_fills_live_and_its_kill_switch_stops_trading(make_group, monkeypatch):
    monkeypatch.setenv("BITRADER_DASHBOARD_PASSWORD", PASSWORD)  # the group inherits it
    g = make_group({})
    url = f"http://127.0.0.1:{g.cfg.data['dashboard']['port']}/"
    audit_path = g.run_dir / "dashboard-audit.jsonl"

    with chromium() as driver:
        login(driver, url, PASSWORD)
        try:
            eventually(lambda: text(driver, "exec-state") == "execution active", timeout_s=30)
        except AssertionError as exc:
            raise AssertionError(f"the page shows active: {exc}\n{_page(driver)}") from None
        health = g.wait_until(
            lambda: (t := text(driver, "health")).count("RUNNING") == len(PROGRAMS) and t,
            30,
            "the page lists every program RUNNING",
        )
        assert all(name in health for name in PROGRAMS), health
        driver.execute_script(WATCH_FILLS)
        fill_id, t_journaled = _next_fill(g, _fill_ids(g))
        seen_ms = g.wait_until(
            lambda: driver.execute_script(f"return window.__seen[{json.dumps(fill_id)}]"),
            5,
            "the fill in the page",
        )
        delay_s = seen_ms / 1000 - t_journaled
        print(f"fill journaled -> shown in the browser: {delay_s * 1000:.0f} ms")
        assert delay_s < 1.0, g.why("dashboard")

        resting = g.wait_until(g.simex.open_orders, 60, "a resting order at simex", REST_POLL_S)
        driver.find_element(By.ID, "ks-on").click()
        g.wait_until(
            lambda: "acknowledged by execution (state killed" in text(driver, "ks-result"),
            10,
            "the button's answer: execution's acknowledgement",
        )
        g.wait_until(lambda: g.exec_state() == "killed", 10, "execution killed by the button")
        g.wait_until(lambda: g.simex.open_orders() == [], 10, "resting cancelled", REST_POLL_S)
        g.wait_until(
            lambda: (
                text(driver, "ks-state") == "kill switch ON"
                and "execution acknowledged" in text(driver, "ks-detail")
            ),
            10,
            "the page shows execution's acknowledgement",
        )
        page_state = text(driver, "exec-state")

    closed = {o["clientId"]: o["status"] for o in g.simex.history_orders()}
    done = {"CANCELED", "PART_FILLED_CANCELED", "FILLED"}  # a fill may beat the cancel
    assert all(closed.get(o["clientId"]) in done for o in resting), (resting, closed)
    sent = int(g.health("execution")["orders_sent_total"])
    venue = len(g.simex.all_orders())
    sigs, refused = _signals(g), int(g.health("execution")["refusals_total"])
    g.wait_until(
        lambda: (
            _signals(g) >= sigs + WINDOW_SIGNALS
            and int(g.health("execution").get("refusals_total", 0)) >= refused + WINDOW_REFUSALS
        ),
        30,
        "signals flow and execution refuses orders",
    )
    assert int(g.health("execution")["orders_sent_total"]) == sent, g.why("execution")
    assert len(g.simex.all_orders()) == venue
    assert g.simex.open_orders() == []
    assert page_state == "execution killed"
    state = FileStore(g.cfg.killswitch_path).read()
    assert state.on
    assert state.source == "dashboard:operator@127.0.0.1"
    operator_rows = g.journal.rows(
        "SELECT detail FROM risk_events WHERE reason = 'operator.kill_switch'"
    )
    assert any("source=dashboard:operator@127.0.0.1" in r[0] for r in operator_rows), operator_rows
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    records = [r for r in lines if not r["kind"].startswith("audit_")]  # not delivery marks
    assert [r["kind"] for r in records] == ["login_ok", "killswitch"]
    assert (records[1]["on"], records[1]["acknowledged"]) == (True, True)
    assert verify_audit(audit_path) == (True, len(lines))
    sql = "SELECT body FROM audit WHERE kind = 'audit_record' ORDER BY id"
    eventually(lambda: len(g.journal.rows(sql)) >= 2, timeout_s=10)  # in execution's chain too
    chained = g.journal.rows(sql)
    assert [json.loads(b)["kind"] for (b,) in chained] == ["login_ok", "killswitch"]
    eventually(lambda: g.info("dashboard")["statename"] == "RUNNING", timeout_s=1)
