"""A tiny stage program on the real runtime, for runtime and supervisord tests.

Usage: ``python -m tests.helpers.dummy_proc CONFIG.toml`` (section ``[dummy]`` with a
``[dummy.runtime]`` table). Reads nothing; publishes only the runtime's heartbeat; owns nothing.
"""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec
from prometheus_client import CollectorRegistry

from procs._config import RuntimeConfig, load_section
from procs._runtime import Runtime

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]


class DummyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    fault_after_steps: NonNegInt = 0  # raise in step() number N (0 = never)
    items_per_step: NonNegInt = 0  # what each step reports handling (0 = always idle)
    label: str = "dummy"


class DummyProc:
    name = "dummy"

    def __init__(self, config: DummyConfig) -> None:
        self._fault_after = config.fault_after_steps
        self._items = config.items_per_step
        self._label = config.label
        self._steps = 0
        self._seq = 0
        self.closed = False

    def step(self) -> int:
        self._steps += 1
        if self._steps == self._fault_after:
            raise RuntimeError(f"injected fault after {self._steps} steps")
        self._seq += self._items
        return self._items

    def health(self) -> dict[str, float | int | str]:
        return {"steps": self._steps, "last_seq": self._seq, "label": self._label}

    def close(self) -> None:
        self.closed = True


def main(argv: list[str] | None = None) -> int:
    config = load_section(argv, "dummy", DummyConfig)  # exits 78 on a bad config
    with Runtime("dummy", config.runtime, CollectorRegistry()) as rt:
        rt.start()
        return rt.run(DummyProc(config), rt.make_waiter())


if __name__ == "__main__":
    sys.exit(main())
