"""Kill switch: a small JSON state file the execution process polls, and ``bitrader kill-switch``.

When on: no new orders, resting orders cancelled. The process can also be switched over its
control socket (``KillSwitch.set``), which writes the same file so the state survives a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Protocol

from procs.execution.orders import Order
from procs.execution.strategy import CancelOrder

DEFAULT_PATH: Final = "run/killswitch.json"
ENV_PATH: Final = "BITRADER_KILLSWITCH_FILE"


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    on: bool = False
    reason: str = ""
    ts_ns: int = 0
    source: str = ""  # who set it: "cli", "ctl", "breaker", ...


class KillSwitchStore(Protocol):
    def read(self) -> KillSwitchState: ...
    def write(self, state: KillSwitchState) -> None: ...


class FileStore:
    """The state as a JSON file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> KillSwitchState:
        """The switch; a missing file means off, an unreadable one means ON (fail safe)."""
        try:
            raw = json.loads(self.path.read_text())
            return KillSwitchState(
                on=bool(raw["on"]),
                reason=str(raw.get("reason", "")),
                ts_ns=int(raw.get("ts_ns", 0)),
                source=str(raw.get("source", "")),
            )
        except FileNotFoundError:
            return KillSwitchState()
        except (OSError, ValueError, KeyError, TypeError) as e:
            return KillSwitchState(
                on=True, reason=f"unreadable kill-switch file: {e}", source="file"
            )

    def write(self, state: KillSwitchState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)


class KillSwitch:
    """The process's view of the switch: polled from the store at most every ``poll_s``."""

    def __init__(self, store: KillSwitchStore, poll_s: float) -> None:
        self._store = store
        self._poll_ns = int(poll_s * 1e9)
        self._next_poll_ns = 0
        self.state = store.read()

    @property
    def on(self) -> bool:
        return self.state.on

    def poll(self, now_ns: int) -> KillSwitchState | None:
        """Re-read the store when due; return the new state when it changed."""
        if now_ns < self._next_poll_ns:
            return None
        self._next_poll_ns = now_ns + self._poll_ns
        new = self._store.read()
        if new.on == self.state.on:
            self.state = new
            return None
        self.state = new
        return new

    def set(self, on: bool, reason: str, source: str, now_ns: int) -> KillSwitchState | None:
        """Switch directly (control socket); persisted. Returns the state when it changed."""
        new = KillSwitchState(on=on, reason=reason, ts_ns=now_ns, source=source)
        self._store.write(new)
        changed = new.on != self.state.on
        self.state = new
        return new if changed else None


def cancels_on_engage(open_orders: Sequence[Order]) -> list[CancelOrder]:
    """Every resting order to cancel when the switch goes on."""
    return [CancelOrder(o.client_id, o.symbol, "kill switch") for o in open_orders]


def describe(state: KillSwitchState) -> str:
    if not state.ts_ns:
        return "off (never set)" if not state.on else f"on reason={state.reason!r}"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.ts_ns / 1e9))
    word = "on" if state.on else "off"
    return f"{word} since={when} source={state.source} reason={state.reason!r}"


def main(argv: list[str] | None = None) -> int:
    """``bitrader kill-switch on|off|status [--file PATH] [--reason TEXT]``."""
    parser = argparse.ArgumentParser(prog="bitrader kill-switch")
    parser.add_argument("action", choices=["on", "off", "status"])
    parser.add_argument("--file", default=os.environ.get(ENV_PATH, DEFAULT_PATH))
    parser.add_argument("--reason", default="")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    store = FileStore(args.file)
    if args.action == "status":
        print(describe(store.read()))
        return 0
    on = args.action == "on"
    reason = args.reason or ("operator kill switch" if on else "operator cleared")
    store.write(KillSwitchState(on=on, reason=reason, ts_ns=time.time_ns(), source="cli"))
    print(describe(store.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
