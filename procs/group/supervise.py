"""``bitrader up | down | status``: the supervisord group, with no root needed.

Everything lives under a run directory (socket, pid file, logs, ipc endpoints), so several groups
(a demo, each test) run side by side. The run directory remembers its own settings in
``bitrader.env.json`` so ``down`` and ``status`` need only ``--run-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from supervisor.xmlrpc import SupervisorTransport

from procs._auth import ensure_token
from procs._files import PRIVATE_UMASK, private_dir, write_private

log = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parents[2]  # procs/group/supervise.py -> repo
CONF: Final = ROOT / "supervisord.conf"
ENV_FILE: Final = "bitrader.env.json"
READY_TIMEOUT_S: Final = 15.0
HEALTHY: Final = frozenset({"RUNNING"})
# secrets in the environment reach only the program that uses them: every other program is
# started through `env -u NAME ...` (supervisord.conf), so its /proc/PID/environ lacks them
TRADING_SECRETS: Final = ("BITUNIX_API_KEY", "BITUNIX_SECRET", "BITRADER_KEYSTORE_PASSPHRASE")
DASHBOARD_SECRETS: Final = ("BITRADER_DASHBOARD_PASSWORD",)


def env_unset(names: tuple[str, ...]) -> str:
    """The ``env`` arguments that drop ``names`` (and, with the trading secrets, any BITUNIX_*)."""
    extra = [k for k in os.environ if k.startswith("BITUNIX_")] if "BITUNIX_SECRET" in names else []
    return " ".join(f"-u {n}" for n in dict.fromkeys([*names, *extra]))


@dataclass(frozen=True)
class GroupEnv:
    """The settings a supervisord group runs with, as environment variables."""

    run_dir: Path
    config: Path
    ns: str
    group: str

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BITRADER_RUN_DIR=str(self.run_dir),
            BITRADER_CONFIG=str(self.config),
            BITRADER_NS=self.ns,
            BITRADER_PYTHON=sys.executable,
            BITRADER_GROUP=self.group,
            BITRADER_ENV_UNSET=env_unset(TRADING_SECRETS + DASHBOARD_SECRETS),
            BITRADER_ENV_UNSET_EXECUTION=env_unset(DASHBOARD_SECRETS),
            BITRADER_ENV_UNSET_DASHBOARD=env_unset(TRADING_SECRETS),
        )
        return env

    def save(self) -> None:
        data = {"run_dir": str(self.run_dir), "config": str(self.config), "ns": self.ns}
        data["group"] = self.group
        write_private(self.run_dir / ENV_FILE, (json.dumps(data, indent=2) + "\n").encode())

    @classmethod
    def load(cls, run_dir: Path) -> GroupEnv:
        path = run_dir / ENV_FILE
        if not path.exists():
            raise FileNotFoundError(f"no group was started in {run_dir} ({path} is missing)")
        d = json.loads(path.read_text())
        return cls(Path(d["run_dir"]), Path(d["config"]), d["ns"], d["group"])


@contextmanager
def rpc(run_dir: Path) -> Iterator[Any]:
    """Yield an XML-RPC proxy to the supervisord of ``run_dir``; its socket closes after."""
    transport = SupervisorTransport(None, None, f"unix://{run_dir / 'supervisor.sock'}")
    try:
        yield xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    finally:
        transport.close()


def is_up(run_dir: Path) -> bool:
    """Return True when the supervisord of ``run_dir`` answers."""
    if not (run_dir / "supervisor.sock").exists():
        return False
    try:
        with rpc(run_dir) as proxy:
            return bool(proxy.supervisor.getState()["statename"] == "RUNNING")
    except (OSError, xmlrpc.client.Fault):
        return False


def wait_until(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def process_info(run_dir: Path) -> list[dict[str, Any]]:
    """Return supervisord's process info list (name, group, statename, pid, exitstatus...)."""
    with rpc(run_dir) as proxy:
        info: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()
    return info


def start(env: GroupEnv, *, foreground: bool = False) -> subprocess.Popen[bytes] | None:
    """Start supervisord for ``env`` and then its group in priority order.

    Returns the supervisord child when ``foreground`` (the caller waits on it), else None:
    supervisord then runs as its own daemon with its pid file in the run directory.
    """
    if is_up(env.run_dir):
        raise RuntimeError(f"a group is already running in {env.run_dir}")
    for sub in ("", "logs", "supervisor.d"):
        private_dir(env.run_dir / sub)
    ensure_token(env.run_dir)  # control requests that change state are signed with it
    env.save()
    cmd = [sys.executable, "-m", "supervisor.supervisord", "-c", str(CONF)]
    child: subprocess.Popen[bytes] | None = None
    # umask 077 whatever the caller's: sockets, logs and everything the group writes are private
    # (supervisord.conf sets it again: a daemonizing supervisord resets its umask)
    if foreground:
        child = subprocess.Popen([*cmd, "-n"], env=env.environ(), cwd=ROOT, umask=PRIVATE_UMASK)
    else:
        subprocess.run(cmd, env=env.environ(), cwd=ROOT, check=True, umask=PRIVATE_UMASK)
    wait_until(lambda: is_up(env.run_dir), READY_TIMEOUT_S, "supervisord to answer")
    # wait=False: supervisord starts them in priority order; `status` shows when all are RUNNING
    with rpc(env.run_dir) as proxy:
        proxy.supervisor.startProcessGroup(env.group, False)
    return child


def stop(run_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stop every program (reverse priority) and supervisord; return False if it was not up."""
    if not is_up(run_dir):
        return False
    pid_file = run_dir / "supervisord.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    with rpc(run_dir) as proxy:
        proxy.supervisor.stopAllProcesses(True)
        proxy.supervisor.shutdown()
    if pid is not None:
        wait_until(lambda: not _alive(pid), timeout_s, f"supervisord pid {pid} to exit")
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status_rows(run_dir: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for p in process_info(run_dir):
        pid = str(p["pid"]) if p["pid"] else "-"
        rows.append((f"{p['group']}:{p['name']}", p["statename"], pid, p["description"]))
    return rows


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"bitrader {prog}")
    ap.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("BITRADER_RUN_DIR", ROOT / "run" / "demo")),
        help="sockets, logs and pid file of the group (default: run/demo)",
    )
    return ap


def topology_group(group: str, config: Path) -> str:
    """The supervisord group to start for ``group`` under ``config``'s ``[group] topology``
    (procs/_topology.py); ``ValueError`` naming the file when it cannot be read or is invalid."""
    import msgspec

    from procs._config import ConfigError, read_toml
    from procs._topology import resolve_group

    try:
        return resolve_group(group, read_toml(config))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.ValidationError as exc:
        raise ValueError(f"config error file={config} path=$.group: {exc}") from None


def main_up(argv: list[str]) -> int:
    """``bitrader up``: start supervisord and the group."""
    ap = _parser("up")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.toml")
    ap.add_argument("--group", default="pipeline", choices=["pipeline", "live", "transport"])
    ap.add_argument("--ns", default=None, help="shared-memory namespace (default: config stem)")
    ap.add_argument("--foreground", action="store_true", help="supervisord -n; Ctrl-C stops")
    args = ap.parse_args(argv)
    if not args.config.exists():
        print(f"bitrader up: config not found: {args.config}", file=sys.stderr)
        return 78
    from procs._config import Env, check_file

    try:  # "pipeline" is "pipeline-colocated" under [group] topology = "colocated" (or auto)
        group = topology_group(args.group, args.config)
    except ValueError as exc:
        print(f"bitrader up: {exc}", file=sys.stderr)
        return 78
    # what `bitrader config check` says, with this run's {run_dir} and {ns}
    ns = args.ns or args.config.stem
    errors = check_file(args.config, group=group, env=Env(str(args.run_dir.resolve()), ns))
    for error in errors:
        print(f"bitrader up: {error}", file=sys.stderr)
    if errors:
        return 78
    env = GroupEnv(args.run_dir.resolve(), args.config.resolve(), ns, group)
    try:
        child = start(env, foreground=args.foreground)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"bitrader up: {exc}", file=sys.stderr)
        return 1
    print(f"group {env.group} starting under supervisord; run dir {env.run_dir}")
    if child is None:
        return 0
    signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGTERM))
    return child.wait()


def main_down(argv: list[str]) -> int:
    """``bitrader down``: stop the group and supervisord."""
    args = _parser("down").parse_args(argv)
    if not stop(args.run_dir.resolve()):
        print(f"bitrader down: nothing running in {args.run_dir}")
        return 0
    print("stopped")
    return 0


def main_status(argv: list[str]) -> int:
    """``bitrader status``: one line per program; exit 1 unless every program is RUNNING."""
    args = _parser("status").parse_args(argv)
    run_dir = args.run_dir.resolve()
    if not is_up(run_dir):
        print(f"supervisord is not running in {run_dir}")
        return 3
    group = GroupEnv.load(run_dir).group
    rows = [r for r in status_rows(run_dir) if r[0].startswith(f"{group}:")]
    for name, state, pid, desc in rows:
        print(f"{name:<24} {state:<10} {pid:>8}  {desc}")
    return 0 if rows and all(r[1] in HEALTHY for r in rows) else 1


def main_restart(argv: list[str]) -> int:
    """``bitrader restart PROGRAM``: stop and start one program of the running group."""
    ap = _parser("restart")
    ap.add_argument("program", help="e.g. execution (the breaker's operator reset)")
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    if not is_up(run_dir):
        print(f"bitrader restart: no group is running in {run_dir}", file=sys.stderr)
        return 3
    name = f"{GroupEnv.load(run_dir).group}:{args.program}"
    try:
        with rpc(run_dir) as proxy:
            if proxy.supervisor.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING"):
                proxy.supervisor.stopProcess(name, True)
            proxy.supervisor.startProcess(name, True)
    except xmlrpc.client.Fault as exc:
        print(f"bitrader restart: {name}: {exc.faultString}", file=sys.stderr)
        return 1
    print(f"restarted {name}")
    return 0
