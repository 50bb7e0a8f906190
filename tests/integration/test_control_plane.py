"""The control plane against real processes: malformed control messages (frame count, size,
encoding) get an error reply or are dropped and counted, and the process keeps serving; a dead
runtime service task is a process fault (exit 1), which supervisord restarts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from ipc import sockets
from ipc.messages import ENCODER, RESPONSE_DECODER, ControlRequest, ControlResponse, decode
from ipc.sockets import request
from tests.conftest import ROOT
from tests.helpers.poll import eventually
from tests.helpers.simex_proc import run_simex, write_config

pytestmark = pytest.mark.integration

# each: the frames a hostile client sends, and whether a (error) reply comes back
MALFORMED: list[tuple[str, list[bytes]]] = [
    ("two frames", [ENCODER.encode(ControlRequest(cmd="health")), b"extra"]),
    ("empty second frame", [b"x", b""]),
    ("too long", [b"\x93\xa2rq\xa6health\x80" + b"\x00" * (100 << 10)]),
    ("bad utf-8", [b"\x93\xa2rq\xa2\xff\xfe\x80"]),
    ("truncated", [b"\xdd\xff\xff\xff\xff"]),
    ("wrong type", [b"\x93\xa2rq\xa6health\x81\xa1a\x01"]),
    ("empty", [b""]),
]


def _raw(endpoint: str, frames: list[bytes], timeout_s: float = 5.0) -> bytes | None:
    sock = sockets.context().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        return sock.recv()
    finally:
        sock.close(linger=0)


def _health(endpoint: str) -> ControlResponse | None:
    body = request(endpoint, ENCODER.encode(ControlRequest(cmd="health")), 1.0)
    return None if body is None else decode(RESPONSE_DECODER, body)


def _hammer(endpoint: str) -> dict[str, Any]:
    """Send every malformed message; return the process's health after them."""
    for name, frames in MALFORMED:
        reply = _raw(endpoint, frames)
        assert reply is not None, name
        resp = decode(RESPONSE_DECODER, reply)
        assert not resp.ok, name
        assert resp.error, name
    after = _health(endpoint)
    assert after is not None
    assert after.ok
    return dict(after.data)


@pytest.fixture
def dummy(tmp_path: Path, run_dir: Path, ns: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    cfg = tmp_path / "dummy.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        [dummy]
        [dummy.runtime]
        pub_endpoint = "ipc://{run_dir}/dummy.pub"
        control_endpoint = "ipc://{run_dir}/dummy.ctl"
        heartbeat_s = 0.05
        max_sleep_s = 0.002
        """)
    )
    env = {**os.environ, "BITRADER_RUN_DIR": str(run_dir), "BITRADER_NS": ns}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.dummy_proc", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc, f"ipc://{run_dir}/dummy.ctl"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_stage_process_answers_every_malformed_control_message_and_keeps_running(dummy):
    proc, ctl = dummy
    assert eventually(lambda: _health(ctl), timeout_s=15) is not None

    data = _hammer(ctl)

    assert proc.poll() is None
    assert data["control_malformed_total"] == 3  # frames or size: answered by the socket
    assert data["control_errors_total"] == 4  # the rest: decoded, refused with the reason
    assert data["state"] == "running"


def test_simex_answers_every_malformed_control_message_and_stops_cleanly(tmp_path, run_dir):
    ctl = f"ipc://{run_dir}/simex.ctl"
    runtime = f'[simex.runtime]\npub_endpoint = "ipc://{run_dir}/simex.pub"\n'
    runtime += f'control_endpoint = "{ctl}"\nheartbeat_s = 0.1\n'
    with run_simex(write_config(tmp_path, runtime)) as sx:
        assert eventually(lambda: _health(ctl), timeout_s=15) is not None

        data = _hammer(ctl)
        again = _health(ctl)

        assert sx.proc.poll() is None
        assert data["control_malformed_total"] == 3
        assert again is not None
        assert again.ok
    # run_simex asserts exit 0 on SIGTERM: the service task was alive to the end


def test_simex_dead_service_task_is_a_fault_exit_1(tmp_path, run_dir):
    from prometheus_client import CollectorRegistry

    from procs._config import RuntimeConfig
    from procs._runtime import Runtime
    from procs.simex.__main__ import serve
    from procs.simex.config import SimexConfig

    rt = Runtime(
        "simex",
        RuntimeConfig(
            pub_endpoint=f"ipc://{run_dir}/s.pub", control_endpoint=f"ipc://{run_dir}/s.ctl"
        ),
        CollectorRegistry(),
    )
    calls = []

    def broken_service() -> None:  # the seam: a service pass that raises
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("service pass failed")

    rt.service = broken_service  # type: ignore[method-assign]
    config = SimexConfig(rest_port=0, ws_port=0, control_port=0, state_path="")

    rc = asyncio.run(asyncio.wait_for(serve(config, rt), timeout=30))

    assert rc == 1
    assert len(calls) == 3
