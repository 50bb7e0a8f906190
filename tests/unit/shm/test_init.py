"""The shm package's public API: a sorted __all__ whose every name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shm
from tests.conftest import ROOT


def test_all_is_sorted_and_every_name_resolves():
    resolved = {name: getattr(shm, name) for name in shm.__all__}

    assert shm.__all__ == sorted(shm.__all__)
    assert all(v is not None for v in resolved.values())
    assert resolved["RingReader"].__module__ == "shm.ring"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        shm.no_such_name  # noqa: B018  # the access is the test


def test_segment_cli_runs_without_warnings(ns):
    cmd = [sys.executable, "-W", "error", "-m", "shm.segment", "--list", ns]

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)

    assert done.returncode == 0
    assert done.stderr == ""
