"""A tiny stage program on the real runtime, for runtime and supervisord tests.

Usage: ``python -m tests.helpers.dummy_proc CONFIG.toml`` (section ``[dummy]`` with a
``[dummy.runtime]`` table). Reads nothing; publishes only the runtime's heartbeat; owns nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import msgspec
from prometheus_client import CollectorRegistry

from procs._config import EXIT_CONFIG, RuntimeConfig, load_section
from procs._runtime import Runtime

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]


class DummyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    fault_after_steps: NonNegInt = 0  # raise in step() number N (0 = never)
    # exit 78 this long after start, past supervisord's startsecs: a slow start-up check (a big
    # journal's quick_check on a loaded machine) that finds a bad input late
    config_error_after_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    items_per_step: NonNegInt = 0  # what each step reports handling (0 = always idle)
    label: str = "dummy"
    # a file whose words set what health reports: a trading state ("halted", "reconciling 40"
    # = 40 s out of sync, ...), or "hang": step() blocks, so the control plane stops answering
    state_file: str = ""


class DummyProc:
    name = "dummy"

    def __init__(self, config: DummyConfig) -> None:
        self._fault_after = config.fault_after_steps
        self._items = config.items_per_step
        self._label = config.label
        self._state_file = config.state_file
        self._steps = 0
        self._seq = 0
        self.closed = False

    def _words(self) -> list[str]:
        if not self._state_file:
            return []
        try:
            with open(self._state_file) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def step(self) -> int:
        self._steps += 1
        if self._state_file and self._steps % 100 == 0 and self._words()[:1] == ["hang"]:
            time.sleep(3600)  # a wedged process: alive to supervisord, deaf on its socket
        if self._steps == self._fault_after:
            raise RuntimeError(f"injected fault after {self._steps} steps")
        self._seq += self._items
        return self._items

    def health(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "steps": self._steps, "last_seq": self._seq, "label": self._label
        }  # fmt: skip
        words = self._words()
        if words:
            out["state"] = words[0]
            out["reconciling_s"] = float(words[1]) if len(words) > 1 else 0.0
        return out

    def close(self) -> None:
        self.closed = True


def main(argv: list[str] | None = None) -> int:
    config = load_section(argv, "dummy", DummyConfig)  # exits 78 on a bad config
    with Runtime("dummy", config.runtime, CollectorRegistry()) as rt:
        rt.start()
        if config.config_error_after_s:
            time.sleep(config.config_error_after_s)  # the slow check itself
            print("config error: found late", file=sys.stderr)
            return EXIT_CONFIG
        return rt.run(DummyProc(config), rt.make_waiter())


if __name__ == "__main__":
    sys.exit(main())
