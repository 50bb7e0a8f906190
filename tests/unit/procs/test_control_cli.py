"""``bitrader kill-switch``'s verdict: one exit code per outcome, loud unless it fully acted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipc.messages import ControlResponse
from procs.group.control import (
    EXIT_ACTED,
    EXIT_NO_ACK,
    EXIT_NOT_PERSISTED,
    EXIT_NOTHING,
    Target,
    _verdict,
)
from procs.trading.killswitch import KillSwitchState

ON = KillSwitchState(on=True, reason="r", ts_ns=1, source="cli")
GROUP = Target("ipc:///tmp/x.ctl", Path("/tmp/ks.json"), True)


def _ack(persisted: int) -> ControlResponse:
    return ControlResponse(
        ok=True, data={"persisted": persisted, "state": "killed", "open_orders": 0}
    )


@pytest.mark.parametrize(
    ("written", "ack", "code", "loud"),
    [
        ("", _ack(1), EXIT_ACTED, ""),
        ("OSError: [Errno 28] No space left on device", _ack(1), EXIT_ACTED, "could not"),
        ("OSError: [Errno 28] No space left on device", _ack(0), EXIT_NOT_PERSISTED, "NOT on disk"),
        ("", None, EXIT_NO_ACK, "did NOT acknowledge"),
        ("OSError: full", None, EXIT_NOTHING, "took effect NOWHERE"),
        ("", ControlResponse(ok=False, error="nope"), EXIT_NO_ACK, "refused"),
    ],
)
def test_kill_switch_verdict_codes(capsys, written, ack, code, loud):
    rc = _verdict(GROUP, ON, written, ack)

    err = capsys.readouterr().err
    assert rc == code
    if code == EXIT_ACTED:
        assert "NOT" not in err
    else:
        assert loud in err
