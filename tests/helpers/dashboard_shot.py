"""Screenshot the live dashboard for docs/: ``python -m tests.helpers.dashboard_shot URL PASSWORD
OUT.png [--wait-fills N] [--kill]``.

Logs in with headless Chromium, waits until the page is live and shows at least N fills (the
demo trading), and saves the whole page. ``--kill`` first presses STOP TRADING and waits for
execution's acknowledgement (for a picture of the engaged switch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.helpers.browser import chromium, login, screenshot, text
from tests.helpers.poll import eventually


def _fills(driver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#fills tr[data-fill-id]"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dashboard_shot")
    ap.add_argument("url")
    ap.add_argument("password")
    ap.add_argument("out", type=Path)
    ap.add_argument("--wait-fills", type=int, default=3)
    ap.add_argument("--wait-s", type=float, default=120.0)
    ap.add_argument("--kill", action="store_true")
    args = ap.parse_args(argv)
    with chromium() as driver:
        login(driver, args.url, args.password)
        eventually(lambda: text(driver, "live-text") == "live", timeout_s=20)
        eventually(lambda: _fills(driver) >= args.wait_fills, timeout_s=args.wait_s)
        eventually(lambda: "waiting" not in text(driver, "health"), timeout_s=20)
        if args.kill:
            driver.find_element(By.ID, "ks-reason").send_keys("screenshot: operator stop")
            driver.find_element(By.ID, "ks-on").click()
            eventually(lambda: "acknowledged" in text(driver, "ks-detail"), timeout_s=20)
        print(screenshot(driver, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
