"""simex's config: bound beyond loopback, its control API needs an allowlist and a token."""

from __future__ import annotations

import msgspec
import pytest

from procs.simex.config import SimexConfig


def test_simex_beyond_loopback_needs_control_allowlist_and_token():
    with pytest.raises(msgspec.ValidationError, match="control_allow_ips"):
        msgspec.convert({"host": "0.0.0.0"}, SimexConfig)

    cfg = msgspec.convert(
        {"host": "0.0.0.0", "control_allow_ips": ["10.0.0.9"], "control_token_file": "/t"},
        SimexConfig,
    )

    assert cfg.control_allow_ips == ["10.0.0.9"]
