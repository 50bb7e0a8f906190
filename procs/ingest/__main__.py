"""``python -m procs.ingest CONFIG.toml``: run ingest on uvloop until SIGTERM (exit 0).

Exit codes: 0 asked to stop, 1 fault (traceback logged), 78 bad configuration.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack

from prometheus_client import CollectorRegistry

from procs._config import config_file, load_section
from procs._runtime import EXIT_FAULT, Runtime
from procs.marketdata.config import IngestConfig
from procs.marketdata.serve import open_rings, serve

__all__ = ["main"]

log = logging.getLogger("procs.ingest")


async def _serve(config: IngestConfig, rt: Runtime, registry: CollectorRegistry) -> int:
    from ipc.messages import WAKE_MD, wake_topic
    from ipc.sockets import WakeSender

    with ExitStack() as stack:
        rings = open_rings(config, stack)
        return await serve(
            config, rt, registry, rings, WakeSender(rt.publisher, wake_topic(WAKE_MD))
        )


def main(argv: list[str] | None = None) -> int:
    """Run ingest with the ``[ingest]`` section of the config file named in ``argv``."""
    config = load_section(argv, "ingest", IngestConfig)  # exits 78 on a bad config
    registry = CollectorRegistry()
    rt = Runtime("ingest", config.runtime, registry, config_path=config_file(argv))
    with rt:
        rt.start()  # exits 78 when the configured cores do not exist
        import uvloop

        try:
            code = uvloop.run(_serve(config, rt, registry))
        except Exception as exc:  # the process's one broad catch: crash, don't limp
            log.exception("stopping (fault)")
            rt.last_error = f"{type(exc).__name__}: {exc}"
            code = EXIT_FAULT
        log.info("stopped")
        return code


if __name__ == "__main__":
    sys.exit(main())
