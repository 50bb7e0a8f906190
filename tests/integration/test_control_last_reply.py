"""A control socket's last reply survives the process exiting right after ``close``.

libzmq honours a socket's linger only while its context terminates; the process's shared
context never does (pyzmq skips it at interpreter exit), so a reply queued just before exit
was lost unless the I/O thread happened to write it first (the ``stop`` reply, now and then).
A reply far larger than the kernel's socket buffer, and an exit at once, make that race
certain to be lost without the fix.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipc.sockets import request
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

REPLY_BYTES = 4 << 20  # many socket buffers: the I/O thread needs many writes to send it

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from ipc.sockets import bind_rep
    rep = bind_rep(sys.argv[1])
    print("bound", flush=True)
    deadline = time.monotonic() + 20
    while (body := rep.recv(0.5)) is None:
        if time.monotonic() > deadline:
            sys.exit("no request")
    rep.send(body * int(sys.argv[2]))
    rep.close(linger_s=10.0)
    print("closed", flush=True)
    os._exit(0)  # exit at once, as a process that is done may: nothing else waits
    """
)


def test_last_reply_is_delivered_when_the_process_exits_after_close(run_dir: Path) -> None:
    endpoint = f"ipc://{run_dir}/last.ctl"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, endpoint, str(REPLY_BYTES // 4)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "bound\n"

        reply = request(endpoint, b"stop", timeout_s=15)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)

    assert proc.returncode == 0, out
    assert "closed" in out
    assert reply is not None
    assert len(reply) == REPLY_BYTES
    assert reply == b"stop" * (REPLY_BYTES // 4)
