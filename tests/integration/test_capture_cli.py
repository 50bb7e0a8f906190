from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from procs.tickstore.store import CaptureWriter
from shm.records import TRADE_V1

pytestmark = pytest.mark.integration


def test_bitrader_capture_info_runs_as_a_command(tmp_path):
    with CaptureWriter(tmp_path, streams={"md.trade": TRADE_V1}) as w:
        w.append("md.trade", np.zeros(7, dtype=TRADE_V1))

    ok = subprocess.run(
        [sys.executable, "-m", "procs.cli", "capture", "info", str(w.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    bad = subprocess.run(
        [sys.executable, "-m", "procs.cli", "capture", "info", str(tmp_path / "none.h5")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ok.returncode == 0, ok.stderr
    assert "records=7" in ok.stdout
    assert bad.returncode == 78
    assert "no such file" in bad.stderr
    assert "Traceback" not in bad.stderr
