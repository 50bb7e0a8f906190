"""Headless Chromium driven by selenium (Debian's chromium + chromedriver), for dashboard tests.

``chromium()`` yields a WebDriver and always quits it; ``login(driver, base_url, password)``
fills the dashboard's login form; ``screenshot(driver, path)`` saves the whole page as PNG.
Tests call ``require_tool`` first, so a machine without the browser skips (CI fails instead).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.helpers.systools import require_tool

STALE_RETRIES = 5  # a page re-rendered by pushed updates: find the element again

WIDTH, HEIGHT = 1600, 1000


def _options(binary: str, profile: str) -> webdriver.ChromeOptions:
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium refuses to sandbox as root
    return opts


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a throwaway profile; quits on exit."""
    binary, driver_path = require_tool("chromium"), require_tool("chromedriver")
    with tempfile.TemporaryDirectory(prefix="br-chromium-") as profile:
        driver = webdriver.Chrome(
            options=_options(binary, profile), service=Service(executable_path=driver_path)
        )
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def login(driver: webdriver.Chrome, base_url: str, password: str) -> None:
    """Open the dashboard, type ``password`` into its login form and submit it."""
    driver.get(base_url)
    field = driver.find_element(By.ID, "password")
    field.clear()
    field.send_keys(password)
    driver.find_element(By.ID, "submit").click()


def text(driver: webdriver.Chrome, element_id: str) -> str:
    """The element's text ("" when absent); found again when a pushed update re-rendered it
    between the find and the read (StaleElementReferenceException)."""
    for _ in range(STALE_RETRIES):
        found = driver.find_elements(By.ID, element_id)
        if not found:
            return ""
        try:
            return found[0].text
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"#{element_id} was re-rendered {STALE_RETRIES} times in a row")


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """Save the whole page (beyond the window too) as a PNG at ``path``."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
