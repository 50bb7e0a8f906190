"""``python -m procs.features CONFIG``: run the features process (the stage is
procs.featurecalc.stage)."""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry

from ipc.messages import WAKE_MD, wake_topic
from procs._config import config_file, load_section
from procs._runtime import Runtime
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.stage import build


def main(argv: list[str] | None = None) -> int:
    from ipc.sockets import WakeListener  # composition root: I/O opens here

    config = load_section(argv, "features", FeaturesConfig)
    registry = CollectorRegistry()
    with Runtime("features", config.runtime, registry, config_path=config_file(argv)) as rt:
        rt.start()
        proc = build(config, rt, registry)
        notifier = None
        if config.runtime.waiter == "hybrid":
            notifier = WakeListener(config.ingest_pub, wake_topic(WAKE_MD))
        try:
            return rt.run(proc, rt.make_waiter(notifier))
        finally:
            if notifier is not None:
                notifier.close()


if __name__ == "__main__":
    sys.exit(main())
