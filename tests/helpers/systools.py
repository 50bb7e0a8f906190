"""System tools some tests drive for real (Debian's h5dump, promtool, chromium): find or skip.

`make sysdeps` (run by `make test`) installs them on Debian as root. Elsewhere a test that needs
one skips and says why; under CI (`CI=true`) a missing tool fails the test instead, so CI can
never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGE = {
    "h5dump": "hdf5-tools",
    "h5ls": "hdf5-tools",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}


def require_tool(name: str) -> str:
    """Return the path of system tool `name`; skip (or fail under CI) when it is missing."""
    path = shutil.which(name)
    if path is not None:
        return path
    why = (
        f"{name} not found: it comes from Debian's {PACKAGE.get(name, name)} package, "
        "which `make sysdeps` installs on Debian as root"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(why + " (CI must run this test, not skip it)")
    pytest.skip(why)
