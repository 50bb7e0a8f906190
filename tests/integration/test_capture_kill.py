from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from procs.tickstore.store import list_captures, open_capture

pytestmark = pytest.mark.integration

# appends 1000-record batches forever; every 5th batch flushes and reports the flushed count
WRITER = """
import sys
import numpy as np
from procs.tickstore.store import CaptureWriter
from shm.records import TRADE_V1
w = CaptureWriter(sys.argv[1], streams={"t": TRADE_V1}, flush_s=3600.0)
batch = np.zeros(1000, dtype=TRADE_V1)
n = 0
while True:
    batch["seq"] = np.arange(n, n + 1000)
    batch["px"] = batch["seq"] * 0.5
    w.append("t", batch)
    n += 1000
    if n % 5000 == 0:
        w.flush()
        print(n, flush=True)
"""


def test_capture_killed_mid_write_is_readable_up_to_last_flush(tmp_path):
    cmd = [sys.executable, "-c", WRITER, str(tmp_path)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        flushed = [int(proc.stdout.readline()) for _ in range(10)]
        [live_path] = list_captures(tmp_path)
        live = open_capture(live_path)  # read while the writer is still appending (SWMR)
        flushed += [int(proc.stdout.readline()) for _ in range(10)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    [path] = list_captures(tmp_path)
    cap = open_capture(path)

    t = cap.streams["t"]
    assert proc.returncode == -signal.SIGKILL
    assert not cap.clean
    assert t.size >= flushed[-1]
    assert live.streams["t"].size >= flushed[9]
    np.testing.assert_array_equal(live.streams["t"]["seq"], np.arange(live.streams["t"].size))
    np.testing.assert_array_equal(t["seq"], np.arange(t.size))
    np.testing.assert_array_equal(t["px"], t["seq"] * 0.5)
