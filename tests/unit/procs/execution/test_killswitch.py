"""Kill switch: CLI on/off/status round trip, polling by the process, fail-safe reads."""

# mypy: disable-error-code="union-attr, arg-type, assignment, list-item"
# (tests dereference Optional results directly: a None fails the test with an AttributeError)

from __future__ import annotations

import errno
import os

from procs.group.control import EXIT_NO_ACK, EXIT_NOTHING
from procs.group.control import main_kill_switch as cli
from procs.trading.killswitch import (
    SLOT_BYTES,
    FileStore,
    KillSwitch,
    KillSwitchState,
    cancels_on_engage,
)
from procs.trading.model import OrderStatus
from procs.trading.orders import Order

from .helpers import req

SEC = 1_000_000_000


def main(argv: list[str]) -> int:
    """The CLI with no group around (a run dir that holds none): the file only, exit 3."""
    return cli([*argv, "--run-dir", "/nonexistent-run-dir"])


def _enospc(fd: int, data: bytes, offset: int) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_killswitch_cli_on_off_status_round_trip(tmp_path, capsys):
    f = str(tmp_path / "run" / "ks.json")
    assert main(["status", "--file", f]) == 0
    assert capsys.readouterr().out.startswith(f"file {f}: off")
    assert main(["on", "--file", f, "--reason", "fat finger"]) == EXIT_NO_ACK
    assert "no group found" in capsys.readouterr().err
    assert main(["status", "--file", f]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"file {f}: on since=")
    assert "source=cli" in out
    assert "fat finger" in out
    assert FileStore(f).read().on
    assert main(["off", "--file", f]) == EXIT_NO_ACK
    assert not FileStore(f).read().on


def test_killswitch_env_var_names_the_file(tmp_path, monkeypatch):
    f = tmp_path / "ks.json"
    monkeypatch.setenv("BITRADER_KILLSWITCH_FILE", str(f))
    assert main(["on"]) == EXIT_NO_ACK
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


def test_killswitch_file_is_one_preallocated_slot_rewritten_in_place(tmp_path):
    f = tmp_path / "ks.json"
    store = FileStore(f)
    store.preallocate()
    inode = f.stat().st_ino

    store.write(KillSwitchState(on=True, reason="x" * 5000, ts_ns=7, source="cli"))

    assert f.stat().st_size == SLOT_BYTES
    assert f.stat().st_ino == inode  # no new file: nothing to allocate on a full disk
    assert store.read().on
    assert store.read().reason == "x" * 400


def test_killswitch_set_on_a_full_disk_switches_says_not_persisted_and_keeps_it(tmp_path):
    f = tmp_path / "ks.json"
    FileStore(f).preallocate()
    ks = KillSwitch(FileStore(f, pwrite=_enospc), poll_s=1.0)

    changed = ks.set(True, "disk full", "ctl", 5 * SEC)

    assert changed is not None
    assert ks.on
    assert not ks.persisted
    assert "No space left" in ks.persist_error
    assert ks.poll(10 * SEC) is None  # the older "off" on disk does not undo it
    assert ks.on


def test_killswitch_unreadable_file_wins_over_a_newer_state_in_memory(tmp_path):
    f = tmp_path / "ks.json"
    ks = KillSwitch(FileStore(f), poll_s=1.0)
    ks.set(False, "cleared", "ctl", 5 * SEC)
    f.write_text("garbage")

    changed = ks.poll(10 * SEC)

    assert changed is not None
    assert changed.on


def test_killswitch_cli_on_a_full_disk_without_a_group_exits_1_without_traceback(
    tmp_path, capsys, monkeypatch
):
    f = tmp_path / "ks.json"
    FileStore(f).preallocate()
    monkeypatch.setattr(
        "procs.group.control.FileStore", lambda path: FileStore(path, pwrite=_enospc)
    )
    rc = main(["on", "--file", str(f)])

    err = capsys.readouterr().err
    assert rc == EXIT_NOTHING
    assert "No space left on device" in err
    assert "took effect NOWHERE" in err
    assert not FileStore(f).read().on
