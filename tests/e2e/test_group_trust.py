"""The group keeps its files private and its secrets secret, started from a umask-022 shell.

One group (real supervisord, simex, every program) trading with keys from the encrypted
keystore, whose values are planted here and also put in the environment. While it runs: only
execution's environment holds them (and only the dashboard's its password), no command line
or health answer shows them, the shared memory segments are 0600. After it stops: every
directory it made is 0700, every file and socket 0600, and no byte of anything it wrote
contains a planted secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from procs.group.supervise import stop
from procs.keystore.store import load
from shm.segment import list_segments
from tests.helpers.group_config import OBSERVER_KEY
from tests.helpers.group_run import PROGRAMS, Group, bitrader

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("group"), pytest.mark.timeout(240)]

KEY = "planted-api-key-5b1e07c2"
SECRET = "planted-api-secret-9c4d61aa"
PASSPHRASE = "planted-passphrase-e83f02"
DASHBOARD_PASSWORD = "planted-dashboard-password-41d7"
TRADING = (KEY, SECRET, PASSPHRASE)
SHM_DIR = Path("/dev/shm")


def _environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _check_secrets_reach_execution_only(g: Group, planted: list[str]) -> None:
    for name, info in g.infos().items():
        env, cmd = _environ(info["pid"]), _cmdline(info["pid"])
        assert not [s for s in planted if s in cmd], f"{name} command line: {cmd}"
        held = [s for s in (*TRADING, DASHBOARD_PASSWORD) if s in env]
        mine = {"execution": list(TRADING), "dashboard": [DASHBOARD_PASSWORD]}.get(name, [])
        assert held == mine, f"{name} has {held} in /proc/{info['pid']}/environ, wants {mine}"
    res = bitrader("health", "--run-dir", str(g.run_dir), "--json")
    assert not [s for s in planted if s in res.stdout + res.stderr], res.stdout


def _check_private_files(run_dir: Path, skip: set[Path]) -> list[Path]:
    loose, seen = [], []
    for root, dirs, files in os.walk(run_dir):
        loose += [
            f"dir {Path(root) / d}"
            for d in dirs
            if stat.S_IMODE(os.lstat(Path(root) / d).st_mode) != 0o700
        ]
        for f in files:
            path = Path(root) / f
            if path in skip:
                continue
            seen.append(path)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode & 0o077:
                loose.append(f"{path} {mode:04o}")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert loose == [], loose
    return seen


def _grep(paths: list[Path], planted: list[str]) -> list[str]:
    hits = []
    for path in paths:
        if not path.is_file():
            continue  # sockets
        data = path.read_bytes()
        hits += [f"{path}: {s}" for s in planted if s.encode() in data]
    return hits


def test_group_files_are_private_and_secrets_stay_in_execution(
    make_group, monkeypatch, tmp_path, run_dir
):
    old_umask = os.umask(0o022)  # a careless operator's shell
    try:
        monkeypatch.setenv("BITUNIX_API_KEY", KEY)
        monkeypatch.setenv("BITUNIX_SECRET", SECRET)
        monkeypatch.setenv("BITRADER_KEYSTORE_PASSPHRASE", PASSPHRASE)
        monkeypatch.setenv("BITRADER_DASHBOARD_PASSWORD", DASHBOARD_PASSWORD)
        keystore = tmp_path / "keys" / "keystore.json"
        made = bitrader("keys", "set", "--keystore", str(keystore), "--from-env")
        assert made.returncode == 0, made.stderr
        assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
        g = make_group(
            {
                "simex": {
                    "keys": [
                        {"api_key": KEY, "secret": SECRET, "account": "demo"},
                        {"api_key": OBSERVER_KEY[0], "secret": OBSERVER_KEY[1], "account": "demo"},
                    ]
                },
                "execution": {"venue": {"keystore_path": str(keystore)}},
            }
        )
        audit_key = (run_dir / "audit.key").exists()
        stored = load(keystore, PASSPHRASE)
        planted = [*TRADING, DASHBOARD_PASSWORD, stored.audit_key]
        g.wait_until(lambda: g.journal.fills_count() >= 1, 60, "a fill")
        # signed with the run dir's control token, acknowledged by execution
        res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "t")
        assert res.returncode == 0, res.stdout + res.stderr
        g.wait_until(lambda: g.exec_state() == "killed", 10, "execution killed")
        _check_secrets_reach_execution_only(g, planted)
        segments = list_segments(g.ns)
        assert segments, "no ring segment to check"
        modes = {s: stat.S_IMODE((SHM_DIR / s).stat().st_mode) for s in segments}
        assert all(m == 0o600 for m in modes.values()), modes
        assert set(g.infos()) == set(PROGRAMS)

        assert stop(g.run_dir)
    finally:
        os.umask(old_umask)

    # the config is the test's input (simex must know the key it checks signatures with)
    written = _check_private_files(run_dir, skip={g.cfg.path})
    names = {p.name for p in written}
    assert {"execution.sqlite", "supervisord.log", "execution.log", "killswitch.json"} <= names
    assert any(p.suffix == ".h5" for p in written), names
    assert not audit_key, "the keystore's audit key is used, not a generated file"
    assert _grep(written, planted) == []
    verified = bitrader("audit", "verify", str(g.cfg.journal_path), "--keystore", str(keystore))
    assert verified.returncode == 0, verified.stdout + verified.stderr
