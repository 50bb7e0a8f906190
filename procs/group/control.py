"""``bitrader kill-switch``, ``breaker`` and ``reconcile``: operator commands to a running group.

Reads the group's settings (``bitrader.env.json`` in ``--run-dir``) and its config to find
execution's control socket and kill-switch file; writes the file; asks execution over its
control socket and waits for its acknowledgement. Owns nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ipc.endpoints import expand, ipc_path
from ipc.messages import ENCODER, RESPONSE_DECODER, ControlRequest, ControlResponse, DecodeError
from ipc.messages import decode as decode_msg
from procs._auth import AuthError, signed_args, token_path
from procs._config import ConfigError, read_toml
from procs.group.supervise import CONF, ENV_FILE, GroupEnv
from procs.trading.killswitch import DEFAULT_PATH, ENV_PATH, FileStore, KillSwitchState, describe

# exit codes of ``bitrader kill-switch`` (docs/operations.md)
EXIT_ACTED: Final = 0  # execution acknowledged and the state is on disk
EXIT_NOTHING: Final = 1  # not on disk and no acknowledgement: nothing changed anywhere
EXIT_NO_ACK: Final = 3  # on disk only: execution did not answer (acts when it reads the file)
EXIT_NOT_PERSISTED: Final = 4  # execution switched, but the disk refused: a restart forgets it
ACK_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where execution of a group listens, and which kill-switch file it reads."""

    control_endpoint: str | None
    killswitch_file: Path
    group_found: bool


def find_target(run_dir: Path, file: str | None) -> Target:
    """The group's execution (from its config) or, without a group, only a file. A file named
    (``--file``, else ``$BITRADER_KILLSWITCH_FILE``) is the one written either way."""
    file = file or os.environ.get(ENV_PATH)
    if not (run_dir / ENV_FILE).exists():
        return Target(None, Path(file or DEFAULT_PATH), False)
    env = GroupEnv.load(run_dir)
    table = read_toml(env.config).get("execution", {})
    raw = expand(table.get("killswitch_path", DEFAULT_PATH), run_dir=env.run_dir, ns=env.ns)
    path = Path(raw) if Path(raw).is_absolute() else CONF.parent / raw  # supervisord's cwd
    ctl = table.get("runtime", {}).get("control_endpoint")
    endpoint = None if ctl is None else expand(ctl, run_dir=env.run_dir, ns=env.ns)
    return Target(endpoint, Path(file) if file else path, True)


def ask(
    endpoint: str, cmd: str, args: dict[str, str], timeout_s: float, token_file: str = ""
) -> ControlResponse | None:
    """One control request; None when no (decodable) answer came within ``timeout_s``.

    Signed with ``token_file`` (default: ``control.token`` beside an ipc control socket) when
    it exists: the process refuses anything but a local ``health`` without it.
    """
    from ipc.sockets import request

    path = token_file or _token_beside(endpoint)
    if path and Path(path).exists():
        try:
            args = signed_args(path, cmd, args)
        except AuthError as exc:
            print(f"control token: {exc}", file=sys.stderr)
    body = request(endpoint, ENCODER.encode(ControlRequest(cmd=cmd, args=args)), timeout_s)
    if body is None:
        return None
    try:
        return decode_msg(RESPONSE_DECODER, body, b"ctl")
    except DecodeError:
        return None


def _token_beside(endpoint: str) -> str:
    sock = ipc_path(endpoint)
    return "" if sock is None else str(token_path(sock.parent))


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"bitrader {prog}")
    ap.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("BITRADER_RUN_DIR", CONF.parent / "run" / "demo")),
        help="the running group (default: run/demo)",
    )
    ap.add_argument("--timeout-s", type=float, default=ACK_TIMEOUT_S, help="wait for the ack")
    return ap


def _loud(msg: str) -> None:
    print(f"bitrader: WARNING: {msg}", file=sys.stderr)


def main_kill_switch(argv: list[str] | None = None) -> int:
    """``bitrader kill-switch on|off|status [--run-dir DIR] [--file PATH] [--reason TEXT]``."""
    ap = _parser("kill-switch")
    ap.add_argument("action", choices=["on", "off", "status"])
    ap.add_argument("--file", default=None, help="the kill-switch file (default: the group's)")
    ap.add_argument("--reason", default="")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        target = find_target(args.run_dir.resolve(), args.file)
    except (ConfigError, OSError, ValueError) as exc:
        _loud(f"kill switch NOT set: cannot read the group in {args.run_dir}: {exc}")
        return EXIT_NOTHING
    store = FileStore(target.killswitch_file)
    if args.action == "status":
        return _status(store, target, args.timeout_s)
    on = args.action == "on"
    reason = args.reason or ("operator kill switch" if on else "operator cleared")
    state, written, ack = engage(target, on, reason, "cli", args.timeout_s)
    if written:
        _loud(f"could not write {target.killswitch_file}: {written}")
    return _verdict(target, state, written, ack)


def engage(
    target: Target, on: bool, reason: str, source: str, timeout_s: float
) -> tuple[KillSwitchState, str, ControlResponse | None]:
    """Write the kill-switch file, then tell execution and wait for its acknowledgement.

    What ``bitrader kill-switch on|off`` and the dashboard's button both do. Returns the state
    written, the write's error ("" when it is on disk) and execution's answer (None: none came
    within ``timeout_s``, or no group to ask).
    """
    state = KillSwitchState(on=on, reason=reason, ts_ns=time.time_ns(), source=source)
    try:
        FileStore(target.killswitch_file).write(state)
        written = ""
    except OSError as exc:
        written = f"{type(exc).__name__}: {exc}"
    if target.control_endpoint is None:
        return state, written, None
    args = {"on": "1" if on else "0", "reason": reason, "source": source}
    return state, written, ask(target.control_endpoint, "kill_switch", args, timeout_s)


def _verdict(
    target: Target, state: KillSwitchState, written: str, ack: ControlResponse | None
) -> int:
    word = "on" if state.on else "off"
    acked = ack is not None and ack.ok
    if acked:
        assert ack is not None
        persisted = bool(ack.data.get("persisted", 0))
        print(
            f"kill switch {word}: acknowledged by execution "
            f"(state={ack.data.get('state')}, open_orders={ack.data.get('open_orders')})"
        )
        if not written or persisted:
            print(f"  persisted in {target.killswitch_file}: {describe(state)}")
            return EXIT_ACTED
        why = ack.data.get("persist_error") or written
        _loud(f"kill switch {word} is NOT on disk ({why}): a restart of execution forgets it")
        return EXIT_NOT_PERSISTED
    if not target.group_found:
        _loud(f"no group found in the run dir: only {target.killswitch_file} was written")
    elif ack is not None:
        _loud(f"execution refused the kill switch: {ack.error}")
    else:
        _loud(f"execution did NOT acknowledge the kill switch ({target.control_endpoint})")
    if written:
        _loud(f"kill switch {word} took effect NOWHERE: fix the disk and run it again")
        return EXIT_NOTHING
    print(f"kill switch {word} written to {target.killswitch_file}: {describe(state)}")
    print("  execution reads this file at start and every killswitch_poll_s")
    return EXIT_NO_ACK


def _status(store: FileStore, target: Target, timeout_s: float) -> int:
    print(f"file {target.killswitch_file}: {describe(store.read())}")
    if target.control_endpoint is None:
        return EXIT_ACTED
    resp = ask(target.control_endpoint, "health", {}, timeout_s)
    counters = resp.data.get("counters") if resp is not None and resp.ok else None
    if not isinstance(counters, dict):
        _loud(f"execution did not answer on {target.control_endpoint}")
        return EXIT_NO_ACK
    print(f"execution: state={counters.get('state')} kill_switch={counters.get('kill_switch')}")
    return EXIT_ACTED


def _execution_control(run_dir: Path, done: str) -> str | None:
    """Execution's control endpoint in the group of ``run_dir``; None (said loudly) if none."""
    try:
        target = find_target(run_dir.resolve(), None)
    except (ConfigError, OSError, ValueError) as exc:
        _loud(f"nothing was {done}: cannot read the group in {run_dir}: {exc}")
        return None
    if target.control_endpoint is None:
        _loud(f"no running group with an execution process in {run_dir}")
    return target.control_endpoint


def main_breaker(argv: list[str] | None = None) -> int:
    """``bitrader breaker reset [--reason TEXT] [--run-dir DIR]``: the operator reset."""
    ap = _parser("breaker")
    ap.add_argument("action", choices=["reset"])
    ap.add_argument("--reason", default="", help="why (journaled with the reset)")
    ap.add_argument("--operator", default=os.environ.get("USER", "operator"))
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    endpoint = _execution_control(args.run_dir, "reset")
    if endpoint is None:
        return EXIT_NOTHING
    req = {"operator": args.operator, "reason": args.reason or "operator reset"}
    resp = ask(endpoint, "breaker_reset", req, args.timeout_s)
    if resp is None:
        _loud(f"execution did NOT answer ({endpoint}): nothing was reset")
        return EXIT_NO_ACK
    if not resp.ok:
        _loud(f"execution refused the reset: {resp.error}")
        return EXIT_NOTHING
    d = resp.data
    print(f"breaker {d.get('old')} -> {d.get('new')} (state={d.get('state')}) by {args.operator}")
    return EXIT_ACTED


def main_reconcile(argv: list[str] | None = None) -> int:
    """``bitrader reconcile adopt [--run-dir DIR]``: book the venue's positions and balance as
    the truth when reconciliation is stuck on venue state loss (refused while orders are open)."""
    ap = _parser("reconcile")
    ap.add_argument("action", choices=["adopt"])
    ap.add_argument("--operator", default=os.environ.get("USER", "operator"))
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    endpoint = _execution_control(args.run_dir, "adopted")
    if endpoint is None:
        return EXIT_NOTHING
    resp = ask(endpoint, "reconcile_adopt", {"operator": args.operator}, args.timeout_s)
    if resp is None:
        _loud(f"execution did NOT answer ({endpoint}): nothing was adopted")
        return EXIT_NO_ACK
    if not resp.ok:
        _loud(f"execution refused: {resp.error}")
        return EXIT_NOTHING
    print(f"adopted: {resp.data.get('adopted') or 'nothing'} (state={resp.data.get('state')})")
    return EXIT_ACTED


def main_reload(argv: list[str] | None = None) -> int:
    """``bitrader reload [--run-dir DIR]``: execution re-reads its risk limits and strategy
    parameters from the group's config now (as SIGHUP does); a bad file changes nothing."""
    args = _parser("reload").parse_args(sys.argv[1:] if argv is None else argv)
    try:
        target = find_target(args.run_dir.resolve(), None)
    except (ConfigError, OSError, ValueError) as exc:
        _loud(f"nothing was reloaded: cannot read the group in {args.run_dir}: {exc}")
        return EXIT_NOTHING
    if target.control_endpoint is None:
        _loud(f"no running group with an execution process in {args.run_dir}")
        return EXIT_NOTHING
    resp = ask(target.control_endpoint, "reload", {}, args.timeout_s)
    if resp is None:
        _loud(f"execution did NOT answer ({target.control_endpoint}): nothing was reloaded")
        return EXIT_NO_ACK
    if not resp.ok:
        _loud(f"execution refused: {resp.error}")
        return EXIT_NOTHING
    print(f"reloaded: changed {resp.data.get('changed') or 'nothing'}", end="")
    print(f"; needs a restart: {resp.data['ignored']}" if resp.data.get("ignored") else "")
    return EXIT_ACTED
