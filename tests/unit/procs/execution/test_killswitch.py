"""Kill switch: CLI on/off/status round trip, polling by the process, fail-safe reads."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

from procs.execution.killswitch import (
    FileStore,
    KillSwitch,
    KillSwitchState,
    cancels_on_engage,
    main,
)
from procs.execution.model import OrderStatus
from procs.execution.orders import Order

from .helpers import req

SEC = 1_000_000_000


def test_killswitch_cli_on_off_status_round_trip(tmp_path, capsys):
    f = str(tmp_path / "run" / "ks.json")
    assert main(["status", "--file", f]) == 0
    assert capsys.readouterr().out.startswith("off")
    assert main(["on", "--file", f, "--reason", "fat finger"]) == 0
    capsys.readouterr()
    assert main(["status", "--file", f]) == 0
    out = capsys.readouterr().out
    assert out.startswith("on since=")
    assert "source=cli" in out
    assert "fat finger" in out
    assert FileStore(f).read().on
    assert main(["off", "--file", f]) == 0
    assert not FileStore(f).read().on


def test_killswitch_env_var_names_the_file(tmp_path, monkeypatch):
    f = tmp_path / "ks.json"
    monkeypatch.setenv("BITRADER_KILLSWITCH_FILE", str(f))
    assert main(["on"]) == 0
    assert FileStore(f).read().on


def test_killswitch_process_polls_file_written_by_cli(tmp_path):
    f = tmp_path / "ks.json"
    ks = KillSwitch(FileStore(f), poll_s=1.0)
    assert not ks.on
    assert ks.poll(0) is None
    main(["on", "--file", str(f)])
    assert ks.poll(SEC - 1) is None  # not due yet
    changed = ks.poll(SEC)
    assert changed is not None
    assert changed.on
    assert ks.on
    assert ks.poll(2 * SEC) is None  # no change


def test_killswitch_set_over_control_persists_for_restart(tmp_path):
    f = tmp_path / "ks.json"
    ks = KillSwitch(FileStore(f), poll_s=1.0)
    assert ks.set(True, "ctl request", "ctl", 5).on
    assert ks.set(True, "again", "ctl", 6) is None
    restarted = KillSwitch(FileStore(f), poll_s=1.0)
    assert restarted.on
    assert restarted.state.source == "ctl"


def test_killswitch_unreadable_file_reads_as_on(tmp_path):
    f = tmp_path / "ks.json"
    f.write_text("{not json")
    state = FileStore(f).read()
    assert state.on
    assert "unreadable" in state.reason


def test_killswitch_engage_cancels_every_resting_order():
    orders = [Order(request=req(cid=c), status=OrderStatus.ACKED) for c in ("a", "b")]
    assert [c.client_id for c in cancels_on_engage(orders)] == ["a", "b"]
    assert KillSwitchState().on is False
