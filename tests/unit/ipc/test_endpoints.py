"""Endpoints: template expansion, per-process defaults, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipc.endpoints import (
    IPC_PATH_MAX_BYTES,
    EndpointError,
    default_endpoints,
    expand,
    ipc_path,
    validate,
)
from ipc.messages import IpcError


def test_expand_replaces_run_dir_and_ns_only():
    got = expand("ipc://{run_dir}/{ns}.x.{other}", run_dir="/tmp/r", ns="dev")

    assert got == "ipc:///tmp/r/dev.x.{other}"


def test_default_endpoints_are_pub_and_ctl_under_run_dir():
    eps = default_endpoints("/tmp/r", "features")

    assert (eps.pub, eps.ctl) == ("ipc:///tmp/r/features.pub", "ipc:///tmp/r/features.ctl")


def test_default_endpoints_relative_run_dir_becomes_absolute():
    eps = default_endpoints("run", "ingest")

    assert eps.pub == f"ipc://{Path('run').absolute()}/ingest.pub"


@pytest.mark.parametrize(
    "endpoint",
    [
        "ipc:///tmp/r/x.pub",
        "ipc://" + "/" + "a" * (IPC_PATH_MAX_BYTES - 1),
        "tcp://127.0.0.1:5555",
        "tcp://127.0.0.2:1",
        "tcp://localhost:65535",
        "tcp://[::1]:5555",
        "inproc://test",
    ],
)
def test_validate_accepts_local_endpoints(endpoint):
    assert validate(endpoint) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "match"),
    [
        ("ipc://" + "/" + "a" * IPC_PATH_MAX_BYTES, "at most 106 bytes"),
        ("tcp://10.0.0.1:5555", "loopback"),
        ("tcp://*:5555", "loopback"),
        ("tcp://example.com:5555", "loopback"),
        ("tcp://127.0.0.1:0", "port"),
        ("tcp://127.0.0.1:70000", "port"),
        ("tcp://127.0.0.1:x", "port"),
        ("tcp://127.0.0.1", "port"),
        ("udp://127.0.0.1:5", "scheme"),
        ("/tmp/x.pub", "scheme://address"),
        ("ipc://", "scheme://address"),
        ("ipc://{run_dir}/x.pub", "unexpanded"),
    ],
)
def test_validate_bad_endpoint_raises_with_reason(endpoint, match):
    with pytest.raises(EndpointError, match=match) as info:
        validate(endpoint)

    assert isinstance(info.value, IpcError)


def test_validate_remote_host_allowed_when_asked():
    assert validate("tcp://10.0.0.1:5555", allow_remote=True) == "tcp://10.0.0.1:5555"


def test_ipc_path_of_non_ipc_endpoint_is_none():
    assert ipc_path("tcp://127.0.0.1:1") is None
    assert ipc_path("ipc:///tmp/a/b") == Path("/tmp/a/b")
