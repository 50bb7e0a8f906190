"""The ``bitrader`` console script: one entry point, each subcommand in its own module.

Subcommands are imported lazily so ``bitrader status`` never pays for onnxruntime or h5py.
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

# subcommand -> (module, function, one-line help); the function takes argv and returns an exit code
COMMANDS: Final[dict[str, tuple[str, str, str]]] = {
    "up": ("procs.group.supervise", "main_up", "start the supervisord group"),
    "down": ("procs.group.supervise", "main_down", "stop the group and supervisord"),
    "status": ("procs.group.supervise", "main_status", "supervisorctl status of the group"),
    "restart": ("procs.group.supervise", "main_restart", "restart one program of the group"),
    "health": ("procs.group.health", "main", "per-process health table (--json)"),
    "sim": ("procs.simex.__main__", "main", "run simex, the Bitunix-compatible exchange, alone"),
    "simctl": ("procs.simex.control", "main", "simex fault injection at run time"),
    "capture": ("procs.capture_cli", "main", "look inside HDF5 captures: ls | info | export"),
    "train": ("procs.train", "main", "train a model from captures and export ONNX"),
    "backtest": ("procs.backtest.cli", "main", "replay captures through the live code; report"),
    "kill-switch": ("procs.group.control", "main_kill_switch", "kill-switch on|off|status"),
    "breaker": ("procs.group.control", "main_breaker", "breaker reset: the operator reset"),
    "reload": ("procs.group.control", "main_reload", "execution re-reads risk and strategy"),
    "reconcile": ("procs.group.control", "main_reconcile", "reconcile adopt: take the venue's"),
    "config": ("procs._config", "main_cli", "config check FILE [SECTION...] [--group G]"),
    "keys": ("procs.keystore.cli", "main", "encrypted keystore: set | show | rotate"),
    "audit": ("procs.journal_cli", "main_audit", "audit verify | override [JOURNAL]"),
    "journal": ("procs.journal_cli", "main_journal", "journal backup | restore"),
    "demo": ("procs.demo", "main", "the demo: run the group and a live summary"),
    "monitor": ("procs.monitor.__main__", "main", "Prometheus config/rules, dashboards, up|down"),
}


def _usage() -> str:
    lines = ["usage: bitrader <command> [args]", "", "commands:"]
    lines += [f"  {name:<12} {hlp}" for name, (_, _, hlp) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``bitrader <command> ...`` to the command's module."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"bitrader: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = entry
    fn = getattr(importlib.import_module(module), func)
    rc: int = fn(args[1:])
    return rc


if __name__ == "__main__":
    sys.exit(main())
