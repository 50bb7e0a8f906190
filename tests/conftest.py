"""Shared fixtures: unique names per test and per xdist worker, a private run directory."""

from __future__ import annotations

import os
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


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def python_exe() -> str:
    return sys.executable
