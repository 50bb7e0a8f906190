"""``python -m procs.inference CONFIG.toml``: the composition root of the inference process.

Builds the stage (procs.models.build: models, ring ``feat`` in, ring ``sig`` out), then runs it.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Final

from prometheus_client import CollectorRegistry

from ipc.messages import WAKE_FEAT
from procs._config import config_file, load_section
from procs._runtime import Runtime
from procs.models.build import build
from procs.models.config import InferenceConfig

FEAT_STREAM: Final = WAKE_FEAT  # wake-ups from the features process: wake.feat.


def main(argv: list[str] | None = None) -> int:
    config = load_section(argv, "inference", InferenceConfig)
    registry = CollectorRegistry()
    with Runtime("inference", config.runtime, registry, config_path=config_file(argv)) as rt:
        rt.start()
        with ExitStack() as stack:
            try:
                proc = build(config, rt, registry, stack)
            except SystemExit as exc:
                return int(exc.code or 0)
            notifier = None
            if config.runtime.waiter == "hybrid":
                notifier = rt.wake_listener(config.features_pub, FEAT_STREAM)
                stack.callback(notifier.close)
            return rt.run(proc, rt.make_waiter(notifier))


if __name__ == "__main__":
    sys.exit(main())
