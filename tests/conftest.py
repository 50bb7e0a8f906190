"""Shared fixtures: unique names per test and per xdist worker, a private run directory."""

from __future__ import annotations

import os
import random
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def unique_ns(prefix: str = "t") -> str:
    """Return a namespace unique to this test run and xdist worker (shm names, sockets)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"{prefix}{worker}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ns() -> str:
    return unique_ns()


@pytest.fixture
def ring_name(ns: str) -> str:
    return f"{ns}.test.ring"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # ipc:// paths must stay under the 107-byte sun_path limit: keep it short
    short = Path("/tmp") / f"br-{uuid.uuid4().hex[:10]}"
    short.mkdir()
    yield short
    shutil.rmtree(short, ignore_errors=True)


_PORT_LOW = 20000  # below Linux's ephemeral range (32768-60999): no outgoing connection's
_PORT_SPAN = 1500  # source port can take a port handed out here; one band per xdist worker
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a loopback TCP port that is free now and was not handed out before in this run.

    Ports come from this xdist worker's own band below the ephemeral range, so neither another
    worker nor a client connection's source port can grab it between this call and the bind.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    low = _PORT_LOW + (int(worker) % 8 if worker.isdigit() else 0) * _PORT_SPAN
    for _ in range(500):
        port = random.randrange(low, low + _PORT_SPAN)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}..{low + _PORT_SPAN}")


@pytest.fixture
def python_exe() -> str:
    return sys.executable
