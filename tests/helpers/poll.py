"""Polling with a deadline: tests never sleep to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(cond: Callable[[], T], timeout_s: float = 5.0, interval_s: float = 0.01) -> T:
    """Return the first truthy value of ``cond()``; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T = cond()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {cond!r} -> {last!r}")
        time.sleep(interval_s)  # pacing between polls, not waiting for an outcome
        last = cond()
    return last
