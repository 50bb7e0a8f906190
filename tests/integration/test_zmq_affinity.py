"""zmq I/O threads follow pin_io_threads, or inherit the process affinity (machine-limits §3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores"),
]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.sched_setaffinity(0, {1})  # the process: core 1, before any thread exists
    from ipc.sockets import bind_pub, pin_io_threads
    if sys.argv[2] == "pin":
        pin_io_threads([0])
    pub = bind_pub(sys.argv[1])
    # every thread but the main one is libzmq's (I/O and reaper). Each applies its affinity
    # and name itself once it runs, so look by tid and give the threads a moment to start
    import time
    want = [0] if sys.argv[2] == "pin" else [1]
    deadline = time.monotonic() + 5
    while True:
        others = [int(t) for t in os.listdir("/proc/self/task") if int(t) != os.getpid()]
        zmq_aff = [sorted(os.sched_getaffinity(t)) for t in others]
        if all(a == want for a in zmq_aff) or time.monotonic() > deadline:
            break
        time.sleep(0.001)
    pub.close()
    print(json.dumps({"main": sorted(os.sched_getaffinity(0)), "zmq": zmq_aff}))
    """
)


def _thread_affinity(run_dir: Path, mode: str) -> dict[str, Any]:
    cmd = [sys.executable, "-c", SCRIPT, f"ipc://{run_dir}/a.pub", mode]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    got: dict[str, Any] = json.loads(done.stdout)
    return got


def test_pin_io_threads_moves_zmq_io_thread_to_given_core(run_dir):
    threads = _thread_affinity(run_dir, "pin")

    assert threads["main"] == [1]
    assert len(threads["zmq"]) >= 2  # at least one I/O thread and the reaper
    assert all(aff == [0] for aff in threads["zmq"])


def test_zmq_io_thread_inherits_process_affinity_without_pinning(run_dir):
    threads = _thread_affinity(run_dir, "inherit")

    assert threads["main"] == [1]
    assert len(threads["zmq"]) >= 2
    assert all(aff == [1] for aff in threads["zmq"])
