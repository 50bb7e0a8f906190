"""The dashboard in a real browser (headless Chromium via selenium), the process alone.

The dashboard runs as its own process against a run directory the test fills: execution's
journal is written with execution's own ``Journal`` class, so what the page shows went through
SQLite, the dashboard's read-only reader, its server-sent events and the browser's rendering.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By

from procs.trading.breaker import BreakerState, BreakerTransition, BreakerTrigger
from procs.trading.journal import Journal
from procs.trading.model import Fill, Side
from tests.helpers.browser import chromium, login, text
from tests.helpers.dashboard_run import PASSWORD, running_dashboard
from tests.helpers.poll import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# first time (browser clock, ms) each fill row appeared in the page, by fill id
WATCH_FILLS = """
window.__seen = {};
const note = () => document.querySelectorAll('#fills tr[data-fill-id]').forEach((tr) => {
  if (!(tr.dataset.fillId in window.__seen)) window.__seen[tr.dataset.fillId] = Date.now();
});
new MutationObserver(note).observe(
  document.getElementById('fills'), {childList: true, subtree: true});
note();
"""


def _live(driver) -> bool:
    return text(driver, "live-text") == "live"


def test_browser_wrong_password_is_refused_then_the_right_one_loads_the_page(run_dir):
    with running_dashboard(run_dir) as d, chromium() as driver:
        login(driver, d.url, "not the password")
        # the click may return before the refused login's page has replaced the form (its
        # #error is there, empty, on the form): wait for the answer's text
        error = eventually(lambda: text(driver, "error"), timeout_s=10)
        cookies = driver.get_cookies()
        controls_before = driver.find_elements(By.ID, "ks-on")
        login(driver, d.url, PASSWORD)
        eventually(lambda: _live(driver), timeout_s=10)
        title = driver.title
        button = text(driver, "ks-on")
        kinds = [r["kind"] for r in d.audit()]

    assert error == "Wrong password."
    assert cookies == []
    assert controls_before == []
    assert title == "bitrader risk dashboard"
    assert button == "STOP TRADING"
    assert kinds == ["login_failed", "login_ok"]


def test_browser_from_an_address_outside_the_allowlist_is_refused(run_dir):
    with (
        running_dashboard(run_dir, overrides={"dashboard": {"allowlist": ["127.0.0.2/32"]}}) as d,
        chromium() as driver,
    ):
        driver.get(d.url)
        page = driver.page_source
        fields = driver.find_elements(By.ID, "password")

    assert "403: address not allowed" in page
    assert fields == []


def test_browser_shows_a_journaled_fill_and_breaker_change_within_a_second(run_dir):
    journal = Journal.open(run_dir / "execution.sqlite")
    try:
        with running_dashboard(run_dir) as d, chromium() as driver:
            login(driver, d.url, PASSWORD)
            eventually(lambda: _live(driver), timeout_s=10)
            driver.execute_script(WATCH_FILLS)
            t_fill = time.time()
            journal.record_fill(
                Fill(
                    fill_id="f-browser-1",
                    client_id="br-1-1",
                    order_id="o-1",
                    symbol="BTCUSDT",
                    side=Side.BUY,
                    qty=Decimal("0.002"),
                    price=Decimal("60000.5"),
                    fee=Decimal("0.072"),
                    ts_ns=time.time_ns(),
                )
            )
            seen_ms = eventually(
                lambda: driver.execute_script("return window.__seen['f-browser-1']"), timeout_s=5
            )
            journal.record_breaker(
                BreakerTransition(
                    old=BreakerState.ACTIVE,
                    new=BreakerState.REDUCING,
                    trigger=BreakerTrigger.STALE_DATA,
                    detail="BTCUSDT book 6.1 s old",
                    ts_ns=time.time_ns(),
                )
            )
            breaker_row = eventually(
                lambda: "BTCUSDT book 6.1 s old" in text(driver, "breaker"), timeout_s=5
            )
            fills_text = text(driver, "fills")
    finally:
        journal.close()

    delay_s = seen_ms / 1000 - t_fill
    print(f"fill journaled -> shown in the browser: {delay_s * 1000:.0f} ms")
    assert delay_s < 1.0
    assert breaker_row
    assert "60,000.50" in fills_text
    assert "BUY" in fills_text
